/*
 * Time, URL parsing, host identity and other small helpers.
 */
#include "util/misc.h"

#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t mf_time_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mf_deadline_after_ms(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool mf_key_part_valid(const char *name, size_t max)
{
    size_t n = name != NULL ? strnlen(name, max) : 0;

    if (n == 0 || n >= max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isprint((unsigned char)name[i]) || name[i] == '/' ||
            name[i] == ' ') {
            return false;
        }
    }
    return true;
}

bool mf_strlcpy(char *dst, const char *src, size_t dst_size)
{
    size_t len;

    if (dst_size == 0) {
        return false;
    }
    len = strlen(src);
    if (len >= dst_size) {
        memcpy(dst, src, dst_size - 1);
        dst[dst_size - 1] = '\0';
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

mf_status_t mf_url_list_parse(const char *list, mf_url_t *urls, size_t max,
                              size_t *n_p)
{
    const char *p = list, *end;
    char one[512];
    size_t n = 0, len;

    if (list == NULL || urls == NULL || n_p == NULL) {
        return MF_ERR_INVALID;
    }
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        end = strchr(p, ',');
        len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 0 || len >= sizeof(one)) {
            mf_error("URL list '%s': an empty or overlong entry", list);
            return MF_ERR_INVALID;
        }
        if (n == max) {
            mf_error("URL list '%s': more than %zu entries", list, max);
            return MF_ERR_INVALID;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        if (mf_url_parse(one, urls[n].host, sizeof(urls[n].host),
                         &urls[n].port) != MF_OK) {
            return MF_ERR_INVALID;
        }
        n++;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *n_p = n;
    return MF_OK;
}

mf_status_t mf_url_parse(const char *url, char *host, size_t host_len,
                         uint16_t *port_p)
{
    const char *p = url, *host_start, *host_end, *port_str;
    char *end;
    unsigned long port;
    size_t len;

    if (url == NULL || host == NULL || host_len == 0) {
        return MF_ERR_INVALID;
    }
    if (strncmp(p, "tcp://", 6) == 0) {
        p += 6;
    } else if (strstr(p, "://") != NULL) {
        mf_error("URL '%s': unsupported scheme (expected tcp://host:port)",
                 url);
        return MF_ERR_INVALID;
    }
    if (*p == '[') {
        host_start = p + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':') {
            mf_error("URL '%s': expected [address]:port", url);
            return MF_ERR_INVALID;
        }
        port_str = host_end + 2;
    } else {
        host_start = p;
        host_end = strrchr(p, ':');
        if (host_end == NULL) {
            mf_error("URL '%s': missing :port", url);
            return MF_ERR_INVALID;
        }
        port_str = host_end + 1;
    }
    len = (size_t)(host_end - host_start);
    if (len == 0 || len >= host_len) {
        mf_error("URL '%s': host is empty or longer than %zu bytes", url,
                 host_len - 1);
        return MF_ERR_INVALID;
    }
    errno = 0;
    port = strtoul(port_str, &end, 10);
    if (!isdigit((unsigned char)*port_str) || *end != '\0' || errno != 0 ||
        port == 0 || port > 65535) {
        mf_error("URL '%s': port must be a number in 1..65535", url);
        return MF_ERR_INVALID;
    }
    memcpy(host, host_start, len);
    host[len] = '\0';
    *port_p = (uint16_t)port;
    return MF_OK;
}

static char mf_host_id_buf[192];
static pthread_once_t mf_host_id_once = PTHREAD_ONCE_INIT;

/*
 * Boot id, UTS host name and network namespace: processes in different
 * network namespaces of one machine count as different hosts (they reach
 * each other over the network, as multi-host tests run them).
 */
static void mf_host_id_init(void)
{
    char boot[64] = "unknown-boot";
    char name[64] = "unknown-host";
    char net[32] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    struct stat st;

    if (f != NULL) {
        if (fgets(boot, sizeof(boot), f) != NULL) {
            boot[strcspn(boot, "\n")] = '\0';
        }
        fclose(f);
    }
    if (gethostname(name, sizeof(name)) != 0) {
        mf_strlcpy(name, "unknown-host", sizeof(name));
    }
    name[sizeof(name) - 1] = '\0';
    if (stat("/proc/self/ns/net", &st) == 0) {
        snprintf(net, sizeof(net), "/net:%llu", (unsigned long long)st.st_ino);
    }
    snprintf(mf_host_id_buf, sizeof(mf_host_id_buf), "%s/%s%s", boot, name,
             net);
}

const char *mf_host_id(void)
{
    pthread_once(&mf_host_id_once, mf_host_id_init);
    return mf_host_id_buf;
}

size_t mf_page_size(void)
{
    static size_t page_size;

    if (page_size == 0) {
        long value = sysconf(_SC_PAGESIZE);
        page_size = value > 0 ? (size_t)value : 4096;
    }
    return page_size;
}
