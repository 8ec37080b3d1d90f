#!/bin/sh
# Makes the manual page wsx.1 (man(7)) from docs/wsx.1.in and the --help texts of the built
# wsx command, so the page lists exactly the options of the binary it is installed with.
#   sh cmake/wsx-man.sh WSX_BINARY TEMPLATE VERSION OUTPUT
# The line @COMMANDS@ of the template becomes one subsection per command that `wsx --help`
# lists; @VERSION@ the version. A help text is read as: its first line "usage: ..." (the subsection's title);
# lines at the left margin (paragraphs); lines indented by 2 to 8 spaces (a list item: a
# tag, then after two or more spaces its description, which may also start on the next
# line); lines indented further (the description goes on); empty lines (a new paragraph).
set -eu
[ $# -eq 4 ] || { echo "usage: $0 WSX_BINARY TEMPLATE VERSION OUTPUT" >&2; exit 2; }
wsx=$1 template=$2 version=$3 output=$4
tmp=$output.tmp
trap 'rm -f "$tmp" "$tmp.cmds"' EXIT

# The commands, from the list under "commands:" in `wsx --help`.
commands=$("$wsx" --help | awk '/^commands:/ { on = 1; next } on && /^$/ { on = 0 }
    on && /^  [a-z]/ { print $1 }')
[ -n "$commands" ] || { echo "$0: no commands listed by '$wsx --help'" >&2; exit 1; }

: >"$tmp.cmds"
for cmd in $commands; do
    # A command whose --help fails, or prints nothing on stdout, fails the build rather than
    # leave an empty section.
    "$wsx" "$cmd" --help >"$tmp" && [ -s "$tmp" ] ||
        { echo "$0: '$wsx $cmd --help' failed or printed nothing" >&2; exit 1; }
    awk '
    # roff-escape a piece of text: backslashes, hyphens (options must stay copyable), and a
    # leading dot or quote that roff would read as a request.
    function esc(s) {
        gsub(/\\/, "\\e", s)
        gsub(/-/, "\\-", s)
        if (s ~ /^[.\047]/) s = "\\&" s
        return s
    }
    # a tag: its first word and the words that start with a dash in bold, the others
    # (arguments) in italics; separators after a word stay roman.
    function tag(s,    n, w, i, out, word, tail) {
        n = split(s, w, / +/)
        out = ""
        for (i = 1; i <= n; i++) {
            word = w[i]; tail = ""
            if (word ~ /,$/) { tail = ","; word = substr(word, 1, length(word) - 1) }
            out = out (i > 1 ? " " : "") ((i == 1 || word ~ /^-/) ? "\\fB" : "\\fI") \
                esc(word) "\\fR" tail
        }
        return out
    }
    NR == 1 {
        sub(/^usage: /, "")
        print ".SS \"" esc($0) "\""
        next
    }
    /^$/ { if (started) pending = 1; next }
    {
        match($0, /^ */)
        indent = RLENGTH
        line = substr($0, indent + 1)
    }
    indent >= 2 && indent <= 8 {
        if (match(line, /  +/)) {
            t = substr(line, 1, RSTART - 1); d = substr(line, RSTART + RLENGTH)
        } else {
            t = line; d = ""
        }
        pending = 0; started = 1; in_list = 1
        print ".TP"
        print tag(t)
        if (d != "") print esc(d)
        next
    }
    indent > 8 { print esc(line); next }
    {
        # a paragraph after a list item leaves the item even without an empty line
        if ((pending || in_list) && started) print ".PP"
        pending = 0; started = 1; in_list = 0
        print esc(line)
    }
    ' "$tmp" >>"$tmp.cmds"
done

awk -v version="$version" -v cmds="$tmp.cmds" '
    $0 == "@COMMANDS@" { while ((getline l < cmds) > 0) print l; next }
    { gsub(/@VERSION@/, version); print }
' "$template" >"$tmp"
mv "$tmp" "$output"
