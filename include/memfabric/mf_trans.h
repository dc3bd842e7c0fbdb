/*
 * TRANS, the transfer-engine API: peer-to-peer reads and writes between
 * buffers that named processes registered, with no GVA window.
 *
 * A process creates an instance under a unique id (a "host:port" session
 * id, as P/D-disaggregation connectors name their peers) through the
 * config store, registers buffers (host or device memory: any pointer of
 * the process), and reads or writes the registered buffers of any other
 * instance by (peer id, the peer's own address of the bytes).  One copy:
 * the bytes move between the local buffer and the peer's buffer, nothing
 * is staged on either side for host memory.
 *
 *     mf_init();
 *     mf_bm_config_init(&cfg);              transport, copy threads, ...
 *     mf_trans_create("tcp://store:5801", "10.0.0.1:7000", &cfg, &t);
 *     mf_trans_register(t, buf, len);        peers may now reach buf
 *     mf_trans_write(t, "10.0.0.2:7000", buf, peer_addr, len);
 *     mf_trans_deregister(t, buf); mf_trans_destroy(t);
 *
 * A peer's buffers are reachable from the moment its registration
 * returned, and unreachable once it deregistered them (MF_ERR_OUT_OF_RANGE),
 * left or died (MF_ERR_PEER_LOST): never a hang.  A peer id nobody
 * created is MF_ERR_NOT_FOUND.  The store keeps the instance's id and the
 * list of its buffers as ephemeral keys, so both go with its session.
 *
 * Settings: the mf_bm_config_t of BM (transport, its settings, copy
 * threads, host id, store timeouts); the windows are not used.  The
 * transport must be able to serve user memory: tcp (also between
 * processes of one host); "auto" picks every such transport.
 *
 * Threads: every call may be made from any thread; transfers may run
 * concurrently, to one peer or many.  Buffers stay owned by the caller
 * and must stay valid (and registered, on the peer's side) until the
 * transfer completed.
 */
#ifndef MEMFABRIC_MF_TRANS_H
#define MEMFABRIC_MF_TRANS_H

#include <memfabric/mf_bm.h>
#include <memfabric/mf_common.h>
#include <memfabric/mf_status.h>

MF_BEGIN_DECLS

#define MF_TRANS_ID_MAX 128 /* bytes of an id, its NUL included */

typedef struct mf_trans mf_trans_t;

/*
 * Creates the instance `id` (1..MF_TRANS_ID_MAX - 1 printable bytes, no
 * '/'): connects to the config store at store_url, opens the transports
 * and announces the id.  MF_ERR_EXISTS if a live instance has the id.
 * cfg may be NULL (defaults and MF_* environment variables).
 */
MF_API mf_status_t mf_trans_create(const char *store_url, const char *id,
                                   const mf_bm_config_t *cfg,
                                   mf_trans_t **trans_p);
/* Withdraws the id and every buffer, waits for nothing: every transfer
 * must have finished (a request still out is a bug of the caller, logged). */
MF_API void mf_trans_destroy(mf_trans_t *trans);
MF_API const char *mf_trans_id(const mf_trans_t *trans);

/*
 * Registers [addr, addr + size) (host or device memory) so that peers can
 * read and write it, and so that transfers from or to it take the
 * transports' fastest path.  MF_ERR_EXISTS if it overlaps a registered
 * buffer.  The batch form registers count buffers, all or none.
 */
MF_API mf_status_t mf_trans_register(mf_trans_t *trans, void *addr,
                                     size_t size);
MF_API mf_status_t mf_trans_register_batch(mf_trans_t *trans,
                                           void *const *addrs,
                                           const size_t *sizes, size_t count);
/* Withdraws the buffer registered at addr (MF_ERR_NOT_FOUND if none):
 * when it returns, no peer reaches it any more. */
MF_API mf_status_t mf_trans_deregister(mf_trans_t *trans, void *addr);

/* Writes size bytes from local (any memory of this process) to the peer's
 * registered address remote; reads the other way. */
MF_API mf_status_t mf_trans_write(mf_trans_t *trans, const char *peer,
                                  const void *local, uint64_t remote,
                                  size_t size);
MF_API mf_status_t mf_trans_read(mf_trans_t *trans, const char *peer,
                                 void *local, uint64_t remote, size_t size);

typedef enum mf_trans_op {
    MF_TRANS_WRITE = 0, /* local -> peer */
    MF_TRANS_READ = 1,  /* peer -> local */
} mf_trans_op_t;

typedef struct mf_trans_piece {
    void *local;     /* this process's memory */
    uint64_t remote; /* the peer's address, inside a buffer it registered */
    size_t size;
} mf_trans_piece_t;

/*
 * Many pieces with one peer in one call.  MF_OK when every piece moved,
 * else the first error; results (optional, count entries) receives the
 * status of each piece.
 */
MF_API mf_status_t mf_trans_batch(mf_trans_t *trans, const char *peer,
                                  mf_trans_op_t op,
                                  const mf_trans_piece_t *pieces, size_t count,
                                  mf_status_t *results);

/* A transfer in flight, owned by the library until finished. */
typedef struct mf_trans_req mf_trans_req_t;

/*
 * Starts mf_trans_batch's transfer and returns at once (the pieces array
 * is copied).  Finish it with mf_trans_wait() or mf_trans_test().
 */
MF_API mf_status_t mf_trans_submit(mf_trans_t *trans, const char *peer,
                                   mf_trans_op_t op,
                                   const mf_trans_piece_t *pieces, size_t count,
                                   mf_trans_req_t **req_p);
/*
 * Waits up to timeout_ms (< 0: without limit).  The final status (as
 * mf_trans_batch returns it, results as there: optional, the request's
 * count entries) and req is freed; or MF_INPROGRESS when the time ran
 * out first, and req runs on.  One thread at a time per request.
 */
MF_API mf_status_t mf_trans_wait(mf_trans_req_t *req, int timeout_ms,
                                 mf_status_t *results);
/* mf_trans_wait(req, 0, results): MF_INPROGRESS while it runs. */
MF_API mf_status_t mf_trans_test(mf_trans_req_t *req, mf_status_t *results);

MF_END_DECLS

#endif /* MEMFABRIC_MF_TRANS_H */
