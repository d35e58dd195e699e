/* turnout: edge reverse proxy for platform migrations. Command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "turnout/log.h"
#include "turnout/server.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: turnout [-t] [-d] -c FILE\n"
               "  -c FILE  configuration file (YAML)\n"
               "  -t       check the configuration and exit (0 valid, 1 not)\n"
               "  -d       debug logging\n"
               "  -v       print the version\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int check = 0, opt;

    while ((opt = getopt(argc, argv, "c:tdvh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'd':
            tn_log_level = TN_LOG_DEBUG;
            break;
        case 'v':
            printf("turnout %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    return check ? tn_server_check(path) : tn_server_run(path);
}
