/*
 * The meta service's HTTP endpoint: read-only views of the meta state for
 * operators and monitoring.
 *
 *   GET /health     200 "ok\n"; with ?format=json or an Accept header that
 *                   names application/json: {"status":"ok","role":"leader"
 *                   (elected through etcd), "follower" (waiting to lead)
 *                   or "alone","members":N,"objects":N[,"leader":URL]}
 *   GET /metrics    Prometheus text exposition format 0.0.4
 *   GET /segments   JSON array, one object per registered segment
 *   GET /key/<key>  JSON of one committed object (the key URL-encoded), or
 *                   404 with a JSON error
 * Any other path is 404, any other method 405; errors carry a JSON body
 * {"error": "..."}.  A follower's view has no segments and no keys: those
 * pages are 503 naming the leader.
 *
 * The evhttp server runs on the meta service's loop thread (the event_base
 * given to mmc_meta_http_start), so handlers read the meta state directly
 * through the service's view (meta_view.h), one request at a time, and always
 * answer before they return.  It serves on a net listener (net/listener.c), so
 * a failed accept() (out of descriptors) pauses accepting and is logged once
 * per interval instead of spinning the loop that the RPC server shares; a
 * connection idle for the meta's idle_timeout_ms is closed.  Everything a peer
 * controls is escaped on output: JSON strings (keys may hold any byte but NUL;
 * invalid UTF-8 becomes U+FFFD) and Prometheus label values (host ids).
 */
#include "cache/meta/meta_http.h"
#include "net/tls.h"
#include "net/net.h"

#include "util/log.h"
#include "util/misc.h"
#include "util/trace.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MMC_META_HTTP_MAX_HEADERS 16384
#define MMC_META_HTTP_MAX_BODY    65536

struct mmc_meta_http {
    mmc_meta_view_t view;
    struct evhttp *http;
    mf_net_listener_t *listener;
};

/* ------------------------------------------------------------ escaping */

/* Length (1..4) of the valid UTF-8 sequence at s, 0 if it is not one. */
static size_t mmc_meta_http_utf8_len(const unsigned char *s, size_t left)
{
    uint32_t cp;
    size_t n, i;

    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > left) {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
        cp > 0x10ffff) {
        return 0;
    }
    return n;
}

void mmc_meta_http_json_str(struct evbuffer *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    evbuffer_add(b, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            evbuffer_add_printf(b, "\\%c", c);
            i++;
        } else if (c == '\n') {
            evbuffer_add(b, "\\n", 2);
            i++;
        } else if (c == '\r') {
            evbuffer_add(b, "\\r", 2);
            i++;
        } else if (c == '\t') {
            evbuffer_add(b, "\\t", 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            evbuffer_add_printf(b, "\\u%04x", c);
            i++;
        } else if ((n = mmc_meta_http_utf8_len(p + i, len - i)) != 0) {
            evbuffer_add(b, p + i, n);
            i += n;
        } else {
            evbuffer_add(b, "\\ufffd", 6);
            i++;
        }
    }
    evbuffer_add(b, "\"", 1);
}

/* A Prometheus label value, quotes included: \\, \" and \n escaped,
 * other control bytes and invalid UTF-8 replaced by U+FFFD. */
static void mmc_meta_http_label(struct evbuffer *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t len = strlen((const char *)p), i = 0, n;

    evbuffer_add(b, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            evbuffer_add_printf(b, "\\%c", c);
            i++;
        } else if (c == '\n') {
            evbuffer_add(b, "\\n", 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            evbuffer_add(b, "\xef\xbf\xbd", 3);
            i++;
        } else if ((n = mmc_meta_http_utf8_len(p + i, len - i)) != 0) {
            evbuffer_add(b, p + i, n);
            i += n;
        } else {
            evbuffer_add(b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    evbuffer_add(b, "\"", 1);
}

static const char *mmc_meta_http_media(uint8_t media)
{
    switch (media) {
    case MMC_MEDIA_DRAM:
        return "dram";
    case MMC_MEDIA_HBM:
        return "hbm";
    case MMC_MEDIA_SSD:
        return "ssd";
    default:
        return "unknown";
    }
}

/* "put_alloc" for MMC_OP_PUT_ALLOC; "unknown" for slot 0, where the
 * meta service counts requests with an opcode it does not know. */
static void mmc_meta_http_op_label(uint16_t op, char *buf, size_t len)
{
    const char *name = (op == 0) ? "unknown" : mmc_op_name(op);
    size_t i;

    for (i = 0; i + 1 < len && name[i] != '\0'; i++) {
        buf[i] = (name[i] >= 'A' && name[i] <= 'Z')
                     ? (char)(name[i] - 'A' + 'a')
                     : name[i];
    }
    buf[i] = '\0';
}

/* Seconds with no exponent and no trailing zeros: "0.00005", "2.5". */
static void mmc_meta_http_seconds(double us, char *buf, size_t len)
{
    char *end;

    snprintf(buf, len, "%.9f", us / 1e6);
    if (strchr(buf, '.') == NULL) {
        return;
    }
    end = buf + strlen(buf);
    while (end > buf && end[-1] == '0') {
        *--end = '\0';
    }
    if (end > buf && end[-1] == '.') {
        end[-1] = '\0';
    }
}

/* ----------------------------------------------------------- responses */

static void mmc_meta_http_send(struct evhttp_request *req, int code,
                               const char *reason, const char *type,
                               struct evbuffer *body)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

    evhttp_add_header(headers, "Content-Type", type);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void mmc_meta_http_send_error(struct evhttp_request *req, int code,
                                     const char *reason, const char *message)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evbuffer_add_printf(body, "{\"error\":");
    mmc_meta_http_json_str(body, message, strlen(message));
    evbuffer_add_printf(body, "}\n");
    mmc_meta_http_send(req, code, reason, "application/json", body);
    evbuffer_free(body);
}

/* The view's statistics (free() them), or NULL after answering 500. */
static mmc_meta_stats_t *mmc_meta_http_stats(mmc_meta_http_t *h,
                                             struct evhttp_request *req)
{
    mmc_meta_stats_t *stats = calloc(1, sizeof(*stats));

    if (stats == NULL) {
        mmc_meta_http_send_error(req, HTTP_INTERNAL, "Internal Server Error",
                                 "out of memory");
        return NULL;
    }
    h->view.get_stats(h->view.ctx, stats);
    return stats;
}

/* -------------------------------------------------------------- /health */

static void mmc_meta_http_health(mmc_meta_http_t *h, struct evhttp_request *req,
                                 bool json, struct evbuffer *body)
{
    mmc_meta_stats_t *stats;

    if (!json) {
        evbuffer_add(body, "ok\n", 3);
        mmc_meta_http_send(req, HTTP_OK, "OK", "text/plain; charset=utf-8",
                           body);
        return;
    }
    stats = mmc_meta_http_stats(h, req);
    if (stats == NULL) {
        return;
    }
    evbuffer_add_printf(body,
                        "{\"status\":\"ok\",\"role\":\"%s\",\"members\":%llu,"
                        "\"objects\":%llu",
                        stats->leader     ? "leader"
                        : stats->follower ? "follower"
                                          : "alone",
                        (unsigned long long)stats->members,
                        (unsigned long long)stats->objects);
    if (stats->follower) {
        evbuffer_add_printf(body, ",\"leader\":");
        mmc_meta_http_json_str(body, stats->leader_url,
                               strlen(stats->leader_url));
    }
    evbuffer_add_printf(body, "}\n");
    free(stats);
    mmc_meta_http_send(req, HTTP_OK, "OK", "application/json", body);
}

/* ------------------------------------------------------------- /metrics */

static void mmc_meta_http_family(struct evbuffer *b, const char *name,
                                 const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static void mmc_meta_http_gauge(struct evbuffer *b, const char *name,
                                const char *type, const char *help,
                                uint64_t value)
{
    mmc_meta_http_family(b, name, type, help);
    evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

typedef enum mmc_meta_http_seg_field {
    MMC_META_HTTP_SEG_CAPACITY,
    MMC_META_HTTP_SEG_USED,
    MMC_META_HTTP_SEG_FREE,
    MMC_META_HTTP_SEG_LARGEST_FREE,
    MMC_META_HTTP_SEG_REPLICAS,
    MMC_META_HTTP_SEG_USAGE,
    MMC_META_HTTP_SEG_FIELDS
} mmc_meta_http_seg_field_t;

static const struct {
    const char *name;
    const char *help;
} mmc_meta_http_seg_families[MMC_META_HTTP_SEG_FIELDS] = {
    {"mmc_segment_capacity_bytes", "Bytes of the segment."},
    {"mmc_segment_used_bytes", "Bytes of the segment allocated to replicas."},
    {"mmc_segment_free_bytes", "Bytes of the segment not allocated."},
    {"mmc_segment_largest_free_bytes",
     "Largest free extent of the segment, in bytes."},
    {"mmc_segment_replicas",
     "Replicas (committed and pending) placed in the segment."},
    {"mmc_segment_usage_ratio",
     "Used bytes over capacity of the segment (eviction watermarks apply "
     "to it)."},
};

typedef struct mmc_meta_http_seg_ctx {
    struct evbuffer *body;
    mmc_meta_http_seg_field_t field;
    bool first; /* /segments: no comma before the first object */
} mmc_meta_http_seg_ctx_t;

static void mmc_meta_http_seg_metric_cb(const mmc_meta_seg_info_t *seg,
                                        void *arg)
{
    mmc_meta_http_seg_ctx_t *ctx = arg;
    struct evbuffer *b = ctx->body;
    uint64_t value = 0;

    switch (ctx->field) {
    case MMC_META_HTTP_SEG_CAPACITY:
        value = seg->capacity;
        break;
    case MMC_META_HTTP_SEG_USED:
        value = seg->used;
        break;
    case MMC_META_HTTP_SEG_FREE:
        value = seg->free;
        break;
    case MMC_META_HTTP_SEG_LARGEST_FREE:
        value = seg->largest_free;
        break;
    case MMC_META_HTTP_SEG_REPLICAS:
    case MMC_META_HTTP_SEG_USAGE:
    case MMC_META_HTTP_SEG_FIELDS:
        value = seg->replicas;
        break;
    }
    evbuffer_add_printf(b, "%s{rank=\"%u\",media=\"%s\",host=",
                        mmc_meta_http_seg_families[ctx->field].name, seg->rank,
                        mmc_meta_http_media(seg->media));
    mmc_meta_http_label(b, seg->host_id);
    if (ctx->field == MMC_META_HTTP_SEG_USAGE) {
        double ratio = (seg->capacity > 0)
                           ? (double)seg->used / (double)seg->capacity
                           : 0.0;
        evbuffer_add_printf(b, "} %.6f\n", ratio);
        return;
    }
    evbuffer_add_printf(b, "} %llu\n", (unsigned long long)value);
}

static void mmc_meta_http_op_counters(struct evbuffer *b, const char *name,
                                      const char *help, const uint64_t *values)
{
    char op[32];

    mmc_meta_http_family(b, name, "counter", help);
    for (uint16_t i = 0; i < MMC_OP_MAX; i++) {
        mmc_meta_http_op_label(i, op, sizeof(op));
        evbuffer_add_printf(b, "%s{op=\"%s\"} %llu\n", name, op,
                            (unsigned long long)values[i]);
    }
}

static void mmc_meta_http_histograms(struct evbuffer *b,
                                     const mmc_meta_stats_t *stats)
{
    static const char *name = "mmc_request_duration_seconds";
    char op[32], le[48], sum[48];

    mmc_meta_http_family(b, name, "histogram",
                         "Time spent handling a request, by opcode.");
    for (uint16_t i = 0; i < MMC_OP_MAX; i++) {
        const mmc_hist_t *h = &stats->latency[i];
        uint64_t cumulative = 0;

        mmc_meta_http_op_label(i, op, sizeof(op));
        for (int k = 0; k < MMC_HIST_BUCKETS - 1; k++) {
            cumulative += h->buckets[k];
            mmc_meta_http_seconds(mmc_hist_bounds_us[k], le, sizeof(le));
            evbuffer_add_printf(b, "%s_bucket{op=\"%s\",le=\"%s\"} %llu\n",
                                name, op, le, (unsigned long long)cumulative);
        }
        /* +Inf and _count come from the same buckets, so they agree */
        cumulative += h->buckets[MMC_HIST_BUCKETS - 1];
        evbuffer_add_printf(b, "%s_bucket{op=\"%s\",le=\"+Inf\"} %llu\n", name,
                            op, (unsigned long long)cumulative);
        snprintf(sum, sizeof(sum), "%.9g", h->sum_us / 1e6);
        evbuffer_add_printf(b, "%s_sum{op=\"%s\"} %s\n", name, op, sum);
        evbuffer_add_printf(b, "%s_count{op=\"%s\"} %llu\n", name, op,
                            (unsigned long long)cumulative);
    }
}

static void mmc_meta_http_metrics(mmc_meta_http_t *h,
                                  struct evhttp_request *req,
                                  struct evbuffer *b)
{
    mmc_meta_http_seg_ctx_t ctx = {.body = b};
    mmc_meta_stats_t *stats = mmc_meta_http_stats(h, req);

    if (stats == NULL) {
        return;
    }

    mmc_meta_http_gauge(b, "mmc_objects", "gauge", "Committed objects.",
                        stats->objects);
    mmc_meta_http_gauge(b, "mmc_object_bytes", "gauge",
                        "Bytes of the committed objects, once per object.",
                        stats->object_bytes);
    mmc_meta_http_gauge(b, "mmc_pending_puts", "gauge",
                        "Puts allocated and not yet committed.",
                        stats->pending_puts);
    mmc_meta_http_gauge(b, "mmc_leases", "gauge", "Read leases held.",
                        stats->leases);
    mmc_meta_http_gauge(b, "mmc_clients", "gauge",
                        "Connections to the RPC server.", stats->clients);
    mmc_meta_http_gauge(b, "mmc_members", "gauge",
                        "Ranks with a registered segment.", stats->members);
    mmc_meta_http_gauge(b, "mmc_unlinked_objects", "gauge",
                        "Objects removed or replaced whose space waits for "
                        "their read leases.",
                        stats->unlinked_objects);

    for (int f = 0; f < MMC_META_HTTP_SEG_FIELDS; f++) {
        ctx.field = (mmc_meta_http_seg_field_t)f;
        mmc_meta_http_family(b, mmc_meta_http_seg_families[f].name, "gauge",
                             mmc_meta_http_seg_families[f].help);
        if (h->view.foreach_seg != NULL) {
            h->view.foreach_seg(h->view.ctx, mmc_meta_http_seg_metric_cb, &ctx);
        }
    }

    mmc_meta_http_op_counters(b, "mmc_requests_total",
                              "Requests handled, by opcode.", stats->requests);
    mmc_meta_http_op_counters(b, "mmc_errors_total",
                              "Requests or items that failed, by opcode "
                              "(misses are not failures).",
                              stats->errors);
    mmc_meta_http_op_counters(b, "mmc_misses_total",
                              "Items whose key was not found (GET, EXIST, "
                              "QUERY, REMOVE), by opcode.",
                              stats->misses);
    mmc_meta_http_histograms(b, stats);

    mmc_meta_http_gauge(b, "mmc_puts_committed_total", "counter",
                        "Puts committed.", stats->puts_committed);
    mmc_meta_http_gauge(b, "mmc_puts_aborted_total", "counter",
                        "Puts aborted (by the client, a timeout or a lost "
                        "connection or segment).",
                        stats->puts_aborted);
    mmc_meta_http_gauge(b, "mmc_gets_total", "counter",
                        "Gets that found an object (read leases granted).",
                        stats->gets);
    mmc_meta_http_gauge(b, "mmc_removes_total", "counter", "Objects removed.",
                        stats->removes);
    mmc_meta_http_gauge(b, "mmc_puts_reclaimed_total", "counter",
                        "Puts aborted because put_timeout_ms passed (also "
                        "counted in mmc_puts_aborted_total).",
                        stats->puts_reclaimed);
    mmc_meta_http_gauge(b, "mmc_leases_expired_total", "counter",
                        "Read leases that ran out before their release.",
                        stats->leases_expired);
    mmc_meta_http_gauge(b, "mmc_segments_dropped_total", "counter",
                        "Segments dropped with their rank (connection lost "
                        "or unregistered).",
                        stats->segs_dropped);
    mmc_meta_http_gauge(b, "mmc_replicas_lost_total", "counter",
                        "Committed replicas dropped with their segment.",
                        stats->replicas_lost);
    mmc_meta_http_gauge(b, "mmc_evictions_total", "counter",
                        "Objects evicted (all replicas), in the background "
                        "or for a put that found no room.",
                        stats->evictions);
    mmc_meta_http_gauge(b, "mmc_evictions_put_total", "counter",
                        "Of mmc_evictions_total: evicted for a put that "
                        "found no room.",
                        stats->evictions_put);
    mmc_meta_http_gauge(b, "mmc_evicted_bytes_total", "counter",
                        "Bytes of the evicted objects, once per object.",
                        stats->evicted_bytes);
    mmc_meta_http_gauge(b, "mmc_eviction_runs_total", "counter",
                        "Background eviction passes.", stats->eviction_runs);
    mmc_meta_http_gauge(b, "mmc_eviction_skipped_total", "counter",
                        "Eviction candidates passed over because they were "
                        "under a read lease.",
                        stats->evict_skipped);
    mmc_meta_http_gauge(b, "mmc_eviction_promoted_total", "counter",
                        "evict_policy s3fifo: replicas read while on "
                        "probation, moved to the main queue instead of "
                        "evicted.",
                        stats->evict_promoted);
    mmc_meta_http_gauge(b, "mmc_eviction_ghost_hits_total", "counter",
                        "evict_policy s3fifo: objects put again soon after "
                        "their key was evicted off probation, admitted to "
                        "the main queue at once.",
                        stats->evict_ghost_hits);
    mmc_meta_http_family(b, "mmc_tier_evictions_total", "counter",
                         "Objects evicted (deleted) from a media tier: "
                         "DRAM and HBM when no SSD took them, SSD when it "
                         "filled.");
    for (uint8_t m = 0; m < 3; m++) {
        evbuffer_add_printf(b, "mmc_tier_evictions_total{media=\"%s\"} %llu\n",
                            mmc_meta_http_media(m),
                            (unsigned long long)stats->evictions_media[m]);
    }
    mmc_meta_http_family(b, "mmc_ssd_demotions_total", "counter",
                         "Objects evicted from memory to their rank's SSD: "
                         "started, done, failed (read meanwhile, failed, "
                         "timed out, holder gone).");
    evbuffer_add_printf(b,
                        "mmc_ssd_demotions_total{result=\"started\"} %llu\n"
                        "mmc_ssd_demotions_total{result=\"done\"} %llu\n"
                        "mmc_ssd_demotions_total{result=\"failed\"} %llu\n",
                        (unsigned long long)stats->demotions_started,
                        (unsigned long long)stats->demotions_done,
                        (unsigned long long)stats->demotions_failed);
    mmc_meta_http_family(b, "mmc_ssd_loads_total", "counter",
                         "Objects read back from SSD into memory for a read: "
                         "started, done, failed (no room, torn, failed, "
                         "timed out, holder gone).");
    evbuffer_add_printf(b,
                        "mmc_ssd_loads_total{result=\"started\"} %llu\n"
                        "mmc_ssd_loads_total{result=\"done\"} %llu\n"
                        "mmc_ssd_loads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)stats->loads_started,
                        (unsigned long long)stats->loads_done,
                        (unsigned long long)stats->loads_failed);
    mmc_meta_http_gauge(b, "mmc_reads_deferred_total", "counter",
                        "GET and LEASE requests that waited for objects to "
                        "load from SSD.",
                        stats->reads_deferred);
    mmc_meta_http_gauge(b, "mmc_puts_deferred_total", "counter",
                        "PUT_ALLOC requests that waited for demotions to SSD "
                        "to make room, instead of deleting.",
                        stats->puts_deferred);
    mmc_meta_http_family(b, "mmc_member_losses_total", "counter",
                         "Registered ranks lost without UNREGISTER: their "
                         "connection closed, or sent nothing for "
                         "member_timeout_ms.");
    evbuffer_add_printf(b, "mmc_member_losses_total{reason=\"closed\"} %llu\n",
                        (unsigned long long)stats->member_losses_closed);
    evbuffer_add_printf(b, "mmc_member_losses_total{reason=\"timeout\"} %llu\n",
                        (unsigned long long)stats->member_losses_timeout);
    mmc_meta_http_gauge(b, "mmc_connections_timed_out_total", "counter",
                        "Connections closed after member_timeout_ms of "
                        "silence (registered or not).",
                        stats->conns_timed_out);
    mmc_meta_http_gauge(b, "mmc_leader", "gauge",
                        "1 when this service leads the pool through etcd, 0 "
                        "when it runs alone or waits to lead.",
                        stats->leader ? 1 : 0);
    mmc_meta_http_gauge(b, "mmc_follower", "gauge",
                        "1 while this service waits to lead (a standby).",
                        stats->follower ? 1 : 0);
    mmc_meta_http_gauge(b, "mmc_leader_term", "gauge",
                        "Leaders the pool has had through etcd, the current "
                        "one included (0: runs alone).",
                        (uint64_t)MF_MAX(stats->term, 0));
    mmc_meta_http_gauge(b, "mmc_failovers_total", "counter",
                        "Leader changes of the pool through etcd: leaders "
                        "after the first.",
                        (uint64_t)MF_MAX(stats->term - 1, 0));
    mmc_meta_http_gauge(b, "mmc_leader_revision", "gauge",
                        "The etcd revision at which this leader took the "
                        "leader key (grows with every leader).",
                        (uint64_t)stats->leader_revision);
    mmc_meta_http_gauge(b, "mmc_uptime_seconds", "gauge",
                        "Seconds since this service started serving.",
                        stats->uptime_ms / 1000);
    mmc_meta_http_gauge(b, "mmc_rebuild_seconds", "gauge",
                        "Seconds from the start to the last local service's "
                        "record restored (0: none).",
                        stats->rebuild_ms / 1000);
    mmc_meta_http_gauge(b, "mmc_records_sent_total", "counter",
                        "RECORD batches sent to holders.", stats->records_sent);
    mmc_meta_http_gauge(b, "mmc_replies_held_total", "counter",
                        "Replies that waited for holders to acknowledge "
                        "their records.",
                        stats->replies_held);
    mmc_meta_http_gauge(b, "mmc_holders_restored_total", "counter",
                        "Holders that brought their record back to this "
                        "meta service.",
                        stats->holders_restored);
    mmc_meta_http_gauge(b, "mmc_restored_objects_total", "counter",
                        "Objects rebuilt from holders' records.",
                        stats->restored);
    mmc_meta_http_gauge(b, "mmc_restored_replicas_total", "counter",
                        "Replicas rebuilt from holders' records.",
                        stats->restored_replicas);
    mmc_meta_http_gauge(b, "mmc_under_replicated", "gauge",
                        "Objects with fewer live replicas than their put "
                        "asked for (copied again in the background).",
                        stats->under_replicated);
    mmc_meta_http_gauge(b, "mmc_repairs_running", "gauge",
                        "Re-replication copies under way.",
                        stats->repairs_running);
    mmc_meta_http_family(b, "mmc_repairs_total", "counter",
                         "Re-replication copies ended, by result.");
    evbuffer_add_printf(b, "mmc_repairs_total{result=\"done\"} %llu\n",
                        (unsigned long long)stats->repairs_done);
    evbuffer_add_printf(b, "mmc_repairs_total{result=\"failed\"} %llu\n",
                        (unsigned long long)stats->repairs_failed);
    mmc_meta_http_gauge(b, "mmc_restore_refused_total", "counter",
                        "Record entries refused (a newer version, a taken "
                        "range).",
                        stats->restore_refused);
    free(stats);
    mmc_meta_http_send(req, HTTP_OK, "OK",
                       "text/plain; version=0.0.4; charset=utf-8", b);
}

/* ------------------------------------------------------------ /segments */

static void mmc_meta_http_seg_json_cb(const mmc_meta_seg_info_t *seg, void *arg)
{
    mmc_meta_http_seg_ctx_t *ctx = arg;
    struct evbuffer *b = ctx->body;
    const char *host = (seg->host_id != NULL) ? seg->host_id : "";
    const char *name = (seg->name != NULL) ? seg->name : "";

    evbuffer_add_printf(b, "%s\n  {\"rank\":%u,\"host_idx\":%u,\"host\":",
                        ctx->first ? "" : ",", seg->rank, seg->host_idx);
    ctx->first = false;
    mmc_meta_http_json_str(b, host, strlen(host));
    evbuffer_add_printf(b, ",\"name\":");
    mmc_meta_http_json_str(b, name, strlen(name));
    evbuffer_add_printf(
        b,
        ",\"media\":\"%s\",\"gva\":%llu,\"capacity\":%llu,"
        "\"used\":%llu,\"free\":%llu,\"largest_free\":%llu,"
        "\"replicas\":%llu}",
        mmc_meta_http_media(seg->media), (unsigned long long)seg->gva,
        (unsigned long long)seg->capacity, (unsigned long long)seg->used,
        (unsigned long long)seg->free, (unsigned long long)seg->largest_free,
        (unsigned long long)seg->replicas);
}

/* A follower knows no segments and no keys: 503, naming the leader. */
static void mmc_meta_http_not_leader(mmc_meta_http_t *h,
                                     struct evhttp_request *req,
                                     struct evbuffer *b)
{
    mmc_meta_stats_t *stats = mmc_meta_http_stats(h, req);

    if (stats == NULL) {
        return;
    }
    evbuffer_add_printf(b, "{\"error\":\"not the leader\",\"leader\":");
    mmc_meta_http_json_str(b, stats->leader_url, strlen(stats->leader_url));
    evbuffer_add_printf(b, "}\n");
    free(stats);
    mmc_meta_http_send(req, HTTP_SERVUNAVAIL, "Service Unavailable",
                       "application/json", b);
}

static void mmc_meta_http_segments(mmc_meta_http_t *h,
                                   struct evhttp_request *req,
                                   struct evbuffer *b)
{
    mmc_meta_http_seg_ctx_t ctx = {.body = b, .first = true};

    if (h->view.foreach_seg == NULL) {
        mmc_meta_http_not_leader(h, req, b);
        return;
    }
    evbuffer_add(b, "[", 1);
    h->view.foreach_seg(h->view.ctx, mmc_meta_http_seg_json_cb, &ctx);
    evbuffer_add_printf(b, "%s]\n", ctx.first ? "" : "\n");
    mmc_meta_http_send(req, HTTP_OK, "OK", "application/json", b);
}

/* ------------------------------------------------------------ /key/<k> */

static void mmc_meta_http_key(mmc_meta_http_t *h, struct evhttp_request *req,
                              const char *key, size_t len, struct evbuffer *b)
{
    mmc_obj_info_t info;
    uint32_t leases = 0;
    mmc_status_t status;

    if (h->view.key_info == NULL) {
        mmc_meta_http_not_leader(h, req, b);
        return;
    }
    memset(&info, 0, sizeof(info));
    status = h->view.key_info(h->view.ctx, key, len, &info, &leases);
    if (status == MMC_ERR_NOT_FOUND) {
        evbuffer_add_printf(b, "{\"error\":\"not found\",\"key\":");
        mmc_meta_http_json_str(b, key, len);
        evbuffer_add_printf(b, "}\n");
        mmc_meta_http_send(req, HTTP_NOTFOUND, "Not Found", "application/json",
                           b);
        return;
    }
    if (status != MMC_OK) {
        mmc_meta_http_send_error(req, HTTP_INTERNAL, "Internal Server Error",
                                 mmc_status_name(status));
        return;
    }
    evbuffer_add_printf(b, "{\"key\":");
    mmc_meta_http_json_str(b, key, len);
    evbuffer_add_printf(b, ",\"size\":%llu,\"replicas\":[",
                        (unsigned long long)info.size);
    for (uint32_t i = 0; i < info.nreplicas && i < MMC_MAX_REPLICAS; i++) {
        evbuffer_add_printf(b, "%s{\"rank\":%u,\"media\":\"%s\",\"gva\":%llu}",
                            (i == 0) ? "" : ",", info.ranks[i],
                            mmc_meta_http_media(info.media[i]),
                            (unsigned long long)info.gvas[i]);
    }
    evbuffer_add_printf(b, "],\"leases\":%u}\n", leases);
    mmc_meta_http_send(req, HTTP_OK, "OK", "application/json", b);
}

/* -------------------------------------------------------------- /trace */

/* The tracer's table (text; the tracer may be off: then only what it
 * recorded while on), and with ?clear=1 its points start over. */
static void mmc_meta_http_trace(struct evhttp_request *req, bool clear,
                                struct evbuffer *b)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    if (out == NULL) {
        mmc_meta_http_send_error(req, HTTP_INTERNAL, "Internal Server Error",
                                 "out of memory");
        return;
    }
    fprintf(out, "# tracer %s (MF_TRACE, or mf_trace_enable)\n",
            atomic_load(&mf_trace_on) ? "on" : "off");
    mf_trace_dump(out);
    fclose(out);
    if (clear) {
        mf_trace_clear();
    }
    evbuffer_add(b, text, len);
    free(text);
    mmc_meta_http_send(req, HTTP_OK, "OK", "text/plain; charset=utf-8", b);
}

/* ------------------------------------------------------------- routing */

mf_status_t mmc_meta_http_parse_target(const char *path, const char *query,
                                       const char *accept,
                                       mmc_meta_http_target_t *target)
{
    static const char key_prefix[] = "/key/";
    size_t len = 0;
    char *key;

    memset(target, 0, sizeof(*target));
    if (path == NULL || path[0] == '\0') {
        path = "/";
    }
    if (strcmp(path, "/health") == 0) {
        target->page = MMC_META_HTTP_HEALTH;
        target->json =
            (query != NULL && strstr(query, "format=json") != NULL) ||
            (accept != NULL && strstr(accept, "application/json") != NULL);
    } else if (strcmp(path, "/metrics") == 0) {
        target->page = MMC_META_HTTP_METRICS;
    } else if (strcmp(path, "/segments") == 0) {
        target->page = MMC_META_HTTP_SEGMENTS;
    } else if (strcmp(path, "/trace") == 0) {
        target->page = MMC_META_HTTP_TRACE;
        target->clear = query != NULL && strstr(query, "clear=1") != NULL;
    } else if (strncmp(path, key_prefix, sizeof(key_prefix) - 1) == 0) {
        /* '+' stays itself: it is a key byte, not a space */
        key = evhttp_uridecode(path + sizeof(key_prefix) - 1, 0, &len);
        if (key == NULL) {
            return MF_ERR_NOMEM;
        }
        if (!mmc_key_valid(key, len)) {
            free(key);
            return MF_ERR_INVALID;
        }
        target->page = MMC_META_HTTP_KEY;
        target->key = key;
        target->key_len = len;
    }
    return MF_OK;
}

void mmc_meta_http_target_free(mmc_meta_http_target_t *target)
{
    free(target->key);
    memset(target, 0, sizeof(*target));
}

static void mmc_meta_http_request_cb(struct evhttp_request *req, void *arg)
{
    mmc_meta_http_t *h = arg;
    mmc_meta_http_target_t target;
    const struct evhttp_uri *uri;
    struct evbuffer *body;
    mf_status_t status;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          "GET");
        if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
            /* an answer to HEAD has no body */
            evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
            return;
        }
        mmc_meta_http_send_error(req, 405, "Method Not Allowed",
                                 "method not allowed: only GET");
        return;
    }
    uri = evhttp_request_get_evhttp_uri(req);
    status = mmc_meta_http_parse_target(
        uri != NULL ? evhttp_uri_get_path(uri) : NULL,
        uri != NULL ? evhttp_uri_get_query(uri) : NULL,
        evhttp_find_header(evhttp_request_get_input_headers(req), "Accept"),
        &target);
    if (status == MF_ERR_INVALID) {
        mmc_meta_http_send_error(req, HTTP_BADREQUEST, "Bad Request",
                                 "invalid key: 1 to 255 bytes, no NUL");
        return;
    }
    body = (status == MF_OK) ? evbuffer_new() : NULL;
    if (body == NULL) {
        mmc_meta_http_send_error(req, HTTP_INTERNAL, "Internal Server Error",
                                 "out of memory");
        mmc_meta_http_target_free(&target);
        return;
    }
    switch (target.page) {
    case MMC_META_HTTP_HEALTH:
        mmc_meta_http_health(h, req, target.json, body);
        break;
    case MMC_META_HTTP_METRICS:
        mmc_meta_http_metrics(h, req, body);
        break;
    case MMC_META_HTTP_SEGMENTS:
        mmc_meta_http_segments(h, req, body);
        break;
    case MMC_META_HTTP_KEY:
        mmc_meta_http_key(h, req, target.key, target.key_len, body);
        break;
    case MMC_META_HTTP_TRACE:
        mmc_meta_http_trace(req, target.clear, body);
        break;
    default:
        mmc_meta_http_send_error(req, HTTP_NOTFOUND, "Not Found",
                                 "no such path: try /health, /metrics, "
                                 "/segments, /trace or /key/<key>");
        break;
    }
    evbuffer_free(body);
    mmc_meta_http_target_free(&target);
}

/* ------------------------------------------------------- start and stop */

mf_status_t mmc_meta_http_start(const mmc_meta_view_t *view,
                                struct event_base *base, const char *addr,
                                uint16_t port, uint32_t idle_timeout_ms,
                                struct mf_tls *tls, mmc_meta_http_t **http_p)
{
    const struct timeval idle = {
        .tv_sec = idle_timeout_ms / 1000,
        .tv_usec = (idle_timeout_ms % 1000) * 1000,
    };
    mmc_meta_http_t *h;
    mf_status_t status;

    if (view == NULL || base == NULL || addr == NULL || http_p == NULL) {
        return MF_ERR_INVALID;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        mf_error("mmc-meta: out of memory for HTTP");
        status = MF_ERR_NOMEM;
        goto err;
    }
    h->view = *view;
    status = mf_net_listener_create(base, addr, port, NULL, NULL, &h->listener);
    if (status != MF_OK) {
        mf_error("mmc-meta: cannot listen for HTTP on %s:%u", addr, port);
        goto err_free_h;
    }
    h->http = evhttp_new(base);
    if (h->http == NULL) {
        mf_error("mmc-meta: evhttp_new() failed");
        status = MF_ERR_NOMEM;
        goto err_destroy_listener;
    }
    /* every method reaches the handler, which answers 405 itself */
    evhttp_set_allowed_methods(
        h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                     EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_timeout_tv(h->http, &idle);
    evhttp_set_max_headers_size(h->http, MMC_META_HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->http, MMC_META_HTTP_MAX_BODY);
    evhttp_set_gencb(h->http, mmc_meta_http_request_cb, h);
    if (tls != NULL) {
        evhttp_set_bevcb(h->http, mf_tls_http_bev, tls);
    }
    status = mf_net_listener_bind_http(h->listener, h->http);
    if (status != MF_OK) {
        goto err_free_http;
    }
    mf_info("mmc-meta: %s on %s", tls != NULL ? "HTTPS" : "HTTP",
            mf_net_listener_addr(h->listener));
    *http_p = h;
    return MF_OK;

err_free_http:
    evhttp_free(h->http);
err_destroy_listener:
    mf_net_listener_destroy(h->listener);
err_free_h:
    free(h);
err:
    return status;
}

uint16_t mmc_meta_http_bound_port(const mmc_meta_http_t *http)
{
    return (http != NULL) ? mf_net_listener_port(http->listener) : 0;
}

void mmc_meta_http_stop(mmc_meta_http_t *http)
{
    if (http == NULL) {
        return;
    }
    /* The listener first: evhttp_free() then frees its socket. */
    mf_net_listener_destroy(http->listener);
    evhttp_free(http->http);
    free(http);
}
