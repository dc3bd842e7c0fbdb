/*
 * Status codes shared by every MemFabric call.
 *
 * MF_OK is 0, MF_INPROGRESS is 1 (an asynchronous operation was started and
 * completes later), every error is negative.  Errors are grouped in ranges
 * so that a caller can act on the class of a failure:
 *   -1   .. -99   the call itself: bad arguments, state, resources, limits;
 *   -100 .. -199  a peer or a link failed: retrying elsewhere (another
 *                 replica, another rank) may succeed.
 */
#ifndef MEMFABRIC_MF_STATUS_H
#define MEMFABRIC_MF_STATUS_H

#include <memfabric/mf_common.h>
#include <stdbool.h>

MF_BEGIN_DECLS

typedef enum mf_status {
    MF_OK = 0,
    MF_INPROGRESS = 1,

    MF_ERR_INVALID = -1,      /* an argument is wrong */
    MF_ERR_NOMEM = -2,        /* out of memory */
    MF_ERR_UNSUPPORTED = -3,  /* not supported (yet) by this build/transport */
    MF_ERR_NOT_FOUND = -4,    /* key, rank, segment or region does not exist */
    MF_ERR_EXISTS = -5,       /* already exists / already done */
    MF_ERR_OUT_OF_RANGE = -6, /* address outside any joined segment */
    MF_ERR_TOO_LARGE = -7,    /* a size or count above its limit */
    MF_ERR_STATE = -8,        /* call not valid in the current state */
    MF_ERR_BUSY = -9,         /* resource in use */
    MF_ERR_TIMEOUT = -10,     /* deadline passed */
    MF_ERR_IO = -11,          /* a system call failed */
    MF_ERR_ADDR_IN_USE = -12, /* an address (virtual or port) is taken */
    MF_ERR_MISMATCH = -13,    /* compare-and-swap found another value */
    MF_ERR_CANCELED = -14,    /* operation canceled by shutdown */
    MF_ERR_PROTO = -15,       /* malformed message */
    MF_ERR_VERSION = -16,     /* peer speaks another protocol version */
    MF_ERR_CONFIG = -17,      /* bad configuration key or value */

    MF_ERR_PEER_FIRST = -100,
    MF_ERR_PEER_LOST = -100,     /* peer process or its segment went away */
    MF_ERR_CONN_REFUSED = -101,  /* nobody listens at the address */
    MF_ERR_CONN_RESET = -102,    /* connection broke */
    MF_ERR_UNREACHABLE = -103,   /* no transport reaches the peer */
    MF_ERR_PEER_REJECTED = -104, /* peer refused the request */
    MF_ERR_PEER_LAST = -199,
} mf_status_t;

/* Name of a status, e.g. "MF_ERR_TIMEOUT"; never NULL. */
MF_API const char *mf_status_name(mf_status_t status);

/* Human-readable description of a status; never NULL. */
MF_API const char *mf_status_str(mf_status_t status);

/* True for failures of a peer or link, where another peer may succeed. */
static inline bool mf_status_is_peer_error(mf_status_t status)
{
    return status <= MF_ERR_PEER_FIRST && status >= MF_ERR_PEER_LAST;
}

MF_END_DECLS

#endif /* MEMFABRIC_MF_STATUS_H */
