# shellcheck shell=bash disable=SC2034
# contrib/deps.sh: the one list of Debian 12 packages turnout needs, and the
# two helpers every script uses: tn_install (install the missing ones) and
# tn_build (configure and make in an out-of-tree build directory).
# Sourced by quickstart.sh, run-tests.sh and bench/run.sh; not run by itself.
#
# An entry "a|b" is satisfied by any of the alternatives installed; the first
# one is what gets installed (nginx-light conflicts with the other nginx
# flavours, any of which will do).

# To build: compilers, autotools and the libraries configure looks for (Check
# included: configure requires it for the unit tests).
TN_PKGS_BUILD="build-essential autoconf automake libtool pkg-config
    libevent-dev libssl-dev libnghttp2-dev libpcre2-dev libmaxminddb-dev
    libhiredis-dev libyaml-dev libxxhash-dev check"

# To run the tests: the pytest suite and what it starts (origins, Redis,
# certificates made with the openssl CLI).
TN_PKGS_TEST="python3 python3-pytest python3-h2 python3-redis python3-xxhash python3-yaml xxhash nghttp2-client
    libmaxmind-db-writer-perl mmdb-bin perl prometheus
    redis-server redis-sentinel nginx-light|nginx-core|nginx-full|nginx-extras curl ca-certificates
    procps openssl git chromium"

# To run the demo (quickstart.sh): the two demo platforms are nginx; jq reads
# the access log.
TN_PKGS_DEMO="nginx-light|nginx-core|nginx-full|nginx-extras redis-server socat libmaxmind-db-writer-perl curl ca-certificates procps jq openssl nghttp2-client"

# To run the benchmark (bench/run.sh, peers.sh): the peers, the load
# generator, ss (iproute2) and taskset (util-linux).
TN_PKGS_BENCH="haproxy wrk nginx-light|nginx-core|nginx-full|nginx-extras curl openssl
    iproute2 util-linux procps"

TN_REPO=${TN_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

tn_say() { printf '%s\n' "$@" >&2; }

# tn_installed ENTRY: true when the package (or one of "a|b" alternatives) is
# installed.
tn_installed() {
    local alt
    local IFS='|'
    for alt in $1; do
        case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$alt" 2>/dev/null)" in
        ii*) return 0 ;;
        esac
    done
    return 1
}

# tn_install ENTRY...: installs the entries that are not installed yet, with
# apt-get, non-interactively (apt-get update first, only when something is
# missing). Needs root, or sudo. Returns apt-get's status.
tn_install() {
    local entry sudo="" missing=""
    for entry in "$@"; do
        tn_installed "$entry" && continue
        case " $missing " in *" ${entry%%|*} "*) ;; *) missing="$missing ${entry%%|*}" ;; esac
    done
    if [ -z "$missing" ]; then
        tn_say "packages: all present"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        tn_say "packages: missing$missing, and there is no apt-get (this needs Debian 12)"
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            tn_say "packages: missing$missing; run as root (or install sudo)"
            return 1
        }
        sudo="sudo"
    fi
    tn_say "packages: installing$missing"
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 update &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Acquire::Retries=3 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            --no-install-recommends install $missing </dev/null
}

# tn_build DIR [CONFIGURE-ARGS...]: builds turnout in $TN_REPO/DIR (out of
# tree). Runs autoreconf when configure (or what it needs) is missing or older
# than its sources, configure when DIR has no Makefile yet or was configured
# with other arguments, then make -j(nproc). Returns the failing step's status.
tn_build() {
    local dir=$TN_REPO/$1 args
    shift
    args="$*"
    (
        cd "$TN_REPO" || exit 1
        if [ -f config.status ]; then
            tn_say "build: the source tree itself is configured (config.status);" \
                "out-of-tree builds need 'make distclean' there first"
            exit 1
        fi
        if [ ! -x configure ] || [ ! -f Makefile.in ] || [ ! -f config.h.in ] ||
            [ ! -f build-aux/install-sh ] || [ configure.ac -nt configure ] ||
            [ Makefile.am -nt Makefile.in ]; then
            tn_say "build: autoreconf -fi"
            autoreconf -fi || exit 1
        fi
        mkdir -p "$dir" && cd "$dir" || exit 1
        if [ ! -f Makefile ] || [ "$(cat .tn-configure-args 2>/dev/null)" != "$args" ]; then
            tn_say "build: configure${args:+ $args} (in ${dir#"$TN_REPO"/})"
            rm -f .tn-configure-args
            # shellcheck disable=SC2086
            "$TN_REPO/configure" -q $args || exit 1
            printf '%s\n' "$args" >.tn-configure-args
        fi
        tn_say "build: make -j$(nproc) (in ${dir#"$TN_REPO"/})"
        make -j"$(nproc)"
    )
}
