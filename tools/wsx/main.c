/* The `wsx` command: a WebSocket server, client and tools in one binary. */
#include <stdio.h>
#include <string.h>

#include "tool.h"

static const char usage[] =
    "usage: wsx COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  serve     the chat server with its web page (http://localhost:8080/)\n"
    "  echo      a WebSocket echo server (text and binary messages are sent back)\n"
    "  cat URL   an interactive client: stdin lines are sent, messages are printed\n"
    "  bench URL a load generator that verifies every echo: msgs/s, latency, server CPU\n"
    "  sio       a Socket.IO / Engine.IO server for testing clients (raw echo at /engine.io/)\n"
    "\n"
    "'wsx COMMAND --help' lists the options of a command.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        puts("wsx 0.1.0");
        return 0;
    }
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "echo")) return cmd_echo(argc - 1, argv + 1);
    if (!strcmp(cmd, "cat")) return cmd_cat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "sio")) return cmd_sio(argc - 1, argv + 1);
    fprintf(stderr, "wsx: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
