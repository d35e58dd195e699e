#!/usr/bin/env bash
# contrib/run-tests.sh: every test, as CI runs them (.ci/run execs this).
#
#   1. install the Debian packages that are missing (contrib/deps.sh)
#   2. build in build/, `make check` (Check unit tests + fuzz corpus replay),
#      the pytest integration suite against build/turnout
#   3. the same in build-asan/, configured with --enable-sanitizers
#      (ASan + UBSan; pytest with TURNOUT_SANITIZED=1)
#
# Every stage runs even when an earlier one failed; a stage that needs a build
# that failed is reported as "not run" and counts as a failure. The output of
# each stage goes to the terminal and to build-logs/<stage>.log; at the end a
# summary repeats each stage's result lines (automake's "# TOTAL", Check's
# "Checks: N, Failures: N, Errors: N", pytest's "N passed"). Exit status: 0
# when every stage passed, 1 otherwise.
#
# Environment: TN_ASAN=0 skips the sanitizer half; TN_STAGE_TIMEOUT [1800]
# seconds per test stage; TN_PYTEST_ARGS extra pytest arguments (e.g. "-x -k h1").
# Works without a terminal (CI=true, no stdin) and when run again.

set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"
exec 2>&1               # one stream, in order, for CI logs

TN_ASAN=${TN_ASAN:-1}
TN_STAGE_TIMEOUT=${TN_STAGE_TIMEOUT:-1800}
TN_PYTEST_ARGS=${TN_PYTEST_ARGS:-}
LOGS=$REPO/build-logs
mkdir -p "$LOGS"

STAGES=()               # stage names, in order
declare -A RESULT NOTE  # stage -> PASS/FAIL/NOT RUN; stage -> result lines

trap 'tn_say "run-tests.sh: interrupted"; exit 130' INT TERM

# stage NAME CMD...: runs CMD with its output on the terminal and in
# build-logs/NAME.log; records PASS or FAIL (with "timed out" after
# TN_STAGE_TIMEOUT seconds for test stages).
stage() {
    local name=$1 rc
    shift
    STAGES+=("$name")
    tn_say "" "==> $name"
    "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 0 ]; then RESULT[$name]=PASS; else RESULT[$name]=FAIL; fi
    [ "$rc" = 124 ] && NOTE[$name]="timed out after ${TN_STAGE_TIMEOUT}s"
    tn_say "" "==> $name: ${RESULT[$name]} (exit $rc)"
    return "$rc"
}

skip() {                # NAME WHY: a stage that could not run
    STAGES+=("$1")
    RESULT[$1]="NOT RUN"
    NOTE[$1]=$2
    tn_say "" "==> $1: not run ($2)"
}

note() { NOTE[$1]="${NOTE[$1]:+${NOTE[$1]}$'\n'}$2"; }

limited() { timeout --foreground -k 10 "$TN_STAGE_TIMEOUT" "$@"; }

run_check() {           # DIR: make check, verbose on failure
    rm -f "$REPO/$1"/tests/unit/*.log   # no stale results if a test no longer builds
    CK_VERBOSITY=normal limited make -C "$REPO/$1" -j"$(nproc)" check VERBOSE=1
}

run_pytest() {          # DIR: the integration suite against DIR/turnout
    local rc
    # shellcheck disable=SC2086
    TURNOUT_BIN=$REPO/$1/turnout limited /usr/bin/python3 -m pytest -q \
        $TN_PYTEST_ARGS tests/integration
    rc=$?
    [ "$rc" = 5 ] && echo "pytest: no tests were collected (exit 5): counted as a failure"
    return "$rc"
}

collect_check() {       # STAGE DIR: automake's and Check's summary lines
    local f line found
    # the first block only: VERBOSE=1 repeats it from test-suite.log
    line=$(awk '/^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):/ { print; f = 1; next } f { exit }' \
        "$LOGS/$1.log" | tr -s ' ' | paste -sd' ' -)
    note "$1" "${line:-no automake summary (the tests did not run; see build-logs/$1.log)}"
    for f in "$REPO/$2"/tests/unit/*.log; do
        [ -f "$f" ] || continue
        found=""
        while IFS= read -r line; do
            found=1
            note "$1" "$(basename "$f" .log): $line"
        done < <(grep -hE '^[0-9]+%: Checks: ' "$f")
        [ -n "$found" ] || note "$1" "$(basename "$f" .log): no Check summary line (did it run any test?)"
    done
}

collect_pytest() {      # STAGE: pytest's closing line ("3 passed in 1.20s")
    local line
    line=$(grep -E ' in [0-9.]+s' "$LOGS/$1.log" | grep -E 'passed|failed|error|skipped|no tests ran' |
        tail -n 1 | sed 's/^=* *//; s/ *=*$//')
    note "$1" "${line:-no pytest summary line (see build-logs/$1.log)}"
}

# half DIR [CONFIGURE-ARGS]: build, make check and pytest in one build dir.
half() {
    local dir=$1
    shift
    if stage "$dir" tn_build "$dir" "$@"; then
        note "$dir" "$dir/turnout"
        stage "$dir-check" run_check "$dir"
        collect_check "$dir-check" "$dir"
        tn_say "${NOTE[$dir-check]}"
        stage "$dir-pytest" run_pytest "$dir"
        collect_pytest "$dir-pytest"
    else
        skip "$dir-check" "the build failed"
        skip "$dir-pytest" "the build failed"
    fi
}

START=$(date +%s)
tn_say "run-tests.sh: $REPO at $(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo '(no git)')"
# shellcheck disable=SC2086
stage packages tn_install $TN_PKGS_BUILD $TN_PKGS_TEST

half build

if [ "$TN_ASAN" = 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=8
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export TURNOUT_SANITIZED=1
    half build-asan --enable-sanitizers
    unset ASAN_OPTIONS UBSAN_OPTIONS TURNOUT_SANITIZED
else
    tn_say "" "==> build-asan: skipped (TN_ASAN=0)"
fi

# ---------------------------------------------------------------- summary

failed=()
{
    echo
    echo "==> summary ($(($(date +%s) - START))s; logs in build-logs/)"
    for s in "${STAGES[@]}"; do
        printf '  %-8s %s\n' "${RESULT[$s]}" "$s"
        [ -n "${NOTE[$s]:-}" ] && printf '%s\n' "${NOTE[$s]}" | sed 's/^/             /'
        [ "${RESULT[$s]}" = PASS ] || failed+=("$s")
    done
    if [ ${#failed[@]} -eq 0 ]; then
        echo "run-tests.sh: all ${#STAGES[@]} stages passed"
    else
        echo "run-tests.sh: ${#failed[@]} of ${#STAGES[@]} stages failed: ${failed[*]}"
    fi
} >&2
[ ${#failed[@]} -eq 0 ]
