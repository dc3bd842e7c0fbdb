/*
 * Logging control of libmemcache: the library's own copy of the util log,
 * exported under mmc_* names (the version script hides every mf_*).
 */
#include "cache/local/local.h"

MF_API void mmc_log_set_level(mf_log_level_t level)
{
    mf_log_set_level(level);
}

MF_API mf_log_level_t mmc_log_get_level(void)
{
    return mf_log_get_level();
}

MF_API void mmc_log_set_sink(mf_log_sink_cb sink, void *arg)
{
    mf_log_set_sink(sink, arg);
}
