/*
 * The per-address admission table (src/ws/admit.c) with plain socket addresses: how IPv4,
 * IPv6 /64 prefixes and IPv4-mapped addresses are counted, both limits, release on close,
 * and a table of many addresses (growth, reuse of freed entries).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"
#include "ws/ws.h"

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

TEST(limits_per_address)
{
    wsx__admit *a;
    CHECK_INT(wsx__admit_new(&a), 0);
    struct sockaddr_storage x = v4("192.0.2.7"), y = v4("192.0.2.8");
    /* Two handshakes in progress at most, three connections at most. */
    CHECK_INT(wsx__admit_add(a, 10, SA(x), 3, 2), 0);
    CHECK_INT(wsx__admit_add(a, 11, SA(x), 3, 2), 0);
    CHECK_INT(wsx__admit_add(a, 12, SA(x), 3, 2), WSX__ADMIT_PENDING_PER_IP);
    CHECK_INT(wsx__admit_add(a, 12, SA(y), 3, 2), 0);
    CHECK(wsx__admit_handshaken(a, 10));
    CHECK(!wsx__admit_handshaken(a, 10));
    CHECK_INT(wsx__admit_add(a, 13, SA(x), 3, 2), 0);
    CHECK(wsx__admit_handshaken(a, 11));
    CHECK(wsx__admit_handshaken(a, 13));
    CHECK_INT(wsx__admit_add(a, 14, SA(x), 3, 2), WSX__ADMIT_PER_IP);
    size_t conns, pending;
    wsx__admit_count(a, SA(x), &conns, &pending);
    CHECK_INT((int)conns, 3);
    CHECK_INT((int)pending, 0);
    CHECK_INT((int)wsx__admit_addresses(a), 2);
    /* Closing frees the places; the last one frees the address. */
    CHECK(!wsx__admit_remove(a, 10));
    CHECK_INT(wsx__admit_add(a, 14, SA(x), 3, 2), 0);
    CHECK(wsx__admit_remove(a, 14));
    CHECK(wsx__admit_remove(a, 12));
    CHECK(!wsx__admit_remove(a, 12));
    CHECK_INT((int)wsx__admit_addresses(a), 1);
    CHECK(!wsx__admit_remove(a, 11));
    CHECK(!wsx__admit_remove(a, 13));
    CHECK_INT((int)wsx__admit_addresses(a), 0);
    CHECK(!wsx__admit_remove(a, 99999)); /* never seen: ignored */
    wsx__admit_free(a);
}

TEST(ipv6_by_prefix_and_mapped_ipv4)
{
    wsx__admit *a;
    CHECK_INT(wsx__admit_new(&a), 0);
    struct sockaddr_storage p1 = v6("2001:db8:1:2::1"), p2 = v6("2001:db8:1:2:ffff::9");
    struct sockaddr_storage other = v6("2001:db8:1:3::1");
    CHECK_INT(wsx__admit_add(a, 3, SA(p1), 2, 100), 0);
    /* Same /64: the same address for counting. */
    CHECK_INT(wsx__admit_add(a, 4, SA(p2), 2, 100), 0);
    CHECK_INT(wsx__admit_add(a, 5, SA(p2), 2, 100), WSX__ADMIT_PER_IP);
    CHECK_INT(wsx__admit_add(a, 5, SA(other), 2, 100), 0);
    /* An IPv4 peer seen through a dual-stack socket is the IPv4 address. */
    struct sockaddr_storage m = v6("::ffff:198.51.100.4"), four = v4("198.51.100.4");
    CHECK_INT(wsx__admit_add(a, 6, SA(m), 2, 100), 0);
    CHECK_INT(wsx__admit_add(a, 7, SA(four), 2, 100), 0);
    CHECK_INT(wsx__admit_add(a, 8, SA(four), 2, 100), WSX__ADMIT_PER_IP);
    CHECK_INT((int)wsx__admit_addresses(a), 3);
    /* Other families (a Unix socket) are not counted. */
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    CHECK_INT(wsx__admit_add(a, 9, SA(un), 0, 0), 0);
    CHECK(!wsx__admit_remove(a, 9));
    for (int fd = 3; fd <= 7; fd++)
        wsx__admit_remove(a, fd);
    CHECK_INT((int)wsx__admit_addresses(a), 0);
    wsx__admit_free(a);
}

TEST(many_addresses)
{
    wsx__admit *a;
    CHECK_INT(wsx__admit_new(&a), 0);
    enum { N = 20000 };
    char ip[32];
    for (int i = 0; i < N; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        struct sockaddr_storage s = v4(ip);
        CHECK_INT(wsx__admit_add(a, 100 + i, SA(s), 1, 1), 0);
    }
    CHECK_INT((int)wsx__admit_addresses(a), N);
    snprintf(ip, sizeof ip, "10.0.1.2");
    struct sockaddr_storage s = v4(ip);
    CHECK_INT(wsx__admit_add(a, 100 + N, SA(s), 1, 1), WSX__ADMIT_PER_IP);
    for (int i = 0; i < N; i += 2)
        CHECK(wsx__admit_remove(a, 100 + i));
    CHECK_INT((int)wsx__admit_addresses(a), N / 2);
    /* Freed entries are reused, and every remaining address is still found. */
    for (int i = 0; i < N; i += 2) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        struct sockaddr_storage t = v4(ip);
        CHECK_INT(wsx__admit_add(a, 100 + i, SA(t), 1, 1), 0);
    }
    size_t conns, pending;
    wsx__admit_count(a, SA(s), &conns, &pending);
    CHECK_INT((int)conns, 1);
    CHECK_INT((int)pending, 1);
    for (int i = 0; i < N; i++)
        CHECK(wsx__admit_remove(a, 100 + i));
    CHECK_INT((int)wsx__admit_addresses(a), 0);
    wsx__admit_free(a);
}

/* A burst past the handshake limit goes on probation: served if it sends its request within
 * the grace, promoted if a slot freed meanwhile, turned away if not. */
TEST(grace_for_a_burst)
{
    wsx__admit *a;
    CHECK_INT(wsx__admit_new(&a), 0);
    struct sockaddr_storage x = v4("192.0.2.9");
    CHECK_INT(wsx__admit_add(a, 10, SA(x), 5, 2), 0);
    CHECK_INT(wsx__admit_add(a, 11, SA(x), 5, 2), 0);
    CHECK_INT(wsx__admit_add(a, 12, SA(x), 5, 2), WSX__ADMIT_PENDING_PER_IP);
    CHECK_INT(wsx__admit_add_grace(a, 12, SA(x), 5, 1000), 0);
    CHECK_INT(wsx__admit_add(a, 13, SA(x), 5, 2), WSX__ADMIT_PENDING_PER_IP);
    CHECK_INT(wsx__admit_add_grace(a, 13, SA(x), 5, 1500), 0);
    CHECK_INT(wsx__admit_add(a, 14, SA(x), 5, 2), WSX__ADMIT_PENDING_PER_IP);
    CHECK_INT(wsx__admit_add_grace(a, 14, SA(x), 5, 1500), 0);
    /* max_per_ip still bounds connections on probation. */
    CHECK_INT(wsx__admit_add_grace(a, 15, SA(x), 5, 1500), WSX__ADMIT_PER_IP);
    size_t conns, pending;
    wsx__admit_count(a, SA(x), &conns, &pending);
    CHECK_INT((int)conns, 5);
    CHECK_INT((int)pending, 2);
    /* Not due before the grace; an ordinary handshake is never due. */
    CHECK_INT(wsx__admit_grace_due(a, 12, 1999, 1000, 2), 0);
    CHECK_INT(wsx__admit_grace_due(a, 10, 9999, 1000, 2), 0);
    /* 12 sent its request in time: served, and it counted as one (for the server's total). */
    CHECK(wsx__admit_handshaken(a, 12));
    CHECK(!wsx__admit_handshaken(a, 12));
    /* Due with the address still at its limit: turned away. */
    CHECK_INT(wsx__admit_grace_due(a, 13, 2500, 1000, 2), WSX__ADMIT_PENDING_PER_IP);
    CHECK(wsx__admit_remove(a, 13));
    /* A slot freed: 14 becomes an ordinary handshake in progress. */
    CHECK(wsx__admit_handshaken(a, 10));
    CHECK_INT(wsx__admit_grace_due(a, 14, 2500, 1000, 2), 0);
    wsx__admit_count(a, SA(x), &conns, &pending);
    CHECK_INT((int)conns, 4);
    CHECK_INT((int)pending, 2);
    CHECK_INT(wsx__admit_grace_due(a, 14, 9999, 1000, 2), 0);
    CHECK(wsx__admit_remove(a, 14));
    CHECK(wsx__admit_remove(a, 11));
    CHECK(!wsx__admit_remove(a, 10));
    CHECK(!wsx__admit_remove(a, 12));
    CHECK_INT((int)wsx__admit_addresses(a), 0);
    wsx__admit_free(a);
}

int main(void)
{
    RUN(limits_per_address);
    RUN(ipv6_by_prefix_and_mapped_ipv4);
    RUN(many_addresses);
    RUN(grace_for_a_burst);
    return test_summary("admit");
}
