#!/usr/bin/env bash
# contrib/bench/run.sh: turnout's benchmark. Runs peers.sh (in this directory)
# with turnout as a third proxy next to HAProxy and NGINX, in two jobs:
#
#   get   THREADS="1 2", BODIES="1k 64k", WRK_SCRIPT=vary-user.lua (a new
#         X-User-Id on every request, so turnout's sticky split sees many
#         users; the other rows get the same header and ignore it), 10 % to
#         "new" (NEW_PERCENT). The standard peer rows.
#   post  THREADS="1 2", BODIES=post, WRK_SCRIPT=post-1k.lua (a POST with a
#         1 KiB body, new X-User-Id each time, to /post, which the origins
#         answer with a 3-byte 200), POST_PERCENT [100] % to "new" for every
#         proxy, and one more row, turnout-norb: turnout with rollback off
#         (turnout.yaml.in plus "enabled: false" in its rollback line). The
#         turnout row has rollback on with POST replayable, so at 100 % every
#         request pays for the copy of its body.
#
# Installs what is missing, builds build/turnout (make is incremental) unless
# TURNOUT_BIN names a binary, and saves the raw per-run TSV of both jobs and
# the printed table as results/latest.tsv and results/latest.txt. A run that
# could not finish (exit 2) leaves the previous results in place.
#
# Environment: every peers.sh variable passes through (DURATION, REPS, CONNS,
# NEW_PERCENT, ...; see peers.sh --help); BODIES, WRK_SCRIPT, NEW_PERCENT, H2
# and ROWS are the get job's. PEERS [haproxy nginx turnout]: the turnout rows
# (and turnout-norb) run only when "turnout" is in the list. RESULTS_DIR
# [results/ here] where latest.tsv and latest.txt go. TURNOUT_BIN: run this
# turnout binary instead of building build/turnout. JOBS [get post]: the jobs
# to run. POST_PERCENT [100], POST_SCRIPT [post-1k.lua], POST_ROWS [all]: the
# post job's split, wrk script and explicit row list. RETRIES [2], MAX_OTHER
# [10], QUIET_WAIT [30]: peers.sh measures a run again when other processes
# used more than MAX_OTHER % of a CPU during it (a shared machine), after
# waiting for a quiet second (0 turns that off).
#
# Usage: contrib/bench/run.sh                     run and save
#        contrib/bench/run.sh --report FILE.tsv   re-print the table of a TSV
#        contrib/bench/run.sh --help              this text
# Exit: peers.sh's: 0 every run clean, 1 some run saw errors, 2 could not run.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"

NORB=turnout-norb       # the rollback-off row of the post job
ON=${TURNOUT_NAME:-turnout}

# rollback_summary TSV: for each post row pair turnout-Nt / turnout-norb-Nt,
# the median over rounds of the per-round ratio on/off of CPU-µs per request
# and of requests/s, as "#" lines (before the table: its last line is JSON).
rollback_summary() {
    awk -F'\t' -v on="$ON" -v off="$NORB" '
    function median(a, n,    i, j, t, b) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
        return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
    }
    NR == 1 || $1 !~ "^" off "-[0-9]+t$" { if (NR > 1) { cpu[$1, $2, $3, $4, $5] = $12; rps[$1, $2, $3, $4, $5] = $7 }; next }
    { t = substr($1, length(off) + 2); k = t SUBSEP $2 SUBSEP $3 SUBSEP $4
      if (!(k in n)) { order[++nk] = k; n[k] = 0 }
      n[k]++; offc[k, n[k]] = $12; offr[k, n[k]] = $7; round[k, n[k]] = $5 }
    END {
        if (!nk) exit
        print "# rollback on/off: " on "-Nt (rollback on) over " off "-Nt (rollback off), same round; median over rounds [spread]"
        for (i = 1; i <= nk; i++) {
            split(order[i], f, SUBSEP); m = 0
            for (j = 1; j <= n[order[i]]; j++) {
                kk = on "-" f[1] SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP round[order[i], j]
                if (!(kk in cpu) || offc[order[i], j] <= 0 || offr[order[i], j] <= 0) continue
                m++; cr[m] = cpu[kk] / offc[order[i], j]; rr[m] = rps[kk] / offr[order[i], j]
                ca[m] = cpu[kk]; cb[m] = offc[order[i], j]
            }
            if (!m) continue
            lo = hi = cr[1]; for (j = 2; j <= m; j++) { if (cr[j] < lo) lo = cr[j]; if (cr[j] > hi) hi = cr[j] }
            c = median(cr, m)
            printf "#   %s %s %s c%s: cpu_us/r %.2f vs %.2f = x%.3f [%.1f%%], rps x%.3f, over %d rounds\n",
                f[1], f[2], f[3], f[4], median(ca, m), median(cb, m), c, (c > 0 ? 100 * (hi - lo) / c : 0), median(rr, m), m
        }
    }' "$1"
}

case "${1:-}" in
-h|--help) sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
--report)
    rollback_summary "${2:?usage: run.sh --report results.tsv}"
    exec "$HERE/peers.sh" "$@"
    ;;
esac
[ $# -gt 0 ] && exec "$HERE/peers.sh" "$@"

RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
JOBS=${JOBS:-get post}
POST_PERCENT=${POST_PERCENT:-100}
POST_SCRIPT=${POST_SCRIPT:-post-1k.lua}
with_turnout=0
peers=""
for p in ${PEERS:-haproxy nginx turnout}; do
    if [ "$p" = turnout ]; then with_turnout=1; else peers="$peers $p"; fi
done
# peers.sh treats an empty PEERS as its default: a blank keeps it empty
# (PEERS=turnout: only the turnout rows and "direct").
export PEERS=${peers:- }
export THREADS=${THREADS:-1 2}
export RETRIES=${RETRIES:-2} MAX_OTHER=${MAX_OTHER:-10} QUIET_WAIT=${QUIET_WAIT:-30}
for j in $JOBS; do
    case "$j" in get|post) ;; *) tn_say "run.sh: unknown job '$j' (have: get post)"; exit 2 ;; esac
done

if [ "$with_turnout" = 1 ]; then
    if [ -n "${TURNOUT_BIN:-}" ]; then
        [ -x "$TURNOUT_BIN" ] || { tn_say "run.sh: TURNOUT_BIN $TURNOUT_BIN is not executable"; exit 2; }
        TURNOUT_BIN=$(cd "$(dirname "$TURNOUT_BIN")" && pwd)/$(basename "$TURNOUT_BIN")
        # shellcheck disable=SC2086
        tn_install $TN_PKGS_BENCH >&2 || exit 2
    else
        # shellcheck disable=SC2086
        tn_install $TN_PKGS_BENCH $TN_PKGS_BUILD >&2 || exit 2
        tn_build build >&2 || { tn_say "run.sh: the build failed"; exit 2; }
        TURNOUT_BIN=$REPO/build/turnout
    fi
    export TURNOUT_CMD="$TURNOUT_BIN -c @TMP@/turnout.yaml"
else
    # shellcheck disable=SC2086
    tn_install $TN_PKGS_BENCH >&2 || exit 2
    unset TURNOUT_CMD
fi

WORK=$(mktemp -d /tmp/turnout-bench.XXXXXX)
mkdir -p "$RESULTS_DIR"
tsv=$RESULTS_DIR/latest.tsv.part
txt=$RESULTS_DIR/latest.txt.part
trap 'rm -rf "$WORK" "$tsv" "$txt"' EXIT

if [ "$with_turnout" = 1 ]; then
    # The rollback-off variant: the same template with "enabled: false" added
    # to its rollback line, so that the two rows differ in nothing else.
    conf_in=${TURNOUT_CONF_IN:-$HERE/turnout.yaml.in}
    sed 's/^rollback: {/rollback: { enabled: false,/' "$conf_in" >"$WORK/$NORB.yaml.in"
    grep -q '^rollback: { enabled: false,' "$WORK/$NORB.yaml.in" || {
        tn_say "run.sh: $conf_in has no 'rollback: {' line to turn rollback off in"; exit 2; }
fi

rm -f "$tsv" "$txt"
status=0
start_s=$(date +%s)
for j in $JOBS; do
    st=0
    if [ "$j" = get ]; then
        BODIES=${BODIES:-1k 64k} WRK_SCRIPT=${WRK_SCRIPT:-vary-user.lua} RESULTS=$WORK/$j.tsv \
            "$HERE/peers.sh" >"$WORK/$j.out" || st=$?
    else
        penv=(-u ROWS BODIES=post WRK_SCRIPT="$POST_SCRIPT" NEW_PERCENT="$POST_PERCENT" H2=0
            RESULTS="$WORK/$j.tsv")
        [ -n "${POST_ROWS:-}" ] && penv+=(ROWS="$POST_ROWS")
        [ "$with_turnout" = 1 ] && penv+=(TURNOUT_VARIANTS="$NORB=$WORK/$NORB.yaml.in")
        env "${penv[@]}" "$HERE/peers.sh" >"$WORK/$j.out" || st=$?
    fi
    if [ "$st" -ge 2 ] || [ ! -s "$WORK/$j.tsv" ]; then
        cat "$WORK/$j.out"
        tn_say "run.sh: peers.sh ($j job) exited with $st; previous results (if any) kept"
        exit 2
    fi
    [ "$st" -gt "$status" ] && status=$st
done

# One TSV (the header once), the jobs' "#" headers, the rollback on/off
# ratios, then one table and one JSON line over every row.
first=1
for j in $JOBS; do
    if [ "$first" = 1 ]; then cat "$WORK/$j.tsv"; first=0; else tail -n +2 "$WORK/$j.tsv"; fi
done >"$tsv"
{
    for j in $JOBS; do
        echo "## $j job"
        grep '^#' "$WORK/$j.out"
    done
    rollback_summary "$tsv"
    ELAPSED=$(($(date +%s) - start_s)) "$HERE/peers.sh" --report "$tsv"
} | tee "$txt"
mv "$tsv" "$RESULTS_DIR/latest.tsv"
mv "$txt" "$RESULTS_DIR/latest.txt"
tn_say "run.sh: saved ${RESULTS_DIR#"$REPO"/}/latest.tsv and latest.txt"
exit "$status"
