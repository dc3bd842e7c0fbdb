/* Replaced by the local service. */
typedef int mmc_local_placeholder_t;
