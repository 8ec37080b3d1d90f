#!/usr/bin/python3
"""wsx built inside another project (tests/install/subproject: add_subdirectory, as
FetchContent does) whose flags warn about more than wsx's own: wsx's options default to a
library-only build without -Werror (WSX_WERROR, WSX_TESTS and WSX_TOOLS OFF), no compile
command of the tree carries -Werror, the build succeeds although the compiler warns in wsx's
sources (which -Werror would have turned into a failed build), and the examples linked with
the wsx::wsx and wsx::wsx_static aliases run against each other.

Environment: WSX_SOURCE_DIR, WSX_CC (the compiler), WSX_CMAKE.
"""

import json
import os
import re
import shlex
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from install_test import CC, CMAKE, SRC, echo_pair, sh  # noqa: E402
from wsxlib import check, eq, note, run, step  # noqa: E402


def cache(bdir):
    with open(os.path.join(bdir, "CMakeCache.txt"), encoding="utf-8") as f:
        return dict(re.findall(r"^(WSX_\w+):BOOL=(\w+)$", f.read(), re.M))


def main():
    tmp = tempfile.mkdtemp(prefix="wsx-subproject-")
    bdir = os.path.join(tmp, "b")
    with step("configure a project that adds wsx with add_subdirectory"):
        sh([CMAKE, "-S", os.path.join(SRC, "tests", "install", "subproject"), "-B", bdir,
            f"-DWSX_SOURCE_DIR={SRC}", f"-DCMAKE_C_COMPILER={CC}"], "configure")
        opts = cache(bdir)
        note(f"options: {opts}")
        for o in ("WSX_WERROR", "WSX_TESTS", "WSX_TOOLS"):
            eq(opts.get(o), "OFF", f"{o} defaults to OFF in a subproject")

    with step("no -Werror in the compile commands"):
        with open(os.path.join(bdir, "compile_commands.json"), encoding="utf-8") as f:
            cmds = json.load(f)
        wsx_cmds = [c for c in cmds if os.path.join(SRC, "src") in c["file"]]
        check(len(wsx_cmds) > 10, f"wsx's sources are compiled ({len(wsx_cmds)} of {len(cmds)})")
        werror = [c["file"] for c in cmds if "-Werror" in shlex.split(c["command"])]
        eq(werror, [], "compile commands with -Werror")
        check(all("-Wconversion" in c["command"] for c in wsx_cmds),
              "the embedding project's warning flags reach wsx's sources")
        names = {os.path.basename(c["file"]) for c in cmds}
        check(not any(n.startswith("test_") for n in names), "no unit test is built")
        check("main.c" not in names, "the wsx command is not built (tools/wsx/main.c)")

    with step("build: warnings in wsx's sources, no error"):
        rc, text = sh([CMAKE, "--build", bdir, "-j2"], "build", timeout=400)
        warned = [ln for ln in text.splitlines()
                  if "warning:" in ln and os.path.join(SRC, "src") in ln]
        note(f"{len(warned)} warnings in wsx's sources, first: {warned[:1]}")
        check(len(warned) > 0, "the embedding project's flags make the compiler warn in wsx's "
              "sources (so inheriting -Werror would have failed this build)")

    with step("the examples linked with wsx::wsx and wsx::wsx_static run"):
        echo_pair(os.path.join(bdir, "embed_echo_server"), os.path.join(bdir, "embed_client"),
                  "add_subdirectory", os.path.join(bdir, "wsx", "libwsx.so.0"))

    shutil.rmtree(tmp, ignore_errors=True)


run("subproject_test", main, timeout=480, needs=("WSX_SOURCE_DIR",))
