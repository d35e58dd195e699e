/* The access log: one JSON object per exchange. Workers format lines into
 * their own shard; a writer thread moves them to the file, so a slow disk
 * never blocks a worker. */
#ifndef TURNOUT_ACCESSLOG_H
#define TURNOUT_ACCESSLOG_H

#include <stdint.h>

struct tn_stream;
struct tn_accesslog_shard;

/* Opens target ("off", "stdout" or a path) and starts the writer thread.
 * Returns TN_OK or TN_ERR with *why. Control thread. */
int tn_accesslog_open(const char *target, const char **why);

/* Returns a new shard for one worker, or NULL when logging is off. */
struct tn_accesslog_shard *tn_accesslog_shard_new(void);

/* Logs stream st (its request, attempts and outcome) into shard s (NULL: off). Worker thread. */
void tn_accesslog_write(struct tn_accesslog_shard *s, const struct tn_stream *st);

/* Asks the writer to reopen the file (SIGUSR1). Any thread. */
void tn_accesslog_reopen(void);

/* Flushes every shard, stops the writer and frees shards. Control thread,
 * after the workers stopped. */
void tn_accesslog_close(void);

#endif
