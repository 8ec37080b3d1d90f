#!/usr/bin/env python3
"""Every internal function (wsx__name, declared in a header under src/) is called somewhere:
in the library, the tools, the tests, the benchmarks, the examples or the fuzz targets.

A declaration or definition starts at column 0 (clang-format puts them there); any other
occurrence of the name is a use. Prints each function that has none and exits 1.
"""
import os
import re
import sys

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
trees = ["src", "tools", "include", "tests", "bench", "examples", "fuzz"]
texts = {}
for t in trees:
    for dirpath, dirs, names in os.walk(os.path.join(root, t)):
        # npm's trees (bench/sio, tests/socketio after `npm ci`) hold thousands of files.
        dirs[:] = [d for d in dirs if d != "node_modules"]
        for n in names:
            if n.endswith((".c", ".h")):
                p = os.path.join(dirpath, n)
                with open(p, encoding="utf-8", errors="replace") as f:
                    texts[os.path.relpath(p, root)] = f.read().splitlines()

declared = set()
for rel, lines in texts.items():
    if rel.startswith("src/") and rel.endswith(".h"):
        for line in lines:
            if line[:1].strip():
                declared.update(re.findall(r"\b(wsx__[A-Za-z0-9_]+)\(", line))

# One pass over the text: count, per name, the lines that use it. Matching each declared name
# against every line was O(names x lines) and took 15 s, which hit the 30 s timeout under load.
ident = re.compile(r"\b(wsx__[A-Za-z0-9_]+)\b")
uses = dict.fromkeys(declared, 0)
for lines in texts.values():
    for line in lines:
        if "wsx__" not in line:
            continue
        for name in set(ident.findall(line)) & declared:
            is_decl = line[:1].strip() and re.search(r"\b%s\(" % re.escape(name), line)
            if not is_decl:
                uses[name] += 1
unused = [name for name in sorted(declared) if uses[name] == 0]

for name in unused:
    print("unused internal function: %s" % name)
print("unused_internals: %d internal functions, %d unused" % (len(declared), len(unused)))
sys.exit(1 if unused else 0)
