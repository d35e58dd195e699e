/* Classification types: the facts modules find about a request. */
#ifndef TURNOUT_MODULE_T_H
#define TURNOUT_MODULE_T_H

#include <stdint.h>

/* What a lookup found; empty strings when the database has no such data. */
struct tn_geo {
    char country[3];     /* ISO 3166-1 alpha-2, upper case: "DE" */
    char continent[3];   /* continent code: "EU" */
    char subdivision[4]; /* first subdivision's ISO 3166-2 code without the country: "BY" */
};

/* Facts a module can know about a request. */
#define TN_FACT_GEO 0x1u      /* country, continent, subdivision */
#define TN_FACT_DEVICE 0x2u   /* device class */
#define TN_FACT_SEGMENTS 0x4u /* segment membership */

#define TN_MAX_SEGMENTS 64

/* What is known about one request; filled lazily (have says what is). */
struct tn_facts {
    unsigned have;
    struct tn_geo geo;     /* "" where unknown */
    int geo_found;         /* the address was in the database */
    int geo_from_xff;      /* the address came from X-Forwarded-For */
    int device;            /* class index in the plan's catalog, -1: none */
    uint64_t segments;     /* bit i: in the plan's segment i */
};

#endif
