#!/usr/bin/env bash
# contrib/bench/run.sh: turnout's benchmark. Runs peers.sh (in this directory)
# with turnout as a third proxy next to HAProxy and NGINX, in three jobs:
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
#   classify  CLASSIFY_THREADS [1], BODIES=mix, WRK_SCRIPT=classify.lua (a
#         realistic mix of User-Agents, X-Forwarded-For addresses, hosts,
#         paths, methods, segment headers and cookies; 1 KiB answers), and a
#         10-route plan: rows haproxy-Nt (haproxy-classify.cfg.in: ACLs, a
#         device class from conf/devices.yaml's patterns, map_ip over the
#         networks of tests/unit/data/make-geo-mmdb.pl), turnout-Nt
#         (turnout-classify.yaml.in: segments, devices, a GeoIP database made
#         by that script) and turnout-1route-Nt (turnout.yaml.in, one route:
#         what the plan costs). CLASSIFY_PERCENT [NEW_PERCENT, 10] % on the
#         default route. Prints the ratios 10 routes / 1 route and turnout /
#         HAProxy, and the share of "new" the mix should give.
#
# Installs what is missing, builds build/turnout (make is incremental) unless
# TURNOUT_BIN names a binary, and saves the raw per-run TSV of every job and
# the printed table as results/latest.tsv and results/latest.txt. A run that
# could not finish (exit 2) leaves the previous results in place.
#
# Environment: every peers.sh variable passes through (DURATION, REPS, CONNS,
# NEW_PERCENT, ...; see peers.sh --help); BODIES, WRK_SCRIPT, NEW_PERCENT, H2
# (HTTP/2 over TLS rows, h2load), TLS (HTTP/1.1 over TLS rows, wrk) and ROWS
# are the get job's; the post and classify jobs run without H2 and TLS rows. PEERS [haproxy nginx turnout]: the turnout rows
# (and turnout-norb) run only when "turnout" is in the list. RESULTS_DIR
# [results/ here] where latest.tsv and latest.txt go. TURNOUT_BIN: run this
# turnout binary instead of building build/turnout. JOBS [get post classify]:
# the jobs to run. POST_PERCENT [100], POST_SCRIPT [post-1k.lua], POST_ROWS
# [all]: the post job's split, wrk script and explicit row list. RETRIES [2],
# MAX_OTHER [10], QUIET_WAIT [30]: peers.sh measures a run again when other
# processes used more than MAX_OTHER % of a CPU during it (a shared machine),
# after waiting for a quiet second (0 turns that off). CLASSIFY_THREADS [1],
# CLASSIFY_PERCENT [NEW_PERCENT or 10], CLASSIFY_ROWS [haproxy-Nt turnout-Nt
# turnout-1route-Nt], CLASSIFY_SCRIPT [classify.lua]: the classify job's
# thread counts, default-route percent, rows and script; it needs perl and
# libmaxmind-db-writer-perl (installed when missing).
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
ONE=turnout-1route      # the 1-route row of the classify job
ON=${TURNOUT_NAME:-turnout}
CLASSIFY_BODY=mix       # the classify job's "body" (classify.lua sets the paths)

# pair_summary TSV NUM DEN BODY TITLE: for each row DEN-Nt (of body BODY, or
# any body when empty) and the row NUM-Nt of the same proto, body and conns,
# the median over rounds of the per-round ratio NUM/DEN of CPU-µs per request
# and of requests/s, as "#" lines after TITLE (before the table: its last
# line is JSON). Nothing when there is no such pair.
pair_summary() {
    awk -F'\t' -v on="$2" -v off="$3" -v body="$4" -v title="$5" '
    function median(a, n,    i, j, t, b) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
        return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
    }
    NR == 1 || $1 !~ "^" off "-[0-9]+t$" || (body != "" && $3 != body) { if (NR > 1) { cpu[$1, $2, $3, $4, $5] = $12; rps[$1, $2, $3, $4, $5] = $7 }; next }
    { t = substr($1, length(off) + 2); k = t SUBSEP $2 SUBSEP $3 SUBSEP $4
      if (!(k in n)) { order[++nk] = k; n[k] = 0 }
      n[k]++; offc[k, n[k]] = $12; offr[k, n[k]] = $7; round[k, n[k]] = $5 }
    END {
        for (i = 1; i <= nk; i++) {
            split(order[i], f, SUBSEP); m = 0
            for (j = 1; j <= n[order[i]]; j++) {
                kk = on "-" f[1] SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP round[order[i], j]
                if (!(kk in cpu) || offc[order[i], j] <= 0 || offr[order[i], j] <= 0) continue
                m++; cr[m] = cpu[kk] / offc[order[i], j]; rr[m] = rps[kk] / offr[order[i], j]
                ca[m] = cpu[kk]; cb[m] = offc[order[i], j]
            }
            if (!m) continue
            if (!titled++) print title
            lo = hi = cr[1]; for (j = 2; j <= m; j++) { if (cr[j] < lo) lo = cr[j]; if (cr[j] > hi) hi = cr[j] }
            c = median(cr, m)
            printf "#   %s %s %s c%s: cpu_us/r %.2f vs %.2f = x%.3f [%.1f%%], rps x%.3f, over %d rounds\n",
                f[1], f[2], f[3], f[4], median(ca, m), median(cb, m), c, (c > 0 ? 100 * (hi - lo) / c : 0), median(rr, m), m
        }
    }' "$1"
}

rollback_summary() {    # TSV: turnout-Nt over turnout-norb-Nt (post job)
    pair_summary "$1" "$ON" "$NORB" "" \
        "# rollback on/off: $ON-Nt (rollback on) over $NORB-Nt (rollback off), same round; median over rounds [spread]"
}

classify_summary() {    # TSV: the classify job's ratios
    pair_summary "$1" "$ON" "$ONE" "$CLASSIFY_BODY" \
        "# classify, 10 routes / 1 route: $ON-Nt (turnout-classify.yaml.in) over $ONE-Nt (turnout.yaml.in), same round; median over rounds [spread]"
    pair_summary "$1" "$ON" haproxy "$CLASSIFY_BODY" \
        "# classify, turnout / HAProxy, both 10 routes: $ON-Nt over haproxy-Nt (haproxy-classify.cfg.in), same round; median over rounds [spread]"
}

case "${1:-}" in
-h|--help) sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
--report)
    rollback_summary "${2:?usage: run.sh --report results.tsv}"
    classify_summary "$2"
    exec "$HERE/peers.sh" "$@"
    ;;
esac
[ $# -gt 0 ] && exec "$HERE/peers.sh" "$@"

RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
JOBS=${JOBS:-get post classify}
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
    case "$j" in get|post|classify) ;; *) tn_say "run.sh: unknown job '$j' (have: get post classify)"; exit 2 ;; esac
done
CLASSIFY_THREADS=${CLASSIFY_THREADS:-1}
CLASSIFY_PERCENT=${CLASSIFY_PERCENT:-${NEW_PERCENT:-10}}
CLASSIFY_SCRIPT=${CLASSIFY_SCRIPT:-classify.lua}
case "$CLASSIFY_PERCENT" in ''|*[!0-9]*) tn_say "run.sh: CLASSIFY_PERCENT must be a whole number 0..100"; exit 2 ;; esac
extra_pkgs=""
case " $JOBS " in *" classify "*) extra_pkgs="perl libmaxmind-db-writer-perl" ;; esac

if [ "$with_turnout" = 1 ]; then
    if [ -n "${TURNOUT_BIN:-}" ]; then
        [ -x "$TURNOUT_BIN" ] || { tn_say "run.sh: TURNOUT_BIN $TURNOUT_BIN is not executable"; exit 2; }
        TURNOUT_BIN=$(cd "$(dirname "$TURNOUT_BIN")" && pwd)/$(basename "$TURNOUT_BIN")
        # shellcheck disable=SC2086
        tn_install $TN_PKGS_BENCH $extra_pkgs >&2 || exit 2
    else
        # shellcheck disable=SC2086
        tn_install $TN_PKGS_BENCH $TN_PKGS_BUILD $extra_pkgs >&2 || exit 2
        tn_build build >&2 || { tn_say "run.sh: the build failed"; exit 2; }
        TURNOUT_BIN=$REPO/build/turnout
    fi
    export TURNOUT_CMD="$TURNOUT_BIN -c @TMP@/turnout.yaml"
else
    # shellcheck disable=SC2086
    tn_install $TN_PKGS_BENCH $extra_pkgs >&2 || exit 2
    unset TURNOUT_CMD
fi

WORK=$(mktemp -d /tmp/turnout-bench.XXXXXX)
mkdir -p "$RESULTS_DIR"
tsv=$RESULTS_DIR/latest.tsv.part
txt=$RESULTS_DIR/latest.txt.part
trap 'rm -rf "$WORK" "$tsv" "$txt"' EXIT

# render_classify: the classify job's inputs in $WORK/classify: the GeoIP
# database (make-geo-mmdb.pl), two map_ip files (network -> country,
# network -> continent) from the same script's list of networks, and the two
# templates with run.sh's placeholders filled in (@REPO@, @GEO_DB@;
# @GEO_COUNTRY_MAP@, @GEO_CONTINENT_MAP@, @DEVICE_RULES@), the others left
# for peers.sh. The device rules are generated from conf/devices.yaml, so
# HAProxy runs the catalog's current patterns in the catalog's order.
render_classify() {
    local d=$WORK/classify mk=$REPO/tests/unit/data/make-geo-mmdb.pl
    mkdir -p "$d"
    perl "$mk" "$d/geo.mmdb" >&2 || { tn_say "run.sh: $mk failed (needs libmaxmind-db-writer-perl)"; return 1; }
    # The networks: lines "[ 'NETWORK', 'CC', 'CONTINENT', ... ]" of @nets.
    D=$d perl -ne '
        BEGIN { open(CC, ">", $ENV{D} . "/geo-country.map") or die; open(CT, ">", $ENV{D} . "/geo-continent.map") or die }
        if (/^\s*\[\s*\x27([0-9A-Fa-f.:]+\/\d+)\x27\s*,\s*\x27([A-Z]{2})\x27\s*,\s*\x27([A-Z]{2})\x27/) {
            print CC "$1 $2\n"; print CT "$1 $3\n"; $n++ }
        END { close CC; close CT; die "no networks found\n" unless $n }' "$mk" ||
        { tn_say "run.sh: could not read the networks of $mk"; return 1; }
    D=$d REPO=$REPO perl -pe 's/\@REPO\@/$ENV{REPO}/g; s/\@GEO_DB\@/$ENV{D}\/geo.mmdb/g' \
        "$HERE/turnout-classify.yaml.in" >"$WORK/turnout-classify.yaml.in" || return 1
    D=$d perl -e '
        my ($catalog, $tpl) = @ARGV;
        # conf/devices.yaml: "class: \x27pattern\x27" lines (YAML single quotes,
        # \x27\x27 for a quote), comments and blank lines; anything else is an error.
        open(my $c, "<", $catalog) or die "$catalog: $!\n";
        my @cls;
        while (<$c>) {
            next if /^\s*(?:#|$)/;
            /^([A-Za-z0-9_.-]+):\s*\x27(.*)\x27\s*$/ or die "$catalog:$.: not a \"class: \x27pattern\x27\" line\n";
            my ($k, $p) = ($1, $2);
            $p =~ s/\x27\x27/\x27/g;
            die "$catalog:$.: a quote in the pattern of $k (HAProxy gets it in single quotes)\n" if $p =~ /\x27/;
            push @cls, [$k, $p];
        }
        local $/; open(my $t, "<", $tpl) or die "$tpl: $!\n"; my $s = <$t>;
        my %used = map { $_ => 1 } $s =~ /var\(txn\.dev\) -m str ([A-Za-z0-9_.-]+)/g;
        my %have = map { $_->[0] => 1 } @cls;
        for (sort keys %used) { die "class $_ used in $tpl is not in $catalog\n" unless $have{$_} }
        my ($rules, $first) = ("", 1);
        for (@cls) {
            last unless %used;
            my ($k, $p) = @$_;
            $rules .= "    # $k\n    http-request set-var(txn.dev) str($k) if !{ var(txn.seg) -m found }"
                . ($first ? "" : " !{ var(txn.dev) -m found }")
                . " { req.fhdr(user-agent) -m reg -i \x27$p\x27 }\n";
            $first = 0;
            delete $used{$k};
        }
        $rules =~ s/\n\z//;
        $s =~ s/^\@DEVICE_RULES\@$/$rules/m or die "$tpl: no \@DEVICE_RULES\@ line\n";
        $s =~ s/\@GEO_COUNTRY_MAP\@/$ENV{D}\/geo-country.map/g;
        $s =~ s/\@GEO_CONTINENT_MAP\@/$ENV{D}\/geo-continent.map/g;
        print $s;' "$REPO/conf/devices.yaml" "$HERE/haproxy-classify.cfg.in" >"$WORK/haproxy-classify.cfg.in" ||
        { tn_say "run.sh: could not render haproxy-classify.cfg.in"; return 1; }
}

if [ "$with_turnout" = 1 ]; then
    # The rollback-off variant: the same template with "enabled: false" added
    # to its rollback line, so that the two rows differ in nothing else.
    conf_in=${TURNOUT_CONF_IN:-$HERE/turnout.yaml.in}
    sed 's/^rollback: {/rollback: { enabled: false,/' "$conf_in" >"$WORK/$NORB.yaml.in"
    grep -q '^rollback: { enabled: false,' "$WORK/$NORB.yaml.in" || {
        tn_say "run.sh: $conf_in has no 'rollback: {' line to turn rollback off in"; exit 2; }
fi

case " $JOBS " in *" classify "*) render_classify || exit 2 ;; esac

rm -f "$tsv" "$txt"
status=0
start_s=$(date +%s)
for j in $JOBS; do
    st=0
    if [ "$j" = get ]; then
        BODIES=${BODIES:-1k 64k} WRK_SCRIPT=${WRK_SCRIPT:-vary-user.lua} H2=${H2:-0} TLS=${TLS:-0} \
            RESULTS=$WORK/$j.tsv "$HERE/peers.sh" >"$WORK/$j.out" || st=$?
    elif [ "$j" = classify ]; then
        rows=${CLASSIFY_ROWS:-}
        if [ -z "$rows" ]; then
            for t in $CLASSIFY_THREADS; do
                case " $PEERS " in *" haproxy "*) rows="$rows haproxy-${t}t" ;; esac
                [ "$with_turnout" = 1 ] && rows="$rows $ON-${t}t $ONE-${t}t"
            done
        fi
        [ -n "${rows// /}" ] || { tn_say "run.sh: the classify job needs haproxy or turnout in PEERS"; exit 2; }
        penv=(ROWS="$rows" THREADS="$CLASSIFY_THREADS" BODIES="$CLASSIFY_BODY" WRK_SCRIPT="$CLASSIFY_SCRIPT"
            NEW_PERCENT="$CLASSIFY_PERCENT" H2=0 TLS=0 HAPROXY_CONF_IN="$WORK/haproxy-classify.cfg.in"
            RESULTS="$WORK/$j.tsv")
        [ "$with_turnout" = 1 ] && penv+=(TURNOUT_CONF_IN="$WORK/turnout-classify.yaml.in"
            TURNOUT_VARIANTS="$ONE=${TURNOUT_CONF_IN:-$HERE/turnout.yaml.in}")
        env "${penv[@]}" "$HERE/peers.sh" >"$WORK/$j.out" || st=$?
    else
        penv=(-u ROWS BODIES=post WRK_SCRIPT="$POST_SCRIPT" NEW_PERCENT="$POST_PERCENT" H2=0 TLS=0
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
        # classify.lua's mix: 28.90 % of its requests go to "new" whatever
        # the default route's percent, and 30.96 % take the default route.
        if [ "$j" = classify ]; then
            awk -v p="$CLASSIFY_PERCENT" 'BEGIN {
                printf "# classify: expected new%%: %.1f (10 routes: 28.90 + 0.3096 x %d, see classify.lua), %d (1 route)\n", 28.90 + 0.3096 * p, p, p }'
        fi
    done
    rollback_summary "$tsv"
    classify_summary "$tsv"
    ELAPSED=$(($(date +%s) - start_s)) "$HERE/peers.sh" --report "$tsv"
} | tee "$txt"
mv "$tsv" "$RESULTS_DIR/latest.tsv"
mv "$txt" "$RESULTS_DIR/latest.txt"
tn_say "run.sh: saved ${RESULTS_DIR#"$REPO"/}/latest.tsv and latest.txt"
exit "$status"
