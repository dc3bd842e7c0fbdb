/*
 * Fuzz target: the meta service's HTTP request handling without sockets.
 * The input is a request target (up to the first newline) and an Accept
 * header value (the rest).  The target goes through libevent's URI parser
 * as evhttp parses a request line, then path, query and header through
 * mmc_meta_http_parse_target; a key it accepts is written out as the JSON
 * string the /key/ page answers with.
 *
 * Only /key/ paths carry keys, and only valid ones (1..255 bytes, no NUL,
 * terminated); the JSON string of a key is well formed (escapes, no raw
 * control bytes, valid UTF-8) and reads back as the key whenever the key
 * is valid UTF-8.
 */
#include "cache/meta/meta_http.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_HTTP_MAX 8192

/* Length (1..4) of the valid UTF-8 sequence at s, 0 if it is not one: an
 * independent reading of RFC 3629. */
static size_t fuzz_http_utf8(const uint8_t *s, size_t left)
{
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    size_t n;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80; /* not overlong */
        hi = s[0] == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80; /* not overlong */
        hi = s[0] == 0xf4 ? 0x8f : 0xbf; /* up to U+10FFFF */
    } else {
        return 0;
    }
    if (n > left || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

static int fuzz_http_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* the escaper writes lower-case hex */
}

/*
 * Reads back the JSON string s[0..len) into out (room for len bytes);
 * traps unless it is one well-formed string.  Returns the bytes read back.
 */
static size_t fuzz_http_unjson(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t i = 1, o = 0, n;

    if (len < 2 || s[0] != '"' || s[len - 1] != '"') {
        __builtin_trap();
    }
    while (i < len - 1) {
        if (s[i] == '"' || s[i] < 0x20 || s[i] == 0x7f) {
            __builtin_trap(); /* unescaped */
        }
        if (s[i] != '\\') {
            n = fuzz_http_utf8(s + i, len - 1 - i);
            if (n == 0) {
                __builtin_trap();
            }
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        if (i + 1 >= len - 1) {
            __builtin_trap();
        }
        switch (s[i + 1]) {
        case '"':
        case '\\':
            out[o++] = s[i + 1];
            i += 2;
            break;
        case 'n':
            out[o++] = '\n';
            i += 2;
            break;
        case 'r':
            out[o++] = '\r';
            i += 2;
            break;
        case 't':
            out[o++] = '\t';
            i += 2;
            break;
        case 'u': {
            int cp = 0;

            if (i + 6 > len - 1) {
                __builtin_trap();
            }
            for (int k = 2; k < 6; k++) {
                int h = fuzz_http_hex(s[i + k]);

                if (h < 0) {
                    __builtin_trap();
                }
                cp = cp * 16 + h;
            }
            if (cp < 0x80) {
                out[o++] = (uint8_t)cp;
            } else if (cp == 0xfffd) {
                memcpy(out + o, "\xef\xbf\xbd", 3);
                o += 3;
            } else {
                __builtin_trap(); /* only controls and U+FFFD are escaped */
            }
            i += 6;
            break;
        }
        default:
            __builtin_trap();
        }
    }
    return o;
}

static void fuzz_http_check_key(const char *key, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    uint8_t *json, *back;
    size_t n, back_len, valid = 0;

    if (b == NULL) {
        return;
    }
    mmc_meta_http_json_str(b, key, len);
    n = evbuffer_get_length(b);
    json = evbuffer_pullup(b, -1);
    back = malloc(n);
    if (json == NULL || back == NULL) {
        __builtin_trap();
    }
    back_len = fuzz_http_unjson(json, n, back);
    while (valid < len) {
        size_t k = fuzz_http_utf8((const uint8_t *)key + valid, len - valid);

        if (k == 0) {
            break;
        }
        valid += k;
    }
    if (valid == len && (back_len != len || memcmp(back, key, len) != 0)) {
        __builtin_trap(); /* valid UTF-8 reads back unchanged */
    }
    free(back);
    evbuffer_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char key_prefix[] = "/key/";
    char text[FUZZ_HTTP_MAX + 1], *accept, *nl;
    mmc_meta_http_target_t target;
    struct evhttp_uri *uri;
    const char *path;
    mf_status_t status;

    mf_log_set_level(MF_LOG_OFF);
    if (size > FUZZ_HTTP_MAX) {
        size = FUZZ_HTTP_MAX;
    }
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL ends a header line as well */
    nl = strchr(text, '\n');
    accept = NULL;
    if (nl != NULL) {
        *nl = '\0';
        accept = nl + 1;
    }
    /* as evhttp parses a request line's target */
    uri = evhttp_uri_parse_with_flags(text, EVHTTP_URI_NONCONFORMANT);
    if (uri == NULL) {
        return 0; /* 400 before the handler runs */
    }
    path = evhttp_uri_get_path(uri);
    status = mmc_meta_http_parse_target(path, evhttp_uri_get_query(uri), accept,
                                        &target);
    if (status != MF_OK) {
        if ((status != MF_ERR_INVALID && status != MF_ERR_NOMEM) ||
            path == NULL || strncmp(path, key_prefix, 5) != 0 ||
            target.page != MMC_META_HTTP_NO_PAGE || target.key != NULL) {
            __builtin_trap();
        }
        evhttp_uri_free(uri);
        return 0;
    }
    if (target.page == MMC_META_HTTP_KEY) {
        if (path == NULL || strncmp(path, key_prefix, 5) != 0 ||
            target.key == NULL || target.key_len < 1 ||
            target.key_len > MMC_KEY_MAX ||
            memchr(target.key, '\0', target.key_len) != NULL ||
            target.key[target.key_len] != '\0') {
            __builtin_trap();
        }
        fuzz_http_check_key(target.key, target.key_len);
    } else if (target.key != NULL ||
               (target.json && target.page != MMC_META_HTTP_HEALTH)) {
        __builtin_trap();
    }
    mmc_meta_http_target_free(&target);
    evhttp_uri_free(uri);
    return 0;
}
