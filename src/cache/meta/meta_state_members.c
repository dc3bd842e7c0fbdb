/*
 * The meta state's membership: ranks registering their segments (with
 * their host), unregistering gracefully, and dropped with their
 * connection, taking their replicas, puts and leases with them.  A
 * segment sits at its rank's slot of the window of its media (DRAM: the
 * host window, HBM: the device window), as MemFabric lays them out.
 */
#include "cache/meta/meta_state_int.h"

/* ---- membership ---- */

/* The index of host_id with a reference taken for a registration (drop it
 * with mmc_state_host_unref); a new id takes a free slot first. */
static mf_status_t mmc_state_host_intern(mmc_state_t *state,
                                         const char *host_id,
                                         uint32_t *host_idx_p)
{
    size_t len = strlen(host_id);
    void *found = mf_hmap_get(&state->host_map, host_id, len);
    mmc_state_host_t *h;
    char *copy;
    uint32_t idx;

    if (found != NULL) {
        idx = (uint32_t)((uintptr_t)found - 1);
        mmc_state_host_at(state, idx)->refs++;
        *host_idx_p = idx;
        return MF_OK;
    }
    copy = strdup(host_id);
    if (copy == NULL) {
        goto err;
    }
    if (state->free_host != 0) {
        idx = state->free_host - 1;
        h = mmc_state_host_at(state, idx);
    } else {
        mmc_state_host_t fresh = {NULL, 0, 0};

        idx = (uint32_t)state->hosts.count;
        h = mf_vec_push(&state->hosts, &fresh);
        if (h == NULL) {
            goto err_free_copy;
        }
        /* a free slot now, taken below */
        h->next_free = 0;
        state->free_host = idx + 1;
    }
    if (mf_hmap_put(&state->host_map, host_id, len,
                    (void *)(uintptr_t)(idx + 1), NULL) != MF_OK) {
        goto err_free_copy; /* the slot stays free */
    }
    state->free_host = h->next_free;
    h->next_free = 0;
    h->id = copy;
    h->refs = 1;
    state->counters.hosts++;
    *host_idx_p = idx;
    return MF_OK;

err_free_copy:
    free(copy);
err:
    mf_error("meta state: out of memory for host %s", host_id);
    return MF_ERR_NOMEM;
}

static const char *mmc_state_media_name(uint8_t media)
{
    return (media == MMC_MEDIA_HBM)   ? "HBM"
           : (media == MMC_MEDIA_SSD) ? "SSD"
                                      : "DRAM";
}

/* The start and largest size of rank's segment of media; false when the
 * pool has no window for that media. */
static bool mmc_state_seg_slot(const mmc_state_t *state, uint32_t rank,
                               uint8_t media, uint64_t *gva_p, uint64_t *max_p)
{
    const mmc_state_params_t *p = &state->params;

    if (media == MMC_MEDIA_SSD) { /* no window: its holder reads it */
        *gva_p = 0;
        *max_p = MMC_STATE_SSD_MAX;
        return true;
    }
    if (media == MMC_MEDIA_DRAM) {
        *gva_p = p->host_base + (uint64_t)rank * p->max_segment_size;
        *max_p = p->max_segment_size;
        return true;
    }
    *gva_p = p->device_base + (uint64_t)rank * p->max_hbm_segment_size;
    *max_p = p->max_hbm_segment_size;
    return p->max_hbm_segment_size != 0;
}

static mf_status_t mmc_state_check_segs(const mmc_state_t *state, uint32_t rank,
                                        uint32_t nsegs,
                                        const mmc_seg_desc_t *segs)
{
    const mmc_state_params_t *p = &state->params;
    bool seen[MMC_STATE_NMEDIA] = {false, false, false};
    uint64_t gva, max;

    if (nsegs > MMC_PROTO_MAX_SEGS) {
        mf_warn("meta: rank %" PRIu32 " registers %" PRIu32 " segments", rank,
                nsegs);
        return MF_ERR_INVALID;
    }
    for (uint32_t i = 0; i < nsegs; i++) {
        const mmc_seg_desc_t *s = &segs[i];

        if ((s->media >= MMC_STATE_NMEDIA) || seen[s->media]) {
            mf_warn("meta: rank %" PRIu32 ": segment %" PRIu32
                    " has media %u (unknown or repeated)",
                    rank, i, s->media);
            return MF_ERR_INVALID;
        }
        seen[s->media] = true;
        if (!mmc_state_seg_slot(state, rank, s->media, &gva, &max)) {
            mf_warn("meta: rank %" PRIu32 " registers an HBM segment, but "
                    "the pool has no device window (max_hbm_segment_size "
                    "0)",
                    rank);
            return MF_ERR_INVALID;
        }
        if ((s->size > max) || (s->size < p->alloc_align)) {
            mf_warn("meta: rank %" PRIu32 ": %s segment size %" PRIu64
                    " not in [%" PRIu64 ", %" PRIu64 "]",
                    rank, mmc_state_media_name(s->media), s->size,
                    p->alloc_align, max);
            return MF_ERR_INVALID;
        }
        if (s->gva != gva) {
            mf_warn("meta: rank %" PRIu32 ": %s segment at 0x%" PRIx64
                    ", expected 0x%" PRIx64,
                    rank, mmc_state_media_name(s->media), s->gva, gva);
            return MF_ERR_INVALID;
        }
    }
    return MF_OK;
}

mf_status_t mmc_state_register(mmc_state_t *state, mmc_state_owner_t *owner,
                               uint32_t rank, const char *host_id,
                               const char *name, uint32_t nsegs,
                               const mmc_seg_desc_t *segs, uint32_t *host_idx_p)
{
    mmc_state_seg_t *made[MMC_STATE_NMEDIA] = {NULL, NULL, NULL};
    mmc_state_rank_t *r = mmc_state_rank_at(state, rank);
    mf_status_t status;
    uint32_t host_idx;

    if (owner->rank != NULL) {
        mf_warn("meta: a connection that holds rank %" PRIu32
                " registers again",
                owner->rank->rank);
        return MF_ERR_STATE;
    }
    if (r == NULL) {
        mf_warn("meta: rank %" PRIu32 " out of range (world size %" PRIu32 ")",
                rank, state->params.max_ranks);
        return MF_ERR_INVALID;
    }
    if ((host_id == NULL) || (host_id[0] == '\0')) {
        mf_warn("meta: rank %" PRIu32 " registers without a host id", rank);
        return MF_ERR_INVALID;
    }
    status = mmc_state_check_segs(state, rank, nsegs, segs);
    if (status != MF_OK) {
        return status;
    }
    if (r->owner != NULL) {
        mf_warn("meta: rank %" PRIu32 " is registered already", rank);
        return MF_ERR_EXISTS;
    }
    status = mmc_state_host_intern(state, host_id, &host_idx);
    if (status != MF_OK) {
        return status;
    }
    for (uint32_t i = 0; i < nsegs; i++) {
        mmc_state_seg_t *seg = calloc(1, sizeof(*seg));
        mmc_alloc_stats_t st;

        if (seg == NULL) {
            mf_error("meta state: out of memory for a segment");
            status = MF_ERR_NOMEM;
            goto err_free_segs;
        }
        made[segs[i].media] = seg;
        status = mmc_alloc_create(segs[i].size, state->params.alloc_align,
                                  &seg->alloc);
        if (status != MF_OK) {
            goto err_free_segs;
        }
        mmc_alloc_stats(seg->alloc, &st);
        seg->rank = r;
        seg->media = segs[i].media;
        seg->gva = segs[i].gva;
        seg->capacity = st.capacity;
        mf_list_init(&seg->reps);
        mf_list_init(&seg->lru);
        mf_list_init(&seg->small);
    }
    r->owner = owner;
    r->host_idx = host_idx;
    mf_strlcpy(r->name, (name != NULL) ? name : "", sizeof(r->name));
    owner->rank = r;
    state->counters.registered++;
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        r->segs[m] = made[m];
        if (made[m] != NULL) {
            mmc_state_heap_add(state, made[m]);
        }
    }
    if (nsegs > 0) {
        mf_list_push_back(&state->members, &r->member_link);
        state->counters.members++;
    }
    *host_idx_p = host_idx;
    return MF_OK;

err_free_segs:
    for (int m = 0; m < MMC_STATE_NMEDIA; m++) {
        if (made[m] != NULL) {
            mmc_alloc_destroy(made[m]->alloc);
            free(made[m]);
        }
    }
    mmc_state_host_unref(state, host_idx);
    return status;
}
