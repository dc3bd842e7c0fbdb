/*
 * The benchmarks' memcpy baseline: a piece list copied by as many threads
 * as the library copies with (see bench_mcpy.h).
 *
 * Invariants: thread i copies bytes [total * i / active, total * (i + 1) /
 * active) of the piece list, so the shares cover it exactly once; a run
 * returns only after every helper finished its share.
 */
#include "bench_mcpy.h"

#include <sched.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define BENCH_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define BENCH_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define BENCH_CPU_RELAX()                                                      \
    do {                                                                       \
    } while (0)
#endif

/*
 * One step of a busy wait: pause, and after a few thousand steps yield, so
 * that a waiter whose partner was descheduled (another process wants the
 * CPU) gives the CPU back instead of burning its whole time slice; the
 * library's copy threads wait the same way.
 */
static void bench_mcpy_spin(unsigned *spins)
{
    if (++*spins < 4096) {
        BENCH_CPU_RELAX();
    } else {
        sched_yield();
    }
}

static void bench_mcpy_share(bench_mcpy_t *mc, unsigned index)
{
    uint64_t begin, end, pos = 0;
    size_t i;

    if (index >= mc->active) {
        return;
    }
    begin = mc->total * index / mc->active;
    end = mc->total * (index + 1) / mc->active;
    for (i = 0; i < mc->count && pos < end; i++) {
        const mf_copy_piece_t *pc = &mc->pieces[i];
        uint64_t lo = pos > begin ? pos : begin;
        uint64_t hi = pos + pc->size < end ? pos + pc->size : end;

        if (lo < hi) {
            memcpy((char *)(uintptr_t)pc->dst + (lo - pos),
                   (const char *)(uintptr_t)pc->src + (lo - pos), hi - lo);
        }
        pos += pc->size;
    }
}

static void *bench_mcpy_thread(void *arg)
{
    bench_mcpy_helper_t *a = arg;
    bench_mcpy_t *mc = a->mc;
    unsigned seen = 0, gen, spins = 0;

    for (;;) {
        pthread_mutex_lock(&mc->lock);
        while (!__atomic_load_n(&mc->hot, __ATOMIC_ACQUIRE) &&
               !__atomic_load_n(&mc->quit, __ATOMIC_ACQUIRE)) {
            pthread_cond_wait(&mc->cond, &mc->lock);
        }
        pthread_mutex_unlock(&mc->lock);
        if (__atomic_load_n(&mc->quit, __ATOMIC_ACQUIRE)) {
            return NULL;
        }
        while (__atomic_load_n(&mc->hot, __ATOMIC_ACQUIRE)) {
            gen = __atomic_load_n(&mc->gen, __ATOMIC_ACQUIRE);
            if (gen == seen) {
                bench_mcpy_spin(&spins);
                continue;
            }
            spins = 0;
            seen = gen;
            bench_mcpy_share(mc, a->index);
            __atomic_add_fetch(&mc->finished, 1, __ATOMIC_RELEASE);
        }
    }
}

static void bench_mcpy_set(bench_mcpy_t *mc, bool *flag, bool value)
{
    pthread_mutex_lock(&mc->lock);
    __atomic_store_n(flag, value, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&mc->cond);
    pthread_mutex_unlock(&mc->lock);
}

void bench_mcpy_fini(bench_mcpy_t *mc)
{
    unsigned i;

    bench_mcpy_set(mc, &mc->quit, true);
    for (i = 1; i < mc->nthreads; i++) {
        pthread_join(mc->helpers[i].tid, NULL);
    }
    pthread_cond_destroy(&mc->cond);
    pthread_mutex_destroy(&mc->lock);
}

int bench_mcpy_init(bench_mcpy_t *mc, unsigned nthreads)
{
    unsigned i;

    memset(mc, 0, sizeof(*mc));
    pthread_mutex_init(&mc->lock, NULL);
    pthread_cond_init(&mc->cond, NULL);
    mc->nthreads = 1;
    for (i = 1; i < nthreads; i++) {
        mc->helpers[i].mc = mc;
        mc->helpers[i].index = i;
        if (pthread_create(&mc->helpers[i].tid, NULL, bench_mcpy_thread,
                           &mc->helpers[i]) != 0) {
            bench_err("pthread_create failed");
            return -1; /* the ones started are stopped by fini */
        }
        mc->nthreads = i + 1;
    }
    return 0;
}

void bench_mcpy_hot(bench_mcpy_t *mc, bool hot)
{
    if (mc->nthreads > 1) {
        bench_mcpy_set(mc, &mc->hot, hot);
    }
}

void bench_mcpy_run(bench_mcpy_t *mc, const mf_copy_piece_t *pieces,
                    size_t count, uint64_t total, unsigned active)
{
    unsigned helpers = active - 1, spins = 0;

    mc->pieces = pieces;
    mc->count = count;
    mc->total = total;
    mc->active = active;
    if (helpers == 0) {
        bench_mcpy_share(mc, 0);
        return;
    }
    /* only helpers 1..active-1 run; the others see index >= active */
    __atomic_store_n(&mc->finished, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&mc->gen, 1, __ATOMIC_RELEASE);
    bench_mcpy_share(mc, 0);
    while (__atomic_load_n(&mc->finished, __ATOMIC_ACQUIRE) <
           mc->nthreads - 1) {
        bench_mcpy_spin(&spins);
    }
}
