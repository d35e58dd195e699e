/* Diagnostic logging to stderr (not the access log): level-checked before
 * formatting, safe from any thread. */
#ifndef TURNOUT_LOG_H
#define TURNOUT_LOG_H

enum tn_log_level { TN_LOG_ERR, TN_LOG_WARN, TN_LOG_INFO, TN_LOG_DEBUG };

extern int tn_log_level;

void tn_log_emit(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tn_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= tn_log_level)                                                               \
            tn_log_emit((level), __VA_ARGS__);                                                     \
    } while (0)

/* Logs the OpenSSL error queue (and clears it) at level ERR, prefixed by what. */
void tn_log_ssl_errors(const char *what);

#endif
