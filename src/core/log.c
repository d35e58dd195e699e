/* Diagnostic log on stderr: one line per message with a UTC timestamp and
 * level. stderr writes of one line are atomic enough for a line-oriented
 * log; the access log has its own writer (accesslog.c). */
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "turnout/log.h"

int tn_log_level = TN_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void tn_log_emit(int level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ turnout[%s]: ",
                          (int)(tv.tv_usec / 1000), level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = strlen(line);
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

void tn_log_ssl_errors(const char *what)
{
    unsigned long e;
    char buf[256];

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        tn_log(TN_LOG_ERR, "%s: %s", what, buf);
    }
}
