/*
 * The mmc-meta daemon binary (MMC_META_BIN, or $MMC_META_BIN): its ready
 * line, its HTTP endpoint (/health, /metrics in Prometheus format,
 * /segments, /key/<key>, 404, 405), eviction and member liveness as
 * /metrics shows them, its robustness against garbage and
 * truncated frames on every port, its command line (--help, --set,
 * --config, --dump-config, the environment and their precedence, exit
 * codes), a clean exit on SIGTERM and SIGINT, and its open files limit
 * raised to the hard limit at start.
 *
 * The test process never starts a thread: daemons run with fork+exec
 * (tk_meta, tk_proc_exec) on 127.0.0.1 with port 0 for every server, and the
 * HTTP client is a plain blocking socket with poll() deadlines (tk_sock).
 * The RPC port is spoken to over such a socket too, with the real frame
 * header and message codecs (tests/wire); its malformed frames are real
 * ones bent or cut.  Every wait is a generous hang guard, never a timing
 * assertion.
 */
#include "it_helpers.h"
#include "tk_meta.h"
#include "tk_sock.h"
#include "tw_mmc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MT_WAIT_MS  30000
#define MT_RESP_MAX (4u << 20)

#ifndef MMC_META_BIN
#define MMC_META_BIN "mmc-meta"
#endif

static const char *const mt_keys[] = {
    "addr",
    "port",
    "store_port",
    "http_port",
    "http_enable",
    "pool_id",
    "max_ranks",
    "max_segment_size",
    "host_base",
    "alloc_align",
    "lease_ms",
    "put_timeout_ms",
    "max_batch",
    "max_clients",
    "evict_high_pct",
    "evict_low_pct",
    "evict_max_per_put",
    "member_timeout_ms",
    "idle_timeout_ms",
    "log_level",
};

#define MT_NKEYS (sizeof(mt_keys) / sizeof(mt_keys[0]))

static char mt_bin[PATH_MAX];

static void mt_find_binary(void)
{
    snprintf(mt_bin, sizeof(mt_bin), "%s", tk_meta_bin(MMC_META_BIN));
    if (access(mt_bin, X_OK) != 0) {
        fail_msg("mmc-meta binary not found at %s (set MMC_META_BIN)", mt_bin);
    }
}

/* ------------------------------------------------------------ daemons */

/*
 * Starts the daemon on 127.0.0.1 with every port 0 unless extra (a NULL
 * terminated list of arguments, may be NULL) says otherwise, and checks
 * that its ready line is exactly the documented one.  0 or -1 (the daemon
 * is killed).
 */
static int mt_start_nofile(tk_meta_t *d, const char *const *extra,
                           unsigned nofile)
{
    tk_meta_params_t p = {
        .bin = mt_bin,
        .args = extra,
        .nofile = nofile,
        .ready_ms = MT_WAIT_MS,
    };
    char expect[256];

    if (tk_meta_start(d, &p) != 0) {
        return -1;
    }
    /* exactly this line, nothing more */
    snprintf(expect, sizeof(expect),
             "mmc-meta ready rpc=127.0.0.1:%u store=%u http=%u", d->port,
             d->store_port, d->http_port);
    if (strcmp(d->line, expect) != 0) {
        tk_print("unexpected ready line '%s'", d->line);
        tk_meta_stop(d, SIGKILL);
        return -1;
    }
    return 0;
}

static int mt_start(tk_meta_t *d, const char *const *extra)
{
    return mt_start_nofile(d, extra, 0);
}

/* Everything fd delivers until EOF (NUL-terminated, malloc'd); NULL on
 * timeout or error. */
static char *mt_read_all(int fd, size_t *len_p)
{
    uint64_t deadline = tk_time_ms() + MT_WAIT_MS;
    struct pollfd pfd = {fd, POLLIN, 0};
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t n;
    int wait;

    while (buf != NULL) {
        if (len + 1 == cap) {
            char *grown = (cap < MT_RESP_MAX) ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL) {
                break;
            }
            buf = grown;
            cap *= 2;
        }
        wait = (int)(deadline > tk_time_ms() ? deadline - tk_time_ms() : 0);
        if (poll(&pfd, 1, wait) != 1) {
            break;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            break;
        }
        if (n == 0) {
            buf[len] = '\0';
            if (len_p != NULL) {
                *len_p = len;
            }
            return buf;
        }
        len += (size_t)n;
    }
    tk_print("reading until EOF failed or timed out");
    free(buf);
    return NULL;
}

/*
 * Runs argv (argv[0] a path) with stdout (and stderr when merge_stderr,
 * through /bin/sh) into a pipe; returns the exit code and *out_p the
 * output (malloc'd).  env: NULL or "NAME=value ..." put before the command.
 */
static int mt_run(const char *const *args, bool merge_stderr, const char *env,
                  char **out_p)
{
    char script[4096];
    char *argv[64];
    size_t used;
    int argc = 0, fd = -1, code;
    char *out;
    pid_t pid;

    if (merge_stderr || env != NULL) {
        /* exec "$0" "$@" with the environment and 2>&1 */
        used = (size_t)snprintf(script, sizeof(script),
                                "%s exec \"$0\" "
                                "\"$@\" %s",
                                env != NULL ? env : "",
                                merge_stderr ? "2>&1" : "");
        assert_true(used < sizeof(script));
        argv[argc++] = "/bin/sh";
        argv[argc++] = "-c";
        argv[argc++] = script;
    }
    for (int i = 0; args[i] != NULL && argc < 63; i++) {
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    pid = tk_proc_exec(argv, 0, &fd);
    assert_true(pid > 0);
    out = mt_read_all(fd, NULL);
    close(fd);
    code = tk_proc_wait(pid, MT_WAIT_MS);
    assert_non_null(out);
    *out_p = out;
    return code;
}

/* --------------------------------------------------------------- HTTP */

typedef struct mt_resp {
    int code;
    char *raw;     /* the whole response, NUL-terminated */
    char *headers; /* into raw: from the status line to the blank line */
    char *body;    /* into raw */
    size_t body_len;
} mt_resp_t;

static void mt_resp_free(mt_resp_t *r)
{
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

static int mt_connect(uint16_t port)
{
    int fd = tk_sock_connect("127.0.0.1", port);

    if (fd < 0) {
        fail_msg("cannot connect to 127.0.0.1:%u", port);
    }
    return fd;
}

/* A header value of the response (case-insensitive name), or NULL. */
static const char *mt_header(const mt_resp_t *r, const char *name, char *buf,
                             size_t len)
{
    const char *line = strstr(r->headers, "\r\n");
    size_t nlen = strlen(name);

    while (line != NULL && line[2] != '\0') {
        const char *start = line + 2;
        const char *end = strstr(start, "\r\n");
        size_t vlen;

        if (end == NULL) {
            break;
        }
        if (strncasecmp(start, name, nlen) == 0 && start[nlen] == ':') {
            start += nlen + 1;
            while (*start == ' ') {
                start++;
            }
            vlen = (size_t)(end - start);
            snprintf(buf, len, "%.*s", (int)vlen, start);
            return buf;
        }
        line = end;
    }
    return NULL;
}

/* One request with "Connection: close"; the response is read to EOF. */
static void mt_http(uint16_t port, const char *method, const char *path,
                    const char *extra_headers, mt_resp_t *r)
{
    char req[2048], clen[32];
    char *sep;
    int fd, n;

    memset(r, 0, sizeof(*r));
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: "
                 "close\r\nContent-Length: 0\r\n\r\n",
                 method, path, extra_headers != NULL ? extra_headers : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    fd = mt_connect(port);
    (void)tk_sock_send_all(fd, req, (size_t)n);
    r->raw = mt_read_all(fd, NULL);
    close(fd);
    assert_non_null(r->raw);
    if (sscanf(r->raw, "HTTP/1.1 %d ", &r->code) != 1) {
        fail_msg("bad status line in '%.80s'", r->raw);
    }
    sep = strstr(r->raw, "\r\n\r\n");
    assert_non_null(sep);
    sep[2] = '\0'; /* headers end with their last CRLF */
    r->headers = r->raw;
    r->body = sep + 4;
    r->body_len = strlen(r->body);
    if (mt_header(r, "Content-Length", clen, sizeof(clen)) != NULL) {
        assert_int_equal(strtoul(clen, NULL, 10), r->body_len);
    }
}

static void mt_expect(uint16_t port, const char *method, const char *path,
                      int code, const char *body_has)
{
    mt_resp_t r;

    mt_http(port, method, path, NULL, &r);
    if (r.code != code ||
        (body_has != NULL && strstr(r.body, body_has) == NULL)) {
        fail_msg("%s %s: %d '%s', expected %d with '%s'", method, path, r.code,
                 r.body, code, body_has != NULL ? body_has : "");
    }
    mt_resp_free(&r);
}

/* ---------------------------------------------------- Prometheus check */

#define MT_MAX_FAMILIES 64

typedef struct mt_family {
    char name[96];
    char type[16];
    bool help;
    bool samples;
} mt_family_t;

typedef struct mt_metrics {
    mt_family_t fam[MT_MAX_FAMILIES];
    int nfam;
} mt_metrics_t;

static mt_family_t *mt_family_find(mt_metrics_t *m, const char *name)
{
    for (int i = 0; i < m->nfam; i++) {
        if (strcmp(m->fam[i].name, name) == 0) {
            return &m->fam[i];
        }
    }
    return NULL;
}

/* The family a sample belongs to: its name, or for a histogram the name
 * without _bucket/_sum/_count. */
static mt_family_t *mt_family_of(mt_metrics_t *m, const char *sample)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    char base[96];
    mt_family_t *f = mt_family_find(m, sample);
    size_t len = strlen(sample);

    if (f != NULL) {
        return f;
    }
    for (size_t i = 0; i < 3; i++) {
        size_t slen = strlen(suffixes[i]);
        if (len > slen && strcmp(sample + len - slen, suffixes[i]) == 0 &&
            len - slen < sizeof(base)) {
            memcpy(base, sample, len - slen);
            base[len - slen] = '\0';
            f = mt_family_find(m, base);
            if (f != NULL && strcmp(f->type, "histogram") == 0) {
                return f;
            }
        }
    }
    return NULL;
}

/* Value of label `name` in a sample line's {...}, copied to buf. */
static bool mt_label(const char *line, const char *name, char *buf, size_t len)
{
    char pattern[64];
    const char *p, *end;

    snprintf(pattern, sizeof(pattern), "%s=\"", name);
    p = strstr(line, pattern);
    if (p == NULL) {
        return false;
    }
    p += strlen(pattern);
    end = strchr(p, '"');
    if (end == NULL || (size_t)(end - p) >= len) {
        return false;
    }
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
    return true;
}

typedef struct mt_hist_state {
    char op[64];
    double last_le;
    double last_count;
    double inf;
    bool have_inf;
    int buckets;
} mt_hist_state_t;

/*
 * Checks the exposition format: every sample belongs to a family declared
 * by # HELP and # TYPE before it; a family's samples are contiguous;
 * histogram buckets per op rise with le and in count, and the +Inf bucket
 * equals _count.  Returns the number of samples.
 */
static int mt_check_metrics(char *text, mt_metrics_t *m)
{
    mt_hist_state_t h;
    mt_family_t *current = NULL;
    char name[96], type[16], label[64];
    char *line, *next;
    int samples = 0;

    memset(m, 0, sizeof(*m));
    memset(&h, 0, sizeof(h));
    for (line = text; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        assert_non_null(next); /* every line ends with a newline */
        *next++ = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_null(mt_family_find(m, name)); /* declared once */
            assert_true(m->nfam < MT_MAX_FAMILIES);
            current = &m->fam[m->nfam++];
            snprintf(current->name, sizeof(current->name), "%s", name);
            current->help = true;
            assert_true(strlen(line + 7) > strlen(name) + 1); /* has text */
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%95s %15s", name, type), 2);
            assert_non_null(current);
            assert_string_equal(current->name, name);
            assert_true(strcmp(type, "gauge") == 0 ||
                        strcmp(type, "counter") == 0 ||
                        strcmp(type, "histogram") == 0);
            assert_false(current->samples);
            snprintf(current->type, sizeof(current->type), "%s", type);
            continue;
        }
        assert_true(line[0] != '#' && line[0] != '\0');
        {
            size_t nlen = strcspn(line, "{ ");
            mt_family_t *f;
            const char *value;
            double v;
            char *end;

            assert_true(nlen > 0 && nlen < sizeof(name));
            memcpy(name, line, nlen);
            name[nlen] = '\0';
            f = mt_family_of(m, name);
            if (f == NULL || f != current || f->type[0] == '\0') {
                fail_msg("sample '%s' outside its family's block", line);
            }
            f->samples = true;
            value = strrchr(line, ' ');
            assert_non_null(value);
            v = strtod(value + 1, &end);
            assert_true(*end == '\0' && end != value + 1);
            samples++;
            if (strcmp(f->type, "histogram") != 0) {
                assert_true(v >= 0);
                continue;
            }
            assert_true(mt_label(line, "op", label, sizeof(label)));
            if (strcmp(label, h.op) != 0) {
                /* a new series: the previous one ended with _count */
                assert_true(h.op[0] == '\0' || h.have_inf == false);
                memset(&h, 0, sizeof(h));
                snprintf(h.op, sizeof(h.op), "%s", label);
                h.last_le = -1;
            }
            if (strstr(name, "_bucket") != NULL) {
                char le[32];
                assert_true(mt_label(line, "le", le, sizeof(le)));
                assert_false(h.have_inf);
                assert_true(v >= h.last_count); /* cumulative */
                h.last_count = v;
                h.buckets++;
                if (strcmp(le, "+Inf") == 0) {
                    h.have_inf = true;
                    h.inf = v;
                } else {
                    double bound = strtod(le, &end);
                    assert_true(*end == '\0');
                    assert_true(bound > h.last_le); /* le ascending */
                    h.last_le = bound;
                }
            } else if (strstr(name, "_sum") != NULL) {
                assert_true(h.have_inf);
                assert_true(v >= 0);
            } else {
                assert_true(strstr(name, "_count") != NULL);
                assert_true(h.have_inf);
                assert_true(v == h.inf); /* +Inf bucket == _count */
                assert_true(h.buckets >= 2);
                h.have_inf = false;
            }
        }
    }
    for (int i = 0; i < m->nfam; i++) {
        assert_true(m->fam[i].help);
        assert_true(m->fam[i].type[0] != '\0');
    }
    return samples;
}

/* The value of the sample line that starts with prefix, -1 if none. */
static double mt_metric_value(const char *text, const char *prefix)
{
    const char *p = text;
    size_t len = strlen(prefix);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, len) == 0 && p[len] == ' ') {
            return strtod(p + len + 1, NULL);
        }
        p = strchr(p, '\n');
        p = (p != NULL) ? p + 1 : NULL;
    }
    return -1;
}

/* ----------------------------------------------------------- frames */

/* A connection to the RPC port (tests/wire). */
static void mt_wire_open(tw_conn_t *c, uint16_t port)
{
    tw_conn_init(c, mt_connect(port), MT_WAIT_MS);
}

/* Sends a request of len bytes of body on a connection that must hold;
 * the frame status of its response. */
static mf_status_t mt_wire_call(tw_conn_t *c, uint16_t opcode, const void *body,
                                size_t len)
{
    tw_frame_t resp;
    mf_status_t status;

    assert_int_equal(tw_call(c, opcode, body, len, &resp), MF_OK);
    status = resp.hdr.status;
    tw_frame_free(&resp);
    return status;
}

/* Waits until the peer closes fd (or the guard runs out: false). */
static bool mt_wait_closed(int fd)
{
    return tk_sock_wait_closed(fd, MT_WAIT_MS, NULL);
}

/* Polls url until its status is code (a hang guard, no timing). */
static void mt_wait_http(uint16_t port, const char *path, int code)
{
    uint64_t deadline = tk_time_ms() + MT_WAIT_MS;
    mt_resp_t r;

    for (;;) {
        mt_http(port, "GET", path, NULL, &r);
        if (r.code == code) {
            mt_resp_free(&r);
            return;
        }
        mt_resp_free(&r);
        if (tk_time_ms() > deadline) {
            fail_msg("GET %s never answered %d", path, code);
        }
        tk_sleep_ms(20);
    }
}

/* -------------------------------------------------------------- tests */

static void test_http(void **state)
{
    static const char *const gauges[] = {
        "mmc_objects", "mmc_object_bytes", "mmc_pending_puts",
        "mmc_leases",  "mmc_clients",      "mmc_members",
    };
    static const char *const families[] = {
        "mmc_segment_capacity_bytes",
        "mmc_segment_used_bytes",
        "mmc_segment_free_bytes",
        "mmc_segment_largest_free_bytes",
        "mmc_segment_replicas",
        "mmc_requests_total",
        "mmc_errors_total",
        "mmc_request_duration_seconds",
        "mmc_puts_committed_total",
        "mmc_puts_aborted_total",
        "mmc_gets_total",
        "mmc_removes_total",
        "mmc_unlinked_objects",
        "mmc_puts_reclaimed_total",
        "mmc_leases_expired_total",
        "mmc_segments_dropped_total",
        "mmc_replicas_lost_total",
        "mmc_segment_usage_ratio",
        "mmc_evictions_total",
        "mmc_evictions_put_total",
        "mmc_evicted_bytes_total",
        "mmc_eviction_runs_total",
        "mmc_eviction_skipped_total",
        "mmc_eviction_promoted_total",
        "mmc_eviction_ghost_hits_total",
        "mmc_tier_evictions_total",
        "mmc_ssd_demotions_total",
        "mmc_ssd_loads_total",
        "mmc_reads_deferred_total",
        "mmc_puts_deferred_total",
        "mmc_member_losses_total",
        "mmc_connections_timed_out_total",
        "mmc_records_sent_total",
        "mmc_replies_held_total",
        "mmc_holders_restored_total",
        "mmc_restored_objects_total",
        "mmc_restored_replicas_total",
        "mmc_restore_refused_total",
        "mmc_under_replicated",
        "mmc_repairs_running",
        "mmc_repairs_total",
        "mmc_leader",
        "mmc_leader_revision",
        "mmc_uptime_seconds",
        "mmc_rebuild_seconds",
    };
    mt_metrics_t *m = calloc(1, sizeof(*m));
    char value[128];
    tk_meta_t d;
    mt_resp_t r;

    assert_non_null(m);
    mt_find_binary();
    assert_int_equal(mt_start(&d, NULL), 0);
    assert_true(d.http_port != 0);

    /* /health: plain, then JSON */
    mt_http(d.http_port, "GET", "/health", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "ok\n");
    mt_resp_free(&r);
    mt_http(d.http_port, "GET", "/health?format=json", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body,
                        "{\"status\":\"ok\",\"role\":\"alone\",\"members\":0,"
                        "\"objects\":0}\n");
    assert_non_null(mt_header(&r, "Content-Type", value, sizeof(value)));
    assert_string_equal(value, "application/json");
    mt_resp_free(&r);
    mt_http(d.http_port, "GET", "/health", "Accept: application/json\r\n", &r);
    assert_int_equal(r.code, 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    mt_resp_free(&r);

    /* /metrics */
    mt_http(d.http_port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_non_null(mt_header(&r, "Content-Type", value, sizeof(value)));
    assert_non_null(strstr(value, "text/plain"));
    assert_non_null(strstr(value, "version=0.0.4"));
    for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s", gauges[i]);
        if (mt_metric_value(r.body, prefix) != 0) {
            fail_msg("%s is not 0 in an empty service", gauges[i]);
        }
    }
    assert_true(mt_check_metrics(r.body, m) > 0);
    for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
        mt_family_t *f = mt_family_find(m, gauges[i]);
        assert_non_null(f);
        assert_string_equal(f->type, "gauge");
    }
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        mt_family_t *f = mt_family_find(m, families[i]);
        if (f == NULL) {
            fail_msg("metric family %s missing", families[i]);
        }
    }
    assert_string_equal(mt_family_find(m, "mmc_request_duration_seconds")->type,
                        "histogram");
    assert_string_equal(mt_family_find(m, "mmc_requests_total")->type,
                        "counter");
    mt_resp_free(&r);

    /* /segments: none registered */
    mt_http(d.http_port, "GET", "/segments", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_true(r.body[0] == '[');
    assert_non_null(strstr(r.body, "]"));
    assert_null(strstr(r.body, "{"));
    mt_resp_free(&r);

    /* /key: unknown keys, escaped back; invalid keys */
    mt_expect(d.http_port, "GET", "/key/unknown", 404, "\"error\"");
    mt_expect(d.http_port, "GET", "/key/unknown", 404, "\"key\":\"unknown\"");
    mt_expect(d.http_port, "GET", "/key/a%22b%5Cc%0Ad%2Fe", 404,
              "\"key\":\"a\\\"b\\\\c\\nd/e\"");
    mt_expect(d.http_port, "GET", "/key/%01%ff", 404,
              "\"key\":\"\\u0001\\ufffd\"");
    mt_expect(d.http_port, "GET", "/key/a%00b", 400, "\"error\"");
    mt_expect(d.http_port, "GET", "/key/", 400, "\"error\"");

    /* unknown paths and methods */
    mt_expect(d.http_port, "GET", "/nope", 404, "\"error\"");
    mt_expect(d.http_port, "GET", "/", 404, "\"error\"");
    mt_expect(d.http_port, "GET", "/healthz", 404, "\"error\"");
    mt_http(d.http_port, "POST", "/health", NULL, &r);
    assert_int_equal(r.code, 405);
    assert_non_null(mt_header(&r, "Allow", value, sizeof(value)));
    assert_string_equal(value, "GET");
    mt_resp_free(&r);
    mt_expect(d.http_port, "DELETE", "/key/x", 405, "\"error\"");
    mt_expect(d.http_port, "PUT", "/metrics", 405, "\"error\"");
    mt_http(d.http_port, "HEAD", "/health", NULL, &r);
    assert_int_equal(r.code, 405);
    assert_int_equal(r.body_len, 0);
    mt_resp_free(&r);

    /* still serving; SIGTERM stops it cleanly */
    mt_expect(d.http_port, "GET", "/health", 200, "ok");
    assert_int_equal(tk_meta_stop(&d, SIGTERM), 0);
    free(m);
}

/* The meta service's default host_base: the fabric's, which this build
 * chose (a ThreadSanitizer build moves it). */
static uint64_t mt_host_base(void)
{
    mf_bm_config_t cfg;

    mf_bm_config_init(&cfg);
    return cfg.host_base;
}

/* REGISTER rank with one DRAM segment of 1 MiB at gva (max_segment_size
 * = 1M), as host. */
static void mt_register(tw_conn_t *c, uint32_t rank, const char *host,
                        uint64_t gva)
{
    mmc_register_req_t req;

    memset(&req, 0, sizeof(req));
    req.rank = rank;
    snprintf(req.host_id, sizeof(req.host_id), "%s", host);
    req.nsegs = 1;
    req.segs[0].media = MMC_MEDIA_DRAM;
    req.segs[0].gva = gva;
    req.segs[0].size = 1u << 20;
    assert_int_equal(tw_mmc_register(c, &req, NULL), MF_OK);
}

/* HELLO, then REGISTER rank with its own 1 MiB DRAM segment on host-a. */
static void mt_join(tw_conn_t *c, uint32_t rank)
{
    assert_int_equal(tw_mmc_hello(c, "it-client", NULL), MF_OK);
    mt_register(c, rank, "host-a", mt_host_base() + ((uint64_t)rank << 20));
}

/* PUT_ALLOC and PUT_COMMIT of one key with one replica, both succeeding;
 * obj_p (may be NULL) gets what PUT_ALLOC granted. */
static void mt_put(tw_conn_t *c, const char *key, uint64_t size,
                   mmc_obj_result_t *obj_p)
{
    mmc_put_item_t item = {{key, (uint32_t)strlen(key)}, size};
    mmc_put_alloc_req_t req = {.replicas = 1, .count = 1, .items = &item};
    mmc_commit_item_t commit = {.status = MMC_OK};
    mmc_commit_list_t commits = {1, &commit};
    mmc_status_list_t done;
    mmc_obj_list_t objs;

    assert_int_equal(tw_mmc_put_alloc(c, &req, &objs), MF_OK);
    assert_int_equal(objs.count, 1);
    if (objs.items[0].status != MMC_OK) {
        fail_msg("PUT_ALLOC %s: item status %d", key, objs.items[0].status);
    }
    commit.put_id = objs.items[0].id;
    if (obj_p != NULL) {
        *obj_p = objs.items[0];
    }
    mmc_obj_list_free(&objs);
    assert_int_equal(tw_mmc_put_commit(c, &commits, &done), MF_OK);
    assert_int_equal(done.count, 1);
    assert_int_equal(done.status[0], MMC_OK);
    mmc_status_list_free(&done);
}

static void mt_ping(tw_conn_t *c)
{
    assert_int_equal(tw_mmc_ping(c), MF_OK);
}

/*
 * A client speaking the wire protocol (tests/wire) registers a segment
 * (with a host id full of characters to escape), puts and commits an
 * object and takes a read lease: the views show them; when it
 * disconnects, they go.
 */
static void test_views_of_state(void **state)
{
    static const char host_id[] = "h\"1\\\n\xff";
    static const char key[] = "dir/k\xc3\xbc"; /* "dir/kü" */
    const char *extra[] = {"--set", "max_ranks=4", "--set",
                           "max_segment_size=1M", NULL};
    const uint64_t gva1 = mt_host_base() + (1ull << 20);
    mt_metrics_t *m = calloc(1, sizeof(*m));
    mmc_obj_result_t put;
    char expect[256];
    tw_conn_t c;
    tk_meta_t d;
    mt_resp_t r;

    assert_non_null(m);
    mt_find_binary();
    assert_int_equal(mt_start(&d, extra), 0);
    mt_wire_open(&c, d.port);
    assert_int_equal(tw_mmc_hello(&c, "it-client", NULL), MF_OK);
    mt_register(&c, 1, host_id, gva1);
    /* one key of 1000 bytes: its one replica on rank 1 */
    mt_put(&c, key, 1000, &put);
    assert_int_equal(put.nrep, 1);
    assert_int_equal(put.reps[0].rank, 1);
    /* GET: a read lease */
    assert_int_equal(tw_mmc_get_one(&c, key, NULL), MMC_OK);

    /* /segments */
    mt_http(d.http_port, "GET", "/segments", NULL, &r);
    assert_int_equal(r.code, 200);
    snprintf(expect, sizeof(expect),
             "\"rank\":1,\"host_idx\":0,\"host\":\"h\\\"1\\\\\\n\\ufffd\","
             "\"name\":\"it-client\",\"media\":\"dram\",\"gva\":%llu,"
             "\"capacity\":1048576,",
             (unsigned long long)gva1);
    if (strstr(r.body, expect) == NULL) {
        fail_msg("/segments: '%s' lacks '%s'", r.body, expect);
    }
    assert_non_null(strstr(r.body, "\"replicas\":1}"));
    mt_resp_free(&r);

    /* /key/<key>, URL-encoded */
    mt_http(d.http_port, "GET", "/key/dir%2Fk%C3%BC", NULL, &r);
    assert_int_equal(r.code, 200);
    snprintf(expect, sizeof(expect),
             "{\"key\":\"dir/k\xc3\xbc\",\"size\":1000,\"replicas\":"
             "[{\"rank\":1,\"media\":\"dram\",\"gva\":%llu}],"
             "\"leases\":1}\n",
             (unsigned long long)gva1);
    assert_string_equal(r.body, expect);
    mt_resp_free(&r);

    /* /metrics */
    mt_http(d.http_port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_true(mt_metric_value(r.body, "mmc_members") == 1);
    assert_true(mt_metric_value(r.body, "mmc_objects") == 1);
    assert_true(mt_metric_value(r.body, "mmc_object_bytes") == 1000);
    assert_true(mt_metric_value(r.body, "mmc_leases") == 1);
    assert_true(mt_metric_value(r.body, "mmc_clients") == 1);
    assert_true(mt_metric_value(r.body, "mmc_puts_committed_total") == 1);
    assert_true(mt_metric_value(r.body, "mmc_gets_total") == 1);
    assert_true(
        mt_metric_value(r.body, "mmc_requests_total{op=\"put_alloc\"}") == 1);
    assert_true(mt_metric_value(
                    r.body,
                    "mmc_segment_capacity_bytes{rank=\"1\",media="
                    "\"dram\",host=\"h\\\"1\\\\\\n\xef\xbf\xbd\"}") == 1048576);
    assert_true(mt_metric_value(r.body, "mmc_request_duration_seconds_count"
                                        "{op=\"hello\"}") == 1);
    assert_true(mt_check_metrics(r.body, m) > 0);
    mt_resp_free(&r);

    mt_http(d.http_port, "GET", "/health?format=json", NULL, &r);
    assert_string_equal(r.body,
                        "{\"status\":\"ok\",\"role\":\"alone\",\"members\":1,"
                        "\"objects\":1}\n");
    mt_resp_free(&r);

    /* the connection goes: its segment, and the object with it */
    tw_conn_close(&c);
    mt_wait_http(d.http_port, "/key/dir%2Fk%C3%BC", 404);
    mt_http(d.http_port, "GET", "/segments", NULL, &r);
    assert_null(strstr(r.body, "{"));
    mt_resp_free(&r);
    mt_http(d.http_port, "GET", "/metrics", NULL, &r);
    assert_true(mt_metric_value(r.body, "mmc_segments_dropped_total") == 1);
    assert_true(mt_metric_value(r.body, "mmc_replicas_lost_total") == 1);
    assert_true(mt_metric_value(r.body, "mmc_objects") == 0);
    assert_true(mt_metric_value(r.body, "mmc_members") == 0);
    assert_true(mt_metric_value(
                    r.body, "mmc_member_losses_total{reason=\"closed\"}") == 1);
    assert_true(
        mt_metric_value(r.body,
                        "mmc_member_losses_total{reason=\"timeout\"}") == 0);
    mt_resp_free(&r);

    assert_int_equal(tk_meta_stop(&d, SIGTERM), 0);
    free(m);
}

/* Polls /metrics until the sample `prefix` reaches at least want (a hang
 * guard, no timing); pings c (if not NULL) meanwhile.  *r gets the last
 * response (mt_resp_free). */
static void mt_wait_metric(uint16_t port, const char *prefix, double want,
                           tw_conn_t *c, mt_resp_t *r)
{
    uint64_t deadline = tk_time_ms() + MT_WAIT_MS;

    for (;;) {
        if (c != NULL) {
            mt_ping(c);
        }
        mt_http(port, "GET", "/metrics", NULL, r);
        assert_int_equal(r->code, 200);
        if (mt_metric_value(r->body, prefix) >= want) {
            return;
        }
        mt_resp_free(r);
        if (tk_time_ms() > deadline) {
            fail_msg("%s never reached %g", prefix, want);
        }
        tk_sleep_ms(20);
    }
}

/*
 * A member fills its segment past the high mark over the wire: /metrics
 * shows the evictions and the segment at its low mark.  A second member
 * goes silent (no FIN: its socket stays open): it is closed after
 * member_timeout_ms and counted lost, while the first, which pings,
 * stays; when the first closes, that is a loss too.
 */
static void test_evict_and_liveness(void **state)
{
    const char *extra[] = {"--set", "max_ranks=4",
                           "--set", "max_segment_size=1M",
                           "--set", "member_timeout_ms=2000",
                           NULL};
    static const char usage[] =
        "mmc_segment_usage_ratio{rank=\"1\",media=\"dram\",host=\"host-a\"}";
    mt_metrics_t *m = calloc(1, sizeof(*m));
    tw_conn_t c, silent;
    tk_meta_t d;
    char key[32];
    mt_resp_t r;

    assert_non_null(m);
    mt_find_binary();
    assert_int_equal(mt_start(&d, extra), 0);
    mt_wire_open(&c, d.port);
    mt_join(&c, 1);
    /* 15 x 64 KiB of 1 MiB: 94% > 90%; back to 12 (75% <= 80%) */
    for (int i = 0; i < 15; i++) {
        snprintf(key, sizeof(key), "ev/%d", i);
        mt_put(&c, key, 64u << 10, NULL);
    }
    mt_wait_metric(d.http_port, "mmc_evictions_total", 3, &c, &r);
    assert_true(mt_metric_value(r.body, "mmc_evictions_total") == 3);
    assert_true(mt_metric_value(r.body, "mmc_evicted_bytes_total") ==
                3 * 65536);
    assert_true(mt_metric_value(r.body, "mmc_eviction_runs_total") >= 1);
    assert_true(mt_metric_value(r.body, "mmc_objects") == 12);
    assert_true(mt_metric_value(r.body, usage) == 0.75);
    assert_true(mt_check_metrics(r.body, m) > 0);
    mt_resp_free(&r);
    mt_expect(d.http_port, "GET", "/key/ev%2F2", 404, "\"error\"");
    mt_expect(d.http_port, "GET", "/key/ev%2F3", 200, "\"size\":65536");

    /* rank 2 joins and goes silent */
    mt_wire_open(&silent, d.port);
    mt_join(&silent, 2);
    mt_wait_metric(d.http_port, "mmc_members", 2, &c, &r);
    mt_resp_free(&r);
    mt_wait_metric(d.http_port, "mmc_member_losses_total{reason=\"timeout\"}",
                   1, &c, &r);
    assert_true(mt_metric_value(r.body, "mmc_members") == 1);
    assert_true(mt_metric_value(r.body, "mmc_connections_timed_out_total") ==
                1);
    assert_true(mt_metric_value(
                    r.body, "mmc_member_losses_total{reason=\"closed\"}") == 0);
    mt_resp_free(&r);
    assert_true(mt_wait_closed(silent.fd));
    tw_conn_close(&silent);
    mt_ping(&c); /* the one that pinged is still served */

    /* rank 1 closes without UNREGISTER */
    tw_conn_close(&c);
    mt_wait_metric(d.http_port, "mmc_member_losses_total{reason=\"closed\"}", 1,
                   NULL, &r);
    assert_true(mt_metric_value(r.body, "mmc_members") == 0);
    assert_true(mt_metric_value(r.body, "mmc_objects") == 0);
    mt_resp_free(&r);
    assert_int_equal(tk_meta_stop(&d, SIGTERM), 0);
    free(m);
}

static void test_garbage(void **state)
{
    static const char key[] = "k";
    mmc_key_t k = {key, sizeof(key) - 1};
    mmc_key_list_t keys = {1, &k};
    mmc_hello_req_t bent = {.version = MMC_PROTO_VERSION + 1};
    mf_wbuf_t hello, frame, get, w;
    uint8_t junk[4096];
    mf_net_hdr_t hdr;
    tk_rng_t rng;
    tw_conn_t c;
    tk_meta_t d;
    mt_resp_t r;
    int fd;

    mt_find_binary();
    assert_int_equal(mt_start(&d, NULL), 0);
    tk_rng_seed(&rng, 42);
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)tk_rng_next(&rng);
    }
    /* what a client sends, to bend and cut: a HELLO frame, a GET body */
    mf_wbuf_init(&hello);
    tw_mmc_hello_encode(&hello, "it-client");
    hdr = tw_req_hdr(MMC_OP_HELLO, 1, (uint32_t)hello.len);
    mf_wbuf_init(&frame);
    tw_frame_encode(&frame, &hdr, hello.data, hello.len);
    mf_wbuf_init(&get);
    mmc_key_list_encode(&get, &keys);
    assert_int_equal(mf_wbuf_status(&hello), MF_OK);
    assert_int_equal(mf_wbuf_status(&frame), MF_OK);
    assert_int_equal(mf_wbuf_status(&get), MF_OK);

    /* random bytes: every server drops the connection (HTTP answers 400
     * first, or closes) */
    fd = mt_connect(d.port);
    (void)tk_sock_send_all(fd, junk, sizeof(junk));
    assert_true(mt_wait_closed(fd));
    close(fd);
    fd = mt_connect(d.store_port);
    (void)tk_sock_send_all(fd, junk, sizeof(junk));
    assert_true(mt_wait_closed(fd));
    close(fd);
    fd = mt_connect(d.http_port);
    (void)tk_sock_send_all(fd, junk, sizeof(junk));
    assert_true(mt_wait_closed(fd));
    close(fd);

    /* the HELLO frame cut short in its body, then the connection closed */
    fd = mt_connect(d.port);
    (void)tk_sock_send_all(fd, frame.data, frame.len - 5);
    close(fd);
    /* cut short in its header */
    fd = mt_connect(d.port);
    (void)tk_sock_send_all(fd, frame.data, 11);
    close(fd);
    /* a body length beyond any limit: disconnected */
    fd = mt_connect(d.port);
    hdr.body_len = UINT32_MAX;
    (void)tw_send_hdr(fd, &hdr);
    assert_true(mt_wait_closed(fd));
    close(fd);
    /* a frame of another version: disconnected */
    fd = mt_connect(d.port);
    hdr.body_len = (uint32_t)hello.len;
    hdr.version = MF_NET_VERSION + 1;
    (void)tw_send_hdr(fd, &hdr);
    (void)tk_sock_send_all(fd, hello.data, hello.len);
    assert_true(mt_wait_closed(fd));
    close(fd);

    /* well-framed nonsense fails per request, the connection stays */
    mt_wire_open(&c, d.port);
    assert_int_equal(mt_wire_call(&c, 999, NULL, 0), MF_ERR_UNSUPPORTED);
    /* the HELLO body cut after 3 bytes */
    assert_int_equal(mt_wire_call(&c, MMC_OP_HELLO, hello.data, 3),
                     MF_ERR_PROTO);
    /* a HELLO of another protocol version */
    snprintf(bent.name, sizeof(bent.name), "it-client");
    mf_wbuf_init(&w);
    mmc_hello_req_encode(&w, &bent);
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    assert_int_equal(mt_wire_call(&c, MMC_OP_HELLO, w.data, w.len),
                     MF_ERR_VERSION);
    mf_wbuf_free(&w);
    /* a GET before HELLO */
    assert_true(mt_wire_call(&c, MMC_OP_GET, get.data, get.len) < 0);
    assert_int_equal(mt_wire_call(&c, 0, NULL, 0), MF_ERR_UNSUPPORTED);
    /* greeted: a GET whose key count (its first field) is bent far
     * beyond the keys in its body, then the GET itself */
    assert_int_equal(mt_wire_call(&c, MMC_OP_HELLO, hello.data, hello.len),
                     MF_OK);
    mf_le32_store(get.data, 1000);
    assert_int_equal(mt_wire_call(&c, MMC_OP_GET, get.data, get.len),
                     MF_ERR_PROTO);
    assert_int_equal(tw_mmc_get_one(&c, key, NULL), MMC_ERR_NOT_FOUND);
    tw_conn_close(&c);
    mf_wbuf_free(&hello);
    mf_wbuf_free(&frame);
    mf_wbuf_free(&get);

    /* a partial HTTP request that never ends is not answered: others are */
    fd = mt_connect(d.http_port);
    (void)tk_sock_send_all(fd, "GET /heal", 9);

    mt_http(d.http_port, "GET", "/health", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body, "ok\n");
    mt_resp_free(&r);
    /* the bad requests were counted */
    mt_http(d.http_port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.code, 200);
    assert_true(mt_metric_value(r.body, "mmc_requests_total{op=\"unknown\"}") >=
                2);
    assert_true(mt_metric_value(r.body, "mmc_errors_total{op=\"hello\"}") >= 1);
    mt_resp_free(&r);
    close(fd);

    assert_int_equal(tk_meta_stop(&d, SIGTERM), 0);
}

static void test_cli(void **state)
{
    const char *help[] = {mt_bin, "--help", NULL};
    const char *bad_port[] = {mt_bin, "--set", "port=70000", NULL};
    const char *bad_key[] = {mt_bin, "--set", "no_such_key=1", NULL};
    const char *bad_form[] = {mt_bin, "--set", "port", NULL};
    const char *bad_opt[] = {mt_bin, "--no-such-option", NULL};
    const char *bad_arg[] = {mt_bin, "stray", NULL};
    const char *window[] = {
        mt_bin, "--set", "max_ranks=4096", "--set", "max_segment_size=256G",
        NULL};
    const char *align[] = {mt_bin, "--set", "alloc_align=12K", NULL};
    char path[64], cfg_arg[96];
    const char *file_dump[] = {mt_bin,      "--config",      path, "--set",
                               "port=4444", "--dump-config", NULL};
    const char *no_file[] = {mt_bin, "--config", "/nonexistent/mmc.conf", NULL};
    const char *order[] = {mt_bin,
                           "--set",
                           "max_ranks=1024",
                           "--set",
                           "max_segment_size=64G",
                           "--dump-config",
                           NULL};
    char *out;
    int fd;

    mt_find_binary();

    /* --help: exit 0, every key and its variable */
    assert_int_equal(mt_run(help, false, NULL, &out), 0);
    assert_non_null(strstr(out, "Usage: mmc-meta"));
    assert_non_null(strstr(out, "--config"));
    assert_non_null(strstr(out, "--set"));
    assert_non_null(strstr(out, "--dump-config"));
    for (size_t i = 0; i < MT_NKEYS; i++) {
        char env[64];
        snprintf(env, sizeof(env), "MMC_META_%s", mt_keys[i]);
        for (char *p = env; *p != '\0'; p++) {
            if (*p >= 'a' && *p <= 'z') {
                *p = (char)(*p - 'a' + 'A');
            }
        }
        if (strstr(out, mt_keys[i]) == NULL || strstr(out, env) == NULL) {
            fail_msg("--help lacks %s / %s", mt_keys[i], env);
        }
    }
    free(out);

    /* bad settings: exit 2 with the reason on stderr */
    assert_int_equal(mt_run(bad_port, true, NULL, &out), 2);
    assert_non_null(strstr(out, "port"));
    assert_non_null(strstr(out, "70000"));
    assert_non_null(strstr(out, "range"));
    assert_null(strstr(out, "mmc-meta ready"));
    free(out);
    assert_int_equal(mt_run(bad_key, true, NULL, &out), 2);
    assert_non_null(strstr(out, "unknown key 'no_such_key'"));
    free(out);
    assert_int_equal(mt_run(bad_form, true, NULL, &out), 2);
    assert_non_null(strstr(out, "KEY=VALUE"));
    free(out);
    assert_int_equal(mt_run(bad_opt, true, NULL, &out), 2);
    free(out);
    assert_int_equal(mt_run(bad_arg, true, NULL, &out), 2);
    free(out);
    assert_int_equal(mt_run(window, true, NULL, &out), 2);
    assert_non_null(strstr(out, "47-bit"));
    free(out);
    assert_int_equal(mt_run(align, true, NULL, &out), 2);
    assert_non_null(strstr(out, "power of two"));
    free(out);
    assert_int_equal(mt_run(no_file, true, NULL, &out), 2);
    assert_non_null(strstr(out, "/nonexistent/mmc.conf"));
    free(out);
    assert_int_equal(mt_run(bad_port, true, "MMC_META_PORT=1", &out), 2);
    free(out);
    assert_int_equal(mt_run(help, true, "MMC_META_PORT=http", &out), 0);
    free(out);

    /* the window is checked after every setting: order does not matter */
    assert_int_equal(mt_run(order, false, NULL, &out), 0);
    assert_non_null(strstr(out, "max_ranks = 1024\n"));
    free(out);

    /* precedence: defaults < file < environment < --set */
    snprintf(path, sizeof(path), "/tmp/it_mmc_meta_conf_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    {
        const char *text = "# test\nport = 1111\nstore_port = 1112\n"
                           "http_port = 1113\nlease_ms = 2s\n";
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    }
    close(fd);
    assert_int_equal(mt_run(file_dump, false,
                            "MMC_META_PORT=2221 MMC_META_STORE_PORT=2222",
                            &out),
                     0);
    assert_non_null(strstr(out, "port = 4444\n"));
    assert_non_null(strstr(out, "store_port = 2222\n"));
    assert_non_null(strstr(out, "http_port = 1113\n"));
    assert_non_null(strstr(out, "lease_ms = 2000\n"));
    assert_non_null(strstr(out, "max_batch = 16384\n"));
    for (size_t i = 0; i < MT_NKEYS; i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s = ", mt_keys[i]);
        assert_non_null(strstr(out, line));
    }
    free(out);

    /* a file error names file and line */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "port = 1\n\nmax_batch = 0\n", 24), 24);
    close(fd);
    snprintf(cfg_arg, sizeof(cfg_arg), "%s:3", path);
    assert_int_equal(mt_run(file_dump, true, NULL, &out), 2);
    assert_non_null(strstr(out, cfg_arg));
    assert_non_null(strstr(out, "max_batch"));
    free(out);
    unlink(path);
}

static void test_ports_and_signals(void **state)
{
    char taken[32];
    const char *no_http[] = {"--set", "http_enable=false", NULL};
    tk_meta_t first, second;
    char *out;

    mt_find_binary();
    assert_int_equal(mt_start(&first, NULL), 0);

    /* a port in use: exit 1 with a message */
    snprintf(taken, sizeof(taken), "port=%u", first.port);
    {
        const char *args[] = {mt_bin,        "--set", "addr=127.0.0.1", "--set",
                              taken,         "--set", "store_port=0",   "--set",
                              "http_port=0", NULL};
        assert_int_equal(mt_run(args, true, NULL, &out), 1);
        assert_non_null(strstr(out, "cannot start"));
        assert_null(strstr(out, "mmc-meta ready"));
        free(out);
    }
    snprintf(taken, sizeof(taken), "store_port=%u", first.store_port);
    {
        const char *args[] = {
            mt_bin,  "--set", "addr=127.0.0.1", "--set",       "port=0",
            "--set", taken,   "--set",          "http_port=0", NULL};
        assert_int_equal(mt_run(args, true, NULL, &out), 1);
        free(out);
    }
    snprintf(taken, sizeof(taken), "http_port=%u", first.http_port);
    {
        const char *args[] = {mt_bin,   "--set", "addr=127.0.0.1", "--set",
                              "port=0", "--set", "store_port=0",   "--set",
                              taken,    NULL};
        assert_int_equal(mt_run(args, true, NULL, &out), 1);
        free(out);
    }

    /* HTTP off: http=0 in the ready line */
    assert_int_equal(mt_start(&second, no_http), 0);
    assert_int_equal(second.http_port, 0);
    assert_int_equal(tk_meta_stop(&second, SIGINT), 0);

    /* the first one still serves, and stops on SIGINT */
    mt_expect(first.http_port, "GET", "/health", 200, "ok");
    assert_int_equal(tk_meta_stop(&first, SIGINT), 0);
    assert_int_equal(tk_proc_tracked(), 0);
}

/* A failed test leaves no daemon behind. */
/* Started with a soft limit of 64 open files, the daemon serves as many
 * connections as its hard limit allows. */
static void test_open_files_limit(void **state)
{
    uint64_t soft = 0, hard = 0;
    tk_meta_t d;

    (void)state;
    assert_int_equal(mt_start_nofile(&d, NULL, 64), 0);
    assert_int_equal(tk_proc_nofile(d.pid, &soft, &hard), 0);
    assert_true(soft == hard);
    mt_expect(d.http_port, "GET", "/health", 200, "ok");
    assert_int_equal(tk_meta_stop(&d, SIGTERM), 0);
}

static int mt_teardown(void **state)
{
    tk_proc_kill_all();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_http, mt_teardown),
        cmocka_unit_test_teardown(test_views_of_state, mt_teardown),
        cmocka_unit_test_teardown(test_evict_and_liveness, mt_teardown),
        cmocka_unit_test_teardown(test_garbage, mt_teardown),
        cmocka_unit_test_teardown(test_cli, mt_teardown),
        cmocka_unit_test_teardown(test_ports_and_signals, mt_teardown),
        cmocka_unit_test_teardown(test_open_files_limit, mt_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return tk_group_run(tests, NULL, NULL);
}
