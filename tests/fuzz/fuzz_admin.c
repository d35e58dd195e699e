/* libFuzzer target for the admin command language: each input is split
 * into lines run through tn_ctl_exec against a control plane built from a
 * small fixed configuration (no Redis, no state file, no health checks).
 * Every answer must be whole lines, and an ERR answer exactly one line.
 * Built with --enable-fuzzing, and replayed over tests/fuzz/corpus/admin by
 * `make check` (replay.c). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control.h"
#include "turnout/log.h"
#include "turnout/overlay.h"
#include "turnout/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "listen: [{address: \"127.0.0.1:1\"}]\n"
    "backends:\n"
    "  legacy: {servers: [{address: \"127.0.0.1:2\", name: l1}, \"127.0.0.1:3\"]}\n"
    "  new: {servers: [{address: \"127.0.0.1:4\", name: n1}]}\n"
    "routes:\n"
    "  - {name: beta, match: {path: \"^/beta\"}, backend: new}\n"
    "  - {name: default, shift: {from: legacy, to: new, percent: 10}}\n";

static void publish(void *arg, struct tn_overlay *ov)
{
    (void)arg;
    tn_overlay_unref(ov);
}

static int reload(void *arg, char **err)
{
    (void)arg;
    *err = strdup("fuzz.yaml:1:1: reload is not available here\n");
    return TN_ERR;
}

/* Checks one answer: whole lines; an error is one line. */
static void check_answer(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    char *a;

    if (!n) /* an empty answer (a blank line) */
        return;
    a = (char *)evbuffer_pullup(out, -1);
    if (a[n - 1] != '\n')
        abort();
    if (n >= 4 && !memcmp(a, "ERR ", 4) && memchr(a, '\n', n) != a + n - 1)
        abort();
    if (memchr(a, '\0', n))
        abort();
    evbuffer_drain(out, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    struct tn_ctl_hooks hooks = {publish, reload, NULL};
    struct evbuffer *out = evbuffer_new();
    struct tn_plan *plan;
    struct tn_conf *conf;
    struct tn_ctl *c;
    char *err = NULL, line[8192];
    size_t i = 0, nlines = 0;

    if (size > 16 * 1024 || !out)
        return 0;
    if (!base) {
        base = event_base_new();
        tn_log_level = -1; /* events are logged: keep the fuzzer quiet */
    }
    conf = tn_conf_load_string("fuzz.yaml", config, sizeof(config) - 1, &err);
    if (!conf || !(plan = tn_plan_new(conf, 1, &err)))
        abort();
    c = tn_ctl_new(base, plan, &hooks);
    while (i < size && nlines++ < 64) {
        size_t len = 0;

        while (i < size && data[i] != '\n') {
            if (len < sizeof(line) - 1 && data[i])
                line[len++] = (char)data[i];
            i++;
        }
        i++;
        line[len] = '\0';
        tn_ctl_exec(c, line, "fuzz", out);
        check_answer(out);
    }
    tn_ctl_free(c);
    evbuffer_free(out);
    free(err);
    return 0;
}
