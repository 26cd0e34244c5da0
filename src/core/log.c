/* Structured JSON logs on stderr. */
#include "core/log.h"
#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pulse_log_level_t min_level = PULSE_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

int pulse_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            min_level = (pulse_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int pulse_log_enabled(pulse_log_level_t level)
{
    return level >= min_level;
}

/* The formatted second is cached per thread: the access log asks for it on every request. */
void pulse_log_timestamp(pulse_buf_t *b)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[80];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        cached_sec = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', 0};
    pulse_buf_append(b, cached, 19);
    pulse_buf_append(b, frac, 5);
}

void pulse_log_write(const char *lines, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, lines, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing log */
        }
        lines += n;
        len -= (size_t)n;
    }
}

void pulse_log(pulse_log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < min_level)
        return;
    pulse_buf_t msg = PULSE_BUF_INIT, line = PULSE_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    pulse_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    pulse_buf_puts(&line, "{\"ts\":\"");
    pulse_log_timestamp(&line);
    pulse_buf_printf(&line, "\",\"level\":\"%s\",\"event\":\"", level_names[level]);
    pulse_buf_json_escape(&line, event, strlen(event));
    pulse_buf_puts(&line, "\",\"msg\":\"");
    if (msg.len)
        pulse_buf_json_escape(&line, msg.data, msg.len);
    pulse_buf_puts(&line, "\"}\n");
    pulse_log_write(line.data, line.len);
    pulse_buf_free(&msg);
    pulse_buf_free(&line);
}
