#!/usr/bin/env bash
# contrib/bench/counting.sh: what the statistics counters cost (issue 9).
# Builds the current tree twice, out of tree in a temp dir: counters on
# (configure's defaults) and counters off (--disable-counters: TN_STATS_OFF,
# the recording calls compiled out), then measures both in two ways:
#
#   get   peers.sh (in this directory) with rows haproxy-Nt, turnout-Nt
#         (counting on) and turnout-off-Nt (counting off), interleaved in the
#         same run, round by round: THREADS [1 2], BODIES=1k,
#         WRK_SCRIPT=vary-user.lua, NEW_PERCENT [10] % to "new". Both turnout
#         rows render turnout.yaml.in; the off row's copy only has one more
#         comment line, which the TURNOUT_CMD wrapper reads to start the
#         counters-off binary (peers.sh's TURNOUT_VARIANTS, unchanged).
#   post  the same rows with BODIES=post, WRK_SCRIPT=post-1k.lua (a POST with
#         a 1 KiB body), POST_PERCENT [100] % to "new", as run.sh's post job.
#   callgrind  instructions per request, which do not depend on the other
#         load of a shared machine: each build runs under valgrind
#         --tool=callgrind with 1 worker behind two nginx origins
#         (backend-nginx.conf.in), and a Python client sends CG_N [2000], then
#         (in a new process) 2 x CG_N requests, GET /1k and POST /post (1 KiB
#         body), on one keep-alive connection, with X-User-Id u0..u999 in
#         turn. (Ir(2N) - Ir(N)) / N is the cost of one request, start-up,
#         shutdown and the warm-up excluded. Also: the instructions spent in
#         src/core/stats.c's own functions per request (counters on).
#
# For each turnout-Nt / turnout-off-Nt pair it prints the median over rounds
# of the per-round ratio of CPU-µs per request and of requests/s, the
# difference in % (rounds in which either run saw other processes use more
# than PAIR_MAX_OTHER [25] % of a CPU left out), the callgrind table (with
# the functions where the difference goes), and saves everything printed as
# results/counting.txt, the raw per-run TSV of peers.sh as
# results/counting.tsv. The issue's bar: counting must cost less than 5 %
# CPU per request.
#
# Environment: DURATION [4], REPS [3], WARMUP, CONNS, ... pass through to
# peers.sh (see peers.sh --help). THREADS [1 2]. JOBS [get post callgrind].
# NEW_PERCENT [10] (get, callgrind), POST_PERCENT [100] (post). BASE_PORT
# [18600]: peers.sh's ports (BASE_PORT..+39); the callgrind job uses
# CG_PORT [BASE_PORT+60]..+5. RETRIES [1], MAX_OTHER [10], QUIET_WAIT [10]:
# peers.sh measures a run again when other processes used more than
# MAX_OTHER % of a CPU (see peers.sh --help). PAIR_MAX_OTHER [25]: see
# above. CG_N [2000]. CFLAGS [-g -O2, as build/]. WORK_DIR [a new
# /tmp/turnout-counting.XXXXXX]: where the two builds (on/, off/) and the
# callgrind files go; KEEP_WORK [0] 1: keep it. ON_BIN, OFF_BIN: take these
# two binaries instead of building. RESULTS_DIR [results/ here].
#
# Usage: contrib/bench/counting.sh                     build, run and save
#        contrib/bench/counting.sh --report FILE.tsv   re-print the ratios of a TSV
#        contrib/bench/counting.sh --help              this text
# Exit: 0 every run clean, 1 some run saw errors, 2 could not run.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"

ON=turnout          # the counting-on row (peers.sh's TURNOUT_NAME)
OFF=turnout-off     # the counting-off row (a TURNOUT_VARIANTS row)
MARK='# counting.sh: counters off'  # the line that selects the off binary

# pair_summary TSV BODY TITLE: for each row $OFF-Nt of body BODY and the row
# $ON-Nt of the same proto, body and conns, the median over rounds of the
# per-round ratio on/off of CPU-µs per request and of requests/s. A round in
# which either run saw other processes use more than PAIR_MAX_OTHER % of a
# CPU (column other_pct) is left out, and counted as such.
pair_summary() {
    awk -F'\t' -v on="$ON" -v off="$OFF" -v body="$2" -v title="$3" -v maxo="${PAIR_MAX_OTHER:-25}" '
    function median(a, n,    i, j, t, b) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
        return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
    }
    NR == 1 { next }
    $1 !~ "^" off "-[0-9]+t$" || $3 != body { cpu[$1, $2, $3, $4, $5] = $12; rps[$1, $2, $3, $4, $5] = $7; oth[$1, $2, $3, $4, $5] = $20 + 0; next }
    { t = substr($1, length(off) + 2); k = t SUBSEP $2 SUBSEP $3 SUBSEP $4
      if (!(k in n)) { order[++nk] = k; n[k] = 0 }
      n[k]++; offc[k, n[k]] = $12; offr[k, n[k]] = $7; offo[k, n[k]] = $20 + 0; round[k, n[k]] = $5 }
    END {
        for (i = 1; i <= nk; i++) {
            split(order[i], f, SUBSEP); m = 0; busy = 0
            for (j = 1; j <= n[order[i]]; j++) {
                kk = on "-" f[1] SUBSEP f[2] SUBSEP f[3] SUBSEP f[4] SUBSEP round[order[i], j]
                if (!(kk in cpu) || offc[order[i], j] <= 0 || offr[order[i], j] <= 0) continue
                if (oth[kk] > maxo || offo[order[i], j] > maxo) { busy++; continue }
                m++; cr[m] = cpu[kk] / offc[order[i], j]; rr[m] = rps[kk] / offr[order[i], j]
                ca[m] = cpu[kk]; cb[m] = offc[order[i], j]; ra[m] = rps[kk]; rb[m] = offr[order[i], j]
            }
            if (!titled++) print title
            if (!m) { printf "#   %-3s %s %-4s c%s: no round without other load over %s %% (%d left out)\n", f[1], f[2], f[3], f[4], maxo, busy; continue }
            lo = hi = cr[1]; for (j = 2; j <= m; j++) { if (cr[j] < lo) lo = cr[j]; if (cr[j] > hi) hi = cr[j] }
            c = median(cr, m); r = median(rr, m)
            printf "#   %-3s %s %-4s c%s: cpu_us/r on %.2f off %.2f: x%.3f (%+.1f %%) [ratio spread %.1f %%]; rps on %.0f off %.0f: x%.3f (%+.1f %%); %d rounds (%d left out: other > %s %%)\n",
                f[1], f[2], f[3], f[4], median(ca, m), median(cb, m), c, 100 * (c - 1), (c > 0 ? 100 * (hi - lo) / c : 0),
                median(ra, m), median(rb, m), r, 100 * (r - 1), m, busy, maxo
        }
    }' "$1"
}

summaries() {       # TSV: the on/off ratios of the get and post jobs
    pair_summary "$1" 1k "# counting on/off, GET 1k (vary-user.lua): $ON-Nt over $OFF-Nt, same round; median over rounds"
    pair_summary "$1" post "# counting on/off, POST 1k (post-1k.lua): $ON-Nt over $OFF-Nt, same round; median over rounds"
}

case "${1:-}" in
-h|--help) sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
--report)
    summaries "${2:?usage: counting.sh --report counting.tsv}"
    exec "$HERE/peers.sh" --report "$2"
    ;;
'') ;;
*) tn_say "counting.sh: unknown argument '$1' (see --help)"; exit 2 ;;
esac

JOBS=${JOBS:-get post callgrind}
for j in $JOBS; do
    case "$j" in get|post|callgrind) ;; *) tn_say "counting.sh: unknown job '$j' (have: get post callgrind)"; exit 2 ;; esac
done
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
CFLAGS=${CFLAGS:--g -O2}
CG_N=${CG_N:-2000}
POST_PERCENT=${POST_PERCENT:-100}
export DURATION=${DURATION:-4} REPS=${REPS:-3} THREADS=${THREADS:-1 2}
export NEW_PERCENT=${NEW_PERCENT:-10} BASE_PORT=${BASE_PORT:-18600}
export RETRIES=${RETRIES:-1} MAX_OTHER=${MAX_OTHER:-10} QUIET_WAIT=${QUIET_WAIT:-10}
CG_PORT=${CG_PORT:-$((BASE_PORT + 60))}
for v in CG_N POST_PERCENT NEW_PERCENT BASE_PORT CG_PORT; do
    case "${!v}" in ''|*[!0-9]*) tn_say "counting.sh: $v must be a whole number (got '${!v}')"; exit 2 ;; esac
done
[ "$CG_N" -ge 1 ] || { tn_say "counting.sh: CG_N must be at least 1"; exit 2; }

pkgs="$TN_PKGS_BENCH python3"
case " $JOBS " in *" callgrind "*) pkgs="$pkgs valgrind" ;; esac
[ -n "${ON_BIN:-}" ] && [ -n "${OFF_BIN:-}" ] || pkgs="$pkgs $TN_PKGS_BUILD"
# shellcheck disable=SC2086
tn_install $pkgs >&2 || exit 2

if [ -n "${WORK_DIR:-}" ]; then
    mkdir -p "$WORK_DIR"
    WORK=$(cd "$WORK_DIR" && pwd)
else
    WORK=$(mktemp -d /tmp/turnout-counting.XXXXXX)
fi
mkdir -p "$RESULTS_DIR"
tsv=$RESULTS_DIR/counting.tsv.part
txt=$RESULTS_DIR/counting.txt.part
CG_PIDS=" "         # processes the callgrind job started and has not stopped yet
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in $CG_PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    rm -f "$tsv" "$txt"
    if [ "${KEEP_WORK:-0}" = 1 ]; then tn_say "counting.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- builds

rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" --no-optional-locks diff --quiet HEAD -- src include configure.ac Makefile.am 2>/dev/null ||
    rev="$rev+changes"

build() {           # dir configure-args...: configure and make turnout, out of tree
    local d=$1
    shift
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        tn_say "counting.sh: configure $* CFLAGS='$CFLAGS' (in $d)"
        "$REPO/configure" -q CFLAGS="$CFLAGS" "$@" >"$d/configure.out" 2>&1 ||
            { cat "$d/configure.out" >&2; exit 1; }
        tn_say "counting.sh: make -j2 turnout (in $d)"
        make -j2 turnout >"$d/make.out" 2>&1 || { tail -n 40 "$d/make.out" >&2; exit 1; }
    )
}

if [ -n "${ON_BIN:-}" ] && [ -n "${OFF_BIN:-}" ]; then
    for b in "$ON_BIN" "$OFF_BIN"; do
        [ -x "$b" ] || { tn_say "counting.sh: $b is not executable"; exit 2; }
    done
    ON_BIN=$(cd "$(dirname "$ON_BIN")" && pwd)/$(basename "$ON_BIN")
    OFF_BIN=$(cd "$(dirname "$OFF_BIN")" && pwd)/$(basename "$OFF_BIN")
    built="given binaries: on $ON_BIN, off $OFF_BIN"
else
    if [ -f "$REPO/config.status" ]; then
        tn_say "counting.sh: the source tree itself is configured (config.status); out-of-tree builds need 'make distclean' there first"
        exit 2
    fi
    if [ ! -x "$REPO/configure" ]; then
        tn_say "counting.sh: autoreconf -fi"
        (cd "$REPO" && autoreconf -fi) || exit 2
    fi
    build "$WORK/on" || { tn_say "counting.sh: the counters-on build failed"; exit 2; }
    off_how="configure --disable-counters"
    if ! build "$WORK/off" --disable-counters; then
        # The tree may not build that way (stats.c defining the functions
        # that stats.h makes empty inlines under TN_STATS_OFF). The same
        # binary, otherwise: stats.c compiled as in the default build, every
        # other file with TN_STATS_OFF (automake does not track flags, so
        # stats.o is not made again).
        grep -q "src/core/stats\.c:[0-9]*:[0-9]*: error: redefinition of" "$WORK/off/make.out" ||
            { tn_say "counting.sh: the counters-off build failed"; exit 2; }
        tn_say "counting.sh: --disable-counters does not build (src/core/stats.c redefines the inline stubs of stats.h);" \
            "building the equivalent instead: TN_STATS_OFF for every file but stats.c"
        rm -rf "$WORK/off"
        mkdir -p "$WORK/off"
        (
            cd "$WORK/off" &&
                "$REPO/configure" -q CFLAGS="$CFLAGS" >configure.out 2>&1 &&
                make src/core/stats.o >make.out 2>&1 &&
                make -j2 turnout CPPFLAGS="-DTN_STATS_OFF=1" >>make.out 2>&1
        ) || { tail -n 40 "$WORK/off/make.out" >&2; tn_say "counting.sh: the counters-off build failed"; exit 2; }
        off_how="configure, then TN_STATS_OFF (make CPPFLAGS=-DTN_STATS_OFF=1) for every file but src/core/stats.c: --disable-counters does not compile (stats.c redefines stats.h's inline stubs)"
    fi
    # The off binary must not call the recording functions; the on binary must.
    calls() { objdump -d "$1" | grep -cE '(call|jmp) .*<tn_stats_(request|attempt|routed|replay|refused|server)>' || true; }
    [ "$(calls "$WORK/on/turnout")" -gt 0 ] ||
        { tn_say "counting.sh: the counters-on binary calls no tn_stats_ recording function"; exit 2; }
    [ "$(calls "$WORK/off/turnout")" = 0 ] ||
        { tn_say "counting.sh: the counters-off binary still calls tn_stats_ recording functions"; exit 2; }
    ON_BIN=$WORK/on/turnout OFF_BIN=$WORK/off/turnout
    built="rev $rev, CFLAGS='$CFLAGS'; on: configure (defaults); off: $off_how"
fi

# ---------------------------------------------------------------- peers.sh jobs

# TURNOUT_CMD: a wrapper that execs (same PID, same CPU pinning) the off
# binary when the rendered config carries the mark, the on binary otherwise.
cat >"$WORK/pick.sh" <<EOF
#!/bin/sh
# counting.sh's TURNOUT_CMD: \$1 is the rendered turnout.yaml.
if grep -qx '$MARK' "\$1"; then exec "$OFF_BIN" -c "\$1"; fi
exec "$ON_BIN" -c "\$1"
EOF
chmod +x "$WORK/pick.sh"
{ cat "$HERE/turnout.yaml.in"; echo "$MARK"; } >"$WORK/$OFF.yaml.in"

rows=""
for t in $THREADS; do rows="$rows haproxy-${t}t $ON-${t}t $OFF-${t}t"; done

status=0
peer_jobs=""
for j in $JOBS; do
    [ "$j" = callgrind ] && continue
    peer_jobs="$peer_jobs $j"
    penv=(ROWS="$rows" TURNOUT_NAME="$ON" TURNOUT_CMD="$WORK/pick.sh @TMP@/turnout.yaml"
        TURNOUT_CONF_IN="$HERE/turnout.yaml.in" TURNOUT_VARIANTS="$OFF=$WORK/$OFF.yaml.in" TURNOUT_H2=0
        H2=0 RESULTS="$WORK/$j.tsv")
    if [ "$j" = get ]; then
        penv+=(BODIES=1k WRK_SCRIPT=vary-user.lua)
    else
        penv+=(BODIES=post WRK_SCRIPT=post-1k.lua NEW_PERCENT="$POST_PERCENT")
    fi
    tn_say "counting.sh: $j job: peers.sh, rows$rows"
    st=0
    env "${penv[@]}" "$HERE/peers.sh" >"$WORK/$j.out" || st=$?
    if [ "$st" -ge 2 ] || [ ! -s "$WORK/$j.tsv" ]; then
        cat "$WORK/$j.out"
        tn_say "counting.sh: peers.sh ($j job) exited with $st"
        exit 2
    fi
    [ "$st" -gt "$status" ] && status=$st
done

# ---------------------------------------------------------------- callgrind

CG=$WORK/cg
CG_LEGACY=$CG_PORT CG_NEW=$((CG_PORT + 1)) CG_LISTEN=$((CG_PORT + 2)) CG_TLS=$((CG_PORT + 3))
CG_ADMIN=$((CG_PORT + 4))
declare -A CG_ORIGIN    # origin name -> nginx PID

cg_render() {       # template output NAME=value...: @NAME@ -> value
    local in=$1 out=$2 kv
    local -a args=()
    shift 2
    for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${args[@]}" "$in" >"$out"
    if grep -n '@[A-Z_][A-Z_]*@' "$out" >&2; then tn_say "counting.sh: unfilled placeholder in $out"; return 1; fi
}

cg_wait() {         # pid url seconds: until url answers 200
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        [ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$2" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

cg_stop() {         # pid signal: signal it and wait (at most 60 s) for it to exit
    local i
    kill "-$2" "$1" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    CG_PIDS=${CG_PIDS/ $1 / }
}

# $CG/client.py port method n: n requests on one keep-alive connection to
# turnout; exits non-zero unless every answer is a 200 of the expected size.
cg_client_py() {
    cat >"$CG/client.py" <<'EOF'
import http.client, sys
port, method, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
path, body, size = ("/1k", None, 1024) if method == "GET" else ("/post", b"0123456789abcdef" * 64, 3)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    h = {"X-User-Id": "u%d" % (i % 1000)}
    if body is not None:
        h["Content-Type"] = "application/octet-stream"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    got = r.read()
    if r.status != 200 or len(got) != size or r.will_close:
        sys.exit("request %d: status %d, %d bytes, close %s" % (i, r.status, len(got), r.will_close))
c.close()
EOF
}

cg_one() {          # build method n: prints total Ir and the Ir of stats.c's functions
    local b=$1 m=$2 n=$3 bin out pid
    bin=$ON_BIN
    [ "$b" = off ] && bin=$OFF_BIN
    out=$CG/$b.$m.$n.callgrind
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -c "$CG/turnout.yaml" \
        >"$CG/$b.$m.$n.log" 2>&1 </dev/null &
    pid=$!
    CG_PIDS="$CG_PIDS$pid "
    cg_wait "$pid" "http://127.0.0.1:$CG_LISTEN/1k" 120 ||
        { cat "$CG/$b.$m.$n.log" >&2; tn_say "counting.sh: turnout ($b) under callgrind did not start"; return 1; }
    taskset -c 1 python3 "$CG/client.py" "$CG_LISTEN" "$m" "$n" ||
        { cg_stop "$pid" KILL; tn_say "counting.sh: the client failed ($b $m $n)"; return 1; }
    cg_stop "$pid" INT      # SIGINT: stop at once (no drain)
    [ -s "$out" ] || { cat "$CG/$b.$m.$n.log" >&2; tn_say "counting.sh: no callgrind output $out"; return 1; }
    # Self Ir per function ("file:function", the object dropped) and the
    # program's total, as "Ir<TAB>name" lines in $CG/fn.BUILD.METHOD.N.
    callgrind_annotate --auto=no --threshold=100 "$out" 2>/dev/null | awk -v repo="$REPO/" '
        / PROGRAM TOTALS$/ { v = $1; gsub(/,/, "", v); printf "%s\tTOTAL\n", v; total = 1; next }
        /^ *[0-9,]+ +\( *[0-9.]+%\)  / {
            v = $1; gsub(/,/, "", v)
            name = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\)  /, "", name); sub(/ \[[^]]*\]$/, "", name)
            if (index(name, repo) == 1) name = substr(name, length(repo) + 1)
            printf "%s\t%s\n", v, name }
        END { exit !total }' >"$CG/fn.$b.$m.$n" ||
        { tn_say "counting.sh: callgrind_annotate could not read $out"; return 1; }
}

cg_job() {
    local m b n
    mkdir -p "$CG/www" "$CG/tls" "$CG/nginx-temp"
    cg_client_py
    head -c 768 /dev/urandom | base64 -w 0 >"$CG/www/1k"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -keyout "$CG/tls/key.pem" -out "$CG/tls/cert.pem" 2>/dev/null ||
        { tn_say "counting.sh: openssl could not make a certificate"; return 1; }
    for b in legacy new; do
        local port=$CG_LEGACY
        [ "$b" = new ] && port=$CG_NEW
        if [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; then
            tn_say "counting.sh: port $port is in use; pick another CG_PORT"; return 1
        fi
        cg_render "$HERE/backend-nginx.conf.in" "$CG/backend-$b.conf" NAME="$b" PORT="$port" TMP="$CG" \
            BODY_1K="$(cat "$CG/www/1k")" || return 1
        taskset -c 1 nginx -p "$CG" -e "$CG/backend-$b-error.log" -c "$CG/backend-$b.conf" \
            >"$CG/backend-$b.log" 2>&1 </dev/null &
        CG_PIDS="$CG_PIDS$! "
        CG_ORIGIN[$b]=$!
        cg_wait "$!" "http://127.0.0.1:$port/1k" 10 || { tn_say "counting.sh: origin $b did not start"; return 1; }
    done
    cg_render "$HERE/turnout.yaml.in" "$CG/turnout.yaml" THREADS=1 PORT="$CG_LISTEN" TLS_PORT="$CG_TLS" \
        TMP="$CG" ADMIN_PORT="$CG_ADMIN" LEGACY_PORT="$CG_LEGACY" NEW_PORT="$CG_NEW" NEW_PERCENT="$NEW_PERCENT" ||
        return 1
    for m in GET POST; do
        for b in on off; do
            for n in "$CG_N" $((2 * CG_N)); do
                tn_say "counting.sh: callgrind: $b $m $n requests"
                cg_one "$b" "$m" "$n" || return 1
            done
        done
    done
    for b in legacy new; do cg_stop "${CG_ORIGIN[$b]}" QUIT; done
}

cg_table() {        # $CG/fn.* -> the callgrind lines of the report
    awk -F'\t' -v n="$CG_N" -v pct="$NEW_PERCENT" '
    FNR == 1 { split(FILENAME, p, "/"); split(p[length(p)], q, "."); b = q[2]; m = q[3]; k = q[4] }
    { ir[b, m, k, $2] += $1; if (!((m, $2) in seen)) { seen[m, $2] = 1; fns[m, ++nf[m]] = $2 } }
    function per(b, m, f) { return (ir[b, m, 2 * n, f] - ir[b, m, n, f]) / n }
    END {
        printf "# callgrind: instructions (Ir) per request of turnout (1 worker, CPU 0) under valgrind --tool=callgrind,\n"
        printf "# one keep-alive connection, X-User-Id u0..u999, %d %% to \"new\": (Ir(%d requests) - Ir(%d)) / %d;\n", pct, 2 * n, n, n
        printf "# stats.c = Ir per request in the functions of src/core/stats.c (self), counters on\n"
        printf "# %-14s %9s %9s %8s %8s %8s\n", "request", "Ir/r on", "Ir/r off", "on/off", "diff", "stats.c"
        split("GET POST", ms, " ")
        for (i = 1; i <= 2; i++) {
            m = ms[i]
            if (!(("on", m, n, "TOTAL") in ir) || !(("off", m, n, "TOTAL") in ir)) continue
            a = per("on", m, "TOTAL"); o = per("off", m, "TOTAL"); s = 0
            for (j = 1; j <= nf[m]; j++) if (fns[m, j] ~ /^src\/core\/stats\.c:/) s += per("on", m, fns[m, j])
            printf "# %-14s %9.0f %9.0f %8.4f %+7.2f%% %8.0f\n", (m == "GET" ? "GET /1k" : "POST /post 1k"), a, o,
                (o > 0 ? a / o : 0), (o > 0 ? 100 * (a / o - 1) : 0), s
        }
        for (i = 1; i <= 2; i++) {
            m = ms[i]
            if (!(("on", m, n, "TOTAL") in ir) || !(("off", m, n, "TOTAL") in ir)) continue
            printf "# where, %s: Ir per request on - off (on, off) by function (self), the ones differing by 2 or more:\n", m
            c = 0
            for (j = 1; j <= nf[m]; j++) {
                f = fns[m, j]; if (f == "TOTAL") continue
                d = per("on", m, f) - per("off", m, f)
                if (d >= 2 || d <= -2) { c++; dd[c] = d; ff[c] = f }
            }
            for (x = 2; x <= c; x++) { for (y = x; y > 1 && (dd[y] < 0 ? -dd[y] : dd[y]) > (dd[y - 1] < 0 ? -dd[y - 1] : dd[y - 1]); y--) {
                t = dd[y]; dd[y] = dd[y - 1]; dd[y - 1] = t; t = ff[y]; ff[y] = ff[y - 1]; ff[y - 1] = t } }
            for (x = 1; x <= c; x++) printf "#   %+8.1f (%7.1f, %7.1f)  %s\n", dd[x], per("on", m, ff[x]), per("off", m, ff[x]), ff[x]
        }
    }' "$CG"/fn.*
}

cg_ok=0
case " $JOBS " in
*" callgrind "*)
    rm -f "$CG"/fn.*
    if cg_job; then cg_ok=1; else tn_say "counting.sh: the callgrind job failed"; exit 2; fi
    ;;
esac

# ---------------------------------------------------------------- report

: >"$tsv"
first=1
for j in $peer_jobs; do
    if [ "$first" = 1 ]; then cat "$WORK/$j.tsv"; first=0; else tail -n +2 "$WORK/$j.tsv"; fi
done >"$tsv"
{
    echo "# counting.sh  $(date -u +%Y-%m-%dT%H:%M:%SZ)  what the statistics counters cost (issue 9)"
    echo "# builds: $built"
    echo "# rows: $ON-Nt = counters on, $OFF-Nt = counters compiled out (the off build above), haproxy-Nt for reference"
    for j in $peer_jobs; do
        echo "## $j job"
        grep '^#' "$WORK/$j.out"
    done
    if [ -n "$peer_jobs" ]; then
        summaries "$tsv"
        ELAPSED=0 "$HERE/peers.sh" --report "$tsv"
    fi
    [ "$cg_ok" = 1 ] && cg_table
} | tee "$txt"
[ -n "$peer_jobs" ] && mv "$tsv" "$RESULTS_DIR/counting.tsv"
mv "$txt" "$RESULTS_DIR/counting.txt"
tn_say "counting.sh: saved ${RESULTS_DIR#"$REPO"/}/counting.txt${peer_jobs:+ and counting.tsv}"
exit "$status"
