/*
 * mmc-meta: the MemCache meta service as a daemon.
 *
 * Settings come, later ones winning, from the defaults, the config file
 * (--config), the environment (MMC_META_<KEY>) and the command line
 * (--set key=value).  It raises its open files limit to the hard limit.
 * Once the config store, the RPC server and the HTTP endpoint all listen,
 * prints exactly one line on stdout and flushes it:
 *
 *     mmc-meta ready rpc=<addr>:<port> store=<store_port> http=<http_port>
 *
 * (the ports actually bound, so port = 0 works; http=0 when HTTP is off).
 * Runs until SIGINT or SIGTERM, then stops every server and exits 0.
 * Exit codes: 2 for bad options or settings, 1 when the service cannot
 * start (a port in use, say).
 *
 * With etcd_endpoints set, one of several instances leads (meta_ha.h):
 * each prints "mmc-meta standby key=<key> http=<http_port>" first and
 * waits to lead, serving only HTTP meanwhile (meta_standby.h); once it
 * leads it starts its servers (HTTP on the same port) and prints the
 * ready line.  A leader that can no longer renew its lease exits at once
 * with code 3, before another may lead (its supervisor starts it again,
 * as a candidate).
 *
 * Unless GLIBC_TUNABLES is set, it first runs itself again with malloc
 * tunables for a large index (mmc_meta_tool_tune).
 */
#include "cache/meta/meta.h"
#include "cache/meta/meta_ha.h"
#include "cache/meta/meta_standby.h"
#include "util/trace.h"

#include <memfabric/mf_init.h>
#include <memfabric/mf_log.h>
#include <memfabric/mf_status.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MMC_META_TOOL_MAX_SETS 64

/* Defined in meta_config.c, not (yet) in meta.h: the checks across
 * values, made once every source is applied. */

static void mmc_meta_tool_usage(FILE *out)
{
    fprintf(out,
            "Usage: mmc-meta [options]\n"
            "Runs the MemCache meta service: the pool's config store, the "
            "RPC server\n"
            "that local services connect to, and the HTTP endpoint "
            "(/health, /metrics,\n"
            "/segments, /key/<key>).\n"
            "\n"
            "  -c, --config FILE    read settings from FILE (mmc-meta.conf: "
            "key = value)\n"
            "  -s, --set KEY=VALUE  any setting below (repeatable)\n"
            "      --dump-config    print the settings in effect and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Settings (later sources win: defaults, config file,\n"
            "environment, command line):\n");
    mmc_meta_config_print_help(out);
}

static int mmc_meta_tool_set(mmc_meta_config_t *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char key[64];

    if ((eq == NULL) || (eq == arg) || ((size_t)(eq - arg) >= sizeof(key))) {
        fprintf(stderr, "mmc-meta: --set expects KEY=VALUE, got '%s'\n", arg);
        return -1;
    }
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    if (mmc_meta_config_set(cfg, key, eq + 1) != MF_OK) {
        return -1; /* the reason was logged */
    }
    return 0;
}

static atomic_bool mmc_meta_tool_stop;
static int mmc_meta_tool_sig;
static int mmc_meta_tool_pipe[2] = {-1, -1};
static sigset_t mmc_meta_tool_sigs;

/* Waits for SIGINT or SIGTERM (blocked in every thread), then says so. */
static void *mmc_meta_tool_signals(void *arg)
{
    int sig = 0;

    (void)arg;
    if (sigwait(&mmc_meta_tool_sigs, &sig) != 0) {
        sig = SIGTERM;
    }
    mmc_meta_tool_sig = sig;
    atomic_store(&mmc_meta_tool_stop, true);
    (void)!write(mmc_meta_tool_pipe[1], "x", 1);
    return NULL;
}

/* The lease is about to run out unrenewed: stop serving now, before
 * another instance may lead. */
static void mmc_meta_tool_lost(void *arg)
{
    static const char msg[] = "mmc-meta: lost the leadership: exiting\n";

    (void)arg;
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(3);
}

/*
 * The index is millions of small allocations made by one thread, so its
 * cost is page faults: a rebuild of 1,000,000 objects took about 2 s with
 * 4 KiB pages and under 1 s with transparent huge pages for malloc's
 * heaps (mmc-rebuild-bench), and a rebuild is on the failover's critical
 * path.  glibc reads its tunables only at start, hence the exec.  An
 * operator's GLIBC_TUNABLES is left alone; the marker stops a loop where
 * the loader drops the variable (secure mode).
 */
static void mmc_meta_tool_tune(char **argv)
{
    if (getenv("GLIBC_TUNABLES") != NULL || getenv("MMC_META_TUNED") != NULL) {
        return;
    }
    if (setenv("GLIBC_TUNABLES",
               "glibc.malloc.hugetlb=1:"
               "glibc.malloc.top_pad=67108864:"
               "glibc.malloc.trim_threshold=268435456",
               1) != 0 ||
        setenv("MMC_META_TUNED", "1", 1) != 0) {
        return;
    }
    execv("/proc/self/exe", argv);
    /* no /proc: run untuned */
    (void)unsetenv("GLIBC_TUNABLES");
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"dump-config", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sets[MMC_META_TOOL_MAX_SETS];
    const char *config_file = NULL;
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    bool dump_config = false;
    size_t nsets = 0, i;
    mf_status_t status;
    mmc_meta_ha_t *ha = NULL;
    pthread_t sig_thread;
    sigset_t sigs;
    int opt, sig, level;
    char byte;

    mmc_meta_tool_tune(argv);
    while ((opt = getopt_long(argc, argv, "c:s:h", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 's':
            if (nsets == MMC_META_TOOL_MAX_SETS) {
                fprintf(stderr, "mmc-meta: too many settings\n");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'D':
            dump_config = true;
            break;
        case 'h':
            mmc_meta_tool_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'mmc-meta --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "mmc-meta: unexpected argument '%s'; try 'mmc-meta "
                "--help'.\n",
                argv[optind]);
        return 2;
    }

    mmc_meta_config_init(&cfg);
    if ((config_file != NULL) &&
        (mmc_meta_config_load_file(&cfg, config_file) != MF_OK)) {
        return 2;
    }
    if (mmc_meta_config_load_env(&cfg) != MF_OK) {
        return 2;
    }
    for (i = 0; i < nsets; i++) {
        if (mmc_meta_tool_set(&cfg, sets[i]) != 0) {
            return 2;
        }
    }
    if (mmc_meta_config_check(&cfg) != MF_OK) {
        return 2; /* the reason was logged */
    }
    if (dump_config) {
        mmc_meta_config_dump(&cfg, stdout);
        return 0;
    }
    level = mf_log_level_parse(cfg.log_level);
    mf_log_set_level((level >= 0) ? (mf_log_level_t)level : MF_LOG_WARN);
    /* A connection is a descriptor: serve as many as the system allows. */
    (void)mf_nofile_limit_raise(NULL);
    /* MF_TRACE, else the setting: points per request type, /trace */
    mf_trace_config(cfg.trace);

    /* Every thread the service starts inherits the blocked signals, so
     * they reach only sigwait() below.  An ignored signal (a background
     * job of a non-interactive shell ignores SIGINT) would be discarded
     * rather than left pending, so the default action is restored. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    mmc_meta_tool_sigs = sigs;
    if (pipe(mmc_meta_tool_pipe) != 0 ||
        pthread_create(&sig_thread, NULL, mmc_meta_tool_signals, NULL) != 0) {
        fprintf(stderr, "mmc-meta: cannot wait for signals\n");
        return 1;
    }

    if (cfg.etcd_endpoints[0] != '\0') {
        mmc_meta_standby_t *sb = NULL;
        mmc_meta_ha_params_t hp = {
            .cfg = &cfg,
            .stop = &mmc_meta_tool_stop,
            .lost = mmc_meta_tool_lost,
            .seen = mmc_meta_standby_seen,
        };

        status = mmc_meta_standby_start(&cfg, &sb);
        if (status != MF_OK) {
            fprintf(stderr, "mmc-meta: cannot serve HTTP on %s:%u: %s\n",
                    cfg.addr, cfg.http_port, mf_status_str(status));
            return 1;
        }
        printf("mmc-meta standby key=%s http=%u\n",
               cfg.ha_key[0] != '\0' ? cfg.ha_key : "(per pool)",
               (unsigned)mmc_meta_standby_http_port(sb));
        fflush(stdout);
        hp.arg = sb;
        status = mmc_meta_ha_lead(&hp, &ha);
        if (cfg.http_enable) { /* the leader serves on the same port */
            cfg.http_port = mmc_meta_standby_http_port(sb);
        }
        mmc_meta_standby_stop(sb);
        if (status == MF_ERR_CANCELED) {
            pthread_join(sig_thread, NULL); /* it said so, and ended */
            fprintf(stderr, "mmc-meta: %s while standing by, stopping\n",
                    mmc_meta_tool_sig == SIGINT ? "SIGINT" : "SIGTERM");
            return 0;
        }
        if (status != MF_OK) {
            fprintf(stderr, "mmc-meta: cannot stand for leader: %s\n",
                    mf_status_str(status));
            return status == MF_ERR_CONFIG ? 2 : 1;
        }
    }

    status = mmc_meta_start(&cfg, &meta);
    if (status != MF_OK) {
        fprintf(stderr,
                "mmc-meta: cannot start on %s (rpc %u, store %u, http %u): "
                "%s\n",
                cfg.addr, cfg.port, cfg.store_port, cfg.http_port,
                mf_status_str(status));
        mmc_meta_ha_resign(ha);
        return 1;
    }
    if (ha != NULL) {
        mmc_meta_set_leader(meta, mmc_meta_ha_revision(ha),
                            mmc_meta_ha_term(ha), mmc_meta_ha_until(ha));
    }
    printf("mmc-meta ready rpc=%s:%u store=%u http=%u\n", cfg.addr,
           (unsigned)mmc_meta_port(meta), (unsigned)mmc_meta_store_port(meta),
           (unsigned)mmc_meta_http_port(meta));
    fflush(stdout);

    while (read(mmc_meta_tool_pipe[0], &byte, 1) < 0) {
    }
    sig = mmc_meta_tool_sig;
    fprintf(stderr, "mmc-meta: %s, stopping\n",
            (sig == SIGINT) ? "SIGINT" : "SIGTERM");
    mmc_meta_stop(meta);
    mmc_meta_ha_resign(ha); /* another instance leads at once */
    pthread_join(sig_thread, NULL);
    return 0;
}
