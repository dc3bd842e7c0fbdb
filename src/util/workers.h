/*
 * Copy threads: a small pool that runs jobs cut into chunks.
 *
 * A job is nchunks independent pieces of work; participants take the next
 * chunk with one atomic increment until none is left, so a late or slow
 * thread never holds the others up.  A synchronous job (mf_workers_run)
 * is also worked on by the caller, which returns when every chunk is done;
 * an asynchronous one (mf_workers_submit) runs on the pool only and calls
 * final_cb once, on the last thread to leave it.
 *
 * Code running on a pool thread must not run or wait for another job of the
 * pool (mf_workers_in_worker() tells): it does the work inline instead.
 */
#ifndef MF_UTIL_WORKERS_H
#define MF_UTIL_WORKERS_H

#include "util/containers.h"

#include <memfabric/mf_status.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mf_workers mf_workers_t;
typedef struct mf_job mf_job_t;

/* Does chunk index of job; an error is kept as the job's status. */
typedef mf_status_t (*mf_job_fn)(mf_job_t *job, size_t index);
/* Asynchronous jobs: every chunk is done and no thread touches job now. */
typedef void (*mf_job_final_cb)(mf_job_t *job);

struct mf_job {
    mf_job_fn fn;
    mf_job_final_cb final_cb;
    size_t nchunks;
    uint32_t max_helpers; /* 0: as many as there are threads */
    /* private to the pool */
    atomic_size_t next;
    atomic_int status;
    atomic_uint active;
    uint32_t wanted;
    bool queued;
    bool async;
    bool finished; /* final_cb was called (or is running) */
    mf_list_t elem;
};

/* nthreads may be 0: then every job runs on its caller. */
mf_status_t mf_workers_create(uint32_t nthreads, mf_workers_t **workers_p);
/* Runs what is queued, then joins the threads. */
void mf_workers_destroy(mf_workers_t *workers);
uint32_t mf_workers_count(const mf_workers_t *workers);

/* Runs job with the caller taking part; returns the first chunk error or
 * MF_OK.  workers may be NULL (the caller does everything). */
mf_status_t mf_workers_run(mf_workers_t *workers, mf_job_t *job);

/* Queues job; final_cb runs on a pool thread when it is done.  The job's
 * status is then in mf_job_status().  The pool must have threads. */
void mf_workers_submit(mf_workers_t *workers, mf_job_t *job);

/* Lets the caller work on a submitted job until its chunks run out (as
 * mf_bm_wait does while it waits); final_cb may then run on the caller. */
void mf_workers_help(mf_workers_t *workers, mf_job_t *job);

static inline mf_status_t mf_job_status(mf_job_t *job)
{
    return (mf_status_t)atomic_load_explicit(&job->status,
                                             memory_order_acquire);
}

/* True on a pool thread. */
bool mf_workers_in_worker(void);

/* memcpy split across the pool and the caller. */
void mf_workers_memcpy(mf_workers_t *workers, void *dst, const void *src,
                       size_t size);

#endif
