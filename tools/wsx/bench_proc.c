/* `wsx bench --server-pid`: the server's CPU time and memory, and the machine's busy time,
 * read from /proc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* utime + stime of pid, in clock ticks. */
bool bench_read_ticks(long pid, uint64_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces: count from the last
     * ')'. utime and stime are fields 14 and 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 1, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return false;
    *out = ut + st;
    return true;
}

/* Busy time of the whole machine (every CPU, everything but idle and iowait), in ticks. */
bool bench_read_busy_ticks(uint64_t *out)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return false;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    if (n != 8) return false;
    *out = user + nice + sys + irq + softirq + steal;
    return true;
}

/* VmRSS of pid in KiB, or -1. */
long bench_read_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}
