/*
 * Re-replication, the meta service's side (the choice of objects, ranks
 * and copiers is the state's: meta_state_repair.c).
 *
 * On every tick, once repair_delay_ms passed since the start, repairs
 * that ran out of repair_timeout_ms are given up and new ones started:
 * up to repair_max_active at once, within a token bucket of repair_rate
 * bytes per second (a burst of one second).  Each copier gets its jobs in
 * one REPAIR notify; its REPAIR_DONE makes the new replicas (their
 * holders are told with RECORD) or frees their space.
 */
#include "cache/meta/meta_int.h"

#define MMC_META_REPAIR_JOBS 256u

void mmc_meta_repair_run(mmc_meta_t *meta, uint64_t now_ms)
{
    mmc_state_repair_job_t jobs[MMC_META_REPAIR_JOBS];
    const mmc_meta_config_t *cfg = &meta->cfg;
    uint32_t running, n, want;
    uint64_t spent = 0;

    if (cfg->repair_max_active == 0) {
        return;
    }
    /* repairs that timed out were given up by the tick */
    if (now_ms < meta->start_ms + cfg->repair_delay_ms) {
        return;
    }
    /* the bucket fills at repair_rate, up to one second's worth */
    if (meta->repair_last_ms != 0) {
        meta->repair_tokens +=
            cfg->repair_rate * (now_ms - meta->repair_last_ms) / 1000u;
    }
    meta->repair_tokens = MF_MIN(meta->repair_tokens, cfg->repair_rate);
    meta->repair_last_ms = now_ms;
    running = mmc_state_repairs_running(meta->state);
    if (running >= cfg->repair_max_active || meta->repair_tokens == 0) {
        return;
    }
    want = MF_MIN(cfg->repair_max_active - running, MMC_META_REPAIR_JOBS);
    n = mmc_state_repair_start(meta->state, now_ms, cfg->repair_timeout_ms,
                               jobs, want, meta->repair_tokens);
    for (uint32_t i = 0; i < n; i++) {
        spent += jobs[i].size;
    }
    meta->repair_tokens -= MF_MIN(spent, meta->repair_tokens);
    /* one notify per copier, its jobs together */
    for (uint32_t i = 0; i < n; i++) {
        mmc_repair_t items[MMC_META_REPAIR_JOBS];
        mmc_repair_list_t list = {.count = 0, .items = items};
        mmc_state_owner_t *copier = jobs[i].copier;
        mmc_meta_conn_t *mc;
        mf_wbuf_t w;

        if (copier == NULL) {
            continue; /* sent with an earlier one */
        }
        for (uint32_t j = i; j < n; j++) {
            if (jobs[j].copier != copier) {
                continue;
            }
            items[list.count++] = (mmc_repair_t){.id = jobs[j].id,
                                                 .media = jobs[j].media,
                                                 .src_gva = jobs[j].src_gva,
                                                 .dst_gva = jobs[j].dst_gva,
                                                 .size = jobs[j].size};
            jobs[j].copier = NULL;
        }
        mc = mmc_state_owner_data(copier);
        mf_wbuf_init(&w);
        mmc_repair_list_encode(&w, &list);
        if (mf_wbuf_status(&w) != MF_OK ||
            mf_net_conn_notify(mc->conn, MMC_OP_REPAIR, w.data, w.len) !=
                MF_OK) {
            /* given up at their timeout */
            mf_warn("meta: cannot send rank %" PRIu32 " %u repairs",
                    mmc_state_owner_rank(copier), list.count);
        }
        mf_wbuf_free(&w);
    }
    if (n > 0) {
        mf_debug("meta: %u repairs started, %" PRIu64 " objects below their "
                 "replica count",
                 n, mmc_state_under_replicated(meta->state));
    }
}

void mmc_meta_handle_repair_done(mmc_meta_t *meta, mmc_meta_conn_t *mc,
                                 const uint8_t *body, size_t len,
                                 mmc_meta_reply_t *rep)
{
    mmc_commit_list_t done;

    rep->status = mmc_commit_list_decode(body, len, &done);
    if (rep->status != MF_OK) {
        return;
    }
    for (uint32_t i = 0; i < done.count; i++) {
        mmc_status_t st =
            mmc_state_repair_done(meta->state, mc->owner, done.items[i].put_id,
                                  (mf_status_t)done.items[i].status);

        if (st != MMC_OK) {
            mf_debug("meta: a late or unknown repair %" PRIu64 " from %s",
                     done.items[i].put_id, mc->name);
        }
        if (done.items[i].status != MF_OK) {
            mf_warn("meta: rank %" PRIu32 " could not copy a repair: %s",
                    mmc_state_owner_rank(mc->owner),
                    mf_status_name((mf_status_t)done.items[i].status));
        }
    }
    mmc_commit_list_free(&done);
    /* the next ones need not wait for the tick */
    mmc_meta_repair_run(meta, mmc_meta_now_ms());
}
