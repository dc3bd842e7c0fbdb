/*
 * MemCache requests over a blocking tw_conn (see tw_mmc.h).
 *
 * Invariants: every body sent comes out of the src/cache/proto encoder of
 * its opcode, and every response body goes through the proto decoder of
 * its opcode (or, for REGISTER's bare u32, mf_rbuf) and must end where
 * the message ends; the two switches below are the only places that map
 * an opcode to its message types.
 */
#include "tw_mmc.h"

#include "tk_proc.h"
#include "util/misc.h"

#include <string.h>

/* The response body of opcode decoded into out, a message of the type
 * that opcode answers with (NULL: checked and dropped). */
static mf_status_t tw_mmc_decode(uint16_t opcode, const tw_frame_t *resp,
                                 void *out)
{
    mmc_hello_resp_t hr;
    uint32_t host_idx = 0;
    mf_status_t status;
    mf_rbuf_t r;

    switch (opcode) {
    case MMC_OP_HELLO:
        status = mmc_hello_resp_decode(resp->body, resp->len, &hr);
        if ((status == MF_OK) && (out != NULL)) {
            *(mmc_hello_resp_t *)out = hr;
        }
        return status;
    case MMC_OP_REGISTER:
        /* a bare u32: no message of its own in proto.h */
        mf_rbuf_init(&r, resp->body, resp->len);
        mf_rbuf_get_u32(&r, &host_idx);
        status = mf_rbuf_status(&r, true);
        if ((status == MF_OK) && (out != NULL)) {
            *(uint32_t *)out = host_idx;
        }
        return status;
    case MMC_OP_PUT_ALLOC:
    case MMC_OP_GET:
        return mmc_obj_list_decode(resp->body, resp->len, out);
    case MMC_OP_PUT_COMMIT:
    case MMC_OP_RELEASE:
    case MMC_OP_RESTORE:
    case MMC_OP_EXIST:
        return mmc_status_list_decode(resp->body, resp->len, out);
    default: /* PING */
        return (resp->len == 0) ? MF_OK : MF_ERR_PROTO;
    }
}

/* The body of a request of opcode from req, a message of the type that
 * opcode takes (HELLO: the client's name; PING: none). */
static void tw_mmc_encode(uint16_t opcode, const void *req, mf_wbuf_t *w)
{
    switch (opcode) {
    case MMC_OP_HELLO:
        tw_mmc_hello_encode(w, req);
        break;
    case MMC_OP_REGISTER:
        mmc_register_req_encode(w, req);
        break;
    case MMC_OP_PUT_ALLOC:
        mmc_put_alloc_req_encode(w, req);
        break;
    case MMC_OP_PUT_COMMIT:
        mmc_commit_list_encode(w, req);
        break;
    case MMC_OP_GET:
    case MMC_OP_EXIST:
        mmc_key_list_encode(w, req);
        break;
    case MMC_OP_RESTORE:
        mmc_restore_req_encode(w, req);
        break;
    case MMC_OP_RELEASE:
        mmc_id_list_encode(w, req);
        break;
    default: /* PING */
        break;
    }
}

/*
 * One request: req encoded (tw_mmc_encode), sent, and the response
 * decoded into out (tw_mmc_decode).  The connection's failure, the frame
 * status, or the decoder's verdict; the first and the last are logged.
 */
static mf_status_t tw_mmc_request(tw_conn_t *c, uint16_t opcode,
                                  const void *req, void *out)
{
    tw_frame_t resp;
    mf_status_t status;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    tw_mmc_encode(opcode, req, &w);
    status = mf_wbuf_status(&w);
    if (status != MF_OK) {
        tk_print("wire: %s: no memory to encode it", mmc_op_name(opcode));
        mf_wbuf_free(&w);
        return status;
    }
    status = tw_call(c, opcode, w.data, w.len, &resp);
    mf_wbuf_free(&w);
    if (status != MF_OK) {
        return status;
    }
    status = resp.hdr.status;
    if (status == MF_OK) {
        status = tw_mmc_decode(opcode, &resp, out);
        if (status != MF_OK) {
            tk_print("wire: %s: the response does not decode: %s",
                     mmc_op_name(opcode), mf_status_name(status));
        }
    }
    tw_frame_free(&resp);
    return status;
}

void tw_mmc_hello_encode(mf_wbuf_t *w, const char *name)
{
    mmc_hello_req_t req;

    memset(&req, 0, sizeof(req));
    req.version = MMC_PROTO_VERSION;
    mf_strlcpy(req.name, name, sizeof(req.name));
    mmc_hello_req_encode(w, &req);
}

mf_status_t tw_mmc_hello(tw_conn_t *c, const char *name, mmc_hello_resp_t *hr_p)
{
    c->on_notify = tw_mmc_on_notify;
    return tw_mmc_request(c, MMC_OP_HELLO, name, hr_p);
}

/* The RECORD_ACK body for a RECORD notify; false for anything else, and
 * for a RECORD that is to be acknowledged later (h, optional, counts
 * those and the others). */
static bool tw_mmc_ack_of(uint16_t opcode, const void *body, size_t len,
                          mf_wbuf_t *ack, tw_mmc_holder_t *h)
{
    mmc_record_t rec;

    if (opcode != MMC_OP_RECORD ||
        mmc_record_decode(body, len, &rec) != MF_OK) {
        tk_print("wire: a notify that is no RECORD (opcode %u, %zu bytes)",
                 opcode, len);
        return false;
    }
    if (rec.flags & MMC_RECORD_ACK_LATER) {
        if (h != NULL) {
            atomic_fetch_add(&h->later, 1);
        }
        mmc_record_free(&rec);
        return false;
    }
    if (h != NULL) {
        atomic_fetch_add(rec.count == 0 ? &h->asked : &h->acked, 1);
    }
    mf_wbuf_init(ack);
    mf_wbuf_put_u64(ack, rec.seq);
    mmc_record_free(&rec);
    return true;
}

void tw_mmc_on_notify(tw_conn_t *c, const tw_frame_t *frame)
{
    mf_wbuf_t ack;

    if (tw_mmc_ack_of(frame->hdr.opcode, frame->body, frame->len, &ack, NULL)) {
        (void)tw_send_req(c->fd, MMC_OP_RECORD_ACK, 0, ack.data, ack.len);
        mf_wbuf_free(&ack);
    }
}

static void tw_mmc_holder_notify(uint16_t opcode, const uint8_t *body,
                                 size_t len, void *arg)
{
    tw_mmc_holder_t *h = arg;
    mf_wbuf_t ack;

    if (tw_mmc_ack_of(opcode, body, len, &ack, h)) {
        if (h->client != NULL) {
            (void)mf_net_client_send(h->client, MMC_OP_RECORD_ACK, ack.data,
                                     ack.len);
        }
        mf_wbuf_free(&ack);
    }
}

void tw_mmc_holder_params(mf_net_client_params_t *p, tw_mmc_holder_t *h)
{
    h->client = NULL;
    atomic_store(&h->later, 0);
    atomic_store(&h->asked, 0);
    atomic_store(&h->acked, 0);
    p->on_notify = tw_mmc_holder_notify;
    p->arg = h;
}

mf_status_t tw_mmc_register(tw_conn_t *c, const mmc_register_req_t *req,
                            uint32_t *host_idx_p)
{
    return tw_mmc_request(c, MMC_OP_REGISTER, req, host_idx_p);
}

mf_status_t tw_mmc_put_alloc(tw_conn_t *c, const mmc_put_alloc_req_t *req,
                             mmc_obj_list_t *objs_p)
{
    return tw_mmc_request(c, MMC_OP_PUT_ALLOC, req, objs_p);
}

mf_status_t tw_mmc_put_commit(tw_conn_t *c, const mmc_commit_list_t *req,
                              mmc_status_list_t *status_p)
{
    return tw_mmc_request(c, MMC_OP_PUT_COMMIT, req, status_p);
}

mf_status_t tw_mmc_restore(tw_conn_t *c, const mmc_record_t *req,
                           mmc_status_list_t *status_p)
{
    return tw_mmc_request(c, MMC_OP_RESTORE, req, status_p);
}

mf_status_t tw_mmc_exist(tw_conn_t *c, const mmc_key_list_t *req,
                         mmc_status_list_t *status_p)
{
    return tw_mmc_request(c, MMC_OP_EXIST, req, status_p);
}

mf_status_t tw_mmc_ping(tw_conn_t *c)
{
    return tw_mmc_request(c, MMC_OP_PING, NULL, NULL);
}

mmc_status_t tw_mmc_get_one(tw_conn_t *c, const char *key, uint64_t *lease_p)
{
    mmc_key_t k = {key, (uint32_t)strlen(key)};
    mmc_key_list_t keys = {1, &k};
    mmc_obj_list_t objs;
    mmc_status_t status;

    status = tw_mmc_request(c, MMC_OP_GET, &keys, &objs);
    if (status != MMC_OK) {
        return status;
    }
    status = (objs.count == 1) ? objs.items[0].status : MF_ERR_PROTO;
    if ((status == MMC_OK) && (lease_p != NULL)) {
        *lease_p = objs.items[0].id;
    }
    mmc_obj_list_free(&objs);
    return status;
}

mmc_status_t tw_mmc_release_one(tw_conn_t *c, uint64_t lease)
{
    mmc_id_list_t ids = {1, &lease};
    mmc_status_list_t done;
    mmc_status_t status;

    status = tw_mmc_request(c, MMC_OP_RELEASE, &ids, &done);
    if (status != MMC_OK) {
        return status;
    }
    status = (done.count == 1) ? done.status[0] : MF_ERR_PROTO;
    mmc_status_list_free(&done);
    return status;
}
