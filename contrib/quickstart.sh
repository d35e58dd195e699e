#!/usr/bin/env bash
# contrib/quickstart.sh: the demo. Installs what is missing, builds turnout in
# build/, starts two demo platforms (separate nginx instances, not the system
# service: "legacy" on 127.0.0.1:9001 and "new" on 127.0.0.1:9002, each with
# its config from contrib/demo/ and its pid and logs in build/demo/), a
# redis-server for the fleet on 127.0.0.1:6390 and a second turnout node
# (conf/turnout-node2.yaml, :8081) in the background, then runs turnout in the
# foreground with conf/turnout.yaml, listening on :8080.
#
# stdout carries only turnout's access log (one JSON object per request), so
#   contrib/quickstart.sh | jq -c '{path, route, backend, bucket, reason}'
# works; everything else goes to stderr. Ctrl-C stops turnout, then the script
# stops both nginx instances by pid. A second run first stops the instances a
# killed earlier run left behind (by the pids in build/demo/).
#
# Environment: TN_DEMO_DIR [build/demo] where the nginx pids, logs and temp
# files go; TURNOUT_CONF [conf/turnout.yaml].

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export TN_REPO=$REPO DEBIAN_FRONTEND=noninteractive
# shellcheck source=contrib/deps.sh
. "$REPO/contrib/deps.sh"

RUN=${TN_DEMO_DIR:-$REPO/build/demo}
CONF=${TURNOUT_CONF:-conf/turnout.yaml}
BIN=$REPO/build/turnout
PLATFORMS="legacy:9001 new:9002"

die() { tn_say "quickstart.sh: $*"; exit 1; }

alive() { kill -0 "$1" 2>/dev/null; }

# stop_pidfile FILE [COMM]: stops the process whose pid FILE holds (TERM, then
# KILL after 5 s) if its command name is COMM (default nginx); ignores a stale
# file or a pid that is something else.
stop_pidfile() {
    local pid i comm=${2:-nginx}
    pid=$(cat "$1" 2>/dev/null) || return 0
    case "$pid" in '' | *[!0-9]*) rm -f "$1"; return 0 ;; esac
    if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$1"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    stop_pidfile "$RUN/node2.pid" turnout
    for p in $PLATFORMS; do stop_pidfile "$RUN/${p%%:*}.pid"; done
    stop_pidfile "$RUN/redis.pid" redis-server
    rm -f "$RUN/turnout.pid"
    wait 2>/dev/null || true
    tn_say "quickstart.sh: demo platforms, node 2 and redis stopped"
}

# port_taken PORT: something accepts connections on 127.0.0.1:PORT.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- build

{
    # shellcheck disable=SC2086
    tn_install $TN_PKGS_BUILD $TN_PKGS_DEMO || die "could not install the packages"
    tn_build build || die "the build failed (output above)"
} >&2
[ -f "$CONF" ] || die "no configuration $CONF"

# ---------------------------------------------------------------- platforms

mkdir -p "$RUN/tmp"
for p in $PLATFORMS; do stop_pidfile "$RUN/${p%%:*}.pid"; done  # left by a killed run
stop_pidfile "$RUN/node2.pid" turnout
stop_pidfile "$RUN/redis.pid" redis-server
rm -f "$RUN/turnout.pid"
for port in 9001 9002 8080 8081 8443 6390 9901 9902; do
    port_taken "$port" && die "port $port is already in use$(command -v ss >/dev/null &&
        ss -Hltnp "sport = :$port" | sed -n '1s/.*users:/ by /p')"
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

for p in $PLATFORMS; do
    name=${p%%:*} port=${p#*:}
    args=(-p "$RUN/" -e "$RUN/$name-error.log" -c "$REPO/contrib/demo/$name.conf")
    nginx -q -t "${args[@]}" >&2 || die "nginx rejected contrib/demo/$name.conf"
    nginx "${args[@]}" </dev/null >&2 &
    got=""
    for ((i = 0; i < 50; i++)); do
        got=$(curl -s --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null) && [ "$got" = "$name" ] && break
        alive $! || die "nginx for $name exited; see $RUN/$name-error.log"
        sleep 0.1
    done
    [ "$got" = "$name" ] || die "$name did not answer on 127.0.0.1:$port (got '$got')"
done

# ---------------------------------------------------------------- redis, node 2

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN" \
    --logfile "$RUN/redis.log" </dev/null >&2 &
echo $! >"$RUN/redis.pid"
for ((i = 0; i < 50; i++)); do
    [ "$(redis-cli -p 6390 ping 2>/dev/null)" = PONG ] && break
    alive "$(cat "$RUN/redis.pid")" || die "redis-server exited; see $RUN/redis.log"
    sleep 0.1
done
[ "$(redis-cli -p 6390 ping 2>/dev/null)" = PONG ] || die "redis-server did not answer on 6390"

# the demo's GeoIP database (a few test networks; 89.160.20.0/24 is Sweden)
perl tests/unit/data/make-geo-mmdb.pl "$RUN/geo-demo.mmdb" >&2 ||
    die "could not write the demo GeoIP database"
redis-cli -p 6390 sadd turnout:demo:segment:staff staff-1 staff-2 >/dev/null

"$BIN" -t -c "$CONF" >&2 || die "turnout rejected $CONF (see above)"
"$BIN" -t -c conf/turnout-node2.yaml >&2 || die "turnout rejected conf/turnout-node2.yaml"
"$BIN" -c conf/turnout-node2.yaml </dev/null >/dev/null 2>"$RUN/node2.stderr" &
echo $! >"$RUN/node2.pid"

# ---------------------------------------------------------------- turnout

cat >&2 <<EOF

  turnout demo
    legacy platform  http://127.0.0.1:9001/   nginx, pid $(cat "$RUN/legacy.pid" 2>/dev/null)
    new platform     http://127.0.0.1:9002/   nginx, pid $(cat "$RUN/new.pid" 2>/dev/null)
    turnout          http://localhost:8080/   $CONF, pid in $RUN/turnout.pid
                     https://localhost:8443/  TLS (self-signed: conf/demo-edge.pem), HTTP/2 through ALPN
    dashboard        http://127.0.0.1:9901/dashboard
    logs             $RUN/

  Send requests from another terminal:
    curl -s localhost:8080/                              # "legacy" or "new"
    curl -s -H 'X-User-Tier: beta' localhost:8080/       # route beta: always "new"
    for i in \$(seq 1000); do curl -s -H "X-User-Id: u\$i" localhost:8080/; done | sort | uniq -c
                                                         # about 900 legacy, 100 new
  See the split: the access log below (stdout), one JSON line per request
  with route, backend, key_source, bucket and reason.
  Change the percent at runtime, on both nodes (node 2 listens on :8081):
    build/turnoutctl set weight default 25
    build/turnoutctl -s /run/turnout/admin-2.sock show routes   # 25.00, source redis
    build/turnoutctl ramp default 50 over 1m                     # then: show events
  Ctrl-C stops turnout, node 2, redis and both demo platforms.

EOF

# sh prints nothing: it records its own pid, which turnout keeps after exec.
status=0
sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$RUN/turnout.pid" "$BIN" -c "$CONF" || status=$?
[ "$status" = 0 ] || tn_say "quickstart.sh: turnout exited with status $status"
exit "$status"
