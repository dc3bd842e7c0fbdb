/*
 * Asynchronous copies of the copy engine: a request completes when every
 * part of it did, pieces on transports through the transports' own
 * completions (no thread waits for them), mapped pieces and bounces on
 * the copy threads.
 */
#include "fabric/core/plan.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#define MF_FABRIC_ASYNC_CHUNK_MIN (256u * 1024u)
#define MF_FABRIC_ASYNC_CHUNK_MAX (256u * 1024u * 1024u)

/* --------------------------------------------------------------- async */

/*
 * An asynchronous copy completes when every part of it did: the submitter
 * (one reference while it starts things), the copy threads' job (one, for
 * mapped pieces and bounces) and each piece a transport moves (one each,
 * released by the transport's completion, so no thread waits for them).
 */
struct mf_bm_req {
    mf_job_t job;
    mf_fabric_pool_t *pool;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;            /* under lock */
    atomic_bool released; /* the pool no longer touches req */
    atomic_uint parts;    /* references still out */
    atomic_int status;    /* the first error */
    mf_tl_iface_t *iface; /* of a piece on a transport, for progress */
    mf_copy_dir_t dir;
    /* single copy, already resolved and held */
    mf_fabric_plan_t plan;
    uint64_t src;
    uint64_t dst;
    size_t size;
    size_t chunk;
    mf_fabric_comp_t comp; /* single copy on a transport */
    /* batch */
    mf_copy_piece_t *pieces;
    size_t count;
    struct mf_fabric_req_slot *slots; /* pieces on transports */
};

/* A batch piece a transport moves for an asynchronous request; it holds
 * its segments until its completion. */
typedef struct mf_fabric_req_slot {
    mf_tl_comp_t super; /* cb set: the piece is on a transport */
    mf_bm_req_t *req;
    mf_fabric_seg_t *sseg;
    mf_fabric_seg_t *dseg;
} mf_fabric_req_slot_t;

static void mf_fabric_req_fail(mf_bm_req_t *req, mf_status_t status)
{
    int ok = MF_OK;

    if (status != MF_OK) {
        atomic_compare_exchange_strong(&req->status, &ok, (int)status);
    }
}

/* Drops one reference; the last completes the request. */
static void mf_fabric_req_put(mf_bm_req_t *req, mf_status_t status)
{
    mf_fabric_req_fail(req, status);
    if (atomic_fetch_sub_explicit(&req->parts, 1, memory_order_acq_rel) != 1) {
        return;
    }
    mf_fabric_seg_release(req->plan.sseg);
    mf_fabric_seg_release(req->plan.dseg);
    pthread_mutex_lock(&req->lock);
    req->done = true;
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->lock);
    atomic_store_explicit(&req->released, true, memory_order_release);
}

static mf_status_t mf_fabric_req_chunk_single(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    size_t off = index * req->chunk;

    return mf_fabric_plan_run(req->pool, &req->plan, req->src + off,
                              req->dst + off,
                              MF_MIN(req->chunk, req->size - off));
}

static void mf_fabric_req_job_final(mf_job_t *job)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;

    mf_fabric_req_put(req, mf_job_status(job));
}

/* A single copy's transport completion. */
static void mf_fabric_req_comp_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    mf_bm_req_t *req = mf_container_of(comp, mf_bm_req_t, comp.super);

    mf_fabric_req_put(req, status);
}

/* A batch piece's transport completion: its own segment references go. */
static void mf_fabric_req_slot_cb(mf_tl_comp_t *comp, mf_status_t status)
{
    mf_fabric_req_slot_t *slot = (mf_fabric_req_slot_t *)comp;

    mf_fabric_seg_release(slot->dseg);
    mf_fabric_seg_release(slot->sseg);
    mf_fabric_req_put(slot->req, status);
}

static mf_bm_req_t *mf_fabric_req_new(mf_fabric_pool_t *pool, mf_copy_dir_t dir)
{
    mf_bm_req_t *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        mf_error("mf-bm: cannot allocate a copy request");
        return NULL;
    }
    req->pool = pool;
    req->dir = dir;
    pthread_mutex_init(&req->lock, NULL);
    pthread_cond_init(&req->cond, NULL);
    atomic_init(&req->released, false);
    atomic_init(&req->parts, 1); /* the submitter's */
    atomic_init(&req->status, MF_OK);
    req->job.final_cb = mf_fabric_req_job_final;
    req->job.max_helpers = 0;
    return req;
}

static void mf_fabric_req_free(mf_bm_req_t *req)
{
    pthread_cond_destroy(&req->cond);
    pthread_mutex_destroy(&req->lock);
    free(req->slots);
    free(req->pieces);
    free(req);
}

/* Runs req's job on the copy threads, or here when there are none. */
static void mf_fabric_req_start_job(mf_bm_req_t *req)
{
    mf_workers_t *workers = req->pool->workers;

    atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
    if (mf_workers_count(workers) == 0 || mf_workers_in_worker()) {
        (void)mf_workers_run(NULL, &req->job);
        mf_fabric_req_job_final(&req->job);
    } else {
        mf_workers_submit(workers, &req->job);
    }
}

mf_status_t mf_fabric_copy_async(mf_fabric_pool_t *pool, uint64_t src,
                                 uint64_t dst, size_t size, mf_copy_dir_t dir,
                                 mf_bm_req_t **req_p)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_fabric_plan_t plan;
    mf_tl_iface_t *iface = NULL;
    uint32_t nthreads;
    mf_status_t status;
    mf_bm_req_t *req;

    if (pool == NULL || req_p == NULL) {
        return MF_ERR_INVALID;
    }
    status = mf_fabric_piece_plan(pool, src, dst, size, dir, &hold,
                                  MF_FABRIC_ALL, &plan);
    if (status != MF_OK) {
        mf_fabric_hold_release(&hold);
        return status;
    }
    req = mf_fabric_req_new(pool, dir);
    if (req == NULL) {
        mf_fabric_hold_release(&hold);
        return MF_ERR_NOMEM;
    }
    /* the request keeps the holds until it completes */
    plan.sseg = hold.src;
    plan.dseg = hold.dst;
    req->plan = plan;
    req->src = src;
    req->dst = dst;
    req->size = size;
    *req_p = req;

    if (size > 0 &&
        (plan.op == MF_FABRIC_OP_PUT || plan.op == MF_FABRIC_OP_GET)) {
        /* the transport moves it and its completion finishes the request */
        req->comp.super.cb = mf_fabric_req_comp_cb;
        req->comp.super.mem_kind = MF_MEM_KIND_HOST;
        atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
        status = mf_fabric_plan_start(pool, &req->plan, src, dst, size,
                                      &req->comp.super, &iface);
        req->iface = iface;
        if (status != MF_INPROGRESS) {
            mf_fabric_req_put(req, status);
        }
        mf_fabric_req_put(req, MF_OK);
        return MF_OK;
    }
    nthreads = mf_workers_count(pool->workers);
    if (plan.op == MF_FABRIC_OP_MAPPED && size >= pool->cfg.copy_split_min &&
        nthreads > 0) {
        req->chunk =
            MF_MIN(MF_MAX(size / (4u * nthreads), MF_FABRIC_ASYNC_CHUNK_MIN),
                   MF_FABRIC_ASYNC_CHUNK_MAX);
        req->chunk = MF_ALIGN_UP(req->chunk, 4096);
    } else {
        req->chunk = MF_MAX(size, 1);
    }
    req->job.fn = mf_fabric_req_chunk_single;
    req->job.nchunks = (size + req->chunk - 1) / req->chunk;
    mf_fabric_req_start_job(req);
    mf_fabric_req_put(req, MF_OK);
    return MF_OK;
}

/* Starts the pieces of req that transports move, each completing the
 * request by itself; returns whether any piece is mapped. */
static bool mf_fabric_req_start_remote(mf_bm_req_t *req)
{
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_copy_piece_t *p;
    mf_fabric_req_slot_t *slot;
    mf_fabric_plan_t plan;
    mf_tl_iface_t *iface;
    bool mapped = false;
    mf_status_t st;
    size_t i;

    for (i = 0; i < req->count; i++) {
        p = &req->pieces[i];
        st = mf_fabric_piece_plan(req->pool, p->src, p->dst, p->size, req->dir,
                                  &hold, MF_FABRIC_ALL, &plan);
        if (st != MF_OK) {
            mf_fabric_req_fail(req, st);
            continue;
        }
        if (p->size == 0) {
            continue;
        }
        if (plan.op != MF_FABRIC_OP_PUT && plan.op != MF_FABRIC_OP_GET) {
            mapped = true; /* the job's (a bounce too) */
            continue;
        }
        slot = &req->slots[i];
        slot->super.cb = mf_fabric_req_slot_cb;
        slot->super.mem_kind = MF_MEM_KIND_HOST;
        slot->req = req;
        slot->sseg = plan.sseg;
        slot->dseg = plan.dseg;
        mf_fabric_seg_addref(plan.sseg);
        mf_fabric_seg_addref(plan.dseg);
        atomic_fetch_add_explicit(&req->parts, 1, memory_order_relaxed);
        iface = NULL;
        st = mf_fabric_plan_start(req->pool, &plan, p->src, p->dst, p->size,
                                  &slot->super, &iface);
        if (iface != NULL) {
            req->iface = iface;
        }
        if (st != MF_INPROGRESS) {
            mf_fabric_req_slot_cb(&slot->super, st);
        }
    }
    mf_fabric_hold_release(&hold);
    return mapped;
}

/* Batch pieces of a job that only copies what is mapped or bounces. */
static mf_status_t mf_fabric_req_chunk_rest(mf_job_t *job, size_t index)
{
    mf_bm_req_t *req = (mf_bm_req_t *)job;
    mf_fabric_hold_t hold = {NULL, NULL};
    mf_status_t status = MF_OK, st;
    mf_fabric_plan_t plan;
    mf_copy_piece_t *p;
    size_t first, end, i;

    mf_fabric_batch_part(req->count, job->nchunks, index, &first, &end);
    for (i = first; i < end; i++) {
        p = &req->pieces[i];
        if (req->slots[i].super.cb != NULL || p->size == 0) {
            continue; /* on a transport, or nothing */
        }
        st = mf_fabric_piece_plan(req->pool, p->src, p->dst, p->size, req->dir,
                                  &hold, MF_FABRIC_ALL, &plan);
        if (st == MF_OK) {
            st = mf_fabric_plan_run(req->pool, &plan, p->src, p->dst, p->size);
        }
        if (st != MF_OK && status == MF_OK) {
            status = st;
        }
    }
    mf_fabric_hold_release(&hold);
    return status;
}

mf_status_t mf_fabric_copy_batch_async(mf_fabric_pool_t *pool,
                                       const mf_copy_piece_t *pieces,
                                       size_t count, mf_copy_dir_t dir,
                                       mf_bm_req_t **req_p)
{
    mf_bm_req_t *req;

    if (pool == NULL || req_p == NULL || (pieces == NULL && count > 0) ||
        count > SIZE_MAX / sizeof(mf_fabric_req_slot_t)) {
        return MF_ERR_INVALID;
    }
    if ((unsigned)dir >= MF_COPY_DIR_MAX) {
        return MF_ERR_INVALID;
    }
    req = mf_fabric_req_new(pool, dir);
    if (req == NULL) {
        return MF_ERR_NOMEM;
    }
    if (count > 0) {
        req->pieces = malloc(count * sizeof(*pieces));
        req->slots = calloc(count, sizeof(*req->slots));
        if (req->pieces == NULL || req->slots == NULL) {
            mf_error("mf-bm: cannot copy %zu batch pieces", count);
            mf_fabric_req_free(req);
            return MF_ERR_NOMEM;
        }
        memcpy(req->pieces, pieces, count * sizeof(*pieces));
    }
    req->count = count;
    *req_p = req;
    if (mf_fabric_req_start_remote(req)) {
        req->job.fn = mf_fabric_req_chunk_rest;
        req->job.nchunks = mf_fabric_batch_nparts(pool, count);
        mf_fabric_req_start_job(req);
    }
    mf_fabric_req_put(req, MF_OK);
    return MF_OK;
}

static inline bool mf_fabric_ts_before(const struct timespec *a,
                                       const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

mf_status_t mf_fabric_req_wait(mf_bm_req_t *req, int timeout_ms)
{
    struct timespec deadline, slice;
    mf_status_t status;
    int ret = 0;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (timeout_ms >= 0) {
        mf_deadline_after_ms(&deadline, (uint64_t)timeout_ms);
    }
    /* rather than sleep, take the chunks nobody took yet */
    if (timeout_ms != 0 && req->job.fn != NULL) {
        mf_workers_help(req->pool->workers, &req->job);
    }
    pthread_mutex_lock(&req->lock);
    while (!req->done && ret != ETIMEDOUT) {
        if (req->iface != NULL) {
            /* a transport that needs progress calls gets them here */
            pthread_mutex_unlock(&req->lock);
            (void)mf_tl_progress(req->iface);
            pthread_mutex_lock(&req->lock);
            if (req->done) {
                break;
            }
            mf_deadline_after_ms(&slice, 10);
            if (timeout_ms >= 0 && mf_fabric_ts_before(&deadline, &slice)) {
                slice = deadline;
            }
            ret = pthread_cond_timedwait(&req->cond, &req->lock, &slice);
            if (ret == ETIMEDOUT &&
                (timeout_ms < 0 || mf_fabric_ts_before(&slice, &deadline))) {
                ret = 0; /* only the slice ended */
            }
        } else if (timeout_ms < 0) {
            pthread_cond_wait(&req->cond, &req->lock);
        } else {
            ret = pthread_cond_timedwait(&req->cond, &req->lock, &deadline);
        }
    }
    if (!req->done) {
        pthread_mutex_unlock(&req->lock);
        return MF_ERR_TIMEOUT;
    }
    status = (mf_status_t)atomic_load(&req->status);
    pthread_mutex_unlock(&req->lock);
    while (!atomic_load_explicit(&req->released, memory_order_acquire)) {
        sched_yield();
    }
    mf_fabric_req_free(req);
    return status;
}

mf_status_t mf_fabric_req_test(mf_bm_req_t *req)
{
    mf_status_t status;

    if (req == NULL) {
        return MF_ERR_INVALID;
    }
    if (!atomic_load_explicit(&req->released, memory_order_acquire)) {
        return MF_INPROGRESS;
    }
    status = (mf_status_t)atomic_load(&req->status);
    mf_fabric_req_free(req);
    return status;
}
