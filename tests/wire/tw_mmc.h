/*
 * The MemCache wire (src/cache/proto) over a blocking tw_conn (tw_frame.h):
 * every body comes out of the real encoders and every response goes
 * through the real decoders, so a test that speaks the wire itself cannot
 * drift from what the client library and the meta service speak.  A
 * malformed request is a real one bent or cut (see tw_frame.h).
 *
 * Each request returns the connection's failure, else the frame status,
 * else the decoder's verdict on the response (the first and the last are
 * logged); its decoded output is set only on MF_OK.
 */
#ifndef MF_TW_MMC_H
#define MF_TW_MMC_H

#include "tw_frame.h"

#include "cache/proto/proto.h"

#include <stdatomic.h>

/* Encodes a HELLO of this protocol version from name. */
void tw_mmc_hello_encode(mf_wbuf_t *w, const char *name);

/*
 * A holder acknowledges every RECORD the meta service sends it (but those
 * flagged MMC_RECORD_ACK_LATER, as a local service does), or the
 * replies of puts placed in its segments wait: tw_mmc_hello makes its
 * connection do so while it waits in tw_call (tw_mmc_on_notify), and a
 * test's mf_net_client that registers segments passes
 * tw_mmc_holder_params (the holder slot must outlive the client).
 */
void tw_mmc_on_notify(tw_conn_t *c, const tw_frame_t *frame);

typedef struct tw_mmc_holder {
    mf_net_client_t *client; /* set after mf_net_client_create */
    atomic_uint later;       /* RECORDs flagged ACK_LATER (unanswered) */
    atomic_uint asked;       /* empty ones, asking for the acknowledgement */
    atomic_uint acked;       /* others, acknowledged */
} tw_mmc_holder_t;

void tw_mmc_holder_params(mf_net_client_params_t *p, tw_mmc_holder_t *h);

/* HELLO; hr_p may be NULL. */
mf_status_t tw_mmc_hello(tw_conn_t *c, const char *name,
                         mmc_hello_resp_t *hr_p);

/* REGISTER; host_idx_p may be NULL. */
mf_status_t tw_mmc_register(tw_conn_t *c, const mmc_register_req_t *req,
                            uint32_t *host_idx_p);

/* PUT_ALLOC; *objs_p (mmc_obj_list_free) the per-item results. */
mf_status_t tw_mmc_put_alloc(tw_conn_t *c, const mmc_put_alloc_req_t *req,
                             mmc_obj_list_t *objs_p);

/* PUT_COMMIT; *status_p (mmc_status_list_free) the per-item results. */
mf_status_t tw_mmc_put_commit(tw_conn_t *c, const mmc_commit_list_t *req,
                              mmc_status_list_t *status_p);

/* RESTORE of a holder's record; *status_p (mmc_status_list_free) the
 * per-entry results. */
mf_status_t tw_mmc_restore(tw_conn_t *c, const mmc_record_t *req,
                           mmc_status_list_t *status_p);

/* EXIST; *status_p (mmc_status_list_free) the per-key results. */
mf_status_t tw_mmc_exist(tw_conn_t *c, const mmc_key_list_t *req,
                         mmc_status_list_t *status_p);

/* PING (a heartbeat; the response has no body). */
mf_status_t tw_mmc_ping(tw_conn_t *c);

/* ---- one item: the item's status (mmc_status_t), or as above ---- */

/* GET of one key: a read lease, held until released (or expired, or the
 * connection gone); MMC_OK with *lease_p (may be NULL) its id. */
mmc_status_t tw_mmc_get_one(tw_conn_t *c, const char *key, uint64_t *lease_p);

/* RELEASE of one lease. */
mmc_status_t tw_mmc_release_one(tw_conn_t *c, uint64_t lease);

#endif /* MF_TW_MMC_H */
