/*
 * Names and descriptions of MemCache status codes; codes of MemFabric's
 * ranges are passed on to mf_status_name/str, so one call names any status
 * a MemCache function returns.
 */
#include <memcache/mmc_status.h>

typedef struct mmc_status_info {
    mmc_status_t status;
    const char *name;
    const char *text;
} mmc_status_info_t;

static const mmc_status_info_t mmc_status_table[] = {
    {MMC_ERR_NOT_FOUND, "MMC_ERR_NOT_FOUND", "object not found"},
    {MMC_ERR_EXISTS, "MMC_ERR_EXISTS", "object exists (write-once key)"},
    {MMC_ERR_NO_SPACE, "MMC_ERR_NO_SPACE", "no space for the replicas"},
    {MMC_ERR_SIZE_MISMATCH, "MMC_ERR_SIZE_MISMATCH",
     "buffer size differs from the object size"},
    {MMC_ERR_BUSY, "MMC_ERR_BUSY", "another put of this key is in flight"},
    {MMC_ERR_ABORTED, "MMC_ERR_ABORTED", "put aborted before its commit"},
    {MMC_ERR_LEASE_EXPIRED, "MMC_ERR_LEASE_EXPIRED", "read lease expired"},
    {MMC_ERR_PARTIAL, "MMC_ERR_PARTIAL", "some items of the batch failed"},
    {MMC_ERR_NO_REPLICA, "MMC_ERR_NO_REPLICA",
     "no replica of the object could be read"},
    {MMC_ERR_CORRUPT, "MMC_ERR_CORRUPT", "stored bytes failed their checksum"},
};

static const mmc_status_info_t *mmc_status_find(mmc_status_t status)
{
    for (size_t i = 0; i < sizeof(mmc_status_table) / sizeof(*mmc_status_table);
         i++) {
        if (mmc_status_table[i].status == status) {
            return &mmc_status_table[i];
        }
    }
    return NULL;
}

const char *mmc_status_name(mmc_status_t status)
{
    const mmc_status_info_t *info;

    if (status > MMC_ERR_FIRST || status < MMC_ERR_LAST) {
        return mf_status_name((mf_status_t)status);
    }
    info = mmc_status_find(status);
    return info != NULL ? info->name : "MMC_ERR_UNKNOWN";
}

const char *mmc_status_str(mmc_status_t status)
{
    const mmc_status_info_t *info;

    if (status > MMC_ERR_FIRST || status < MMC_ERR_LAST) {
        return mf_status_str((mf_status_t)status);
    }
    info = mmc_status_find(status);
    return info != NULL ? info->text : "unknown MemCache status";
}
