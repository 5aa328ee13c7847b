#!/usr/bin/env bash
# Load benchmark: Gatehouse against nginx in front of the same upstream.
#
#   bench/run.sh [proxy|tls|routes|memory|jwt|cache|ratelimit|stack|balance|all]    (default: proxy)
#
# Environment overrides:
#   ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2 WARMUP=3s
#   HOLD_CONNECTIONS=5000   connections held open in `memory` mode
#   GATEHOUSE_BIN=PATH      benchmark another gatehouse binary (default target/release/gatehouse)
#   SKIP_BUILD=1            do not run cargo build (the binaries must exist)
#   RESULTS_DIR=DIR         where the reports go (default bench/results)
#
# See bench/README.md for what each mode measures and the targets.
set -euo pipefail

MODE=${1:-proxy}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
HOLD_CONNECTIONS=${HOLD_CONNECTIONS:-5000}
BENCH_PATH=/api/v1/users/42
# http, or https in `tls` mode (set by the mode before its servers start).
SCHEME=http
# Extra wrk arguments (the `tls` mode's handshake-heavy run adds `Connection: close`).
WRK_ARGS=()
# The upstream's fixed body; the sanity check expects to see it through both proxies.
EXPECTED_BODY='{"id":42,"name":"Ada Lovelace","email":"ada@example.com","role":"admin","team":"core","active":true}'

case "$MODE" in
  proxy | tls | routes | memory | jwt | cache | ratelimit | stack | balance | all) ;;
  -h | --help | help)
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
    exit 0
    ;;
  *)
    echo "usage: $0 [proxy|tls|routes|memory|jwt|cache|ratelimit|stack|balance|all]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GATEHOUSE=${GATEHOUSE_BIN:-$TARGET_DIR/release/gatehouse}
UPSTREAM_BIN=$TARGET_DIR/release/examples/bench_upstream

# ---------------------------------------------------------------------------------------------
# Output: everything the user should keep goes through `say`, which also appends it to the
# results file. Raw wrk output goes to a second file next to it.
# ---------------------------------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$BENCH/results}
mkdir -p "$RESULTS_DIR"
RESULTS=$RESULTS_DIR/$STAMP-$MODE.txt
RAW=$RESULTS_DIR/$STAMP-$MODE.raw.log

say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
log() { printf '\033[2m[bench] %s\033[0m\n' "$*" >&2; }
die() {
  printf '\033[31m[bench] error: %s\033[0m\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every background process goes into PIDS and is stopped on exit,
# including Ctrl-C. The temp dir is removed, except after a failure: then its logs are kept.
# ---------------------------------------------------------------------------------------------
PIDS=()
TMP=$(mktemp -d -t gatehouse-bench.XXXXXX)

cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Up to ~3 s for a graceful exit, then SIGKILL.
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $status -eq 0 || $status -eq 130 || $status -eq 143 ]]; then
    rm -rf "$TMP"
  else
    echo "[bench] failed (exit $status); logs kept in $TMP" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "[bench] interrupted" >&2; exit 130' INT
trap 'echo "[bench] terminated" >&2; exit 143' TERM

# Stops one process we started and forgets it.
stop() {
  local pid=$1 p keep=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# free_port VAR: sets VAR to a loopback port nothing listens on and that this run has not
# handed out yet. Ports come from 20000-31999, below Linux's ephemeral range (32768-60999),
# so the benchmark's own outgoing connections never take them.
USED_PORTS=" "
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ $USED_PORTS == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      USED_PORTS+="$port "
      printf -v "$1" '%s' "$port"
      return
    fi
  done
}

# wait_port NAME PID PORT LOG: waits (10 s at most) until PORT accepts an HTTP request, failing
# with the process's log if it exits first or never gets there.
wait_port() {
  local name=$1 pid=$2 port=$3 logfile=$4
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=0
      wait "$pid" || status=$?
      echo "----- $logfile" >&2
      tail -n 30 "$logfile" >&2 || true
      die "$name exited (status $status) before accepting connections on port $port"
    fi
    # Any HTTP answer (even a 404) means the listener is up.
    if curl -sk -o /dev/null --max-time 1 "$SCHEME://127.0.0.1:$port/"; then
      return 0
    fi
    sleep 0.1
  done
  echo "----- $logfile" >&2
  tail -n 30 "$logfile" >&2 || true
  die "$name did not accept connections on port $port within 10 s"
}

# check_route NAME PORT [PATH [HEADER]]: the bench route must answer 200 with the upstream's
# body, otherwise the benchmark would measure error pages.
check_route() {
  local name=$1 port=$2 path=${3:-$BENCH_PATH} header=${4:-} out code body args=()
  [[ -n $header ]] && args=(-H "$header")
  out=$(curl -sk --max-time 5 "${args[@]}" -w '\n%{http_code}' "$SCHEME://127.0.0.1:$port$path") ||
    die "$name: request to $path failed"
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  if [[ $code != 200 || $body != "$EXPECTED_BODY" ]]; then
    die "$name: GET $path answered $code with body: $body"
  fi
}

# ---------------------------------------------------------------------------------------------
# Setup: tools, build, file descriptor limit.
# ---------------------------------------------------------------------------------------------
install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v curl >/dev/null || missing+=(curl)
  if [[ $MODE == jwt || $MODE == all ]]; then
    command -v openssl >/dev/null || missing+=(openssl)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    local sudo=()
    [[ $EUID -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
  fi
  if [[ $MODE == tls || $MODE == all ]]; then
    command -v openssl >/dev/null || die "openssl is needed for the tls mode (apt-get install openssl)"
  fi
  if [[ $MODE == routes || $MODE == memory || $MODE == all ]]; then
    command -v python3 >/dev/null || die "python3 is needed for the $MODE mode"
  fi
}

build() {
  if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    log "SKIP_BUILD=1: using existing binaries"
  else
    log "cargo build --release --bin gatehouse --example bench_upstream"
    (cd "$ROOT" && cargo build --release --bin gatehouse --example bench_upstream)
  fi
  [[ -x $UPSTREAM_BIN ]] || die "$UPSTREAM_BIN is missing"
  [[ -x $GATEHOUSE ]] || die "$GATEHOUSE is missing"
}

install_tools
build
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# Room for 5,000 client connections plus as many upstream ones.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

say "# gatehouse bench: mode=$MODE $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty)'), $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $MODE != memory ]]; then
  say "# wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds each, warm-up $WARMUP"
fi

# ---------------------------------------------------------------------------------------------
# Servers.
# ---------------------------------------------------------------------------------------------
start_upstream() {
  free_port UPSTREAM_PORT
  "$UPSTREAM_BIN" "127.0.0.1:$UPSTREAM_PORT" >"$TMP/upstream.log" 2>&1 &
  PIDS+=($!)
  wait_port upstream $! "$UPSTREAM_PORT" "$TMP/upstream.log"
  log "upstream on 127.0.0.1:$UPSTREAM_PORT"
}

# start_nginx PORT [tls]: nginx with the route equivalent to Gatehouse's (on TLS with the
# throwaway certificate when asked); sets NGINX_PID.
start_nginx() {
  local port=$1 dir=$TMP/nginx-$1 listen="listen 127.0.0.1:$1;"
  if [[ ${2:-} == tls ]]; then
    # TLS 1.2 and 1.3, session cache and tickets on: what Gatehouse's rustls set-up offers.
    listen="listen 127.0.0.1:$port ssl;
        ssl_certificate $TLS_CERT;
        ssl_certificate_key $TLS_KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
  fi
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile 65536;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;

events {
    worker_connections 20000;
}

http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;

    # Gatehouse keeps client connections for idle_timeout (60 s) without a request limit;
    # nginx's default would close them every 1,000 requests.
    keepalive_timeout 60s;
    keepalive_requests 1000000;

    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        $listen

        # /api/v1/users/... -> upstream /users/... (strip_prefix /api/v1).
        location /api/v1/users/ {
            proxy_pass http://bench_upstream/users/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same work Gatehouse does on every request (SPEC 3.1, 4.1).
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Request-Id \$request_id;
            add_header X-Request-Id \$request_id always;
        }
    }
}
EOF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_port nginx "$NGINX_PID" "$port" "$dir/error.log"
  check_route nginx "$port"
  log "nginx on 127.0.0.1:$port"
}

# write_gatehouse_config FILE PORT [tls]: the benchmark route, as in the brief; the same route
# the nginx config has. With `tls`, PORT is a TLS listener (and the plain one gets a free port).
write_gatehouse_config() {
  local file=$1 port=$2 listen tls=""
  listen="listen: 127.0.0.1:$port"
  if [[ ${3:-} == tls ]]; then
    local plain_port
    free_port plain_port
    listen="listen: 127.0.0.1:$plain_port"
    tls="tls:
  listen: 127.0.0.1:$port
  certificates:
    - { cert: $TLS_CERT, key: $TLS_KEY }"
  fi
  cat >"$file" <<EOF
$listen
$tls
observability: { access_log: off }
services:
  users: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
EOF
}

# start_gatehouse CONFIG PORT: sets GATEHOUSE_PID.
start_gatehouse() {
  local config=$1 port=$2 logfile
  logfile=$TMP/gatehouse-$port.log
  "$GATEHOUSE" run -c "$config" >"$logfile" 2>&1 &
  GATEHOUSE_PID=$!
  PIDS+=("$GATEHOUSE_PID")
  wait_port "gatehouse ($GATEHOUSE run -c $config)" "$GATEHOUSE_PID" "$port" "$logfile"
  check_route gatehouse "$port"
  log "gatehouse on 127.0.0.1:$port ($(basename "$config"))"
}

# ---------------------------------------------------------------------------------------------
# wrk and its output.
# ---------------------------------------------------------------------------------------------

# run_wrk NAME PORT DURATION [PATH [HEADER]]: runs wrk and sets WRK_RESULT to
# "req/s p99_ms errors".
# wrk runs in the background and the shell waits for it with `wait`, which a Ctrl-C
# interrupts at once (wrk itself catches SIGINT and exits normally, so a foreground wrk would
# let the script carry on with the next round).
run_wrk() {
  local name=$1 port=$2 duration=$3 path=${4:-$BENCH_PATH} header=${5:-} script=${6:-}
  local out=$TMP/wrk.out status=0 args=(-t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency)
  local h hs=()
  # Several headers are separated by `|`.
  [[ -n $header ]] && IFS='|' read -ra hs <<<"$header"
  for h in "${hs[@]+"${hs[@]}"}"; do args+=(-H "$h"); done
  [[ -n $script ]] && args+=(-s "$script")
  wrk "${args[@]}" "${WRK_ARGS[@]+"${WRK_ARGS[@]}"}" "$SCHEME://127.0.0.1:$port$path" >"$out" 2>&1 &
  WRK_PID=$!
  PIDS+=("$WRK_PID")
  wait "$WRK_PID" || status=$?
  stop "$WRK_PID"
  if ((status != 0)); then
    cat "$out" >&2
    die "wrk against $name failed (status $status)"
  fi
  { echo "===== $name $(date -u +%T)"; cat "$out"; } >>"$RAW"
  WRK_RESULT=$(parse_wrk "$out")
}

# Prints "req/s p99_ms errors" from wrk --latency output; errors counts socket errors and
# non-2xx/3xx answers.
parse_wrk() {
  awk '
    function ms(v,   n, u) {           # "850.00us" / "3.45ms" / "1.20s" / "2.00m" -> ms
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n / 1000
      if (u == "s") return n * 1000
      if (u == "m") return n * 60000
      return n
    }
    /^ *99%/                     { p99 = ms($2) }
    /^Requests\/sec:/            { rps = $2 }
    /Non-2xx or 3xx responses:/  { errors += $NF }
    /Socket errors:/             { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errors += $i + 0 }
    END {
      if (rps == "" || p99 == "") { print "unparsable"; exit 1 }
      printf "%.0f %.3f %d\n", rps, p99, errors
    }' "$1" || die "could not parse wrk output: $(cat "$1")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
# verdict "EXPR": PASS or FAIL, EXPR being an awk comparison of numbers such as "1.02 >= 1.0".
verdict() { awk "BEGIN { print ($1) ? \"PASS\" : \"FAIL\" }"; }
# report LABEL [THROUGHPUT_TARGET [P99_TARGET]]: the B/A throughput and p99 ratios of the last
# `compare`, each with its verdict when a target (an awk comparison such as ">= 1.0") is given.
report() {
  local tput p99
  tput=$(ratio "$MED_RPS_B" "$MED_RPS_A")
  p99=$(ratio "$MED_P99_B" "$MED_P99_A")
  say ""
  say "$1 throughput: ${tput}x${2:+  (target $2: $(verdict "$tput $2"))}"
  say "$1 p99:        ${p99}x${3:+  (target $3: $(verdict "$p99 $3"))}"
}
# row ROUND TARGET "REQS P99 ERRORS": one line of the per-round table.
row() {
  local rps p99 errors
  read -r rps p99 errors <<<"$3"
  printf '%-6s %-22s %12s %10s %8s' "$1" "$2" "$rps" "$p99" "$errors"
}

# compare NAME_A PORT_A NAME_B PORT_B: warm-up, then ROUNDS alternating rounds A, B, A, B...
# Prints the per-round table and the medians; sets MED_RPS_A/B and MED_P99_A/B.
# COMPARE_PATH_A/B and COMPARE_HEADER_A/B, when set, give each side its path and a header;
# COMPARE_SCRIPT_A/B a wrk Lua script for each side.
compare() {
  local name_a=$1 port_a=$2 name_b=$3 port_b=$4 round r
  local a=("${COMPARE_PATH_A:-$BENCH_PATH}" "${COMPARE_HEADER_A:-}" "${COMPARE_SCRIPT_A:-}")
  local b=("${COMPARE_PATH_B:-$BENCH_PATH}" "${COMPARE_HEADER_B:-}" "${COMPARE_SCRIPT_B:-}")
  log "warm-up: $WARMUP each"
  run_wrk "$name_a" "$port_a" "$WARMUP" "${a[@]}"
  run_wrk "$name_b" "$port_b" "$WARMUP" "${b[@]}"

  : >"$TMP/a.txt"
  : >"$TMP/b.txt"
  say ""
  say "$(printf '%-6s %-22s %12s %10s %8s' round target req/s p99_ms errors)"
  for round in $(seq "$ROUNDS"); do
    run_wrk "$name_a" "$port_a" "$DURATION" "${a[@]}"
    r=$WRK_RESULT
    echo "$r" >>"$TMP/a.txt"
    say "$(row "$round" "$name_a" "$r")"
    run_wrk "$name_b" "$port_b" "$DURATION" "${b[@]}"
    r=$WRK_RESULT
    echo "$r" >>"$TMP/b.txt"
    say "$(row "$round" "$name_b" "$r")"
  done

  MED_RPS_A=$(cut -d' ' -f1 "$TMP/a.txt" | median)
  MED_P99_A=$(cut -d' ' -f2 "$TMP/a.txt" | median)
  MED_RPS_B=$(cut -d' ' -f1 "$TMP/b.txt" | median)
  MED_P99_B=$(cut -d' ' -f2 "$TMP/b.txt" | median)
  local err_a err_b
  err_a=$(awk '{ s += $3 } END { print s + 0 }' "$TMP/a.txt")
  err_b=$(awk '{ s += $3 } END { print s + 0 }' "$TMP/b.txt")
  say ""
  say "$(printf '%-29s %12s %10s %8s' 'median' req/s p99_ms errors)"
  say "$(printf '%-29s %12s %10s %8s' "$name_a" "$MED_RPS_A" "$MED_P99_A" "$err_a")"
  say "$(printf '%-29s %12s %10s %8s' "$name_b" "$MED_RPS_B" "$MED_P99_B" "$err_b")"
  if ((err_a + err_b > 0)); then
    say "WARNING: wrk saw errors (socket errors or non-2xx answers); see $RAW"
  fi
}

# ---------------------------------------------------------------------------------------------
# Modes.
# ---------------------------------------------------------------------------------------------

# proxy: nginx vs Gatehouse on the same route.
mode_proxy() {
  say ""
  say "## proxy: nginx vs gatehouse, GET $BENCH_PATH"
  local nginx_port gh_port
  free_port nginx_port
  free_port gh_port
  start_nginx "$nginx_port"
  write_gatehouse_config "$TMP/gatehouse.yaml" "$gh_port"
  start_gatehouse "$TMP/gatehouse.yaml" "$gh_port"

  compare nginx "$nginx_port" gatehouse "$gh_port"
  report "gatehouse/nginx" ">= 1.0" "<= 1.0"

  stop "$GATEHOUSE_PID"
  stop "$NGINX_PID"
}

# tls: nginx vs Gatehouse over HTTPS with the same throwaway certificate (ECDSA P-256, made
# with openssl for this run): keep-alive connections, then one handshake per request.
mode_tls() {
  say ""
  say "## tls: nginx vs gatehouse over HTTPS, GET $BENCH_PATH"
  TLS_CERT=$TMP/bench-cert.pem
  TLS_KEY=$TMP/bench-key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TLS_KEY" -out "$TLS_CERT" >"$TMP/openssl.log" 2>&1 ||
    die "openssl could not make a certificate: $(cat "$TMP/openssl.log")"
  SCHEME=https
  local nginx_port gh_port
  free_port nginx_port
  free_port gh_port
  start_nginx "$nginx_port" tls
  write_gatehouse_config "$TMP/gatehouse-tls.yaml" "$gh_port" tls
  start_gatehouse "$TMP/gatehouse-tls.yaml" "$gh_port"

  say ""
  say "### keep-alive (TLS handshake once per connection)"
  compare nginx-https "$nginx_port" gatehouse-https "$gh_port"
  report "gatehouse/nginx" ">= 1.0" "<= 1.0"

  say ""
  say "### Connection: close (a full TLS handshake per request)"
  WRK_ARGS=(-H 'Connection: close')
  compare nginx-https-close "$nginx_port" gatehouse-https-close "$gh_port"
  WRK_ARGS=()
  report "gatehouse/nginx"

  SCHEME=http
  stop "$GATEHOUSE_PID"
  stop "$NGINX_PID"
}

# routes: `gatehouse check` time on 10,000 routes, and throughput with 10 vs 10,000 routes.
mode_routes() {
  say ""
  say "## routes: 10 vs 10,000 routes"
  local small_port big_port small big
  free_port small_port
  free_port big_port
  small=$TMP/routes-10.yaml
  big=$TMP/routes-10000.yaml
  python3 "$BENCH/gen_routes.py" --listen "127.0.0.1:$small_port" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --routes 10 >"$small"
  python3 "$BENCH/gen_routes.py" --listen "127.0.0.1:$big_port" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --routes 10000 >"$big"

  # Wall time of the whole `check` process (start, parse, validate, compile): an upper bound
  # on the compile time. The median of three runs.
  local t status out times=()
  for _ in 1 2 3; do
    status=0
    t=$({ TIMEFORMAT=%R; time "$GATEHOUSE" check -c "$big" >"$TMP/check.out" 2>&1; } 2>&1) || status=$?
    out=$(cat "$TMP/check.out")
    ((status == 0)) || die "gatehouse check failed (status $status) on the 10,000-route config: $(head -c 2000 "$TMP/check.out")"
    times+=("$t")
  done
  local ms
  ms=$(printf '%s\n' "${times[@]}" | median | awk '{ printf "%.0f", $1 * 1000 }')
  say "gatehouse check -c routes-10000.yaml: $out"
  say "check time (median of 3, whole process): ${ms} ms  (target < 200 ms: $(verdict "$ms < 200"))"

  start_gatehouse "$small" "$small_port"
  local small_pid=$GATEHOUSE_PID
  start_gatehouse "$big" "$big_port"
  local big_pid=$GATEHOUSE_PID

  compare "gatehouse-10-routes" "$small_port" "gatehouse-10000-routes" "$big_port"
  report "10,000-route/10-route" ">= 0.95"

  stop "$big_pid"
  stop "$small_pid"
}

# rss_kib PID...: summed VmRSS of the processes and their children (nginx workers), in KiB.
rss_kib() {
  local pid p kids total=0 kib
  for pid in "$@"; do
    kids=$(pgrep -P "$pid" || true)
    for p in $pid $kids; do
      kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
      total=$((total + ${kib:-0}))
    done
  done
  echo "$total"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
mem_row() { printf '%-30s %8s MiB  %s' "$1" "$2" "$3"; }

# measure_memory NAME PID PORT: prints idle RSS and RSS with HOLD_CONNECTIONS keep-alive
# connections open; sets IDLE_KIB and BUSY_KIB.
measure_memory() {
  local name=$1 pid=$2 port=$3 ready=$TMP/ready-$3 holder
  sleep 1 # let start-up allocations settle
  IDLE_KIB=$(rss_kib "$pid")
  rm -f "$ready"
  python3 "$BENCH/hold_conns.py" --port "$port" --count "$HOLD_CONNECTIONS" --hold 5 \
    --ready-file "$ready" >"$TMP/hold-$port.log" 2>&1 &
  holder=$!
  PIDS+=("$holder")
  for _ in $(seq 600); do
    [[ -s $ready ]] && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  [[ -s $ready ]] || {
    cat "$TMP/hold-$port.log" >&2
    die "$name: could not open $HOLD_CONNECTIONS connections within 60 s"
  }
  sleep 1 # connections are open and idle; read the memory while they are held
  BUSY_KIB=$(rss_kib "$pid")
  local status=0
  wait "$holder" || status=$?
  stop "$holder"
  sed 's/^/    /' "$TMP/hold-$port.log" | tee -a "$RESULTS"
  ((status == 0)) || say "WARNING: $name did not answer all $HOLD_CONNECTIONS requests with 200"
}

# memory: resident memory idle and with 5,000 keep-alive connections.
mode_memory() {
  say ""
  say "## memory: VmRSS idle and with $HOLD_CONNECTIONS keep-alive connections"
  local gh_port nginx_port idle busy
  free_port gh_port
  write_gatehouse_config "$TMP/gatehouse-memory.yaml" "$gh_port"
  start_gatehouse "$TMP/gatehouse-memory.yaml" "$gh_port"
  measure_memory gatehouse "$GATEHOUSE_PID" "$gh_port"
  idle=$(mib "$IDLE_KIB")
  busy=$(mib "$BUSY_KIB")
  say "$(mem_row "gatehouse idle" "$idle" "(target < 20 MiB: $(verdict "$idle < 20"))")"
  say "$(mem_row "gatehouse, $HOLD_CONNECTIONS connections" "$busy" "(target < 64 MiB: $(verdict "$busy < 64"))")"
  stop "$GATEHOUSE_PID"

  # nginx for comparison: master plus workers, summed (shared pages are counted per process).
  free_port nginx_port
  start_nginx "$nginx_port"
  measure_memory nginx "$NGINX_PID" "$nginx_port"
  say "$(mem_row "nginx idle" "$(mib "$IDLE_KIB")" "(master + workers)")"
  say "$(mem_row "nginx, $HOLD_CONNECTIONS connections" "$(mib "$BUSY_KIB")" "(master + workers)")"
  stop "$NGINX_PID"
}

# b64url: base64url without padding of stdin.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# make_jwt_tokens: an HS256 token (secret HS_SECRET) and an RS256 token signed with a fresh
# 2048-bit key whose public half is $TMP/rs256.pub; sets HS_TOKEN and RS_TOKEN. Nothing is
# kept: the key lives in the temp dir of this run.
make_jwt_tokens() {
  HS_SECRET=bench-secret-$RANDOM$RANDOM
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/rs256.key" 2>/dev/null ||
    die "openssl could not generate an RSA key"
  openssl pkey -in "$TMP/rs256.key" -pubout -out "$TMP/rs256.pub"
  local now payload hs rs
  now=$(date +%s)
  payload=$(printf '{"sub":"bench","scope":"users:read","iat":%d,"exp":%d}' "$now" $((now + 86400)) | b64url)
  hs="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$payload"
  rs="$(printf '{"alg":"RS256","typ":"JWT"}' | b64url).$payload"
  HS_TOKEN="$hs.$(printf '%s' "$hs" | openssl dgst -sha256 -hmac "$HS_SECRET" -binary | b64url)"
  RS_TOKEN="$rs.$(printf '%s' "$rs" | openssl dgst -sha256 -sign "$TMP/rs256.key" -binary | b64url)"
}

# jwt: the plain route vs the same route behind `auth.jwt` (HS256, then RS256), one gatehouse.
mode_jwt() {
  say ""
  say "## jwt: gatehouse plain vs auth.jwt HS256 and RS256 (the same token on every request)"
  local gh_port config=$TMP/gatehouse-jwt.yaml alg token
  free_port gh_port
  make_jwt_tokens
  cat >"$config" <<EOF
listen: 127.0.0.1:$gh_port
observability: { access_log: off }
services:
  users: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
  - path: /hs/api/v1/users/**
    service: users
    strip_prefix: /hs/api/v1
    plugins:
      auth: { jwt: { algorithms: [HS256], secret: "$HS_SECRET" } }
  - path: /rs/api/v1/users/**
    service: users
    strip_prefix: /rs/api/v1
    plugins:
      auth: { jwt: { algorithms: [RS256], public_key: "$TMP/rs256.pub" } }
EOF
  start_gatehouse "$config" "$gh_port"
  check_route "gatehouse jwt HS256" "$gh_port" "/hs$BENCH_PATH" "Authorization: Bearer $HS_TOKEN"
  check_route "gatehouse jwt RS256" "$gh_port" "/rs$BENCH_PATH" "Authorization: Bearer $RS_TOKEN"

  for alg in hs rs; do
    if [[ $alg == hs ]]; then token=$HS_TOKEN; else token=$RS_TOKEN; fi
    COMPARE_PATH_B="/$alg$BENCH_PATH" COMPARE_HEADER_B="Authorization: Bearer $token" \
      compare gatehouse-plain "$gh_port" "gatehouse-jwt-${alg}256" "$gh_port"
    report "jwt-${alg}256/plain" ">= 0.9"
  done
  stop "$GATEHOUSE_PID"
}

# cache: nginx proxying (no cache) vs Gatehouse answering the same route from its cache, and
# Gatehouse's fill path (`Cache-Control: no-cache`: fetched each time and read against the stored
# answer, which the same answer refreshes in place).
mode_cache() {
  say ""
  say "## cache: nginx proxying vs gatehouse with cache (ttl 1h), GET $BENCH_PATH"
  local nginx_port gh_port config=$TMP/gatehouse-cache.yaml verdict
  free_port nginx_port
  free_port gh_port
  start_nginx "$nginx_port"
  cat >"$config" <<EOF
listen: 127.0.0.1:$gh_port
observability: { access_log: off }
services:
  users: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
    plugins:
      cache: { ttl: 1h }
EOF
  start_gatehouse "$config" "$gh_port"
  verdict=$(curl -s -o /dev/null -D - "http://127.0.0.1:$gh_port$BENCH_PATH" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-cache" { print $2 }')
  [[ $verdict == HIT ]] || die "gatehouse cache: the second request answered X-Cache: '$verdict', not HIT"

  say ""
  say "### hits (the upstream is not contacted)"
  compare nginx "$nginx_port" gatehouse-cache-hit "$gh_port"
  report "gatehouse-hit/nginx" "> 1.0"

  say ""
  say "### fill path (Cache-Control: no-cache: every request fetched and read against the stored answer, which it refreshes)"
  COMPARE_HEADER_B="Cache-Control: no-cache" \
    compare nginx "$nginx_port" gatehouse-cache-fill "$gh_port"
  report "gatehouse-fill/nginx"

  stop "$GATEHOUSE_PID"
  stop "$NGINX_PID"
}

# ratelimit: the plain route vs the same route behind a `rate_limit` that never refuses
# (sliding_window, key ip, 1000000000/1s), one gatehouse: the cost of counting every request.
mode_ratelimit() {
  say ""
  say "## ratelimit: gatehouse plain vs rate_limit (sliding_window, key ip, never refusing)"
  local gh_port config=$TMP/gatehouse-ratelimit.yaml
  free_port gh_port
  cat >"$config" <<EOF
listen: 127.0.0.1:$gh_port
observability: { access_log: off }
services:
  users: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
  - path: /rl/api/v1/users/**
    service: users
    strip_prefix: /rl/api/v1
    plugins:
      rate_limit: { limits: [1000000000/1s], key: ip }
EOF
  start_gatehouse "$config" "$gh_port"
  check_route "gatehouse rate_limit" "$gh_port" "/rl$BENCH_PATH"
  COMPARE_PATH_B="/rl$BENCH_PATH" compare gatehouse-plain "$gh_port" gatehouse-ratelimit "$gh_port"
  report "ratelimit/plain" ">= 0.95"
  stop "$GATEHOUSE_PID"
}

# stack: nginx plain proxying vs gatehouse with auth.jwt (HS256) + rate_limit (never refusing)
# + cache on the miss path, the combination issue 4 names. First on the bench route with
# `Cache-Control: no-cache`: every request fetched and read against the stored answer, which
# it refreshes in place, being the same. Then true misses: every request a path never asked
# before (bench/new_keys.lua), fetched, copied and stored, evicting older entries once the
# route's 64 MiB are full.
mode_stack() {
  say ""
  say "## stack: nginx proxying vs gatehouse with jwt + rate_limit + cache miss path"
  local nginx_port gh_port config=$TMP/gatehouse-stack.yaml
  free_port nginx_port
  free_port gh_port
  make_jwt_tokens
  start_nginx "$nginx_port"
  cat >"$config" <<EOF
listen: 127.0.0.1:$gh_port
observability: { access_log: off }
services:
  users: { url: http://127.0.0.1:$UPSTREAM_PORT }
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
  - path: /stack/api/v1/users/**
    service: users
    strip_prefix: /stack/api/v1
    plugins:
      auth: { jwt: { algorithms: [HS256], secret: "$HS_SECRET" } }
      rate_limit: { limits: [1000000000/1s], key: consumer }
      cache: { ttl: 1h }
EOF
  start_gatehouse "$config" "$gh_port"
  check_route "gatehouse stack" "$gh_port" "/stack$BENCH_PATH" "Authorization: Bearer $HS_TOKEN"
  COMPARE_PATH_B="/stack$BENCH_PATH" COMPARE_HEADER_B="Authorization: Bearer $HS_TOKEN|Cache-Control: no-cache" \
    compare nginx "$nginx_port" gatehouse-stack-miss "$gh_port"
  report "gatehouse-stack/nginx" ">= 0.9"
  say ""
  say "## stack, true misses: a new path each request (bench/new_keys.lua, on both sides)"
  # nginx gets the same script (its new paths go to the upstream like the others): the Lua
  # call per request costs wrk CPU, which both servers then share alike.
  COMPARE_PATH_B="/stack$BENCH_PATH" COMPARE_HEADER_B="Authorization: Bearer $HS_TOKEN" \
    COMPARE_SCRIPT_A="$BENCH/new_keys.lua" COMPARE_SCRIPT_B="$BENCH/new_keys.lua" \
    compare nginx-new-keys "$nginx_port" gatehouse-new-keys "$gh_port"
  report "gatehouse-new-keys/nginx" ">= 0.9"
  stop "$GATEHOUSE_PID"
  stop "$NGINX_PID"
}

# balance: one service with a single target vs the same upstream as 3 targets (127.0.0.1,
# 127.0.0.2, 127.0.0.3: loopback aliases of one upstream process bound to 0.0.0.0) with
# round robin and active health checks, in one gatehouse: balancing and health bookkeeping
# must not show (issue 5).
mode_balance() {
  say ""
  say "## balance: gatehouse single target vs 3 targets with health checks"
  local gh_port up_port config=$TMP/gatehouse-balance.yaml
  free_port gh_port
  free_port up_port
  "$UPSTREAM_BIN" "0.0.0.0:$up_port" >"$TMP/upstream-any.log" 2>&1 &
  PIDS+=($!)
  wait_port "upstream on 0.0.0.0" $! "$up_port" "$TMP/upstream-any.log"
  cat >"$config" <<EOF
listen: 127.0.0.1:$gh_port
observability: { access_log: off }
services:
  single: { url: http://127.0.0.1:$up_port }
  three:
    targets:
      - url: http://127.0.0.1:$up_port
      - url: http://127.0.0.2:$up_port
      - url: http://127.0.0.3:$up_port
    health: { path: /health, interval: 1s, timeout: 500ms }
routes:
  - path: /api/v1/users/**
    service: single
    strip_prefix: /api/v1
  - path: /three/api/v1/users/**
    service: three
    strip_prefix: /three/api/v1
EOF
  start_gatehouse "$config" "$gh_port"
  check_route "gatehouse 3 targets" "$gh_port" "/three$BENCH_PATH"
  COMPARE_PATH_B="/three$BENCH_PATH" compare gatehouse-single "$gh_port" gatehouse-3-targets "$gh_port"
  report "3-targets/single" ">= 0.97"
  stop "$GATEHOUSE_PID"
}

start_upstream
case "$MODE" in
  proxy) mode_proxy ;;
  tls) mode_tls ;;
  routes) mode_routes ;;
  memory) mode_memory ;;
  jwt) mode_jwt ;;
  cache) mode_cache ;;
  ratelimit) mode_ratelimit ;;
  stack) mode_stack ;;
  balance) mode_balance ;;
  all)
    mode_proxy
    mode_tls
    mode_routes
    mode_memory
    mode_jwt
    mode_cache
    mode_ratelimit
    mode_stack
    mode_balance
    ;;
esac
say ""
say "# results: $RESULTS$([[ -e $RAW ]] && echo " (raw wrk output: $RAW)")"
