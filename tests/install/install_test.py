#!/usr/bin/python3
"""The installed tree as a C developer uses it: `cmake --install` of the build directory into
a temporary non-system prefix, then examples/ built against it twice, with
`pkg-config --cflags --libs wsx` and with `find_package(wsx CONFIG)` (tests/install/consumer),
and run without LD_LIBRARY_PATH: the echo server of one answers the client of the other.
Also: wsx.pc names the prefix and carries the rpath, the package's version file refuses
another major version, every installed header is listed in the README, and the manual page
is installed, renders without a warning (groff -ww, man --warnings) and names every option of
every command's --help.

Environment: WSX_BUILD_DIR (the build directory to install), WSX_SOURCE_DIR, WSX_CC (the
compiler of the build), WSX_CMAKE, WSX_SAN_FLAGS (the sanitizer flags of the build, or
empty), WSX_BIN when the build made the manual page (the wsx binary it was made from).
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from wsxlib import _track, _untrack, check, eq, note, run, step  # noqa: E402

BUILD = os.environ.get("WSX_BUILD_DIR", "")
SRC = os.environ.get("WSX_SOURCE_DIR", "")
CC = os.environ.get("WSX_CC", "cc")
CMAKE = os.environ.get("WSX_CMAKE", "cmake")
SAN = shlex.split(os.environ.get("WSX_SAN_FLAGS", ""))
WSX_BIN = os.environ.get("WSX_BIN", "")


def clean_env(**extra):
    """The environment of a user's shell: no LD_LIBRARY_PATH, no pkg-config path but ours."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH")}
    env.update(extra)
    return env


def sh(argv, name, env=None, cwd=None, timeout=240, want=0):
    """Runs argv to completion within timeout seconds; checks its exit status (want=None
    accepts any). Returns (status, stdout + stderr)."""
    note("run: " + " ".join(shlex.quote(a) for a in argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env or clean_env(), cwd=cwd, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace")
    if want is not None and p.returncode != want:
        check(False, f"{name}: exit status {want}", f"got {p.returncode}:\n{text[-3000:]}")
    elif want is not None:
        check(True, f"{name}: exit status {want}")
    return p.returncode, text


def echo_pair(server, client, name, libwsx):
    """Starts the example echo server `server` on a free port, runs the example `client`
    against it (it sends "hello" and must print the echo), then stops the server with SIGTERM
    (exit 0). The server links the shared library: it must have loaded the file libwsx."""
    proc = subprocess.Popen([server, "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=clean_env())
    _track(proc.pid)
    try:
        line = proc.stdout.readline().decode("utf-8", "replace").strip()
        m = re.match(r"^listening on port (\d+)$", line)
        if not check(m is not None, f"{name}: the echo server starts", repr(line)):
            return
        with open(f"/proc/{proc.pid}/maps", encoding="utf-8") as f:
            libs = {ln.split()[-1] for ln in f if "libwsx" in ln}
        eq(sorted(libs), [os.path.realpath(libwsx)], f"{name}: the libwsx.so.0 the server loaded")
        url = f"ws://127.0.0.1:{m.group(1)}/"
        rc, text = sh([client, url], f"{name}: the client", timeout=30)
        check("received: hello" in text, f"{name}: the client printed the echo", text)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            eq(proc.wait(timeout=10), 0, f"{name}: the echo server exits 0 on SIGTERM")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            check(False, f"{name}: the echo server exits on SIGTERM", "killed after 10 s")
        _untrack(proc.pid)


def main():
    tmp = tempfile.mkdtemp(prefix="wsx-install-")
    prefix = os.path.join(tmp, "opt", "x")
    examples = os.path.join(SRC, "examples")
    libwsx = os.path.join(prefix, "lib", "libwsx.so.0")
    pc_env = clean_env(PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))

    with step("cmake --install into a non-system prefix"):
        sh([CMAKE, "--install", BUILD, "--prefix", prefix], "cmake --install")
        for f in ("lib/libwsx.so.0", "lib/libwsx.a", "lib/pkgconfig/wsx.pc",
                  "lib/cmake/wsx/wsxConfig.cmake", "lib/cmake/wsx/wsxConfigVersion.cmake",
                  "include/wsx.h"):
            check(os.path.exists(os.path.join(prefix, f)), f"installed: {f}")

    with step("wsx.pc: prefix, version, rpath"):
        rc, ver = sh(["pkg-config", "--modversion", "wsx"], "pkg-config --modversion", env=pc_env)
        rc, libs = sh(["pkg-config", "--libs", "wsx"], "pkg-config --libs", env=pc_env)
        check(f"-L{prefix}/lib" in libs, "Libs: -L names the prefix", libs)
        check(f"-Wl,-rpath,{prefix}/lib" in libs, "Libs: an rpath to the non-system libdir", libs)
        with open(os.path.join(SRC, "CMakeLists.txt"), encoding="utf-8") as f:
            want = re.search(r"project\(wsx VERSION ([0-9.]+)", f.read()).group(1)
        eq(ver.strip(), want, "pkg-config --modversion wsx is the project's version")

    with step("examples/ built with pkg-config, run without LD_LIBRARY_PATH"):
        flags = sh(["pkg-config", "--cflags", "--libs", "wsx"], "pkg-config", env=pc_env)[1].split()
        for ex in ("echo_server", "client"):
            sh([CC, *SAN, "-o", os.path.join(tmp, f"pc_{ex}"), os.path.join(examples, f"{ex}.c"),
                *flags], f"cc examples/{ex}.c $(pkg-config --cflags --libs wsx)")
        echo_pair(os.path.join(tmp, "pc_echo_server"), os.path.join(tmp, "pc_client"),
                  "pkg-config", libwsx)

    with step("examples/ built with find_package(wsx CONFIG)"):
        bdir = os.path.join(tmp, "consumer")
        san = " ".join(SAN)
        sh([CMAKE, "-S", os.path.join(SRC, "tests", "install", "consumer"), "-B", bdir,
            f"-DCMAKE_PREFIX_PATH={prefix}", f"-DWSX_EXAMPLES_DIR={examples}",
            f"-DCMAKE_C_COMPILER={CC}", f"-DCMAKE_C_FLAGS={san}",
            f"-DCMAKE_EXE_LINKER_FLAGS={san}"], "configure a project with find_package(wsx)")
        sh([CMAKE, "--build", bdir, "-j1"], "build it against wsx::wsx and wsx::wsx_static")
        server = os.path.join(bdir, "echo_server_shared")
        client = os.path.join(bdir, "client_static")
        echo_pair(server, client, "find_package: wsx::wsx server, wsx::wsx_static client", libwsx)
        echo_pair(server, os.path.join(tmp, "pc_client"), "find_package server, pkg-config client",
                  libwsx)

    with step("the package's version file refuses another major version"):
        proj = os.path.join(tmp, "v1")
        os.makedirs(proj)
        with open(os.path.join(proj, "CMakeLists.txt"), "w", encoding="utf-8") as f:
            f.write("cmake_minimum_required(VERSION 3.20)\nproject(v1 C)\n"
                    "find_package(wsx 1.0 CONFIG REQUIRED)\n")
        rc, text = sh([CMAKE, "-S", proj, "-B", os.path.join(proj, "b"),
                       f"-DCMAKE_PREFIX_PATH={prefix}"], "find_package(wsx 1.0)", want=None)
        check(rc != 0 and "version" in text, "find_package(wsx 1.0) fails on wsx 0.x", text[-800:])

    with step("every installed header is in the README"):
        inc = os.path.join(prefix, "include")
        headers = sorted(os.path.relpath(os.path.join(d, n), inc)
                         for d, _, files in os.walk(inc) for n in files)
        note(f"installed headers: {headers}")
        with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        for h in headers:
            check(f"(include/{h})" in readme, f"README links include/{h}")
            check(f"`{h}`" in readme, f"README's layout table names `{h}`")

    if WSX_BIN:
        with step("the manual page"):
            check_man(os.path.join(prefix, "share", "man", "man1", "wsx.1"))

    shutil.rmtree(tmp, ignore_errors=True)


def check_man(page):
    if not check(os.path.exists(page), "installed: share/man/man1/wsx.1"):
        return
    groff = shutil.which("groff")
    if check(groff is not None, "groff is installed (Debian groff-base)"):
        # -ww: every warning; -z: no output. Then the text, for the options.
        p = subprocess.run([groff, "-man", "-ww", "-z", page], capture_output=True, timeout=30)
        eq((p.returncode, p.stderr.decode()), (0, ""), "groff -man -ww -z wsx.1: status, warnings")
        p = subprocess.run([groff, "-man", "-Tascii", "-P-cbou", page], capture_output=True,
                           timeout=30)
        text = p.stdout.decode("ascii", "replace")
        usage = subprocess.run([WSX_BIN, "--help"], capture_output=True, timeout=10)
        cmds = re.findall(r"^  ([a-z]+)", usage.stdout.decode().split("commands:")[-1], re.M)
        note(f"commands in wsx --help: {cmds}")
        check({"serve", "echo", "cat", "bench"} <= set(cmds), "wsx --help lists the commands")
        for cmd in cmds:
            h = subprocess.run([WSX_BIN, cmd, "--help"], capture_output=True, timeout=10)
            opts = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", h.stdout.decode())))
            check(len(opts) > 1, f"wsx {cmd} --help lists options on stdout", opts)
            check(f"wsx {cmd} [options]" in text, f"wsx.1 has a section for wsx {cmd}")
            missing = [o for o in opts if o not in text]
            eq(missing, [], f"options of wsx {cmd} --help ({len(opts)}) missing from wsx.1")
    man = shutil.which("man")
    if man:
        p = subprocess.run([man, "--warnings", "-l", page], capture_output=True, timeout=30,
                           env=clean_env(MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        eq((p.returncode, p.stderr.decode()), (0, ""), "man --warnings -l wsx.1: status, warnings")
        check("wsx serve" in p.stdout.decode("utf-8", "replace"), "man -l renders the page")
    else:
        note("no man command (man-db): man -l not tried")


if __name__ == "__main__":
    run("install_test", main, timeout=280, needs=("WSX_BUILD_DIR", "WSX_SOURCE_DIR"))
