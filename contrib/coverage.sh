#!/usr/bin/env bash
# contrib/coverage.sh: line coverage of src/ by the tests (gcov, via gcovr).
#
#   1. installs the Debian packages that are missing (contrib/deps.sh's build
#      and test lists, plus gcovr)
#   2. builds turnout out of tree in build-cov/ with
#      CFLAGS="-O0 -g --coverage" LDFLAGS=--coverage
#   3. clears the counters, runs `make check` (unit tests, fuzz corpus
#      replay) and the pytest integration suite against build-cov/turnout
#   4. prints the line coverage of each src/ file and the total for src/,
#      and keeps the report in build-cov/coverage.txt
#
# Counters add up over every process: the unit tests and every turnout the
# suite starts (each writes its .gcda files when it exits; all the suite's
# turnouts stop with SIGTERM and exit normally).
#
# Environment: TN_PYTEST_ARGS extra pytest arguments (e.g. "-k pooling");
# TN_STAGE_TIMEOUT [1800] seconds per test stage.
# Exit status: 0 when the build and both test stages passed; 1 when a test
# stage failed (the report is printed all the same); 2 when the packages,
# the build or the report failed. Run it as root (or with sudo) on Debian 12.

set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"

DIR=build-cov
COV_CFLAGS="-O0 -g --coverage"
COV_LDFLAGS="--coverage"
TN_PYTEST_ARGS=${TN_PYTEST_ARGS:-}
TN_STAGE_TIMEOUT=${TN_STAGE_TIMEOUT:-1800}

trap 'tn_say "coverage.sh: interrupted"; exit 130' INT TERM

# shellcheck disable=SC2086
tn_install $TN_PKGS_BUILD $TN_PKGS_TEST gcovr || {
    tn_say "coverage.sh: could not install the packages"
    exit 2
}

# ---------------------------------------------------------------- build
# as tn_build does it, but with flags that contain spaces
build() {
    local want="CFLAGS=$COV_CFLAGS LDFLAGS=$COV_LDFLAGS"
    if [ -f config.status ]; then
        tn_say "build: the source tree itself is configured (config.status);" \
            "out-of-tree builds need 'make distclean' there first"
        return 1
    fi
    if [ ! -x configure ] || [ ! -f Makefile.in ] || [ ! -f config.h.in ] ||
        [ ! -f build-aux/install-sh ] || [ configure.ac -nt configure ] ||
        [ Makefile.am -nt Makefile.in ]; then
        tn_say "build: autoreconf -fi"
        autoreconf -fi || return 1
    fi
    mkdir -p "$DIR" || return 1
    if [ ! -f "$DIR/Makefile" ] || [ "$(cat "$DIR/.tn-configure-args" 2>/dev/null)" != "$want" ]; then
        tn_say "build: configure $want (in $DIR)"
        rm -f "$DIR/.tn-configure-args"
        (cd "$DIR" && "$REPO/configure" -q CFLAGS="$COV_CFLAGS" LDFLAGS="$COV_LDFLAGS") || return 1
        printf '%s\n' "$want" >"$DIR/.tn-configure-args"
    fi
    tn_say "build: make -j$(nproc) (in $DIR)"
    make -C "$DIR" -j"$(nproc)"
}

if ! build; then
    tn_say "coverage.sh: the build failed"
    exit 2
fi

# ---------------------------------------------------------------- tests
limited() { timeout --foreground -k 10 "$TN_STAGE_TIMEOUT" "$@"; }

find "$DIR" -name '*.gcda' -delete # counters of earlier runs

tn_say "" "==> make check (in $DIR)"
limited make -C "$DIR" -j"$(nproc)" check
rc_check=$?

tn_say "" "==> pytest tests/integration against $DIR/turnout"
# shellcheck disable=SC2086
TURNOUT_BIN=$REPO/$DIR/turnout limited /usr/bin/python3 -m pytest -q $TN_PYTEST_ARGS \
    tests/integration
rc_pytest=$?

# --------------------------------------------------------------- report
tn_say "" "==> line coverage of src/ (gcovr $(gcovr --version 2>/dev/null | head -n 1 |
    awk '{print $2}'), gcov $(gcov --version | head -n 1 | awk '{print $NF}'))"
# src/ lines are counted in the objects built from src/ (libturnout.a, main);
# searching only there also skips configure's conftest leftovers
if ! gcovr --root "$REPO" --filter 'src/' --txt --output "$DIR/coverage.txt" "$DIR/src"; then
    tn_say "coverage.sh: gcovr failed"
    exit 2
fi
cat "$DIR/coverage.txt"
total=$(awk '$1 == "TOTAL" { print $4 " (" $3 " of " $2 " lines)" }' "$DIR/coverage.txt")

tn_say "" "coverage.sh: src/ line coverage ${total:-unknown}; make check exit $rc_check, pytest exit $rc_pytest; report in $DIR/coverage.txt"
[ "$rc_check" = 0 ] && [ "$rc_pytest" = 0 ] || exit 1
exit 0
