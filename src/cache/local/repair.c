/*
 * Re-replication, the copier's side: the meta service asks a holder of a
 * live replica (REPAIR) to copy it to a new replica's space on another
 * rank; a thread of ours copies (one-sided, a global-to-global copy out
 * of our own segment) and reports each job (REPAIR_DONE, not waited for).
 * The RPC loop thread only queues jobs: a copy may take long.
 *
 * Invariant: repair_lock guards the queue and the thread's stop flag; the
 * thread runs from the first REPAIR until mmc_destroy, which stops it
 * before the pool goes.
 */
#include "cache/local/local.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct mmc_local_repair_job {
    struct mmc_local_repair_job *next;
    mmc_repair_t r;
} mmc_local_repair_job_t;

void mmc_local_repair_init(mmc_t *mmc)
{
    pthread_mutex_init(&mmc->repair_lock, NULL);
    pthread_cond_init(&mmc->repair_cond, NULL);
}

static void mmc_local_repair_report(mmc_t *mmc, uint64_t id, mf_status_t status)
{
    mmc_commit_item_t item = {.put_id = id, .status = status};
    mmc_commit_list_t done = {.count = 1, .items = &item};
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    mmc_commit_list_encode(&w, &done);
    if (mf_wbuf_status(&w) == MF_OK &&
        mf_net_client_send(mmc->rpc, MMC_OP_REPAIR_DONE, w.data, w.len) !=
            MF_OK) {
        /* the meta service gives the repair up at its timeout */
        mf_debug("mmc-local: cannot report repair %" PRIu64, id);
    }
    mf_wbuf_free(&w);
}

static void *mmc_local_repair_main(void *arg)
{
    mmc_t *mmc = arg;
    mmc_local_repair_job_t *job;
    mf_status_t status;

    pthread_mutex_lock(&mmc->repair_lock);
    for (;;) {
        while (mmc->repair_head == NULL && !mmc->repair_stop) {
            pthread_cond_wait(&mmc->repair_cond, &mmc->repair_lock);
        }
        if (mmc->repair_stop) {
            break;
        }
        job = mmc->repair_head;
        mmc->repair_head = job->next;
        pthread_mutex_unlock(&mmc->repair_lock);

        status = mf_bm_copy(
            mmc->bm, job->r.src_gva, job->r.dst_gva, job->r.size,
            job->r.media == MMC_MEDIA_HBM ? MF_COPY_GD2GD : MF_COPY_GH2GH);
        if (status != MF_OK) {
            mf_warn("mmc-local: repair copy of %" PRIu64 " bytes 0x%" PRIx64
                    " -> 0x%" PRIx64 " failed: %s",
                    job->r.size, job->r.src_gva, job->r.dst_gva,
                    mf_status_name(status));
        }
        mmc_local_repair_report(mmc, job->r.id, status);
        free(job);
        pthread_mutex_lock(&mmc->repair_lock);
    }
    pthread_mutex_unlock(&mmc->repair_lock);
    return NULL;
}

void mmc_local_repair_queue(mmc_t *mmc, const uint8_t *body, size_t len)
{
    mmc_local_repair_job_t **tail;
    mmc_repair_list_t list;

    if (mmc_repair_list_decode(body, len, &list) != MF_OK) {
        mf_error("mmc-local: malformed REPAIR from the meta service");
        return;
    }
    pthread_mutex_lock(&mmc->repair_lock);
    if (!mmc->repair_started && !mmc->repair_stop) {
        if (pthread_create(&mmc->repair_thread, NULL, mmc_local_repair_main,
                           mmc) == 0) {
            mmc->repair_started = true;
        } else {
            mf_error("mmc-local: cannot start the repair thread");
        }
    }
    for (tail = &mmc->repair_head; *tail != NULL; tail = &(*tail)->next) {
    }
    for (uint32_t i = 0; i < list.count; i++) {
        mmc_local_repair_job_t *job = calloc(1, sizeof(*job));

        if (job == NULL || !mmc->repair_started || mmc->repair_stop) {
            free(job);
            continue; /* given up at the meta service's timeout */
        }
        job->r = list.items[i];
        *tail = job;
        tail = &job->next;
    }
    pthread_cond_signal(&mmc->repair_cond);
    pthread_mutex_unlock(&mmc->repair_lock);
    mmc_repair_list_free(&list);
}

void mmc_local_repair_stop(mmc_t *mmc)
{
    bool started;

    pthread_mutex_lock(&mmc->repair_lock);
    mmc->repair_stop = true;
    started = mmc->repair_started;
    mmc->repair_started = false;
    pthread_cond_signal(&mmc->repair_cond);
    pthread_mutex_unlock(&mmc->repair_lock);
    if (started) {
        pthread_join(mmc->repair_thread, NULL);
    }
}

void mmc_local_repair_free(mmc_t *mmc)
{
    mmc_local_repair_job_t *job;

    mmc_local_repair_stop(mmc);
    while ((job = mmc->repair_head) != NULL) {
        mmc->repair_head = job->next;
        free(job);
    }
    pthread_cond_destroy(&mmc->repair_cond);
    pthread_mutex_destroy(&mmc->repair_lock);
}
