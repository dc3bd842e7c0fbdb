/*
 * A one-member etcd for tests and benchmarks (tk_etcd.h).
 */
#include "tk_etcd.h"

#include "tk_proc.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tk_etcd_available(void)
{
    return access(TK_ETCD_BIN, X_OK) == 0;
}

/* Whether the log says etcd serves clients. */
static bool tk_etcd_ready(const char *log)
{
    char line[512];
    bool ready = false;
    FILE *f = fopen(log, "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        ready |= strstr(line, "ready to serve client requests") != NULL;
    }
    if (f != NULL) {
        fclose(f);
    }
    return ready;
}

int tk_etcd_start(tk_etcd_t *etcd, const tk_netns_t *net, int host,
                  const char *addr, uint16_t client_port, uint16_t peer_port)
{
    const char *cert = getenv("MMC_META_TLS_CERT_FILE");
    const char *key = getenv("MMC_META_TLS_KEY_FILE");
    const char *ca = getenv("MMC_META_TLS_CA_FILE");
    char cmd[2048], log[96], tls[1024] = "";
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    uint64_t deadline = tk_time_ms() + 60000;
    bool https =
        getenv("TK_TLS") != NULL && cert != NULL && key != NULL && ca != NULL;
    int fd = -1;

    memset(etcd, 0, sizeof(*etcd));
    snprintf(etcd->dir, sizeof(etcd->dir), "/tmp/mf-etcd-%d-%u", getpid(),
             (unsigned)client_port);
    snprintf(etcd->url, sizeof(etcd->url), "%s://%s:%u",
             https ? "https" : "http", addr, (unsigned)client_port);
    if (https) { /* the clients' certificates of the same CA (tk_tls.h) */
        snprintf(tls, sizeof(tls),
                 "--cert-file %s --key-file %s --trusted-ca-file %s "
                 "--client-cert-auth ",
                 cert, key, ca);
    }
    snprintf(log, sizeof(log), "%s.log", etcd->dir);
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s; exec %s --name lab --data-dir %s %s"
             "--listen-client-urls %s --advertise-client-urls %s "
             "--listen-peer-urls http://127.0.0.1:%u "
             "--initial-advertise-peer-urls http://127.0.0.1:%u "
             "--initial-cluster lab=http://127.0.0.1:%u >%s 2>&1",
             etcd->dir, TK_ETCD_BIN, etcd->dir, tls, etcd->url, etcd->url,
             (unsigned)peer_port, (unsigned)peer_port, (unsigned)peer_port,
             log);
    etcd->pid = net != NULL ? tk_netns_exec(net, host, argv, &fd)
                            : tk_proc_exec(argv, 0, &fd);
    if (etcd->pid < 0) {
        etcd->pid = 0;
        return -1;
    }
    close(fd);
    while (!tk_etcd_ready(log)) {
        if (tk_time_ms() > deadline) {
            tk_print("etcd did not get ready (see %s)", log);
            (void)tk_proc_stop(etcd->pid, SIGKILL, 10000);
            etcd->pid = 0;
            return -1;
        }
        tk_sleep_ms(50);
    }
    return 0;
}

void tk_etcd_stop(tk_etcd_t *etcd)
{
    char cmd[160];

    if (etcd->pid <= 0) {
        return;
    }
    (void)tk_proc_stop(etcd->pid, SIGTERM, 10000);
    etcd->pid = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s.log", etcd->dir, etcd->dir);
    (void)!system(cmd);
}
