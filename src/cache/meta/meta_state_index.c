/*
 * The index of committed objects: a chained hash table whose chains run
 * through the objects themselves (obj->hnext, obj->hash), keyed by the
 * key each object already holds.  An entry costs its object one pointer
 * and one 32-bit hash, and the table one bucket pointer, where a map of
 * its own would copy the key into an allocation per entry: the index of
 * millions of objects pays for every byte.
 */
#include "cache/meta/meta_state_int.h"

#define MMC_STATE_INDEX_MIN 1024

static uint32_t mmc_state_index_hash(const char *key, size_t len)
{
    uint64_t h = mf_hash_bytes(key, len);

    return (uint32_t)(h ^ (h >> 32));
}

void mmc_state_index_init(mmc_state_index_t *ix)
{
    ix->buckets = NULL;
    ix->nbuckets = 0;
    ix->count = 0;
}

void mmc_state_index_free(mmc_state_index_t *ix)
{
    free(ix->buckets);
    mmc_state_index_init(ix);
}

mmc_state_obj_t *mmc_state_index_get(const mmc_state_index_t *ix,
                                     const char *key, size_t len)
{
    uint32_t hash;
    mmc_state_obj_t *obj;

    if (ix->nbuckets == 0) {
        return NULL;
    }
    hash = mmc_state_index_hash(key, len);
    for (obj = ix->buckets[hash & (ix->nbuckets - 1)]; obj != NULL;
         obj = obj->hnext) {
        if (obj->hash == hash && obj->key_len == len &&
            memcmp(mmc_state_obj_key(obj), key, len) == 0) {
            return obj;
        }
    }
    return NULL;
}

/* Twice the buckets; false (the table stays as it is) without memory. */
static bool mmc_state_index_grow(mmc_state_index_t *ix)
{
    size_t n = ix->nbuckets != 0 ? 2 * ix->nbuckets : MMC_STATE_INDEX_MIN;
    mmc_state_obj_t **buckets = calloc(n, sizeof(*buckets));
    mmc_state_obj_t *obj, *next;

    if (buckets == NULL) {
        return false;
    }
    for (size_t b = 0; b < ix->nbuckets; b++) {
        for (obj = ix->buckets[b]; obj != NULL; obj = next) {
            next = obj->hnext;
            obj->hnext = buckets[obj->hash & (n - 1)];
            buckets[obj->hash & (n - 1)] = obj;
        }
    }
    free(ix->buckets);
    ix->buckets = buckets;
    ix->nbuckets = n;
    return true;
}

bool mmc_state_index_add(mmc_state_index_t *ix, mmc_state_obj_t *obj)
{
    size_t b;

    /* a table that cannot grow takes longer chains, as long as it has
     * buckets at all */
    if (ix->count >= ix->nbuckets && !mmc_state_index_grow(ix) &&
        ix->nbuckets == 0) {
        return false;
    }
    obj->hash = mmc_state_index_hash(mmc_state_obj_key(obj), obj->key_len);
    b = obj->hash & (ix->nbuckets - 1);
    obj->hnext = ix->buckets[b];
    ix->buckets[b] = obj;
    ix->count++;
    return true;
}

void mmc_state_index_del(mmc_state_index_t *ix, mmc_state_obj_t *obj)
{
    mmc_state_obj_t **link;

    if (ix->nbuckets == 0) {
        return;
    }
    for (link = &ix->buckets[obj->hash & (ix->nbuckets - 1)]; *link != NULL;
         link = &(*link)->hnext) {
        if (*link == obj) {
            *link = obj->hnext;
            obj->hnext = NULL;
            ix->count--;
            return;
        }
    }
}

mmc_state_obj_t *mmc_state_index_next(const mmc_state_index_t *ix,
                                      const mmc_state_obj_t *obj,
                                      size_t *bucket)
{
    size_t b;

    if (obj != NULL && obj->hnext != NULL) {
        return obj->hnext;
    }
    for (b = obj != NULL ? *bucket + 1 : 0; b < ix->nbuckets; b++) {
        if (ix->buckets[b] != NULL) {
            *bucket = b;
            return ix->buckets[b];
        }
    }
    return NULL;
}
