/*
 * The small containers the code needs: an intrusive doubly linked list, a
 * growable array of fixed-size elements, a growable byte buffer and a hash
 * map from byte-string keys to pointers.  None is thread safe; callers lock.
 * Allocation failures are reported, never fatal.
 */
#ifndef MF_UTIL_CONTAINERS_H
#define MF_UTIL_CONTAINERS_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define mf_container_of(_ptr, _type, _member)                                  \
    ((_type *)((char *)(_ptr)-offsetof(_type, _member)))

/* ---- intrusive list (circular, with a head sentinel) ---- */
typedef struct mf_list {
    struct mf_list *prev;
    struct mf_list *next;
} mf_list_t;

static inline void mf_list_init(mf_list_t *head)
{
    head->prev = head->next = head;
}
static inline bool mf_list_empty(const mf_list_t *head)
{
    return head->next == head;
}
static inline void mf_list_insert_after(mf_list_t *pos, mf_list_t *elem)
{
    elem->prev = pos;
    elem->next = pos->next;
    pos->next->prev = elem;
    pos->next = elem;
}
static inline void mf_list_push_back(mf_list_t *head, mf_list_t *elem)
{
    mf_list_insert_after(head->prev, elem);
}
static inline void mf_list_push_front(mf_list_t *head, mf_list_t *elem)
{
    mf_list_insert_after(head, elem);
}
static inline void mf_list_del(mf_list_t *elem)
{
    elem->prev->next = elem->next;
    elem->next->prev = elem->prev;
    elem->prev = elem->next = elem;
}
static inline mf_list_t *mf_list_pop_front(mf_list_t *head)
{
    mf_list_t *elem = head->next;
    if (elem == head) {
        return NULL;
    }
    mf_list_del(elem);
    return elem;
}
#define mf_list_for_each_safe(_pos, _tmp, _head)                               \
    for ((_pos) = (_head)->next, (_tmp) = (_pos)->next; (_pos) != (_head);     \
         (_pos) = (_tmp), (_tmp) = (_pos)->next)

/* ---- growable array ---- */
typedef struct mf_vec {
    void *data;
    size_t elem_size;
    size_t count;
    size_t capacity;
} mf_vec_t;

void mf_vec_init(mf_vec_t *vec, size_t elem_size);
void mf_vec_free(mf_vec_t *vec);
mf_status_t mf_vec_reserve(mf_vec_t *vec, size_t capacity);
/* Appends a copy of *elem (or zeroes if elem is NULL); returns the slot. */
void *mf_vec_push(mf_vec_t *vec, const void *elem);
static inline void *mf_vec_at(const mf_vec_t *vec, size_t index)
{
    return (char *)vec->data + index * vec->elem_size;
}
/* Removes element index by moving the last one into its place. */
void mf_vec_swap_remove(mf_vec_t *vec, size_t index);

/* ---- byte buffer ---- */
typedef struct mf_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} mf_buf_t;

void mf_buf_init(mf_buf_t *buf);
void mf_buf_free(mf_buf_t *buf);
mf_status_t mf_buf_reserve(mf_buf_t *buf, size_t extra);
mf_status_t mf_buf_append(mf_buf_t *buf, const void *data, size_t len);
/* Hands the data to the caller (free() it); the buffer becomes empty. */
uint8_t *mf_buf_detach(mf_buf_t *buf, size_t *len_p);

/* ---- hash map: byte-string key -> void * ---- */
typedef struct mf_hmap_entry {
    struct mf_hmap_entry *next;
    uint64_t hash;
    size_t key_len;
    void *value;
    char key[]; /* key bytes, NUL-terminated for convenience */
} mf_hmap_entry_t;

typedef struct mf_hmap {
    mf_hmap_entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
} mf_hmap_t;

void mf_hmap_init(mf_hmap_t *map);
/* Frees the entries; values are the caller's (free them first). */
void mf_hmap_free(mf_hmap_t *map);
void *mf_hmap_get(const mf_hmap_t *map, const void *key, size_t key_len);
mf_hmap_entry_t *mf_hmap_find(const mf_hmap_t *map, const void *key,
                              size_t key_len);
/* Inserts or replaces; *old_p (optional) receives the replaced value. */
mf_status_t mf_hmap_put(mf_hmap_t *map, const void *key, size_t key_len,
                        void *value, void **old_p);
/* Removes; returns the value or NULL if absent. */
void *mf_hmap_remove(mf_hmap_t *map, const void *key, size_t key_len);

typedef struct mf_hmap_iter {
    size_t bucket;
    mf_hmap_entry_t *entry;
} mf_hmap_iter_t;
/* Iteration: entries may not be added or removed meanwhile, except the
 * current one via mf_hmap_remove after mf_hmap_next moved past it. */
void mf_hmap_iter_init(const mf_hmap_t *map, mf_hmap_iter_t *it);
mf_hmap_entry_t *mf_hmap_next(const mf_hmap_t *map, mf_hmap_iter_t *it);

uint64_t mf_hash_bytes(const void *data, size_t len);

#endif
