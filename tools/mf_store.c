/*
 * mf-store: the MemFabric config store as a daemon.
 *
 * Settings come, later ones winning, from the defaults, the config file
 * (-c), the environment (MF_STORE_<KEY>) and the command line.  Raises
 * its open files limit to the hard limit, prints "mf-store listening on
 * host:port" on stdout once it serves, runs until SIGINT or SIGTERM, then
 * stops cleanly.  Uses the public API only.
 */
#include <memfabric/mf_init.h>
#include <memfabric/mf_log.h>
#include <memfabric/mf_status.h>
#include <memfabric/mf_store.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MF_STORE_TOOL_MAX_SETS 64

static void mf_store_tool_usage(FILE *out)
{
    fprintf(out,
            "Usage: mf-store [options]\n"
            "Runs the MemFabric config store.\n"
            "\n"
            "  -c, --config FILE    read settings from FILE (key = value)\n"
            "  -H, --host HOST      address to listen on (setting host)\n"
            "  -p, --port PORT      port to listen on (setting port)\n"
            "  -s, --set KEY=VALUE  any setting below\n"
            "      --dump-config    print the settings in effect and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Settings (later sources win: defaults, config file,\n"
            "environment, command line):\n");
    mf_store_server_config_print_help(out);
}

static int mf_store_tool_set(mf_store_server_config_t *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    char key[64];

    if ((eq == NULL) || (eq == arg) || ((size_t)(eq - arg) >= sizeof(key))) {
        fprintf(stderr, "mf-store: --set expects KEY=VALUE, got '%s'\n", arg);
        return -1;
    }
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    if (mf_store_server_config_set(cfg, key, eq + 1) != MF_OK) {
        return -1; /* the reason was logged */
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"set", required_argument, NULL, 's'},
        {"dump-config", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sets[MF_STORE_TOOL_MAX_SETS][2];
    mf_store_server_config_t cfg;
    const char *config_file = NULL;
    mf_store_server_t *server;
    bool dump_config = false;
    size_t nsets = 0, i;
    mf_status_t status;
    sigset_t sigs;
    int opt, sig;

    while ((opt = getopt_long(argc, argv, "c:H:p:s:h", long_opts, NULL)) !=
           -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 'H':
        case 'p':
        case 's':
            if (nsets == MF_STORE_TOOL_MAX_SETS) {
                fprintf(stderr, "mf-store: too many settings\n");
                return 2;
            }
            sets[nsets][0] = (opt == 'H')   ? "host"
                             : (opt == 'p') ? "port"
                                            : NULL;
            sets[nsets][1] = optarg;
            nsets++;
            break;
        case 'D':
            dump_config = true;
            break;
        case 'h':
            mf_store_tool_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'mf-store --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "mf-store: unexpected argument '%s'; try 'mf-store "
                "--help'.\n",
                argv[optind]);
        return 2;
    }

    mf_store_server_config_init(&cfg);
    if ((config_file != NULL) &&
        (mf_store_server_config_load_file(&cfg, config_file) != MF_OK)) {
        return 2;
    }
    if (mf_store_server_config_load_env(&cfg) != MF_OK) {
        return 2;
    }
    for (i = 0; i < nsets; i++) {
        if (sets[i][0] != NULL) {
            if (mf_store_server_config_set(&cfg, sets[i][0], sets[i][1]) !=
                MF_OK) {
                return 2;
            }
        } else if (mf_store_tool_set(&cfg, sets[i][1]) != 0) {
            return 2;
        }
    }
    if (dump_config) {
        mf_store_server_config_dump(&cfg, stdout);
        return 0;
    }
    mf_log_set_level((mf_log_level_t)cfg.log_level);
    /* A connection is a descriptor: serve as many as the system allows. */
    (void)mf_nofile_limit_raise(NULL);

    /* Every thread the server starts inherits the blocked signals, so
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

    status = mf_store_server_start(&cfg, &server);
    if (status != MF_OK) {
        fprintf(stderr, "mf-store: cannot start on %s:%u: %s\n", cfg.host,
                cfg.port, mf_status_str(status));
        return 1;
    }
    printf("mf-store listening on %s:%u\n", cfg.host,
           mf_store_server_port(server));
    fflush(stdout);

    if (sigwait(&sigs, &sig) != 0) {
        sig = 0;
    }
    fprintf(stderr, "mf-store: %s, stopping\n",
            (sig == SIGINT) ? "SIGINT" : "SIGTERM");
    mf_store_server_stop(server);
    return 0;
}
