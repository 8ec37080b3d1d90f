#!/usr/bin/env python3
"""Checks that no source file of src/, tools/, include/ and tests/ is over 1000 lines.

    scripts/check-lines.py [ROOT]

Source files are C (.c, .h), Python (.py) and JavaScript (.js, .mjs, .cjs). Generated and
vendored files are not ours to split and are skipped: tools/wsx/assets.h (made from web/ by
the build) and everything under a node_modules/ directory. Prints each file over the limit
as file: N lines and exits 1 if there is any, 0 otherwise. A file in ALLOWED is reported as
a note instead; an entry that is no longer over the limit is reported as stale, so it can be
removed.
"""
import os
import sys

LIMIT = 1000
TREES = ("src", "tools", "include", "tests")
EXTENSIONS = (".c", ".h", ".py", ".js", ".mjs", ".cjs")
GENERATED = {"tools/wsx/assets.h"}

# Files allowed over the limit, each with the reason; an entry that falls under the limit is
# reported as stale. None since issue 11 split the last ones.
ALLOWED = set()


def sources(root):
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, tree)):
            dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
            for name in sorted(filenames):
                if not name.endswith(EXTENSIONS):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                if rel not in GENERATED:
                    yield rel, path


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    bad = 0
    seen = set()
    for rel, path in sources(root):
        n = count_lines(path)
        if rel in ALLOWED:
            seen.add(rel)
            if n > LIMIT:
                print(f"note: {rel}: {n} lines (allowed for now, issue 11)")
            else:
                print(f"note: {rel}: {n} lines, no longer over {LIMIT}: remove it from ALLOWED")
        elif n > LIMIT:
            print(f"{rel}: {n} lines (limit {LIMIT})")
            bad += 1
    for rel in sorted(ALLOWED - seen):
        print(f"note: {rel} is gone: remove it from ALLOWED")
    if bad:
        print(f"{bad} file(s) over {LIMIT} lines: split them along a real seam")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
