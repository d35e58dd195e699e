/* libFuzzer target for the configuration loader: any bytes go through
 * tn_conf_load_string (YAML parse, schema walk, second pass); the result
 * or the error text is freed. Built with --enable-fuzzing, and replayed
 * over tests/fuzz/corpus/conf by `make check` (replay.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = NULL;
    struct tn_conf *c;

    if (size > 64 * 1024)
        return 0; /* bigger inputs only slow the search down */
    c = tn_conf_load_string("fuzz.yaml", (const char *)data, size, &err);
    if (c) {
        /* a loaded config must be consistent: resolved indexes in range */
        for (size_t i = 0; i < c->nroutes; i++) {
            const struct tn_conf_route *r = &c->routes[i];

            if (r->backend_idx >= (int)c->nbackends || r->from_idx >= (int)c->nbackends ||
                r->to_idx >= (int)c->nbackends || (r->has_shift && r->from_idx < 0) ||
                (!r->has_shift && r->backend_idx < 0) || r->percent_x100 > 10000)
                abort();
        }
        if (err || !c->nlistens || !c->nbackends || !c->nroutes)
            abort();
    } else if (!err || !*err || err[strlen(err) - 1] != '\n') {
        abort();
    }
    tn_conf_free(c);
    free(err);
    return 0;
}
