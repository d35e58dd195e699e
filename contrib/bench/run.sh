#!/usr/bin/env bash
# contrib/bench/run.sh: turnout's benchmark. Runs peers.sh (in this directory)
# with turnout as a third proxy next to HAProxy and NGINX, for THREADS="1 2"
# and BODIES="1k 64k", with WRK_SCRIPT=vary-user.lua (a new X-User-Id on every
# request, so turnout's sticky split sees many users; the other rows get the
# same header and ignore it). Installs what is missing, builds build/turnout
# (make is incremental), and saves the raw per-run TSV and the printed table
# as results/latest.tsv and results/latest.txt. A run that could not finish
# (exit 2) leaves the previous results in place.
#
# Environment: every peers.sh variable passes through (DURATION, REPS, CONNS,
# NEW_PERCENT, ...; see peers.sh --help). PEERS [haproxy nginx turnout]: the
# turnout rows run only when "turnout" is in the list. RESULTS_DIR [results/
# here] where latest.tsv and latest.txt go.
#
# Usage: contrib/bench/run.sh                     run and save
#        contrib/bench/run.sh --report FILE.tsv   re-print the table of a TSV
# Exit: peers.sh's: 0 every run clean, 1 some run saw errors, 2 could not run.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"

[ $# -gt 0 ] && exec "$HERE/peers.sh" "$@"

RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
with_turnout=0
peers=""
for p in ${PEERS:-haproxy nginx turnout}; do
    if [ "$p" = turnout ]; then with_turnout=1; else peers="$peers $p"; fi
done
# peers.sh treats an empty PEERS as its default: a blank keeps it empty
# (PEERS=turnout: only the turnout rows and "direct").
export PEERS=${peers:- }
export THREADS=${THREADS:-1 2}
export BODIES=${BODIES:-1k 64k}
export WRK_SCRIPT=${WRK_SCRIPT:-vary-user.lua}

if [ "$with_turnout" = 1 ]; then
    # shellcheck disable=SC2086
    tn_install $TN_PKGS_BENCH $TN_PKGS_BUILD >&2 || exit 2
    tn_build build >&2 || { tn_say "run.sh: the build failed"; exit 2; }
    export TURNOUT_CMD="$REPO/build/turnout -c @TMP@/turnout.yaml"
else
    # shellcheck disable=SC2086
    tn_install $TN_PKGS_BENCH >&2 || exit 2
    unset TURNOUT_CMD
fi

mkdir -p "$RESULTS_DIR"
tsv=$RESULTS_DIR/latest.tsv.part
txt=$RESULTS_DIR/latest.txt.part
export RESULTS=$tsv
rm -f "$tsv" "$txt"
status=0
"$HERE/peers.sh" | tee "$txt" || status=${PIPESTATUS[0]}
if [ "$status" -le 1 ] && [ -s "$tsv" ]; then
    mv "$tsv" "$RESULTS_DIR/latest.tsv"
    mv "$txt" "$RESULTS_DIR/latest.txt"
    tn_say "run.sh: saved ${RESULTS_DIR#"$REPO"/}/latest.tsv and latest.txt"
else
    rm -f "$tsv" "$txt"
    tn_say "run.sh: peers.sh exited with $status; previous results (if any) kept"
fi
exit "$status"
