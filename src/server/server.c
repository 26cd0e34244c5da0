/* The HTTP server (see server.h): listeners, h2o configuration, loop threads, signals. */
#include "server/server.h"
#include "jobs/jobs.h"
#include "auth/setup.h"
#include "core/log.h"
#include "server/filter.h"
#include "server/request.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ACCESS_LOG_FLUSH_BYTES 16384
#define ACCESS_LOG_FLUSH_MS 200
#define DRAIN_GRACE_MS 200
#define DEFAULT_WORKER_QUEUE 256
#define MAX_WORKERS 256
#define MAX_WORKER_QUEUE 1000000

enum { MSG_RELOAD, MSG_SHUTDOWN };

typedef struct control_msg_t {
    h2o_multithread_message_t super;
    int kind;
} control_msg_t;

static h2o_globalconf_t globalconf;

/* --- listeners --- */

static int resolve_bind(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res;
    char portstr[16];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "PULSE_BIND '%s' is not a usable address: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t len, int reuseport, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on port %d: %s%s", ntohs(((const struct sockaddr_in *)ss)->sin_port), strerror(errno),
                 errno == EADDRINUSE ? " (another process uses it: set PULSE_PORT or --port)" : "");
        close(fd);
        return -1;
    }
    return fd;
}

/* One SO_REUSEPORT socket per thread spreads connections evenly (PLATFORM-NOTES). A first
 * probe without SO_REUSEPORT makes sure no other process already serves the port: with
 * SO_REUSEPORT alone, two servers would silently share it. */
static int open_listeners(const pulse_config_t *cfg, int *fds, int n, int *port_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve_bind(cfg->bind, cfg->port, &ss, &len, err, errlen) != 0)
        return -1;
    if (cfg->port != 0) {
        int probe = open_listener(&ss, len, 0, err, errlen);
        if (probe < 0)
            return -1;
        close(probe);
    }
    for (int i = 0; i < n; i++) {
        if ((fds[i] = open_listener(&ss, len, 1, err, errlen)) < 0)
            return -1;
        if (i == 0) { /* port 0: the kernel picks one; the other threads take the same */
            getsockname(fds[0], (struct sockaddr *)&ss, &len);
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    return 0;
}

/* --- h2o configuration --- */

static void add_cache_header(h2o_pathconf_t *pathconf, const char *value)
{
    h2o_headers_command_t *cmds = calloc(2, sizeof(*cmds));
    cmds[0].cmd = H2O_HEADERS_CMD_SETIFEMPTY;
    cmds[0].name = &H2O_TOKEN_CACHE_CONTROL->buf;
    cmds[0].value = h2o_iovec_init(value, strlen(value));
    h2o_headers_register(pathconf, cmds);
}

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A static folder at `path`, falling back to the Lua application (problem+json 404). */
static void register_static(h2o_hostconf_t *host, const char *path, const char *dir, const char *cache_control)
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    pulse_filter_register(pc);
    if (dir_exists(dir))
        h2o_file_register(pc, dir, NULL, NULL, 0);
    pulse_request_register(pc);
    add_cache_header(pc, cache_control);
    h2o_compress_args_t gz = {.min_size = 256, .gzip = {.quality = 1}, .brotli = {.quality = -1}};
    h2o_compress_register(pc, &gz);
}

static void configure_h2o(const pulse_config_t *cfg)
{
    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("pulse"));
    /* h2o 2.2.5 buffers a whole body before the handler runs (past 32 MiB in an unlinked temp file,
     * h2o_socket_buffer_mmap_settings, not in the heap); above this cap h2o itself refuses with
     * 413. Below it, each route's own limit answers 413 problem+json: PULSE_MAX_BODY_BYTES for the
     * API, PULSE_MAX_UPLOAD_BYTES for the file routes. The cap is global in h2o 2.2.5, so a client
     * may make any route wait for an upload-sized body: it is spooled to disk, and refused after. */
    size_t cap = cfg->max_body_bytes * 4;
    if (cap < cfg->max_upload_bytes + (1u << 20)) /* room for the multipart framing around a file */
        cap = cfg->max_upload_bytes + (1u << 20);
    globalconf.max_request_entity_size = cap < (16u << 20) ? (16u << 20) : cap;
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);

    /* The API never touches the disk for static files: its own path, Lua only. */
    /* Answers h2o makes before any path is chosen (a body past the cap) use the fallback. */
    pulse_filter_register(&host->fallback_path);
    h2o_pathconf_t *api = h2o_config_register_path(host, "/api", 0);
    pulse_filter_register(api);
    pulse_request_register(api);
    h2o_compress_args_t gz = {.min_size = 1024, .gzip = {.quality = 1}, .brotli = {.quality = -1}};
    h2o_compress_register(api, &gz);

    /* h2o takes the first registered path that matches: /docs/assets before /docs. */
    register_static(host, "/docs/assets", cfg->docs_assets_dir, "public, max-age=86400");
    /* Operational routes get their own paths too, so they never look for a file first. */
    static const char *const lua_paths[] = {"/health", "/ready", "/openapi.json", "/docs", NULL};
    for (const char *const *p = lua_paths; *p; p++) {
        h2o_pathconf_t *pc = h2o_config_register_path(host, *p, 0);
        pulse_filter_register(pc);
        pulse_request_register(pc);
    }
    register_static(host, "/widget", cfg->widget_dir, "public, max-age=300");
    register_static(host, "/", cfg->dashboard_dir, "no-cache");
}

/* --- access log --- */

static void flush_access_log(pulse_loop_t *loop)
{
    if (loop->access_log.len) {
        pulse_log_write(loop->access_log.data, loop->access_log.len);
        pulse_buf_reset(&loop->access_log);
    }
    if (h2o_timeout_is_linked(&loop->log_flush))
        h2o_timeout_unlink(&loop->log_flush);
}

static void on_log_flush(h2o_timeout_entry_t *entry)
{
    flush_access_log(H2O_STRUCT_FROM_MEMBER(pulse_loop_t, log_flush, entry));
}

/* Lines are batched: one write(2) per 16 KiB or 200 ms instead of one per request. */
void pulse_server_access_log_added(pulse_loop_t *loop)
{
    if (loop->access_log.len >= ACCESS_LOG_FLUSH_BYTES)
        flush_access_log(loop);
    else if (!h2o_timeout_is_linked(&loop->log_flush))
        h2o_timeout_link(loop->ctx.loop, &loop->log_flush_timeout, &loop->log_flush);
}

/* --- loop threads --- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    pulse_loop_t *loop = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&loop->accept_ctx, sock);
}

static void reload(pulse_loop_t *loop)
{
    char err[2048];
    pulse_vm_t *vm = pulse_script_vm_create(loop->cfg, loop, err, sizeof(err));
    if (vm == NULL) {
        pulse_log(PULSE_LOG_ERROR, "reload_failed", "thread %d keeps the previous code: %s", loop->index, err);
        return;
    }
    pulse_vm_t *old = loop->vm;
    loop->vm = vm; /* new requests run the new code; running ones finish on the old VM */
    pulse_script_vm_retire(old);
    pulse_log(PULSE_LOG_INFO, "reloaded", "thread %d runs the reloaded lua/", loop->index);
}

static void begin_shutdown(pulse_loop_t *loop)
{
    if (loop->shutting_down)
        return;
    loop->shutting_down = 1;
    loop->shutdown_deadline = h2o_now(loop->ctx.loop) + (uint64_t)loop->cfg->shutdown_timeout_ms;
    if (loop->listener != NULL) {
        h2o_socket_read_stop(loop->listener);
        h2o_socket_close(loop->listener); /* stop accepting; the kernel refuses new connections */
        loop->listener = NULL;
    }
    h2o_context_request_shutdown(&loop->ctx); /* idle keep-alive connections close */
    pulse_request_shutdown_notify(loop);      /* sleeping handlers and open streams end */
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    pulse_loop_t *loop = H2O_STRUCT_FROM_MEMBER(pulse_loop_t, control, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        control_msg_t *msg = H2O_STRUCT_FROM_MEMBER(control_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->kind == MSG_RELOAD)
            reload(loop);
        else
            begin_shutdown(loop);
        free(msg);
    }
}

static void *loop_main(void *arg)
{
    pulse_loop_t *loop = arg;
    h2o_evloop_t *evloop = loop->ctx.loop;
    uint64_t drained_at = 0;
    for (;;) {
        h2o_evloop_run(evloop, loop->shutting_down ? 20 : INT32_MAX);
        if (!loop->shutting_down)
            continue;
        uint64_t now = h2o_now(evloop);
        if (loop->inflight == 0 && drained_at == 0)
            drained_at = now;
        /* a short grace after the last request lets h2o write the answers out */
        if (drained_at != 0 && now >= drained_at + DRAIN_GRACE_MS)
            break;
        if (now >= loop->shutdown_deadline) {
            pulse_log(PULSE_LOG_WARN, "shutdown_timeout", "thread %d abandons %zu requests still running", loop->index,
                      loop->inflight);
            break;
        }
    }
    /* Requests still waiting on the database get their answer (503) now; give h2o a moment to
     * write those out before the thread ends. */
    pulse_pg_pool_destroy(loop->pg);
    loop->pg = NULL;
    uint64_t until = h2o_now(evloop) + DRAIN_GRACE_MS;
    while (loop->inflight > 0 && h2o_now(evloop) < until)
        h2o_evloop_run(evloop, 10);
    if (drained_at == 0) { /* abandoned requests: their answers may still be in the socket buffers */
        until = h2o_now(evloop) + 50;
        while (h2o_now(evloop) < until)
            h2o_evloop_run(evloop, 10);
    }
    /* works still out come back (cancelled or finished) and resume their coroutines */
    pulse_workers_inbox_destroy(loop->inbox);
    loop->inbox = NULL;
    flush_access_log(loop);
    return NULL;
}

/* Runs on the loop's own thread (see loop_thread); loop is zeroed memory except its thread id. */
static int loop_init(pulse_loop_t *loop, int index, const pulse_config_t *cfg, const char *conninfo, int fd,
                     pulse_workers_t *workers, char *err, size_t errlen)
{
    loop->index = index;
    loop->cfg = cfg;
    loop->listen_fd = fd;
    h2o_evloop_t *evloop = h2o_evloop_create();
    h2o_context_init(&loop->ctx, evloop, &globalconf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = globalconf.hosts;
    h2o_timeout_init(evloop, &loop->request_timeout, (uint64_t)cfg->request_timeout_ms);
    h2o_timeout_init(evloop, &loop->stream_timeout, (uint64_t)cfg->stream_max_seconds * 1000);
    h2o_linklist_init_anchor(&loop->sleepers);
    h2o_timeout_init(evloop, &loop->log_flush_timeout, ACCESS_LOG_FLUSH_MS);
    loop->log_flush.cb = on_log_flush;
    loop->queue = h2o_multithread_create_queue(evloop);
    h2o_multithread_register_receiver(loop->queue, &loop->control, on_control);
    loop->workers = workers;
    loop->inbox = pulse_workers_inbox_create(evloop);
    if ((loop->vm = pulse_script_vm_create(cfg, loop, err, errlen)) == NULL)
        return -1;
    loop->pg = pulse_pg_pool_create(evloop, conninfo, cfg->db_pool, cfg->statement_timeout_ms, cfg->db_role);
    loop->listener = h2o_evloop_socket_create(evloop, fd, H2O_SOCKET_FLAG_DONT_READ);
    loop->listener->data = loop;
    h2o_socket_read_start(loop->listener, on_accept);
    return 0;
}

/* What a loop thread needs to set itself up, and how it went (the main thread waits on done). */
typedef struct loop_start_t {
    pulse_loop_t *loop;
    int index, fd;
    const pulse_config_t *cfg;
    const char *conninfo;
    pulse_workers_t *workers;
    sem_t done;
    int rc;
    char err[2048];
} loop_start_t;

/* A loop is built on the thread that runs it: h2o's event loop keeps per-thread state (the
 * allocator behind every socket's read buffer is thread-local), so sockets and the context made
 * on the main thread would have the loops share the main thread's allocator without a lock, which
 * AddressSanitizer caught as a use-after-free when every loop woke at once (SIGHUP). */
static void *loop_thread(void *arg)
{
    loop_start_t *s = arg;
    pulse_loop_t *loop = s->loop;
    int ok = loop_init(loop, s->index, s->cfg, s->conninfo, s->fd, s->workers, s->err, sizeof(s->err)) == 0;
    s->rc = ok ? 0 : -1;
    sem_post(&s->done); /* s belongs to the main thread from here */
    return ok ? loop_main(loop) : NULL;
}

/* Starts the n loop threads and waits until each has built its loop. 0, or -1 with the first
 * failure in err (the threads that did start die with the process). */
static int start_loops(pulse_loop_t *loops, int n, const pulse_config_t *cfg, const char *conninfo, const int *fds,
                       pulse_workers_t *workers, char *err, size_t errlen)
{
    loop_start_t *starts = calloc((size_t)n, sizeof(*starts));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        starts[i] =
            (loop_start_t){.loop = &loops[i], .index = i, .fd = fds[i], .cfg = cfg, .conninfo = conninfo, .workers = workers};
        sem_init(&starts[i].done, 0, 0);
        pthread_create(&loops[i].thread, NULL, loop_thread, &starts[i]);
    }
    for (int i = 0; i < n; i++) {
        while (sem_wait(&starts[i].done) != 0 && errno == EINTR)
            ;
        if (starts[i].rc != 0 && rc == 0) {
            snprintf(err, errlen, "%s", starts[i].err);
            rc = -1;
        }
        sem_destroy(&starts[i].done);
    }
    free(starts);
    return rc;
}

/* A positive integer from the environment within [1, max], or fallback when unset. */
static int env_count(const char *name, long fallback, long max, long *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = fallback;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > max) {
        snprintf(err, errlen, "%s must be an integer from 1 to %ld (got '%s')", name, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* PULSE_WORKERS threads (default: half the cores, at least 1), PULSE_WORKER_QUEUE works waiting. */
static pulse_workers_t *create_workers(char *err, size_t errlen)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN), threads, queue;
    long fallback = cores / 2 < 1 ? 1 : cores / 2;
    if (env_count("PULSE_WORKERS", fallback, MAX_WORKERS, &threads, err, errlen) != 0 ||
        env_count("PULSE_WORKER_QUEUE", DEFAULT_WORKER_QUEUE, MAX_WORKER_QUEUE, &queue, err, errlen) != 0)
        return NULL;
    pulse_log(PULSE_LOG_INFO, "workers", "worker pool: threads=%ld queue=%ld", threads, queue);
    return pulse_workers_create((int)threads, (size_t)queue);
}

static void send_control(pulse_loop_t *loops, int n, int kind)
{
    for (int i = 0; i < n; i++) {
        control_msg_t *msg = calloc(1, sizeof(*msg));
        msg->kind = kind;
        h2o_multithread_send_message(&loops[i].control, &msg->super);
    }
}

int pulse_server_run(const pulse_config_t *cfg, const char *conninfo)
{
    char err[2048];
    int n = cfg->threads, port = cfg->port;
    int *fds = calloc((size_t)n, sizeof(int));
    pulse_loop_t *loops = calloc((size_t)n, sizeof(pulse_loop_t));

    /* Signals are taken by the main thread only, with sigwait: block them before any thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    configure_h2o(cfg);
    /* Before any thread: the blocklist and key ring are read without locks afterwards. */
    if (pulse_auth_setup(strcmp(cfg->env, "production") == 0, err, sizeof(err)) != 0) {
        pulse_log(PULSE_LOG_ERROR, "startup_failed", "%s", err);
        fprintf(stderr, "pulse serve: %s\n", err);
        return 1;
    }
    pulse_workers_t *workers = create_workers(err, sizeof(err));
    if (workers == NULL) {
        pulse_log(PULSE_LOG_ERROR, "startup_failed", "%s", err);
        fprintf(stderr, "pulse serve: %s\n", err);
        return 1;
    }
    if (open_listeners(cfg, fds, n, &port, err, sizeof(err)) != 0) {
        pulse_log(PULSE_LOG_ERROR, "startup_failed", "%s", err);
        fprintf(stderr, "pulse serve: %s\n", err);
        return 1;
    }
    if (start_loops(loops, n, cfg, conninfo, fds, workers, err, sizeof(err)) != 0) {
        pulse_log(PULSE_LOG_ERROR, "startup_failed", "%s", err);
        fprintf(stderr, "pulse serve: %s\n", err);
        return 1;
    }
    pulse_jobs_t *jobs = pulse_jobs_start(cfg, conninfo, err, sizeof(err));
    if (jobs == NULL) {
        pulse_log(PULSE_LOG_ERROR, "startup_failed", "%s", err);
        fprintf(stderr, "pulse serve: %s\n", err);
        return 1;
    }

    const char *shown = strcmp(cfg->bind, "0.0.0.0") == 0 ? "localhost" : cfg->bind;
    int v6 = strchr(shown, ':') != NULL;
    printf("pulse: serving on http://%s%s%s:%d/ (%d threads, pid %d)\n", v6 ? "[" : "", shown, v6 ? "]" : "", port, n,
           (int)getpid());
    fflush(stdout);
    pulse_log(PULSE_LOG_INFO, "listening", "http://%s:%d/ threads=%d", cfg->bind, port, n);

    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            pulse_log(PULSE_LOG_INFO, "reload", "SIGHUP: reloading lua/");
            send_control(loops, n, MSG_RELOAD);
            continue;
        }
        pulse_log(PULSE_LOG_INFO, "shutdown", "%s: finishing in-flight requests (at most %d ms)",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->shutdown_timeout_ms);
        send_control(loops, n, MSG_SHUTDOWN);
        /* queued hashes are handed back cancelled (503) instead of delaying the drain */
        pulse_workers_shutdown(workers);
        /* while the loops drain: running imports roll back and go back to the queue */
        pulse_jobs_stop(jobs);
        break;
    }
    for (int i = 0; i < n; i++)
        pthread_join(loops[i].thread, NULL);
    pulse_workers_destroy(workers);
    pulse_auth_teardown();
    pulse_log(PULSE_LOG_INFO, "stopped", "every loop thread has stopped; exiting");
    return 0;
}
