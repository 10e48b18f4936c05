#!/usr/bin/env bash
# bench/run.sh: load benchmark of the identity handler against stock Caddy.
#
# Builds ./cmd/caddy and the helper bench/server, starts on loopback an
# upstream and a demo OpenID provider (discovery + JWKS), then measures with
# wrk, interleaved for ROUNDS rounds (A B C D, then D C B A, and so on, so
# that a drift of the shared machine's speed within a round does not favour
# the configurations measured first):
#   (a) stock reverse_proxy
#   (b) identity + reverse_proxy, one token repeated
#   (c) the same configuration as (b) (its own Caddy), 10,000 distinct valid
#       tokens cycled, after each was sent once (warm cache)
#   (d) identity with the validated-token cache disabled (cache_size 0)
#   (e), (f) the Caddy of (d) with an ES256 and an EdDSA token
#   (g), (h), (i) with BASELINE=<git revision> only: (d), (e), (f) on a Caddy
#       built from that revision, so that a change to the cold path is
#       measured against the code before it in the same rounds
# and prints a markdown table of medians with the ratio of each to (a), each
# ratio computed within its round and then the median taken. Then (memory
# step, MEMORY=0 skips it) it sends FLOOD distinct valid tokens to a fresh
# Caddy with the default cache and reports the growth of its VmRSS.
#
# Caddy runs on CPU 0, wrk and the helper on CPU 1 (taskset, when there are
# at least two CPUs). Everything listens on 127.0.0.1 only. Results go to
# bench/results/<UTC time>/ (summary.md, results.tsv, raw wrk output, logs).
#
# Knobs (environment): ROUNDS=6 DURATION=2 (s per measured run) WARMUP=1 (s)
# CONNS=32 THREADS=2 TOKENS=10000 MEMORY=1 FLOOD=50000 OUT=<dir>
# CONFIGS="a b c d e f" (the configurations measured, (a) first; with
# BASELINE set, "a b c d e f g h i") BASELINE=<git revision>.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BIN=$BENCH/.bin
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-10000}
BASELINE=${BASELINE:-}
DEFAULT_CONFIGS="a b c d e f"
if [ -n "$BASELINE" ]; then DEFAULT_CONFIGS="a b c d e f g h i"; fi
read -r -a CONFIGS <<<"${CONFIGS:-$DEFAULT_CONFIGS}"
MEMORY=${MEMORY:-1}
FLOOD=${FLOOD:-50000}
OUT=${OUT:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}

START=$SECONDS
log() { printf '[%3ds] %s\n' $((SECONDS - START)) "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
	log "installing wrk (Debian package)"
	SUDO=
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
	$SUDO apt-get install -y wrk >/dev/null 2>&1 ||
		{ $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; } ||
		die "cannot install wrk"
fi
command -v go >/dev/null 2>&1 || die "go is not on PATH"
command -v curl >/dev/null 2>&1 || die "curl is not on PATH"

PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	PIN_SERVER=(taskset -c 0)
	PIN_CLIENT=(taskset -c 1)
else
	log "taskset missing or a single CPU: processes are not pinned"
fi

mkdir -p "$BIN" "$OUT"
log "building caddy and the helper"
(cd "$ROOT" && go build -o "$BIN/caddy" ./cmd/caddy && go build -o "$BIN/server" ./bench/server)
if [ -n "$BASELINE" ]; then
	log "building caddy at $BASELINE (baseline)"
	rm -rf "$BIN/baseline-src"
	mkdir -p "$BIN/baseline-src"
	git -C "$ROOT" archive "$BASELINE" | tar -x -C "$BIN/baseline-src"
	(cd "$BIN/baseline-src" && go build -o "$BIN/caddy-baseline" ./cmd/caddy)
fi

# --- processes and cleanup ----------------------------------------------------
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait until "$1" exists or the time ($2 s) runs out.
wait_file() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

log "starting upstream and demo issuer, minting $TOKENS tokens"
FLOOD_N=0
if [ "$MEMORY" != 0 ]; then FLOOD_N=$FLOOD; fi
# Unpinned while minting (both CPUs), pinned to CPU 1 afterwards.
"$BIN/server" serve -dir "$OUT" -tokens "$TOKENS" -flood "$FLOOD_N" 2>"$OUT/server.log" &
HELPER=$!
PIDS+=("$HELPER")
wait_file "$OUT/env.sh" 120 || die "helper did not start (see $OUT/server.log)"
if [ ${#PIN_CLIENT[@]} -gt 0 ]; then taskset -a -p -c 1 "$HELPER" >/dev/null; fi
# shellcheck source=/dev/null
. "$OUT/env.sh"
log "upstream $UPSTREAM, issuer $ISSUER"

mapfile -t PORTS < <("$BIN/server" ports -n 6)
PORT_A=${PORTS[0]} PORT_B=${PORTS[1]} PORT_C=${PORTS[2]} PORT_D=${PORTS[3]} PORT_M=${PORTS[4]} PORT_G=${PORTS[5]}

# The identity block is the same for every identity configuration; only the
# cache option differs ("" keeps the default cache size).
identity_block() {
	cat <<EOF
	identity {
		issuer $ISSUER
		audience api
$1
	}
EOF
}

caddyfile() { # port, identity block or ""
	cat <<EOF
{
	admin off
	auto_https off
	log {
		level ERROR
	}
}

http://127.0.0.1:$1 {
	bind 127.0.0.1
$2
	reverse_proxy $UPSTREAM
}
EOF
}

caddyfile "$PORT_A" "" >"$OUT/a.Caddyfile"
caddyfile "$PORT_B" "$(identity_block "")" >"$OUT/b.Caddyfile"
caddyfile "$PORT_C" "$(identity_block "")" >"$OUT/c.Caddyfile"
caddyfile "$PORT_D" "$(identity_block "		cache_size 0")" >"$OUT/d.Caddyfile"
caddyfile "$PORT_M" "$(identity_block "")" >"$OUT/m.Caddyfile"
caddyfile "$PORT_G" "$(identity_block "		cache_size 0")" >"$OUT/g.Caddyfile"

declare -A CADDY_PID
start_caddy() { # name port
	local name=$1 port=$2 i bin=$BIN/caddy
	if [ "$name" = g ]; then bin=$BIN/caddy-baseline; fi
	XDG_CONFIG_HOME=$OUT/xdg XDG_DATA_HOME=$OUT/xdg \
		"${PIN_SERVER[@]}" "$bin" run --adapter caddyfile --config "$OUT/$name.Caddyfile" \
		>"$OUT/caddy-$name.log" 2>&1 &
	CADDY_PID[$name]=$!
	PIDS+=("$!")
	for ((i = 0; i < 200; i++)); do
		if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
		kill -0 "${CADDY_PID[$name]}" 2>/dev/null || die "caddy $name exited (see $OUT/caddy-$name.log)"
		sleep 0.1
	done
	die "caddy $name did not listen on $port"
}

# status URL [token]
status() {
	if [ $# -gt 1 ]; then
		curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "$1"
	else
		curl -s -o /dev/null -w '%{http_code}' "$1"
	fi
}

expect() { # what want got
	[ "$2" = "$3" ] || die "$1: status $3, want $2"
}

log "starting caddy (a) stock, (b) (c) identity, (d) identity without cache"
start_caddy a "$PORT_A"
start_caddy b "$PORT_B"
start_caddy c "$PORT_C"
start_caddy d "$PORT_D"
CHECKED="b c d"
if [ -n "$BASELINE" ]; then
	log "starting caddy (g): $BASELINE without cache"
	start_caddy g "$PORT_G"
	CHECKED="b c d g"
fi

ONE=$(cat "$OUT/token-one.txt")
BAD=$(cat "$OUT/token-bad.txt")
EXPIRED=$(cat "$OUT/token-expired.txt")
expect "(a) no token" 200 "$(status "http://127.0.0.1:$PORT_A/")"
FIRST=$(head -n 1 "$OUT/tokens-many.txt")
for c in $CHECKED; do
	port=PORT_${c^^}
	url=http://127.0.0.1:${!port}/
	# (c) gets one of its own tokens, so that its cache holds exactly those.
	valid=$ONE
	if [ "$c" = c ]; then valid=$FIRST; fi
	expect "($c) valid token" 200 "$(status "$url" "$valid")"
	expect "($c) no token" 401 "$(status "$url")"
	expect "($c) bad signature" 401 "$(status "$url" "$BAD")"
	expect "($c) expired token" 401 "$(status "$url" "$EXPIRED")"
	expect "($c) garbage" 401 "$(status "$url" "not.a.jwt")"
done
for f in es256 eddsa; do
	expect "(d) valid $f token" 200 "$(status "http://127.0.0.1:$PORT_D/" "$(cat "$OUT/token-one-$f.txt")")"
done
log "checks passed: valid 200; missing, bad signature, expired, garbage 401"

log "warming (c): every one of the $TOKENS tokens once"
"${PIN_CLIENT[@]}" "$BIN/server" send -url "http://127.0.0.1:$PORT_C/" -file "$OUT/tokens-many.txt" -conns 16

TICK=$(getconf CLK_TCK)
cpu_ticks() { # pid → utime+stime in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# to_us "2.5ms" → 2500
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000;
		else if (u == "m") f = 60000000; else f = 1
		printf "%.1f", n * f }'
}

# measure round label caddy-name port token-file
measure() {
	local round=$1 label=$2 name=$3 port=$4 file=$5 raw pid t0 t1 rps p50 p99 reqs non2xx cpu
	local url=http://127.0.0.1:$port/
	"${PIN_CLIENT[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$BENCH/tokens.lua" "$url" -- "$file" >/dev/null
	raw=$OUT/wrk-$round-$label.txt
	pid=${CADDY_PID[$name]}
	t0=$(cpu_ticks "$pid")
	"${PIN_CLIENT[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$BENCH/tokens.lua" "$url" -- "$file" >"$raw"
	t1=$(cpu_ticks "$pid")
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$raw")
	p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$raw")")
	p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$raw")")
	reqs=$(awk '/requests in/ {print $1}' "$raw")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$raw")
	non2xx=${non2xx:-0}
	[ -n "$rps" ] && [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || die "cannot parse $raw"
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$TICK" -v n="$reqs" 'BEGIN {printf "%.1f", (b - a) / hz * 1e6 / n}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$label" "$rps" "$p50" "$p99" "$cpu" "$non2xx" >>"$OUT/results.tsv"
	log "round $round $label: $rps req/s, p50 ${p50} µs, p99 ${p99} µs, ${cpu} µs CPU/req, non-2xx $non2xx"
}

: >"$OUT/results.tsv"
measure_config() { # round config
	case $2 in
	a) measure "$1" "(a) stock reverse_proxy" a "$PORT_A" "$OUT/token-one.txt" ;;
	b) measure "$1" "(b) identity, 1 token" b "$PORT_B" "$OUT/token-one.txt" ;;
	c) measure "$1" "(c) identity, $TOKENS tokens cycled" c "$PORT_C" "$OUT/tokens-many.txt" ;;
	d) measure "$1" "(d) identity, cache_size 0" d "$PORT_D" "$OUT/token-one.txt" ;;
	e) measure "$1" "(e) identity, cache_size 0, ES256" d "$PORT_D" "$OUT/token-one-es256.txt" ;;
	f) measure "$1" "(f) identity, cache_size 0, EdDSA" d "$PORT_D" "$OUT/token-one-eddsa.txt" ;;
	g | h | i) [ -n "$BASELINE" ] || die "configuration $2 needs BASELINE=<git revision>" ;;&
	g) measure "$1" "(g) $BASELINE, cache_size 0" g "$PORT_G" "$OUT/token-one.txt" ;;
	h) measure "$1" "(h) $BASELINE, cache_size 0, ES256" g "$PORT_G" "$OUT/token-one-es256.txt" ;;
	i) measure "$1" "(i) $BASELINE, cache_size 0, EdDSA" g "$PORT_G" "$OUT/token-one-eddsa.txt" ;;
	esac
}
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		for c in "${CONFIGS[@]}"; do measure_config "$r" "$c"; done
	else
		for ((i = ${#CONFIGS[@]} - 1; i >= 0; i--)); do measure_config "$r" "${CONFIGS[i]}"; done
	fi
done

{
	echo "wrk -t$THREADS -c$CONNS -d${DURATION}s --latency (after ${WARMUP}s warm-up), $ROUNDS interleaved rounds (order reversed every other round)," \
		"Caddy pinned to CPU 0, wrk + upstream + issuer on CPU 1, RS256 tokens of $(awk '{print length($0); exit}' "$OUT/token-one.txt") bytes."
	echo
	"$BIN/server" report -file "$OUT/results.tsv"
} >"$OUT/summary.md"

# --- memory step -------------------------------------------------------------
if [ "$MEMORY" != 0 ]; then
	# Stop the throughput servers first so that only the memory Caddy runs.
	for c in a b c d; do
		kill "${CADDY_PID[$c]}" 2>/dev/null || true
		wait "${CADDY_PID[$c]}" 2>/dev/null || true
	done
	start_caddy m "$PORT_M"
	pid=${CADDY_PID[m]}
	expect "(m) valid token" 200 "$(status "http://127.0.0.1:$PORT_M/" "$ONE")"
	rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
	before=$(rss "$pid" VmRSS)
	# First as many tokens as the default cache holds, then the rest: the
	# growth should stop once the cache is full.
	FULL=10000
	head -n "$FULL" "$OUT/tokens-flood.txt" >"$OUT/flood-1.txt"
	tail -n +"$((FULL + 1))" "$OUT/tokens-flood.txt" >"$OUT/flood-2.txt"
	log "memory: sending $FLOOD distinct valid tokens (EdDSA) to a Caddy with the default cache"
	"${PIN_CLIENT[@]}" "$BIN/server" send -url "http://127.0.0.1:$PORT_M/" -file "$OUT/flood-1.txt" -conns 16
	full=$(rss "$pid" VmRSS)
	if [ -s "$OUT/flood-2.txt" ]; then
		"${PIN_CLIENT[@]}" "$BIN/server" send -url "http://127.0.0.1:$PORT_M/" -file "$OUT/flood-2.txt" -conns 16
	fi
	after=$(rss "$pid" VmRSS)
	hwm=$(rss "$pid" VmHWM)
	{
		echo
		echo "Memory: Caddy with the default cache (10,000 units): VmRSS $((before / 1024)) MiB after one request," \
			"$((full / 1024)) MiB after $FULL distinct valid tokens (+$(((full - before) / 1024)) MiB, cache full)," \
			"$((after / 1024)) MiB after $FLOOD (+$(((after - before) / 1024)) MiB); peak (VmHWM) $((hwm / 1024)) MiB."
	} >>"$OUT/summary.md"
fi

echo
cat "$OUT/summary.md"
log "done; results in $OUT"
