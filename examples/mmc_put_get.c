/*
 * MemCache in a few calls: connect to a running mmc-meta, put an object,
 * read it back, look at where it lives, remove it.
 *
 *   cc mmc_put_get.c $(pkg-config --cflags --libs memcache) -o mmc_put_get
 *   mmc-meta &                                   (listens on port 5800)
 *   ./mmc_put_get [tcp://host:port]              (default 127.0.0.1:5800)
 *   MMC_CONFIG=mmc-local.conf ./mmc_put_get      (settings from a file)
 *
 * MMC_<KEY> environment variables override either, e.g.
 * MMC_DRAM_SIZE=0 makes this process a pure client that stores nothing.
 */
#include <memcache/memcache.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *key = "example/hello";
    const char *file = getenv("MMC_CONFIG");
    const size_t size = 1 << 20;
    mmc_config_t cfg;
    mmc_obj_info_t info = {.info_size = sizeof(mmc_obj_info_t)};
    mmc_status_t st;
    mmc_t *mmc = NULL;
    char *out = NULL, *in = NULL;
    int ret = 1;

    /* settings: defaults, then a file or the command line, then MMC_* */
    mmc_config_init(&cfg);
    cfg.dram_size = 64 << 20; /* contribute 64 MiB to the pool */
    if (file != NULL) {
        st = mmc_config_load(&cfg, file);
    } else {
        st = mmc_config_set(&cfg, "meta_url",
                            argc > 1 ? argv[1] : "tcp://127.0.0.1:5800");
        if (st == MMC_OK) {
            st = mmc_config_load_env(&cfg);
        }
    }
    if (st != MMC_OK) {
        fprintf(stderr, "bad settings: %s\n", mmc_status_str(st));
        return 1;
    }

    /* connect to the meta service and join the pool */
    st = mmc_create(&cfg, &mmc);
    if (st != MMC_OK) {
        fprintf(stderr, "mmc_create: %s\n", mmc_status_name(st));
        return 1;
    }
    printf("rank %u joined the pool\n", mmc_rank(mmc));

    out = malloc(size);
    in = malloc(size);
    if (out == NULL || in == NULL) {
        goto out;
    }
    for (size_t i = 0; i < size; i++) {
        out[i] = (char)(i * 7 + 3);
    }

    /* objects are write-once: a second put of the key would return
     * MMC_ERR_EXISTS unless it passes MMC_PUT_REPLACE */
    st = mmc_put(mmc, key, out, size, NULL);
    if (st != MMC_OK) {
        fprintf(stderr, "mmc_put: %s\n", mmc_status_name(st));
        goto out;
    }

    /* the buffer must be exactly the object's size */
    st = mmc_get(mmc, key, in, size);
    if (st != MMC_OK || memcmp(in, out, size) != 0) {
        fprintf(stderr, "mmc_get: %s%s\n", mmc_status_name(st),
                st == MMC_OK ? ", bytes differ" : "");
        goto out;
    }
    printf("read back %zu bytes\n", size);

    st = mmc_query(mmc, key, &info);
    if (st != MMC_OK) {
        fprintf(stderr, "mmc_query: %s\n", mmc_status_name(st));
        goto out;
    }
    for (uint32_t r = 0; r < info.nreplicas; r++) {
        printf("replica %u on rank %u at 0x%llx\n", r, info.ranks[r],
               (unsigned long long)info.gvas[r]);
    }

    st = mmc_remove(mmc, key);
    if (st != MMC_OK || mmc_exist(mmc, key) != MMC_ERR_NOT_FOUND) {
        fprintf(stderr, "mmc_remove: %s\n", mmc_status_name(st));
        goto out;
    }
    printf("removed\n");
    ret = 0;

out:
    free(in);
    free(out);
    mmc_destroy(mmc); /* leaves the pool: the segment's objects go */
    return ret;
}
