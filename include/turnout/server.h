/* The process: loads the configuration, builds and publishes plans, binds
 * listeners, runs the workers, handles signals (HUP reload, TERM drain,
 * INT stop, USR1 reopen logs). Control (main) thread. */
#ifndef TURNOUT_SERVER_H
#define TURNOUT_SERVER_H

/* Runs turnout with the configuration file path until it is stopped.
 * Returns the process exit status. */
int tn_server_run(const char *path);

/* Checks the configuration file (load + plan build) like `turnout -t`.
 * Returns 0 when valid, 1 otherwise, printing errors on stderr. */
int tn_server_check(const char *path);

#endif
