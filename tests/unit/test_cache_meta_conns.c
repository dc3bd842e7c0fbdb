/*
 * Unit tests of the meta service's ports under connection pressure:
 *   - out of descriptors: a service in a forked child with a soft limit of
 *     64 open files gets far more connections on its HTTP and RPC ports;
 *     clients connected before are still served, the child logs a bounded
 *     number of accept failures (one per listener per interval, counted
 *     by its log sink, none from libevent itself), and once the crowd
 *     leaves, new clients get in again;
 *   - connections that never say HELLO may send small frames only, a
 *     greeted one large frames;
 *   - idle_timeout_ms closes connections that send nothing, or stall in
 *     the middle of a frame or an HTTP request, on all three ports.
 * Waits are hang guards on events, never timing assertions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tk_group.h"
#include "tk_log.h"
#include "tk_proc.h"
#include "tk_sock.h"
#include "tw_mmc.h"

#include "cache/meta/meta.h"
#include "net/net.h"
#include "util/log.h"
#include "util/misc.h"
#include "util/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CALL_MS 30000
#define WAIT_MS 30000
/* The child's soft limit of open files, and how many connections each
 * flooded port gets: far more than the child can accept. */
#define CHILD_NOFILE 64
#define FLOOD_CONNS  150

static tk_log_t test_conns_log;
static int test_conns_fds;

static int test_conns_setup(void **state)
{
    (void)state;
    tk_log_start(&test_conns_log, 0);
    mf_log_set_level(MF_LOG_WARN);
    test_conns_fds = tk_fd_count();
    return 0;
}

static int test_conns_teardown(void **state)
{
    int fds = tk_fd_count();

    (void)state;
    tk_log_stop(&test_conns_log);
    if (fds != test_conns_fds) {
        print_error("%d file descriptors before, %d after\n", test_conns_fds,
                    fds);
        return -1;
    }
    return tk_log_check_clean(&test_conns_log);
}

/* ---- a meta service ---- */

static void test_conns_config(mmc_meta_config_t *cfg)
{
    mmc_meta_config_init(cfg);
    mf_strlcpy(cfg->addr, "127.0.0.1", sizeof(cfg->addr));
    cfg->port = 0;
    cfg->store_port = 0;
    cfg->http_port = 0;
    cfg->http_enable = true;
    cfg->max_ranks = 8;
    cfg->max_segment_size = 256ull << 20;
    cfg->host_base = 0x200000000000ull;
}

/* ---- raw sockets ---- */

static int test_conns_connect(uint16_t port)
{
    int fd = tk_sock_connect("127.0.0.1", port);

    assert_true(fd >= 0);
    return fd;
}

/* True when the peer closes fd (EOF or reset) within WAIT_MS; what it
 * sends before is read and dropped. */
static bool test_conns_closed(int fd)
{
    return tk_sock_wait_closed(fd, WAIT_MS, NULL);
}

/*
 * GET /health on fd (kept alive).  Returns the HTTP status, or -1 when
 * the connection fails or no whole response comes within WAIT_MS.
 */
static int test_conns_http_health(int fd)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: test\r\n\r\n";
    uint64_t deadline = mf_time_ms() + WAIT_MS;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[4096], *end, *cl;
    size_t got = 0, want = 0;
    int code = -1;
    ssize_t n;

    if (!tk_sock_send_all(fd, req, sizeof(req) - 1)) {
        return -1;
    }
    while (mf_time_ms() < deadline) {
        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        if ((code < 0) && (sscanf(buf, "HTTP/1.1 %d", &code) != 1)) {
            return -1;
        }
        cl = strstr(buf, "Content-Length: ");
        want = (size_t)(end + 4 - buf) +
               ((cl != NULL) ? strtoul(cl + 16, NULL, 10) : 0);
        if (got >= want) {
            return code;
        }
    }
    return -1;
}

/* ---- RPC clients ---- */

/* A call's outcome: the transport's failure, else the response status. */
static mf_status_t test_conns_call(mf_net_client_t *c, uint16_t op,
                                   const void *body, size_t len)
{
    mf_net_resp_t resp;
    mf_status_t status;

    status = mf_net_client_call(c, op, body, len, CALL_MS, &resp);
    if (status == MF_OK) {
        status = resp.status;
        mf_net_resp_free(&resp);
    }
    return status;
}

static mf_status_t test_conns_hello(mf_net_client_t *c)
{
    mf_status_t status;
    mf_wbuf_t w;

    mf_wbuf_init(&w);
    tw_mmc_hello_encode(&w, "test");
    assert_int_equal(mf_wbuf_status(&w), MF_OK);
    status = test_conns_call(c, MMC_OP_HELLO, w.data, w.len);
    mf_wbuf_free(&w);
    return status;
}

static mf_net_client_t *test_conns_client(uint16_t port)
{
    mf_net_client_params_t p;
    mf_net_client_t *c = NULL;

    memset(&p, 0, sizeof(p));
    p.host = "127.0.0.1";
    p.port = port;
    p.max_body = MMC_PROTO_MAX_BODY;
    if (mf_net_client_create(&p, &c) != MF_OK) {
        return NULL;
    }
    return c;
}

/* ---- out of descriptors ---- */

typedef struct test_conns_ports {
    uint16_t rpc;
    uint16_t http;
} test_conns_ports_t;

/* In the child only: what the service logs; the parent waits for the
 * first failed accept. */
static tk_log_t child_log;
static int child_notify_fd = -1;

/* The service with few descriptors: reports its ports on ready_fd, runs
 * until done_fd closes, then checks what it logged. */
static int test_conns_child(int ready_fd, int done_fd)
{
    struct rlimit rl;
    mmc_meta_config_t cfg;
    test_conns_ports_t ports;
    mmc_meta_t *meta = NULL;
    uint64_t start, elapsed, allowed;
    int accepts, libevent;
    char byte;

    TK_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = CHILD_NOFILE;
    TK_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    tk_log_start(&child_log, TK_LOG_ECHO);
    accepts = tk_log_watch(&child_log, "accept() failed", child_notify_fd);
    libevent = tk_log_watch(&child_log, "Error from accept", -1);
    mf_log_set_level(MF_LOG_WARN);
    test_conns_config(&cfg);
    cfg.idle_timeout_ms = 600000; /* not what this test is about */
    TK_CHECK_OK(mmc_meta_start(&cfg, &meta));
    ports.rpc = mmc_meta_port(meta);
    ports.http = mmc_meta_http_port(meta);
    start = mf_time_ms();
    TK_CHECK(write(ready_fd, &ports, sizeof(ports)) == sizeof(ports));
    while ((read(done_fd, &byte, 1) < 0) && (errno == EINTR)) {
    }
    elapsed = mf_time_ms() - start;
    mmc_meta_stop(meta);

    /* one message per listener (RPC, store, HTTP) per interval at most */
    allowed = 3 * (1 + elapsed / MF_SOCK_ACCEPT_LOG_MS);
    fprintf(stderr,
            "child: %d accept failure messages in %llu ms (at most "
            "%llu), %d from libevent\n",
            tk_log_watched(&child_log, accepts), (unsigned long long)elapsed,
            (unsigned long long)allowed, tk_log_watched(&child_log, libevent));
    TK_CHECK(tk_log_watched(&child_log, accepts) >= 1);
    TK_CHECK((uint64_t)tk_log_watched(&child_log, accepts) <= allowed);
    TK_CHECK(tk_log_watched(&child_log, libevent) == 0);
    return 0;
}

/* Reads len bytes from fd (a pipe) within WAIT_MS. */
static bool test_conns_read(int fd, void *buf, size_t len)
{
    return tk_sock_read_exact(fd, buf, len, WAIT_MS);
}

static void test_conns_out_of_fds(void **state)
{
    int ready[2], done[2], notify[2], flood[2 * FLOOD_CONNS], http_fd, nflood;
    uint64_t deadline;
    test_conns_ports_t ports;
    mf_net_client_t *c;
    mf_status_t status;
    char byte;
    pid_t pid;
    int code;

    (void)state;
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(done, O_CLOEXEC), 0);
    assert_int_equal(pipe2(notify, O_CLOEXEC), 0);
    pid = tk_proc_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(done[1]);
        close(notify[0]);
        child_notify_fd = notify[1];
        _exit(test_conns_child(ready[1], done[0]));
    }
    close(ready[1]);
    close(done[0]);
    close(notify[1]);
    assert_true(test_conns_read(ready[0], &ports, sizeof(ports)));

    /* clients that were there before the crowd */
    c = test_conns_client(ports.rpc);
    assert_non_null(c);
    assert_int_equal(test_conns_hello(c), MF_OK);
    http_fd = test_conns_connect(ports.http);
    assert_int_equal(test_conns_http_health(http_fd), 200);

    /* far more connections than the child has descriptors */
    for (nflood = 0; nflood < FLOOD_CONNS; nflood++) {
        flood[nflood] = test_conns_connect(ports.http);
    }
    for (; nflood < 2 * FLOOD_CONNS; nflood++) {
        flood[nflood] = test_conns_connect(ports.rpc);
    }
    assert_true(test_conns_read(notify[0], &byte, 1));

    /* the established ones are served */
    assert_int_equal(test_conns_call(c, MMC_OP_PING, NULL, 0), MF_OK);
    assert_int_equal(test_conns_http_health(http_fd), 200);

    /* once the crowd leaves, newcomers get in (those that arrive while
     * the child still runs out may be turned away: retry) */
    for (int i = 0; i < nflood; i++) {
        close(flood[i]);
    }
    mf_net_client_destroy(c);
    deadline = mf_time_ms() + WAIT_MS;
    do {
        c = test_conns_client(ports.rpc);
        status = (c != NULL) ? test_conns_hello(c) : MF_ERR_CONN_REFUSED;
        if (status != MF_OK) {
            mf_net_client_destroy(c);
            c = NULL;
            usleep(10000);
        }
    } while ((status != MF_OK) && (mf_time_ms() < deadline));
    assert_int_equal(status, MF_OK);
    assert_int_equal(test_conns_call(c, MMC_OP_PING, NULL, 0), MF_OK);
    mf_net_client_destroy(c);
    close(http_fd);
    deadline = mf_time_ms() + WAIT_MS;
    do {
        http_fd = test_conns_connect(ports.http);
        code = test_conns_http_health(http_fd);
        close(http_fd);
    } while ((code != 200) && (mf_time_ms() < deadline));
    assert_int_equal(code, 200);

    close(done[1]); /* the child stops and checks its log */
    close(ready[0]);
    close(notify[0]);
    assert_int_equal(tk_proc_wait(pid, 60000), 0);
}

/* ---- connections before HELLO ---- */

/* Until HELLO, a frame over 64 KiB drops the connection before any of its
 * body is awaited; after HELLO, up to MMC_PROTO_MAX_BODY is taken. */
static void test_conns_untrusted(void **state)
{
    size_t big_len = MF_NET_DEFAULT_UNTRUSTED_MAX_BODY + 1;
    uint8_t *big = calloc(1, big_len);
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    mf_net_client_t *c;

    (void)state;
    assert_non_null(big);
    test_conns_config(&cfg);
    cfg.http_enable = false;
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);

    c = test_conns_client(mmc_meta_port(meta));
    assert_non_null(c);
    /* small frames before HELLO are answered (and refused) */
    assert_int_equal(test_conns_call(c, MMC_OP_PING, big, 16), MF_ERR_STATE);
    /* a large one drops the connection */
    assert_int_equal(test_conns_call(c, MMC_OP_PING, big, big_len),
                     MF_ERR_CONN_RESET);
    /* greeted (on a new connection), the same frame is taken: a PING
     * with a body is malformed, but it is answered */
    assert_int_equal(test_conns_hello(c), MF_OK);
    assert_int_equal(test_conns_call(c, MMC_OP_PING, big, big_len),
                     MF_ERR_PROTO);
    assert_int_equal(test_conns_call(c, MMC_OP_PING, NULL, 0), MF_OK);
    mf_net_client_destroy(c);
    mmc_meta_stop(meta);
    free(big);
}

/* ---- idle connections ---- */

/* idle_timeout_ms closes what sends nothing on every port: a connection
 * that never sends, one stalled in a frame, one stalled in an HTTP
 * request, and an HTTP connection kept alive after a response. */
static void test_conns_idle(void **state)
{
    static const char partial_http[] = "GET /health HTTP/1.1\r\nHost: t";
    mf_wbuf_t hello, frame;
    mf_net_hdr_t hdr;
    mmc_meta_config_t cfg;
    mmc_meta_t *meta = NULL;
    uint16_t ports[3];
    int fd;

    (void)state;
    test_conns_config(&cfg);
    assert_int_equal(mmc_meta_config_set(&cfg, "idle_timeout_ms", "300ms"),
                     MF_OK);
    assert_int_equal(mmc_meta_start(&cfg, &meta), MF_OK);
    ports[0] = mmc_meta_port(meta);
    ports[1] = mmc_meta_store_port(meta);
    ports[2] = mmc_meta_http_port(meta);
    /* a HELLO frame cut in its body */
    mf_wbuf_init(&hello);
    tw_mmc_hello_encode(&hello, "test");
    hdr = tw_req_hdr(MMC_OP_HELLO, 1, (uint32_t)hello.len);
    mf_wbuf_init(&frame);
    tw_frame_encode(&frame, &hdr, hello.data, hello.len);
    assert_int_equal(mf_wbuf_status(&frame), MF_OK);

    for (int i = 0; i < 3; i++) {
        fd = test_conns_connect(ports[i]);
        assert_true(test_conns_closed(fd));
        close(fd);
    }
    for (int i = 0; i < 2; i++) {
        fd = test_conns_connect(ports[i]);
        assert_true(tk_sock_send_all(fd, frame.data, frame.len - 4));
        assert_true(test_conns_closed(fd));
        close(fd);
    }
    fd = test_conns_connect(ports[2]);
    assert_true(tk_sock_send_all(fd, partial_http, sizeof(partial_http) - 1));
    assert_true(test_conns_closed(fd));
    close(fd);
    fd = test_conns_connect(ports[2]);
    assert_int_equal(test_conns_http_health(fd), 200);
    assert_true(test_conns_closed(fd));
    close(fd);
    mf_wbuf_free(&hello);
    mf_wbuf_free(&frame);
    mmc_meta_stop(meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: the process has no thread of its own to fork with */
        cmocka_unit_test_setup_teardown(test_conns_out_of_fds, test_conns_setup,
                                        test_conns_teardown),
        cmocka_unit_test_setup_teardown(test_conns_untrusted, test_conns_setup,
                                        test_conns_teardown),
        cmocka_unit_test_setup_teardown(test_conns_idle, test_conns_setup,
                                        test_conns_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return tk_group_run(tests, NULL, NULL);
}
