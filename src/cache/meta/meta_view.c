/*
 * The read-only view of the meta service: its latency histograms.
 */
#include "cache/meta/meta_view.h"

const double mmc_hist_bounds_us[MMC_HIST_BUCKETS - 1] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000,
};

void mmc_hist_add(mmc_hist_t *h, double us)
{
    int i = 0;

    while ((i < MMC_HIST_BUCKETS - 1) && (us > mmc_hist_bounds_us[i])) {
        i++;
    }
    h->buckets[i]++;
    h->count++;
    h->sum_us += us;
}
