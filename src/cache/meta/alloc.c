/*
 * Best-fit space allocator with immediate coalescing (see alloc.h).
 *
 * Every block, free or allocated, is one node.  Together the blocks tile
 * [0, capacity) and are kept three ways:
 *   - a singly linked list in address order: a block's right neighbour is
 *     its next; its left one is found in the address treap (O(log n)),
 *     which saves a pointer in every block;
 *   - the address treap, of all blocks keyed by offset: mmc_alloc_free()
 *     finds the block it is given and so refuses anything that is not the
 *     start of an allocated block;
 *   - the size treap, of the free blocks only, keyed by (size, offset): best
 *     fit is the lower bound of (len, 0).
 *
 * Invariants (checked by mmc_alloc_check()): the list tiles [0, capacity)
 * with no gap or overlap; every offset and size is a non-zero multiple of
 * align; no two free blocks are neighbours; the address treap holds exactly
 * the list, the size treap exactly its free blocks; used, free_blocks and
 * allocations match the list.
 *
 * Treaps (binary search trees that are heaps on random priorities) keep
 * every operation at expected O(log n) depth whatever the order of keys,
 * with short code: insert and remove are split and merge.  Priorities come
 * from a fixed-seed xorshift, so a run is reproducible.  Recursion depth is
 * the tree depth.
 *
 * Failure safety: the only host allocation is the node for the remainder of
 * a split, and it is made before anything is changed; a failed call leaves
 * the allocator as it was.
 */
#include "cache/meta/alloc.h"

#include "util/containers.h"
#include "util/log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

/* ---- generic intrusive treap ---- */

typedef struct mmc_alloc_link {
    struct mmc_alloc_link *left;
    struct mmc_alloc_link *right;
    uint32_t prio;
    uint32_t tag; /* the owner's word: the treap never touches it (it
                     would be padding otherwise) */
} mmc_alloc_link_t;

/* <0, 0, >0 as a orders before, as, after b. */
typedef int (*mmc_alloc_cmp_fn)(const mmc_alloc_link_t *a,
                                const mmc_alloc_link_t *b);

typedef struct mmc_alloc_treap {
    mmc_alloc_link_t *root;
    mmc_alloc_cmp_fn cmp;
    uint64_t *steps; /* cost counter, shared by the allocator's treaps */
} mmc_alloc_treap_t;

/* Splits the subtree n into the keys before key (*l) and after it (*r);
 * key itself is not in n. */
static void mmc_alloc_treap_split(mmc_alloc_treap_t *t, mmc_alloc_link_t *n,
                                  const mmc_alloc_link_t *key,
                                  mmc_alloc_link_t **l, mmc_alloc_link_t **r)
{
    if (n == NULL) {
        *l = *r = NULL;
        return;
    }
    (*t->steps)++;
    if (t->cmp(n, key) < 0) {
        mmc_alloc_treap_split(t, n->right, key, &n->right, r);
        *l = n;
    } else {
        mmc_alloc_treap_split(t, n->left, key, l, &n->left);
        *r = n;
    }
}

/* Joins two subtrees where every key of a is before every key of b. */
static mmc_alloc_link_t *mmc_alloc_treap_merge(mmc_alloc_treap_t *t,
                                               mmc_alloc_link_t *a,
                                               mmc_alloc_link_t *b)
{
    if (a == NULL) {
        return b;
    }
    if (b == NULL) {
        return a;
    }
    (*t->steps)++;
    if (a->prio > b->prio) {
        a->right = mmc_alloc_treap_merge(t, a->right, b);
        return a;
    }
    b->left = mmc_alloc_treap_merge(t, a, b->left);
    return b;
}

static mmc_alloc_link_t *mmc_alloc_treap_insert_at(mmc_alloc_treap_t *t,
                                                   mmc_alloc_link_t *n,
                                                   mmc_alloc_link_t *node)
{
    if (n == NULL) {
        return node;
    }
    (*t->steps)++;
    if (node->prio > n->prio) {
        mmc_alloc_treap_split(t, n, node, &node->left, &node->right);
        return node;
    }
    if (t->cmp(node, n) < 0) {
        n->left = mmc_alloc_treap_insert_at(t, n->left, node);
    } else {
        n->right = mmc_alloc_treap_insert_at(t, n->right, node);
    }
    return n;
}

/* node's key must not be in the treap; node->prio must be set. */
static void mmc_alloc_treap_insert(mmc_alloc_treap_t *t, mmc_alloc_link_t *node)
{
    node->left = node->right = NULL;
    t->root = mmc_alloc_treap_insert_at(t, t->root, node);
}

static mmc_alloc_link_t *mmc_alloc_treap_remove_at(mmc_alloc_treap_t *t,
                                                   mmc_alloc_link_t *n,
                                                   mmc_alloc_link_t *node)
{
    assert(n != NULL); /* node is in the treap */
    (*t->steps)++;
    if (n == node) {
        return mmc_alloc_treap_merge(t, n->left, n->right);
    }
    if (t->cmp(node, n) < 0) {
        n->left = mmc_alloc_treap_remove_at(t, n->left, node);
    } else {
        n->right = mmc_alloc_treap_remove_at(t, n->right, node);
    }
    return n;
}

/* node must be in the treap (with its key unchanged since insertion). */
static void mmc_alloc_treap_remove(mmc_alloc_treap_t *t, mmc_alloc_link_t *node)
{
    t->root = mmc_alloc_treap_remove_at(t, t->root, node);
    node->left = node->right = NULL;
}

/* The node equal to key, or NULL. */
static mmc_alloc_link_t *mmc_alloc_treap_find(mmc_alloc_treap_t *t,
                                              const mmc_alloc_link_t *key)
{
    mmc_alloc_link_t *n = t->root;
    int c;

    while (n != NULL) {
        (*t->steps)++;
        c = t->cmp(key, n);
        if (c == 0) {
            return n;
        }
        n = (c < 0) ? n->left : n->right;
    }
    return NULL;
}

/* The first node not before key, or NULL. */
static mmc_alloc_link_t *
mmc_alloc_treap_lower_bound(mmc_alloc_treap_t *t, const mmc_alloc_link_t *key)
{
    mmc_alloc_link_t *n = t->root;
    mmc_alloc_link_t *best = NULL;

    while (n != NULL) {
        (*t->steps)++;
        if (t->cmp(n, key) >= 0) {
            best = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

static const mmc_alloc_link_t *mmc_alloc_treap_last(const mmc_alloc_treap_t *t)
{
    const mmc_alloc_link_t *n = t->root;

    while (n != NULL && n->right != NULL) {
        n = n->right;
    }
    return n;
}

/* ---- blocks ---- */

/* 72 bytes: one per replica in the meta service, so every field counts;
 * whether it is free is its addr_link's tag (MMC_ALLOC_FREE). */
typedef struct mmc_alloc_block {
    mmc_alloc_link_t addr_link;   /* address treap (all blocks) */
    mmc_alloc_link_t size_link;   /* size treap (free blocks only) */
    struct mmc_alloc_block *next; /* address order */
    uint64_t offset;
    uint64_t size;
} mmc_alloc_block_t;

#define MMC_ALLOC_FREE(_block) ((_block)->addr_link.tag)
_Static_assert(sizeof(mmc_alloc_block_t) == 72, "an allocator block grew");

struct mmc_alloc {
    uint64_t capacity;
    uint64_t align;
    uint64_t used;
    uint64_t free_blocks;
    uint64_t allocations;
    uint64_t steps;
    uint64_t rand_state;
    mmc_alloc_block_t *first; /* the block at offset 0 */
    mmc_alloc_treap_t by_addr;
    mmc_alloc_treap_t by_size;
};

#define mmc_alloc_addr_block(_link)                                            \
    mf_container_of(_link, mmc_alloc_block_t, addr_link)
#define mmc_alloc_size_block(_link)                                            \
    mf_container_of(_link, mmc_alloc_block_t, size_link)

static int mmc_alloc_cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

static int mmc_alloc_cmp_addr(const mmc_alloc_link_t *a,
                              const mmc_alloc_link_t *b)
{
    return mmc_alloc_cmp_u64(mmc_alloc_addr_block(a)->offset,
                             mmc_alloc_addr_block(b)->offset);
}

static int mmc_alloc_cmp_size(const mmc_alloc_link_t *a,
                              const mmc_alloc_link_t *b)
{
    const mmc_alloc_block_t *ba = mmc_alloc_size_block(a);
    const mmc_alloc_block_t *bb = mmc_alloc_size_block(b);
    int c = mmc_alloc_cmp_u64(ba->size, bb->size);

    return (c != 0) ? c : mmc_alloc_cmp_u64(ba->offset, bb->offset);
}

static uint64_t mmc_alloc_rand(mmc_alloc_t *alloc)
{
    uint64_t x = alloc->rand_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    alloc->rand_state = x;
    return x;
}

static mmc_alloc_block_t *mmc_alloc_block_new(mmc_alloc_t *alloc)
{
    mmc_alloc_block_t *block = calloc(1, sizeof(*block));

    if (block == NULL) {
        return NULL;
    }
    block->addr_link.prio = (uint32_t)(mmc_alloc_rand(alloc) >> 32);
    block->size_link.prio = (uint32_t)(mmc_alloc_rand(alloc) >> 32);
    return block;
}

static uint64_t mmc_alloc_round_up(const mmc_alloc_t *alloc, uint64_t len)
{
    /* len <= capacity, which is a multiple of align: no overflow */
    return (len + alloc->align - 1) & ~(alloc->align - 1);
}

mf_status_t mmc_alloc_create(uint64_t size, uint64_t align,
                             mmc_alloc_t **alloc_p)
{
    mmc_alloc_t *alloc;
    mmc_alloc_block_t *block;
    uint64_t capacity;

    if (alloc_p == NULL) {
        mf_error("mmc_alloc_create: alloc_p is NULL");
        return MF_ERR_INVALID;
    }
    if (align == 0 || (align & (align - 1)) != 0) {
        mf_error("mmc_alloc_create: align %" PRIu64 " is not a power of two",
                 align);
        return MF_ERR_INVALID;
    }
    capacity = size & ~(align - 1);
    if (capacity == 0) {
        mf_error("mmc_alloc_create: size %" PRIu64
                 " holds no block of align %" PRIu64,
                 size, align);
        return MF_ERR_INVALID;
    }

    alloc = calloc(1, sizeof(*alloc));
    if (alloc == NULL) {
        mf_error("mmc_alloc_create: out of memory");
        return MF_ERR_NOMEM;
    }
    alloc->capacity = capacity;
    alloc->align = align;
    alloc->rand_state = 0x9e3779b97f4a7c15ull;
    alloc->by_addr.cmp = mmc_alloc_cmp_addr;
    alloc->by_addr.steps = &alloc->steps;
    alloc->by_size.cmp = mmc_alloc_cmp_size;
    alloc->by_size.steps = &alloc->steps;

    block = mmc_alloc_block_new(alloc);
    if (block == NULL) {
        mf_error("mmc_alloc_create: out of memory");
        goto err_free_alloc;
    }
    block->offset = 0;
    block->size = capacity;
    MMC_ALLOC_FREE(block) = true;
    alloc->first = block;
    alloc->free_blocks = 1;
    mmc_alloc_treap_insert(&alloc->by_addr, &block->addr_link);
    mmc_alloc_treap_insert(&alloc->by_size, &block->size_link);

    *alloc_p = alloc;
    return MF_OK;

err_free_alloc:
    free(alloc);
    return MF_ERR_NOMEM;
}

void mmc_alloc_destroy(mmc_alloc_t *alloc)
{
    mmc_alloc_block_t *block;
    mmc_alloc_block_t *next;

    if (alloc == NULL) {
        return;
    }
    for (block = alloc->first; block != NULL; block = next) {
        next = block->next;
        free(block);
    }
    free(alloc);
}

mf_status_t mmc_alloc_alloc(mmc_alloc_t *alloc, uint64_t len,
                            uint64_t *offset_p)
{
    mmc_alloc_block_t probe = {.size = 0, .offset = 0};
    mmc_alloc_block_t *block;
    mmc_alloc_block_t *rest = NULL;
    mmc_alloc_link_t *link;

    if (len == 0) {
        mf_error("mmc_alloc_alloc: zero length");
        return MF_ERR_INVALID;
    }
    if (len > alloc->capacity) {
        mf_debug("mmc_alloc_alloc: %" PRIu64 " bytes exceed capacity %" PRIu64,
                 len, alloc->capacity);
        return MF_ERR_TOO_LARGE;
    }
    probe.size = mmc_alloc_round_up(alloc, len);

    /* best fit: smallest size >= len, then lowest offset */
    link = mmc_alloc_treap_lower_bound(&alloc->by_size, &probe.size_link);
    if (link == NULL) {
        mf_debug("mmc_alloc_alloc: no free block of %" PRIu64 " bytes",
                 probe.size);
        return MF_ERR_NOT_FOUND;
    }
    block = mmc_alloc_size_block(link);

    if (block->size > probe.size) {
        rest = mmc_alloc_block_new(alloc);
        if (rest == NULL) {
            mf_error("mmc_alloc_alloc: out of memory splitting a block");
            return MF_ERR_NOMEM;
        }
    }

    /* nothing can fail from here on */
    mmc_alloc_treap_remove(&alloc->by_size, &block->size_link);
    if (rest != NULL) {
        /* the allocation takes the front; the rest stays free behind it,
         * and the block keeps its offset, so its address key is intact */
        rest->offset = block->offset + probe.size;
        rest->size = block->size - probe.size;
        MMC_ALLOC_FREE(rest) = true;
        rest->next = block->next;
        block->next = rest;
        block->size = probe.size;
        mmc_alloc_treap_insert(&alloc->by_addr, &rest->addr_link);
        mmc_alloc_treap_insert(&alloc->by_size, &rest->size_link);
    } else {
        alloc->free_blocks--;
    }
    MMC_ALLOC_FREE(block) = false;
    alloc->used += block->size;
    alloc->allocations++;

    *offset_p = block->offset;
    return MF_OK;
}

/* The block that holds offset (the last one starting at or before it). */
static mmc_alloc_block_t *mmc_alloc_block_at(mmc_alloc_t *alloc,
                                             uint64_t offset)
{
    mmc_alloc_link_t *n = alloc->by_addr.root;
    mmc_alloc_block_t *best = NULL;

    while (n != NULL) {
        alloc->steps++;
        if (mmc_alloc_addr_block(n)->offset <= offset) {
            best = mmc_alloc_addr_block(n);
            n = n->right;
        } else {
            n = n->left;
        }
    }
    return best;
}

/* Inserts a new block after prev in address order. */
static void mmc_alloc_link_after(mmc_alloc_block_t *prev,
                                 mmc_alloc_block_t *block)
{
    block->next = prev->next;
    prev->next = block;
}

mf_status_t mmc_alloc_alloc_at(mmc_alloc_t *alloc, uint64_t offset,
                               uint64_t len)
{
    mmc_alloc_block_t *block, *mid = NULL, *rest = NULL;
    uint64_t rlen, front, tail;

    if (len == 0 || offset % alloc->align != 0 || offset >= alloc->capacity ||
        len > alloc->capacity - offset ||
        mmc_alloc_round_up(alloc, len) > alloc->capacity - offset) {
        mf_error("mmc_alloc_alloc_at: [%" PRIu64 ", +%" PRIu64
                 ") is not a block of [0, %" PRIu64 ") aligned to %" PRIu64,
                 offset, len, alloc->capacity, alloc->align);
        return MF_ERR_INVALID;
    }
    rlen = mmc_alloc_round_up(alloc, len);
    block = mmc_alloc_block_at(alloc, offset);
    if (block == NULL || !MMC_ALLOC_FREE(block) ||
        block->offset + block->size < offset + rlen) {
        return MF_ERR_EXISTS;
    }
    front = offset - block->offset;
    tail = block->offset + block->size - (offset + rlen);
    if (front > 0 && (mid = mmc_alloc_block_new(alloc)) == NULL) {
        return MF_ERR_NOMEM;
    }
    if (tail > 0 && (rest = mmc_alloc_block_new(alloc)) == NULL) {
        free(mid);
        return MF_ERR_NOMEM;
    }

    /* nothing can fail from here on */
    mmc_alloc_treap_remove(&alloc->by_size, &block->size_link);
    if (mid != NULL) {
        /* the front stays free in block (its offset, its address key) */
        block->size = front;
        mmc_alloc_treap_insert(&alloc->by_size, &block->size_link);
        mid->offset = offset;
        mid->size = rlen;
        mmc_alloc_link_after(block, mid);
        mmc_alloc_treap_insert(&alloc->by_addr, &mid->addr_link);
        alloc->free_blocks++; /* undone below: block stays free */
    } else {
        mid = block;
        mid->size = rlen;
    }
    MMC_ALLOC_FREE(mid) = false;
    alloc->free_blocks--;
    if (rest != NULL) {
        rest->offset = offset + rlen;
        rest->size = tail;
        MMC_ALLOC_FREE(rest) = true;
        mmc_alloc_link_after(mid, rest);
        mmc_alloc_treap_insert(&alloc->by_addr, &rest->addr_link);
        mmc_alloc_treap_insert(&alloc->by_size, &rest->size_link);
        alloc->free_blocks++;
    }
    alloc->used += rlen;
    alloc->allocations++;
    return MF_OK;
}

/* Removes block, whose space its left neighbour left has absorbed. */
static void mmc_alloc_unlink(mmc_alloc_t *alloc, mmc_alloc_block_t *left,
                             mmc_alloc_block_t *block)
{
    mmc_alloc_treap_remove(&alloc->by_addr, &block->addr_link);
    left->next = block->next;
    free(block);
}

mf_status_t mmc_alloc_free(mmc_alloc_t *alloc, uint64_t offset, uint64_t len)
{
    mmc_alloc_block_t probe = {.offset = offset};
    mmc_alloc_block_t *block;
    mmc_alloc_block_t *left;
    mmc_alloc_block_t *right;
    mmc_alloc_link_t *link;

    if (offset >= alloc->capacity) {
        mf_error("mmc_alloc_free: offset %" PRIu64
                 " out of range (capacity %" PRIu64 ")",
                 offset, alloc->capacity);
        return MF_ERR_INVALID;
    }
    if (len == 0 || len > alloc->capacity) {
        mf_error("mmc_alloc_free: bad length %" PRIu64 " at offset %" PRIu64,
                 len, offset);
        return MF_ERR_INVALID;
    }
    link = mmc_alloc_treap_find(&alloc->by_addr, &probe.addr_link);
    block = (link != NULL) ? mmc_alloc_addr_block(link) : NULL;
    if (block == NULL || MMC_ALLOC_FREE(block)) {
        mf_error("mmc_alloc_free: no allocated block at offset %" PRIu64
                 " (double free or never allocated)",
                 offset);
        return MF_ERR_INVALID;
    }
    if (mmc_alloc_round_up(alloc, len) != block->size) {
        mf_error("mmc_alloc_free: length %" PRIu64
                 " does not match the block of %" PRIu64
                 " bytes at offset %" PRIu64,
                 len, block->size, offset);
        return MF_ERR_INVALID;
    }

    alloc->used -= block->size;
    alloc->allocations--;
    MMC_ALLOC_FREE(block) = true;
    alloc->free_blocks++;

    left =
        block->offset > 0 ? mmc_alloc_block_at(alloc, block->offset - 1) : NULL;
    if (left != NULL && MMC_ALLOC_FREE(left)) {
        mmc_alloc_treap_remove(&alloc->by_size, &left->size_link);
        left->size += block->size;
        mmc_alloc_unlink(alloc, left, block);
        alloc->free_blocks--;
        block = left;
    }
    right = block->next;
    if (right != NULL && MMC_ALLOC_FREE(right)) {
        mmc_alloc_treap_remove(&alloc->by_size, &right->size_link);
        block->size += right->size;
        mmc_alloc_unlink(alloc, block, right);
        alloc->free_blocks--;
    }
    mmc_alloc_treap_insert(&alloc->by_size, &block->size_link);
    return MF_OK;
}

void mmc_alloc_stats(const mmc_alloc_t *alloc, mmc_alloc_stats_t *stats)
{
    const mmc_alloc_link_t *last = mmc_alloc_treap_last(&alloc->by_size);

    stats->capacity = alloc->capacity;
    stats->align = alloc->align;
    stats->used = alloc->used;
    stats->free = alloc->capacity - alloc->used;
    stats->free_blocks = alloc->free_blocks;
    stats->largest_free = (last != NULL) ? mmc_alloc_size_block(last)->size : 0;
    stats->allocations = alloc->allocations;
    stats->debug_steps = alloc->steps;
}

/* ---- invariant check ---- */

typedef struct mmc_alloc_check_ctx {
    const mmc_alloc_treap_t *treap;
    const mmc_alloc_link_t *prev; /* previous node in order */
    uint64_t count;
} mmc_alloc_check_ctx_t;

/* In-order walk: keys strictly increase and the heap order holds. */
static bool mmc_alloc_check_treap(mmc_alloc_check_ctx_t *ctx,
                                  const mmc_alloc_link_t *n)
{
    if (n == NULL) {
        return true;
    }
    if ((n->left != NULL && n->left->prio > n->prio) ||
        (n->right != NULL && n->right->prio > n->prio)) {
        return false;
    }
    if (!mmc_alloc_check_treap(ctx, n->left)) {
        return false;
    }
    if (ctx->prev != NULL && ctx->treap->cmp(ctx->prev, n) >= 0) {
        return false;
    }
    ctx->prev = n;
    ctx->count++;
    return mmc_alloc_check_treap(ctx, n->right);
}

mf_status_t mmc_alloc_check(const mmc_alloc_t *alloc)
{
    mmc_alloc_check_ctx_t ctx;
    const mmc_alloc_block_t *block;
    const mmc_alloc_block_t *prev = NULL;
    uint64_t end = 0, used = 0, nblocks = 0, nfree = 0, nalloc = 0;
    const char *what = NULL;

    for (block = alloc->first; block != NULL; block = block->next) {
        if (block->offset != end) {
            what = "list does not tile the segment";
            goto err;
        }
        if (block->size == 0 || (block->size & (alloc->align - 1)) != 0 ||
            block->size > alloc->capacity - block->offset) {
            what = "block size zero, unaligned or past the end";
            goto err;
        }
        if (MMC_ALLOC_FREE(block) && prev != NULL && MMC_ALLOC_FREE(prev)) {
            what = "two free blocks are neighbours";
            goto err;
        }
        if (MMC_ALLOC_FREE(block)) {
            nfree++;
        } else {
            nalloc++;
            used += block->size;
        }
        nblocks++;
        end = block->offset + block->size;
        prev = block;
    }
    if (end != alloc->capacity) {
        what = "blocks do not reach the capacity";
        goto err;
    }
    if (used != alloc->used || nfree != alloc->free_blocks ||
        nalloc != alloc->allocations) {
        what = "counters do not match the blocks";
        goto err;
    }

    ctx = (mmc_alloc_check_ctx_t){.treap = &alloc->by_addr};
    if (!mmc_alloc_check_treap(&ctx, alloc->by_addr.root) ||
        ctx.count != nblocks) {
        what = "address treap out of order or not all blocks";
        goto err;
    }
    ctx = (mmc_alloc_check_ctx_t){.treap = &alloc->by_size};
    if (!mmc_alloc_check_treap(&ctx, alloc->by_size.root) ||
        ctx.count != nfree) {
        what = "size treap out of order or not the free blocks";
        goto err;
    }
    /* every node of the size treap is free: count matched, and the list
     * walk below finds each free block in it */
    for (block = alloc->first; block != NULL; block = block->next) {
        mmc_alloc_treap_t size_treap = alloc->by_size;
        uint64_t steps = 0;

        size_treap.steps = &steps; /* do not count the check */
        if (MMC_ALLOC_FREE(block) &&
            mmc_alloc_treap_find(&size_treap, &block->size_link) !=
                &block->size_link) {
            what = "a free block is missing from the size treap";
            goto err;
        }
    }
    return MF_OK;

err:
    mf_error("mmc_alloc_check: %s", what);
    return MF_ERR_STATE;
}
