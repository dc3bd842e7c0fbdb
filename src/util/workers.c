/*
 * Copy threads.
 *
 * Invariants: the queue, job->wanted and job->queued are guarded by
 * workers->lock; job->active counts pool threads attached to a job and
 * changes under the lock too (it is atomic so a synchronous caller can spin
 * on it without the lock).  A thread attaches only to a queued job; a job
 * leaves the queue when enough helpers attached or its chunks ran out, so
 * once it is unqueued and active is 0 nobody touches it again.
 *
 * Idle threads spin a little before they sleep: waking a sleeping thread
 * costs tens of microseconds on a virtual machine, as much as copying a
 * few hundred kilobytes.
 */
#include "util/workers.h"

#include "util/log.h"
#include "util/misc.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MF_WORKERS_SPIN_NS            (200u * 1000u)
#define MF_WORKERS_MAX                64
#define MF_WORKERS_MEMCPY_MIN_CHUNK   (64u * 1024u)
#define MF_WORKERS_MEMCPY_MAX_CHUNK   (256u * 1024u * 1024u)
#define MF_WORKERS_MEMCPY_CHUNKS_EACH 4

struct mf_workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    mf_list_t queue;
    atomic_uint nqueued; /* jobs in the queue, read by spinning threads */
    uint32_t nsleeping;
    bool stop;
    uint32_t nthreads;
    uint32_t max_helpers; /* threads one job may use: fewer than the CPUs */
    uint32_t nstarted;
    pthread_t threads[];
};

static _Thread_local bool mf_workers_self;

bool mf_workers_in_worker(void)
{
    return mf_workers_self;
}

static void mf_job_set_error(mf_job_t *job, mf_status_t status)
{
    int expected = MF_OK;

    atomic_compare_exchange_strong(&job->status, &expected, (int)status);
}

/* Takes chunks until none is left. */
static void mf_workers_work(mf_job_t *job)
{
    size_t index;
    mf_status_t status;

    for (;;) {
        index = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (index >= job->nchunks) {
            break;
        }
        status = job->fn(job, index);
        if (mf_unlikely(status != MF_OK)) {
            mf_job_set_error(job, status);
        }
    }
}

static void mf_workers_unqueue_locked(mf_workers_t *workers, mf_job_t *job)
{
    if (job->queued) {
        mf_list_del(&job->elem);
        job->queued = false;
        atomic_fetch_sub(&workers->nqueued, 1);
    }
}

/* Leaves job; true if the caller must now call its final_cb.  After the
 * decrement a synchronous job may be gone. */
static bool mf_workers_detach_locked(mf_workers_t *workers, mf_job_t *job)
{
    bool final;

    if (atomic_load(&job->next) >= job->nchunks) {
        mf_workers_unqueue_locked(workers, job);
    }
    final = job->async && !job->queued && !job->finished;
    final = atomic_fetch_sub(&job->active, 1) == 1 && final;
    if (final) {
        job->finished = true;
    }
    return final;
}

static void *mf_workers_main(void *arg)
{
    mf_workers_t *workers = arg;
    mf_job_t *job;
    bool final;
    uint64_t spin_end;

    mf_workers_self = true;
    pthread_mutex_lock(&workers->lock);
    for (;;) {
        if (!mf_list_empty(&workers->queue)) {
            job = mf_container_of(workers->queue.next, mf_job_t, elem);
            if (job->wanted > 0) {
                job->wanted--;
            }
            if (job->wanted == 0) {
                mf_workers_unqueue_locked(workers, job);
            }
            atomic_fetch_add(&job->active, 1);
            pthread_mutex_unlock(&workers->lock);

            mf_workers_work(job);

            pthread_mutex_lock(&workers->lock);
            final = mf_workers_detach_locked(workers, job);
            if (final) {
                pthread_mutex_unlock(&workers->lock);
                job->final_cb(job);
                pthread_mutex_lock(&workers->lock);
            }
            continue;
        }
        if (workers->stop) {
            break;
        }

        /* Spin a while for the next job before sleeping. */
        pthread_mutex_unlock(&workers->lock);
        spin_end = mf_time_ns() + MF_WORKERS_SPIN_NS;
        while (atomic_load_explicit(&workers->nqueued, memory_order_relaxed) ==
                   0 &&
               mf_time_ns() < spin_end) {
            mf_cpu_relax();
        }
        pthread_mutex_lock(&workers->lock);
        if (!mf_list_empty(&workers->queue) || workers->stop) {
            continue;
        }
        workers->nsleeping++;
        pthread_cond_wait(&workers->cond, &workers->lock);
        workers->nsleeping--;
    }
    pthread_mutex_unlock(&workers->lock);
    return NULL;
}

mf_status_t mf_workers_create(uint32_t nthreads, mf_workers_t **workers_p)
{
    mf_workers_t *workers;
    mf_status_t status;
    uint32_t i;
    long ncpu;
    int ret;

    if (nthreads > MF_WORKERS_MAX) {
        mf_error("%u copy threads requested, at most %u", nthreads,
                 MF_WORKERS_MAX);
        return MF_ERR_INVALID;
    }
    workers = calloc(1, sizeof(*workers) + nthreads * sizeof(pthread_t));
    if (workers == NULL) {
        mf_error("cannot allocate %u copy threads", nthreads);
        return MF_ERR_NOMEM;
    }
    pthread_mutex_init(&workers->lock, NULL);
    pthread_cond_init(&workers->cond, NULL);
    mf_list_init(&workers->queue);
    atomic_init(&workers->nqueued, 0);
    workers->nthreads = nthreads;
    /* More copiers than CPUs only adds stalls: one of them is always
     * descheduled while holding a chunk the others wait for. */
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    workers->max_helpers =
        (uint32_t)MF_MIN((long)nthreads, MF_MAX(ncpu - 1, 1));

    for (i = 0; i < nthreads; i++) {
        ret = pthread_create(&workers->threads[i], NULL, mf_workers_main,
                             workers);
        if (ret != 0) {
            errno = ret;
            mf_error("pthread_create(copy thread %u) failed: %m", i);
            status = MF_ERR_NOMEM;
            goto err_stop_threads;
        }
        workers->nstarted++;
    }
    *workers_p = workers;
    return MF_OK;

err_stop_threads:
    mf_workers_destroy(workers);
    return status;
}

void mf_workers_destroy(mf_workers_t *workers)
{
    uint32_t i;

    if (workers == NULL) {
        return;
    }
    pthread_mutex_lock(&workers->lock);
    workers->stop = true;
    pthread_cond_broadcast(&workers->cond);
    pthread_mutex_unlock(&workers->lock);
    for (i = 0; i < workers->nstarted; i++) {
        pthread_join(workers->threads[i], NULL);
    }
    pthread_cond_destroy(&workers->cond);
    pthread_mutex_destroy(&workers->lock);
    free(workers);
}

uint32_t mf_workers_count(const mf_workers_t *workers)
{
    return workers == NULL ? 0 : workers->nthreads;
}

static void mf_job_prepare(mf_job_t *job, bool async)
{
    atomic_init(&job->next, 0);
    atomic_init(&job->status, MF_OK);
    atomic_init(&job->active, 0);
    job->queued = false;
    job->async = async;
    job->finished = false;
    mf_list_init(&job->elem);
}

/* Queues job for `wanted` helpers and wakes them. */
static void mf_workers_enqueue(mf_workers_t *workers, mf_job_t *job,
                               uint32_t wanted)
{
    uint32_t wake;

    pthread_mutex_lock(&workers->lock);
    job->wanted = wanted;
    job->queued = true;
    mf_list_push_back(&workers->queue, &job->elem);
    atomic_fetch_add(&workers->nqueued, 1);
    for (wake = MF_MIN(wanted, workers->nsleeping); wake > 0; wake--) {
        pthread_cond_signal(&workers->cond);
    }
    pthread_mutex_unlock(&workers->lock);
}

static uint32_t mf_workers_helpers(const mf_workers_t *workers,
                                   const mf_job_t *job, bool async)
{
    uint64_t want = job->nchunks - (async ? 0 : 1);

    if (job->max_helpers != 0) {
        want = MF_MIN(want, job->max_helpers);
    }
    return (uint32_t)MF_MIN(want, workers->max_helpers);
}

mf_status_t mf_workers_run(mf_workers_t *workers, mf_job_t *job)
{
    uint32_t helpers = 0;
    unsigned spins = 0;

    mf_job_prepare(job, false);
    if (workers != NULL && !mf_workers_self && job->nchunks > 1) {
        helpers = mf_workers_helpers(workers, job, false);
    }
    if (helpers > 0) {
        mf_workers_enqueue(workers, job, helpers);
    }
    mf_workers_work(job);
    if (helpers > 0) {
        pthread_mutex_lock(&workers->lock);
        mf_workers_unqueue_locked(workers, job);
        pthread_mutex_unlock(&workers->lock);
        while (atomic_load_explicit(&job->active, memory_order_acquire) > 0) {
            if (++spins < 4096) {
                mf_cpu_relax();
            } else {
                sched_yield();
            }
        }
    }
    return mf_job_status(job);
}

void mf_workers_submit(mf_workers_t *workers, mf_job_t *job)
{
    mf_job_prepare(job, true);
    if (job->nchunks == 0) {
        job->final_cb(job);
        return;
    }
    mf_workers_enqueue(workers, job,
                       MF_MAX(mf_workers_helpers(workers, job, true), 1));
}

void mf_workers_help(mf_workers_t *workers, mf_job_t *job)
{
    bool final;

    if (workers == NULL || mf_workers_self) {
        return;
    }
    pthread_mutex_lock(&workers->lock);
    if (job->finished || atomic_load(&job->next) >= job->nchunks) {
        pthread_mutex_unlock(&workers->lock);
        return;
    }
    atomic_fetch_add(&job->active, 1);
    pthread_mutex_unlock(&workers->lock);

    mf_workers_work(job);

    pthread_mutex_lock(&workers->lock);
    final = mf_workers_detach_locked(workers, job);
    pthread_mutex_unlock(&workers->lock);
    if (final) {
        job->final_cb(job);
    }
}

typedef struct mf_workers_memcpy_job {
    mf_job_t job;
    char *dst;
    const char *src;
    size_t size;
    size_t chunk;
} mf_workers_memcpy_job_t;

static mf_status_t mf_workers_memcpy_chunk(mf_job_t *job, size_t index)
{
    mf_workers_memcpy_job_t *mj =
        mf_container_of(job, mf_workers_memcpy_job_t, job);
    size_t off = index * mj->chunk;

    memcpy(mj->dst + off, mj->src + off, MF_MIN(mj->chunk, mj->size - off));
    return MF_OK;
}

void mf_workers_memcpy(mf_workers_t *workers, void *dst, const void *src,
                       size_t size)
{
    mf_workers_memcpy_job_t mj;
    size_t parts;

    if (workers == NULL || workers->nthreads == 0 || mf_workers_self) {
        memcpy(dst, src, size);
        return;
    }
    parts = (size_t)(workers->max_helpers + 1) * MF_WORKERS_MEMCPY_CHUNKS_EACH;
    /* Small enough chunks that a thread the scheduler stopped holds up
     * little: the others take what is left. */
    mj.chunk = MF_MIN(MF_MAX(size / parts, MF_WORKERS_MEMCPY_MIN_CHUNK),
                      MF_WORKERS_MEMCPY_MAX_CHUNK);
    mj.chunk = MF_ALIGN_UP(mj.chunk, 4096);
    mj.dst = dst;
    mj.src = src;
    mj.size = size;
    mj.job.fn = mf_workers_memcpy_chunk;
    mj.job.final_cb = NULL;
    mj.job.nchunks = (size + mj.chunk - 1) / mj.chunk;
    mj.job.max_helpers = 0;
    (void)mf_workers_run(workers, &mj.job);
}
