/*
 * Growable array, byte buffer and hash map.
 *
 * The hash map chains entries in a power-of-two bucket array and doubles it
 * when the load factor passes 1.  Keys are copied into the entry (with a
 * terminating NUL, so string keys can be read back directly).  A failed
 * allocation leaves every container as it was.
 */
#include "util/containers.h"

#include <stdlib.h>
#include <string.h>

/* ---- vec ---- */

void mf_vec_init(mf_vec_t *vec, size_t elem_size)
{
    vec->data = NULL;
    vec->elem_size = elem_size;
    vec->count = 0;
    vec->capacity = 0;
}

void mf_vec_free(mf_vec_t *vec)
{
    free(vec->data);
    vec->data = NULL;
    vec->count = vec->capacity = 0;
}

mf_status_t mf_vec_reserve(mf_vec_t *vec, size_t capacity)
{
    void *data;

    if (capacity <= vec->capacity) {
        return MF_OK;
    }
    if (capacity > SIZE_MAX / vec->elem_size) {
        return MF_ERR_NOMEM;
    }
    data = realloc(vec->data, capacity * vec->elem_size);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    vec->data = data;
    vec->capacity = capacity;
    return MF_OK;
}

void *mf_vec_push(mf_vec_t *vec, const void *elem)
{
    void *slot;

    if (vec->count == vec->capacity &&
        mf_vec_reserve(vec, vec->capacity ? vec->capacity * 2 : 8) != MF_OK) {
        return NULL;
    }
    slot = mf_vec_at(vec, vec->count++);
    if (elem != NULL) {
        memcpy(slot, elem, vec->elem_size);
    } else {
        memset(slot, 0, vec->elem_size);
    }
    return slot;
}

void mf_vec_swap_remove(mf_vec_t *vec, size_t index)
{
    if (index >= vec->count) {
        return;
    }
    vec->count--;
    if (index != vec->count) {
        memcpy(mf_vec_at(vec, index), mf_vec_at(vec, vec->count),
               vec->elem_size);
    }
}

/* ---- buf ---- */

void mf_buf_init(mf_buf_t *buf)
{
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

void mf_buf_free(mf_buf_t *buf)
{
    free(buf->data);
    mf_buf_init(buf);
}

mf_status_t mf_buf_reserve(mf_buf_t *buf, size_t extra)
{
    size_t need, cap;
    uint8_t *data;

    if (extra > SIZE_MAX - buf->len) {
        return MF_ERR_NOMEM;
    }
    need = buf->len + extra;
    if (need <= buf->cap) {
        return MF_OK;
    }
    cap = buf->cap ? buf->cap : 64;
    while (cap < need) {
        cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
    }
    data = realloc(buf->data, cap);
    if (data == NULL) {
        return MF_ERR_NOMEM;
    }
    buf->data = data;
    buf->cap = cap;
    return MF_OK;
}

mf_status_t mf_buf_append(mf_buf_t *buf, const void *data, size_t len)
{
    mf_status_t status = mf_buf_reserve(buf, len);

    if (status != MF_OK) {
        return status;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
        buf->len += len;
    }
    return MF_OK;
}

uint8_t *mf_buf_detach(mf_buf_t *buf, size_t *len_p)
{
    uint8_t *data = buf->data;

    if (len_p != NULL) {
        *len_p = buf->len;
    }
    mf_buf_init(buf);
    return data;
}

/* ---- hash map ---- */

/* One step of mf_hash_bytes: a word mixed in. */
static inline uint64_t mf_hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

uint64_t mf_hash_bytes(const void *data, size_t len)
{
    /* Eight bytes a step (a key of 30 bytes takes 4 steps, not 30), the
     * tail zero-padded and the length mixed in first, so keys that differ
     * only in trailing zero bytes differ; then a final avalanche (the
     * splitmix64 finalizer).  In-memory tables only: never persisted. */
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)len, w;

    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = mf_hash_word(h, w);
    }
    if (len > 0) {
        w = 0;
        memcpy(&w, p, len);
        h = mf_hash_word(h, w);
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

void mf_hmap_init(mf_hmap_t *map)
{
    map->buckets = NULL;
    map->nbuckets = 0;
    map->count = 0;
}

void mf_hmap_free(mf_hmap_t *map)
{
    for (size_t i = 0; i < map->nbuckets; i++) {
        mf_hmap_entry_t *entry = map->buckets[i];
        while (entry != NULL) {
            mf_hmap_entry_t *next = entry->next;
            free(entry);
            entry = next;
        }
    }
    free(map->buckets);
    mf_hmap_init(map);
}

mf_hmap_entry_t *mf_hmap_find(const mf_hmap_t *map, const void *key,
                              size_t key_len)
{
    uint64_t hash;
    mf_hmap_entry_t *entry;

    if (map->nbuckets == 0) {
        return NULL;
    }
    hash = mf_hash_bytes(key, key_len);
    for (entry = map->buckets[hash & (map->nbuckets - 1)]; entry != NULL;
         entry = entry->next) {
        if (entry->hash == hash && entry->key_len == key_len &&
            memcmp(entry->key, key, key_len) == 0) {
            return entry;
        }
    }
    return NULL;
}

void *mf_hmap_get(const mf_hmap_t *map, const void *key, size_t key_len)
{
    mf_hmap_entry_t *entry = mf_hmap_find(map, key, key_len);
    return entry ? entry->value : NULL;
}

static mf_status_t mf_hmap_grow(mf_hmap_t *map)
{
    size_t nbuckets = map->nbuckets ? map->nbuckets * 2 : 16;
    mf_hmap_entry_t **buckets = calloc(nbuckets, sizeof(*buckets));

    if (buckets == NULL) {
        return MF_ERR_NOMEM;
    }
    for (size_t i = 0; i < map->nbuckets; i++) {
        mf_hmap_entry_t *entry = map->buckets[i];
        while (entry != NULL) {
            mf_hmap_entry_t *next = entry->next;
            size_t b = entry->hash & (nbuckets - 1);
            entry->next = buckets[b];
            buckets[b] = entry;
            entry = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->nbuckets = nbuckets;
    return MF_OK;
}

mf_status_t mf_hmap_put(mf_hmap_t *map, const void *key, size_t key_len,
                        void *value, void **old_p)
{
    mf_hmap_entry_t *entry = mf_hmap_find(map, key, key_len);
    size_t b;

    if (entry != NULL) {
        if (old_p != NULL) {
            *old_p = entry->value;
        }
        entry->value = value;
        return MF_OK;
    }
    if (map->count >= map->nbuckets && mf_hmap_grow(map) != MF_OK) {
        return MF_ERR_NOMEM;
    }
    entry = malloc(sizeof(*entry) + key_len + 1);
    if (entry == NULL) {
        return MF_ERR_NOMEM;
    }
    entry->hash = mf_hash_bytes(key, key_len);
    entry->key_len = key_len;
    entry->value = value;
    memcpy(entry->key, key, key_len);
    entry->key[key_len] = '\0';
    b = entry->hash & (map->nbuckets - 1);
    entry->next = map->buckets[b];
    map->buckets[b] = entry;
    map->count++;
    if (old_p != NULL) {
        *old_p = NULL;
    }
    return MF_OK;
}

void *mf_hmap_remove(mf_hmap_t *map, const void *key, size_t key_len)
{
    uint64_t hash;
    mf_hmap_entry_t **link;

    if (map->nbuckets == 0) {
        return NULL;
    }
    hash = mf_hash_bytes(key, key_len);
    for (link = &map->buckets[hash & (map->nbuckets - 1)]; *link != NULL;
         link = &(*link)->next) {
        mf_hmap_entry_t *entry = *link;
        if (entry->hash == hash && entry->key_len == key_len &&
            memcmp(entry->key, key, key_len) == 0) {
            void *value = entry->value;
            *link = entry->next;
            free(entry);
            map->count--;
            return value;
        }
    }
    return NULL;
}

void mf_hmap_iter_init(const mf_hmap_t *map, mf_hmap_iter_t *it)
{
    (void)map;
    it->bucket = 0;
    it->entry = NULL;
}

mf_hmap_entry_t *mf_hmap_next(const mf_hmap_t *map, mf_hmap_iter_t *it)
{
    /* it->entry is the next entry to return within it->bucket - 1's chain,
     * fetched before returning the current one, so the caller may remove
     * the returned entry. */
    mf_hmap_entry_t *entry = it->entry;

    while (entry == NULL) {
        if (it->bucket >= map->nbuckets) {
            return NULL;
        }
        entry = map->buckets[it->bucket++];
    }
    it->entry = entry->next;
    return entry;
}
