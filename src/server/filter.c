/* Request id, access log and problem+json for answers made outside the Lua application. */
#include "server/filter.h"
#include "core/buf.h"
#include "server/request.h"
#include "server/server.h"

#include <string.h>
#include <sys/time.h>

typedef struct problem_ostream_t {
    h2o_ostream_t super;
    h2o_iovec_t body;
} problem_ostream_t;

/* h2o's own body text is dropped; the problem body goes out with the final chunk. */
static void problem_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    problem_ostream_t *os = (problem_ostream_t *)self;
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(&os->super, req, NULL, 0, state);
        return;
    }
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_ostream_send_next(&os->super, req, is_head ? NULL : &os->body, is_head ? 0 : 1, state);
}

static const char *problem_code(int status, const char **title, const char **detail)
{
    switch (status) {
    case 400:
        *title = "Bad Request";
        *detail = "The request could not be read.";
        return "bad_request";
    case 403:
        *title = "Forbidden";
        *detail = "This path cannot be served.";
        return "forbidden";
    case 404:
        *title = "Not Found";
        *detail = "No such resource.";
        return "not_found";
    case 405:
        *title = "Method Not Allowed";
        *detail = "Static files answer GET and HEAD only.";
        return "method_not_allowed";
    case 413:
        *title = "Content Too Large";
        *detail = "The request body is larger than this server accepts.";
        return "body_too_large";
    case 416:
        *title = "Range Not Satisfiable";
        *detail = "The requested range is outside the file.";
        return "range_not_satisfiable";
    case 503:
        *title = "Service Unavailable";
        *detail = "The server is busy; try again shortly.";
        return "unavailable";
    default:
        *title = "Error";
        *detail = "The request failed.";
        return status >= 500 ? "internal_error" : "bad_request";
    }
}

/* h2o's generated errors are text/plain (or have no type); files served with an error status
 * (none today) would keep theirs. */
static int is_h2o_error(h2o_req_t *req)
{
    if (req->res.status < 400)
        return 0;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return ct < 0 || h2o_memis(req->res.headers.entries[ct].value.base, 10, H2O_STRLIT("text/plain"));
}

/* Returns the slot where the next output stream goes (after ours). */
static h2o_ostream_t **to_problem(h2o_req_t *req, const char *id, h2o_ostream_t **slot)
{
    const char *title, *detail, *code = problem_code(req->res.status, &title, &detail);
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_puts(&b, "{\"type\":\"about:blank\",\"title\":\"");
    pulse_buf_puts(&b, title);
    pulse_buf_puts(&b, "\",\"status\":");
    pulse_buf_put_uint(&b, (uint64_t)req->res.status);
    pulse_buf_puts(&b, ",\"code\":\"");
    pulse_buf_puts(&b, code);
    pulse_buf_puts(&b, "\",\"detail\":\"");
    pulse_buf_puts(&b, detail);
    pulse_buf_puts(&b, "\",\"request_id\":\"");
    pulse_buf_json_escape(&b, id, strlen(id));
    pulse_buf_puts(&b, "\"}");
    problem_ostream_t *os = (problem_ostream_t *)h2o_add_ostream(req, sizeof(*os), slot);
    os->super.do_send = problem_do_send;
    os->body = h2o_strdup(&req->pool, b.data, b.len);
    pulse_buf_free(&b);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/problem+json"), 1);
    req->res.content_length = os->body.len;
    return &os->super.next;
}

static uint64_t elapsed_ns(h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
    return us > 0 ? (uint64_t)us * 1000 : 0;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    /* The Lua application's answers carry their id already and are logged by request.c. */
    if (h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) >= 0) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    pulse_loop_t *loop = (pulse_loop_t *)req->conn->ctx;
    char id[48];
    pulse_request_make_id(loop, req, id, sizeof(id));
    h2o_iovec_t idv = h2o_strdup(&req->pool, id, strlen(id));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, idv.base, idv.len);
    if (is_h2o_error(req))
        slot = to_problem(req, id, slot);
    size_t bytes = req->res.content_length == SIZE_MAX ? 0 : req->res.content_length;
    pulse_request_access_log(loop, req, id, req->res.status, bytes, elapsed_ns(req), NULL);
    h2o_setup_next_ostream(req, slot);
}

void pulse_filter_register(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
}
