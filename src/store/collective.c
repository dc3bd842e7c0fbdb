/*
 * Barrier and allgather, built on the store's add, blocking get, set and
 * remove.
 *
 * Every call of a collective named N on a client is one round, numbered
 * per (client, kind, N), so the same name serves round after round as long
 * as every participant calls it the same number of times.  Keys live under
 * "__mf/barrier/N/<round>/" and "__mf/allgather/N/<round>/".
 *
 * Cleanup invariant: a participant enters round r only after it finished
 * round r-1.  So once round r is known complete (the barrier's count
 * reached, or every allgather key of round r read), nobody reads round r-1
 * any more and its keys are removed: the barrier's last arrival removes
 * them, and every allgather participant removes its own.  Only the keys of
 * the latest round stay in the store.
 */
#include "store/store_client.h"
#include "util/log.h"
#include "util/misc.h"

#include <memfabric/mf_store.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "__mf/<kind>/<name>/<round>/<leaf>", malloc'd; NULL if out of memory. */
static char *mf_store_coll_key(const char *kind, const char *name,
                               uint64_t round, const char *leaf)
{
    size_t len = strlen(MF_STORE_INTERNAL_PREFIX) + strlen(kind) +
                 strlen(name) + strlen(leaf) + 32;
    char *key = malloc(len);

    if (key == NULL) {
        mf_error("store: out of memory for a key of %s %s", kind, name);
        return NULL;
    }
    snprintf(key, len, "%s%s/%s/%" PRIu64 "/%s", MF_STORE_INTERNAL_PREFIX, kind,
             name, round, leaf);
    return key;
}

static uint32_t mf_store_coll_remaining(uint64_t deadline_ms)
{
    uint64_t now = mf_time_ms();

    if (now >= deadline_ms) {
        return 0;
    }
    return (uint32_t)MF_MIN(deadline_ms - now, (uint64_t)UINT32_MAX);
}

/* A blocking get bounded by deadline; MF_ERR_TIMEOUT when it passed. */
static mf_status_t mf_store_coll_get(mf_store_t *store, const char *key,
                                     uint64_t deadline_ms, void **value_p,
                                     size_t *len_p)
{
    mf_status_t status;

    status = mf_store_get(store, key, mf_store_coll_remaining(deadline_ms),
                          value_p, len_p);
    return (status == MF_ERR_NOT_FOUND) ? MF_ERR_TIMEOUT : status;
}

/* Removes a key of an older round; absent is fine. */
static void mf_store_coll_remove(mf_store_t *store, const char *kind,
                                 const char *name, uint64_t round,
                                 const char *leaf)
{
    mf_status_t status;
    char *key;

    key = mf_store_coll_key(kind, name, round, leaf);
    if (key == NULL) {
        return;
    }
    status = mf_store_remove(store, key);
    if ((status != MF_OK) && (status != MF_ERR_NOT_FOUND)) {
        mf_debug("store: cannot remove %s: %s", key, mf_status_name(status));
    }
    free(key);
}

MF_API mf_status_t mf_store_barrier(mf_store_t *store, const char *name,
                                    uint32_t count, uint32_t timeout_ms)
{
    uint64_t deadline = mf_time_ms() + timeout_ms;
    char *count_key, *done_key;
    mf_status_t status;
    uint64_t round;
    int64_t arrived;
    void *value;

    if ((store == NULL) || (name == NULL) || (name[0] == '\0') ||
        (count == 0)) {
        mf_error("store: mf_store_barrier() needs a store, a name and a "
                 "count above 0");
        status = MF_ERR_INVALID;
        goto err;
    }
    round = mf_store_next_round(store, "barrier", name);
    if (round == 0) {
        status = MF_ERR_NOMEM;
        goto err;
    }
    count_key = mf_store_coll_key("barrier", name, round, "count");
    if (count_key == NULL) {
        status = MF_ERR_NOMEM;
        goto err;
    }
    done_key = mf_store_coll_key("barrier", name, round, "done");
    if (done_key == NULL) {
        status = MF_ERR_NOMEM;
        goto err_free_count_key;
    }

    status = mf_store_add(store, count_key, 1, &arrived);
    if (status != MF_OK) {
        mf_error("store: barrier %s round %" PRIu64 ": add failed: %s", name,
                 round, mf_status_name(status));
        goto err_free_done_key;
    }
    if ((arrived < 1) || ((uint64_t)arrived > count)) {
        mf_error("store: barrier %s round %" PRIu64 " has %" PRId64
                 " participants for a count of %u",
                 name, round, arrived, count);
        status = MF_ERR_STATE;
        goto err_free_done_key;
    }
    if ((uint64_t)arrived == count) {
        status = mf_store_set(store, done_key, "1", 1, 0);
        if (status != MF_OK) {
            mf_error("store: barrier %s round %" PRIu64
                     ": releasing failed: %s",
                     name, round, mf_status_name(status));
            goto err_free_done_key;
        }
        if (round > 1) {
            mf_store_coll_remove(store, "barrier", name, round - 1, "count");
            mf_store_coll_remove(store, "barrier", name, round - 1, "done");
        }
    } else {
        status = mf_store_coll_get(store, done_key, deadline, &value, NULL);
        if (status != MF_OK) {
            mf_warn("store: barrier %s round %" PRIu64 " (count %u): %s", name,
                    round, count, mf_status_name(status));
            goto err_free_done_key;
        }
        free(value);
    }
    free(done_key);
    free(count_key);
    return MF_OK;

err_free_done_key:
    free(done_key);
err_free_count_key:
    free(count_key);
err:
    return status;
}

MF_API mf_status_t mf_store_allgather(mf_store_t *store, const char *name,
                                      uint32_t index, uint32_t count,
                                      const void *in, size_t len, void *out,
                                      uint32_t timeout_ms)
{
    uint64_t deadline = mf_time_ms() + timeout_ms;
    char leaf[16], *key;
    mf_status_t status;
    size_t value_len;
    uint64_t round;
    uint32_t i;
    void *value;

    if ((store == NULL) || (name == NULL) || (name[0] == '\0') ||
        (count == 0) || (index >= count) || ((in == NULL) && (len > 0)) ||
        ((out == NULL) && (len > 0)) ||
        ((len > 0) && (count > SIZE_MAX / len))) {
        mf_error("store: mf_store_allgather() got bad arguments (index %u, "
                 "count %u, %zu bytes)",
                 index, count, len);
        return MF_ERR_INVALID;
    }
    round = mf_store_next_round(store, "allgather", name);
    if (round == 0) {
        return MF_ERR_NOMEM;
    }

    snprintf(leaf, sizeof(leaf), "%u", index);
    key = mf_store_coll_key("allgather", name, round, leaf);
    if (key == NULL) {
        return MF_ERR_NOMEM;
    }
    status = mf_store_set(store, key, in, len, 0);
    free(key);
    if (status != MF_OK) {
        mf_error("store: allgather %s round %" PRIu64 ": set failed: %s", name,
                 round, mf_status_name(status));
        return status;
    }

    for (i = 0; i < count; i++) {
        if (i == index) {
            if (len > 0) {
                memcpy((uint8_t *)out + (size_t)i * len, in, len);
            }
            continue;
        }
        snprintf(leaf, sizeof(leaf), "%u", i);
        key = mf_store_coll_key("allgather", name, round, leaf);
        if (key == NULL) {
            return MF_ERR_NOMEM;
        }
        status = mf_store_coll_get(store, key, deadline, &value, &value_len);
        free(key);
        if (status != MF_OK) {
            mf_warn("store: allgather %s round %" PRIu64
                    ": waiting for index %u of %u: %s",
                    name, round, i, count, mf_status_name(status));
            return status;
        }
        if (value_len != len) {
            mf_error("store: allgather %s round %" PRIu64
                     ": index %u gave %zu bytes, index %u expects %zu",
                     name, round, i, value_len, index, len);
            free(value);
            return MF_ERR_INVALID;
        }
        if (len > 0) {
            memcpy((uint8_t *)out + (size_t)i * len, value, len);
        }
        free(value);
    }

    if (round > 1) {
        snprintf(leaf, sizeof(leaf), "%u", index);
        mf_store_coll_remove(store, "allgather", name, round - 1, leaf);
    }
    return MF_OK;
}
