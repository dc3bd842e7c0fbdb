/*
 * Hosts as network namespaces, for the cross-host mode of the benchmarks
 * (mf-bench --netns, mmc-bench --netns) on one machine.
 *
 * bench_netns_setup() makes nhosts "host" namespaces <base><pid>h<i> and a
 * "switch" namespace <base><pid>sw holding a bridge; host i gets a veth
 * pair (eth0 inside, port p<i> on the bridge) and the address
 * 10.213.0.<i + 1>/24, used only inside these namespaces.  The root
 * namespace's networking is never touched.
 *
 * Invariants: only the process that made the namespaces removes them (at
 * exit through atexit, so a parent that turns SIGINT/SIGTERM into a normal
 * exit cleans up too); namespaces of earlier runs whose process is gone are
 * removed at setup.  Children enter a host with bench_netns_enter() right
 * after fork, before anything else.  Needs root and iproute2 (`ip`).
 */
#ifndef BENCH_NETNS_H
#define BENCH_NETNS_H

#include <stdbool.h>

#define BENCH_NETNS_MAX_HOSTS 16

/* Creates the hosts and the switch.  0, or -1 (logged with bench_err();
 * whatever was made is removed at exit). */
int bench_netns_setup(const char *base, unsigned nhosts);

/* Address of host (10.213.0.<host + 1>); NULL before setup. */
const char *bench_netns_addr(unsigned host);

/* In a child: enters host's network namespace.  0, or -1 (logged). */
int bench_netns_enter(unsigned host);

/* Removes every namespace made by this process (also run at exit). */
void bench_netns_cleanup(void);

#endif /* BENCH_NETNS_H */
