/*
 * The SSD tier, the holder's side: this process's SSD area (ssd.c) and
 * the moves the meta service asks of it (MOVE): a DEMOTE writes the bytes
 * of a replica in our DRAM segment to the area, a LOAD reads an object
 * from the area (checking its CRC) into a block of our DRAM segment.
 * Segments are mapped at their global addresses, so both are local
 * memory.  ssd_threads threads do the I/O and report each move
 * (MOVE_DONE, not waited for); the RPC loop thread only queues.
 *
 * The area's entries follow our record: an SSD replica the meta service
 * records (RECORD ADD) is committed to the area's log, one it drops (DEL)
 * or refuses at a restore is forgotten.  At the start the log's entries
 * become our record, so the first REGISTER restores them.
 *
 * Invariant: tier_lock guards the queue and the stop flag; the threads
 * run from mmc_create until mmc_destroy stops them, before the pool goes.
 */
#include "cache/local/local.h"
#include "cache/local/ssd.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct mmc_local_move_job {
    struct mmc_local_move_job *next;
    mmc_move_t m;
    char key[MMC_KEY_MAX + 1]; /* m.key points here */
} mmc_local_move_job_t;

static void mmc_local_move_report(mmc_t *mmc, uint64_t id, int32_t status)
{
    mmc_commit_item_t item = {.put_id = id, .status = status};
    mmc_commit_list_t done = {.count = 1, .items = &item};
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mmc_commit_list_encode(&w, &done);
    if ((mf_wbuf_status(&w) == MF_OK) &&
        (mf_net_client_send(mmc->rpc, MMC_OP_MOVE_DONE, w.data, w.len) !=
         MF_OK)) {
        /* the meta service gives the move up at its timeout */
        mf_debug("mmc-local: cannot report move %" PRIu64, id);
    }
    mf_wbuf_free(&w);
}

/* Where a move's memory side is in this process: inside our DRAM
 * segment, or NULL. */
static void *mmc_local_move_mem(mmc_t *mmc, const mmc_move_t *m)
{
    uint64_t base =
        (uint64_t)(uintptr_t)mf_bm_gva_of_rank(mmc->bm, mmc->rank, MF_MEM_HOST);

    if ((m->media != MMC_MEDIA_DRAM) || (m->gva < base) ||
        (m->size > mmc->cfg.dram_size) ||
        (m->gva - base > mmc->cfg.dram_size - m->size)) {
        return NULL;
    }
    return (void *)(uintptr_t)m->gva;
}

static mmc_status_t mmc_local_move_run(mmc_t *mmc, const mmc_move_t *m)
{
    void *mem = mmc_local_move_mem(mmc, m);
    mmc_status_t status;

    if (mem == NULL) {
        mf_error("mmc-local: a move of %" PRIu64 " bytes at 0x%" PRIx64
                 " (media %u) is not in our DRAM segment",
                 m->size, m->gva, m->media);
        return MF_ERR_INVALID;
    }
    if (m->dir == MMC_MOVE_DEMOTE) {
        status = mmc_ssd_store(mmc->ssd, m->ssd_offset, mem, m->size,
                               m->key.data, m->key.len, m->version, m->want);
    } else {
        status = mmc_ssd_load(mmc->ssd, m->ssd_offset, mem, m->size);
    }
    if (status != MF_OK) {
        mf_warn("mmc-local: %s of %.*s (%" PRIu64
                " bytes at SSD offset %" PRIu64 ") failed: %s",
                (m->dir == MMC_MOVE_DEMOTE) ? "demotion" : "load",
                (int)m->key.len, m->key.data, m->size, m->ssd_offset,
                mmc_status_name(status));
    }
    return status;
}

static void *mmc_local_tier_main(void *arg)
{
    mmc_t *mmc = arg;
    mmc_local_move_job_t *job;

    pthread_mutex_lock(&mmc->tier_lock);
    for (;;) {
        while ((mmc->tier_head == NULL) && !mmc->tier_stop) {
            pthread_cond_wait(&mmc->tier_cond, &mmc->tier_lock);
        }
        if (mmc->tier_stop) {
            break;
        }
        job = mmc->tier_head;
        mmc->tier_head = job->next;
        pthread_mutex_unlock(&mmc->tier_lock);
        mmc_local_move_report(mmc, job->m.id, mmc_local_move_run(mmc, &job->m));
        free(job);
        pthread_mutex_lock(&mmc->tier_lock);
    }
    pthread_mutex_unlock(&mmc->tier_lock);
    return NULL;
}

void mmc_local_tier_queue(mmc_t *mmc, const uint8_t *body, size_t len)
{
    mmc_local_move_job_t **tail;
    mmc_move_list_t list;

    if (mmc_move_list_decode(body, len, &list) != MF_OK) {
        mf_error("mmc-local: malformed MOVE from the meta service");
        return;
    }
    pthread_mutex_lock(&mmc->tier_lock);
    for (tail = &mmc->tier_head; *tail != NULL; tail = &(*tail)->next) {
    }
    for (uint32_t i = 0; i < list.count; i++) {
        mmc_local_move_job_t *job = calloc(1, sizeof(*job));

        if ((job == NULL) || (mmc->ssd == NULL) || (mmc->tier_nthreads == 0) ||
            mmc->tier_stop) {
            free(job);
            continue; /* given up at the meta service's timeout */
        }
        job->m = list.items[i];
        memcpy(job->key, list.items[i].key.data, list.items[i].key.len);
        job->m.key.data = job->key;
        *tail = job;
        tail = &job->next;
    }
    pthread_cond_broadcast(&mmc->tier_cond);
    pthread_mutex_unlock(&mmc->tier_lock);
    mmc_move_list_free(&list);
}

/* The area's entries, copied out under its lock (the record is filled
 * outside it: the RPC thread takes the record's lock, then the area's). */
static void mmc_local_tier_collect(const mmc_ssd_entry_t *e, void *arg)
{
    if (mf_vec_push(arg, e) == NULL) {
        mf_error("mmc-local: out of memory listing the SSD area");
    }
}

/* The area's entries become our record. */
static void mmc_local_tier_to_record(mmc_t *mmc)
{
    mf_vec_t all;

    mf_vec_init(&all, sizeof(mmc_ssd_entry_t));
    mmc_ssd_foreach(mmc->ssd, mmc_local_tier_collect, &all);
    for (size_t i = 0; i < all.count; i++) {
        const mmc_ssd_entry_t *e = mf_vec_at(&all, i);
        mmc_rec_entry_t r = {
            .op = MMC_REC_ADD,
            .media = MMC_MEDIA_SSD,
            .offset = e->offset,
            .want = e->want,
            .size = e->size,
            .version = e->version,
            .key = {.data = e->key, .len = e->key_len},
        };

        if (mmc_local_record_add(mmc, &r) != MF_OK) {
            mf_error("mmc-local: out of memory for the record of the SSD "
                     "area");
            break;
        }
    }
    mf_vec_free(&all);
}

mmc_status_t mmc_local_tier_open(mmc_t *mmc)
{
    mmc_ssd_opts_t o = {
        .path = mmc->cfg.ssd_path,
        .log_path =
            (mmc->cfg.ssd_log_path[0] != '\0') ? mmc->cfg.ssd_log_path : NULL,
        .size = mmc->cfg.ssd_size,
        .keep = true,
    };
    mmc_status_t status;

    if (mmc->cfg.ssd_size == 0) {
        return MF_OK;
    }
    status = mmc_ssd_open(&o, &mmc->ssd);
    if (status != MF_OK) {
        mf_error("mmc-local: cannot open the SSD area %s: %s",
                 mmc->cfg.ssd_path, mf_status_name(status));
        return status;
    }
    mmc_local_tier_to_record(mmc);
    pthread_mutex_lock(&mmc->tier_lock);
    for (uint32_t i = 0; i < mmc->cfg.ssd_threads; i++) {
        if (pthread_create(&mmc->tier_threads[i], NULL, mmc_local_tier_main,
                           mmc) != 0) {
            mf_error("mmc-local: cannot start SSD thread %u", i);
            status = MF_ERR_NOMEM;
            break;
        }
        mmc->tier_nthreads++;
    }
    pthread_mutex_unlock(&mmc->tier_lock);
    if (status != MF_OK) {
        mmc_local_tier_close(mmc);
        return status;
    }
    mf_info("mmc-local: SSD area %s, %" PRIu64 " bytes (%s), %" PRIu64
            " objects from its log",
            mmc->cfg.ssd_path, mmc->cfg.ssd_size,
            mmc_ssd_direct(mmc->ssd) ? "O_DIRECT" : "buffered",
            mmc_ssd_count(mmc->ssd));
    return MF_OK;
}

void mmc_local_tier_init(mmc_t *mmc)
{
    pthread_mutex_init(&mmc->tier_lock, NULL);
    pthread_cond_init(&mmc->tier_cond, NULL);
}

void mmc_local_tier_stop(mmc_t *mmc)
{
    uint32_t n;

    pthread_mutex_lock(&mmc->tier_lock);
    mmc->tier_stop = true;
    n = mmc->tier_nthreads;
    mmc->tier_nthreads = 0;
    pthread_cond_broadcast(&mmc->tier_cond);
    pthread_mutex_unlock(&mmc->tier_lock);
    for (uint32_t i = 0; i < n; i++) {
        pthread_join(mmc->tier_threads[i], NULL);
    }
}

void mmc_local_tier_close(mmc_t *mmc)
{
    mmc_local_move_job_t *job;

    mmc_local_tier_stop(mmc);
    while ((job = mmc->tier_head) != NULL) {
        mmc->tier_head = job->next;
        free(job);
    }
    mmc_ssd_close(mmc->ssd);
    mmc->ssd = NULL;
}

void mmc_local_tier_free(mmc_t *mmc)
{
    mmc_local_tier_close(mmc);
    pthread_cond_destroy(&mmc->tier_cond);
    pthread_mutex_destroy(&mmc->tier_lock);
}

void mmc_local_tier_record(mmc_t *mmc, const mmc_rec_entry_t *e, bool keep)
{
    mf_status_t status;

    if ((mmc->ssd == NULL) || (e->media != MMC_MEDIA_SSD)) {
        return;
    }
    status = keep ? mmc_ssd_commit(mmc->ssd, e->offset)
                  : mmc_ssd_forget(mmc->ssd, e->offset);
    if ((status != MF_OK) && keep) {
        /* not written here (or the log failed): a restart cannot bring it
         * back, and a load of it fails (the meta service then drops it) */
        mf_warn("mmc-local: the SSD replica of %.*s at %" PRIu64
                " is not in the area's log: %s",
                (int)e->key.len, e->key.data, e->offset,
                mf_status_name(status));
    }
}
