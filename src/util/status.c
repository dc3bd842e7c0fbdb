/*
 * Names and descriptions of mf_status_t codes.  Every code has both; an
 * unknown value maps to a fixed string so callers never get NULL.
 */
#include <memfabric/mf_status.h>

#include "util/misc.h"

typedef struct mf_status_info {
    mf_status_t status;
    const char *name;
    const char *text;
} mf_status_info_t;

static const mf_status_info_t mf_status_table[] = {
    {MF_OK, "MF_OK", "success"},
    {MF_INPROGRESS, "MF_INPROGRESS", "operation in progress"},
    {MF_ERR_INVALID, "MF_ERR_INVALID", "invalid argument"},
    {MF_ERR_NOMEM, "MF_ERR_NOMEM", "out of memory"},
    {MF_ERR_UNSUPPORTED, "MF_ERR_UNSUPPORTED", "operation not supported"},
    {MF_ERR_NOT_FOUND, "MF_ERR_NOT_FOUND", "not found"},
    {MF_ERR_EXISTS, "MF_ERR_EXISTS", "already exists"},
    {MF_ERR_OUT_OF_RANGE, "MF_ERR_OUT_OF_RANGE",
     "address outside any joined segment"},
    {MF_ERR_TOO_LARGE, "MF_ERR_TOO_LARGE", "size or count above its limit"},
    {MF_ERR_STATE, "MF_ERR_STATE", "call not valid in the current state"},
    {MF_ERR_BUSY, "MF_ERR_BUSY", "resource busy"},
    {MF_ERR_TIMEOUT, "MF_ERR_TIMEOUT", "timed out"},
    {MF_ERR_IO, "MF_ERR_IO", "input/output error"},
    {MF_ERR_ADDR_IN_USE, "MF_ERR_ADDR_IN_USE", "address already in use"},
    {MF_ERR_MISMATCH, "MF_ERR_MISMATCH", "value does not match"},
    {MF_ERR_CANCELED, "MF_ERR_CANCELED", "operation canceled"},
    {MF_ERR_PROTO, "MF_ERR_PROTO", "malformed message"},
    {MF_ERR_VERSION, "MF_ERR_VERSION", "protocol version mismatch"},
    {MF_ERR_CONFIG, "MF_ERR_CONFIG", "bad configuration"},
    {MF_ERR_PEER_LOST, "MF_ERR_PEER_LOST", "peer lost"},
    {MF_ERR_CONN_REFUSED, "MF_ERR_CONN_REFUSED", "connection refused"},
    {MF_ERR_CONN_RESET, "MF_ERR_CONN_RESET", "connection reset"},
    {MF_ERR_UNREACHABLE, "MF_ERR_UNREACHABLE", "peer unreachable"},
    {MF_ERR_PEER_REJECTED, "MF_ERR_PEER_REJECTED", "peer rejected request"},
};

static const mf_status_info_t *mf_status_lookup(mf_status_t status)
{
    for (size_t i = 0; i < MF_ARRAY_SIZE(mf_status_table); i++) {
        if (mf_status_table[i].status == status) {
            return &mf_status_table[i];
        }
    }
    return NULL;
}

MF_API const char *mf_status_name(mf_status_t status)
{
    const mf_status_info_t *info = mf_status_lookup(status);
    return info ? info->name : "MF_ERR_UNKNOWN";
}

MF_API const char *mf_status_str(mf_status_t status)
{
    const mf_status_info_t *info = mf_status_lookup(status);
    return info ? info->text : "unknown status";
}
