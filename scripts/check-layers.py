#!/usr/bin/env python3
"""Checks that every #include "..." in src/, tools/ and include/ points down the layers.

    scripts/check-layers.py [ROOT]

The layers, lowest first: proto, net, http, ws, pubsub, cluster, eio, sio, chat, tools (docs/design.md,
"Layers"). A file under src/<layer>/ or tools/ may include headers of its own layer and of
lower ones, and the public headers in include/. A public header (include/) includes only
other public headers. An include is resolved as the compiler does with the build's include
paths: next to the including file, then src/, then include/; one that resolves nowhere is
reported too, since it cannot be checked. Prints each violation as file:line and exits 1 if
there is any, 0 otherwise.

Includes are what this checks; calls are not. Known calls against the layering are listed
in docs/design.md ("Layers") with the issue that removes them.
"""
import os
import re
import sys

LAYERS = ["proto", "net", "http", "ws", "pubsub", "cluster", "eio", "sio", "chat", "tools"]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
SOURCE_EXT = (".c", ".h")


def layer_of(rel):
    """The layer of a path relative to the root: an index into LAYERS, "public" for
    include/, or None for files outside the checked trees."""
    parts = rel.split("/")
    if parts[0] == "include":
        return "public"
    if parts[0] == "tools":
        return LAYERS.index("tools")
    if parts[0] == "src" and len(parts) > 2 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def resolve(root, rel, name):
    for base in (os.path.dirname(rel), "src", "include"):
        cand = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def describe(layer):
    return "include/ (public)" if layer == "public" else LAYERS[layer]


def check_file(root, rel):
    found = []
    src_layer = layer_of(rel)
    if src_layer is None:
        return ["%s:1: not in a known layer (src/<layer>/ with layer one of %s)"
                % (rel, ", ".join(LAYERS[:-1]))]
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            name = m.group(1)
            target = resolve(root, rel, name)
            where = "%s:%d" % (rel, lineno)
            if target is None:
                found.append('%s: #include "%s" resolves to no file in the tree' % (where, name))
                continue
            dst_layer = layer_of(target)
            if dst_layer == "public":
                continue
            if dst_layer is None:
                found.append('%s: #include "%s" (%s) is outside src/, tools/ and include/'
                             % (where, name, target))
            elif src_layer == "public":
                found.append('%s: public header includes %s (layer %s); include/ may include '
                             'only include/' % (where, target, describe(dst_layer)))
            elif dst_layer > src_layer:
                found.append('%s: #include "%s": layer %s includes %s, a higher layer'
                             % (where, name, describe(src_layer), describe(dst_layer)))
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    files = []
    for top in ("include", "src", "tools"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith(SOURCE_EXT):
                    files.append(os.path.relpath(os.path.join(dirpath, n), root))
    files.sort()
    violations = []
    for rel in files:
        violations += check_file(root, rel)
    for v in violations:
        print(v)
    if violations:
        print("check-layers: %d violation(s) in %d files (order: %s)"
              % (len(violations), len(files), " -> ".join(LAYERS)), file=sys.stderr)
        return 1
    print("check-layers: %d files, includes follow %s" % (len(files), " -> ".join(LAYERS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
