#!/usr/bin/env bash
# HTTP benchmark for SPEC §9 P3: requests per second of routes on a running server,
# measured with wrk on loopback, each for a bounded time, with ratios to the first route.
#
# Usage:
#   scripts/http-bench.sh [-d SECONDS] [-c CONNECTIONS] [-t THREADS] [-r ROUNDS] [-p PID] BASE_URL ROUTE [ROUTE...]
#
# The first route is the reference: the "ratio" column is each route's req/s divided by
# the first route's in the same round. Before measuring, each route is requested twice
# (so a cached view is warm and the run measures hits) and its Cache-Status is shown.
#
# With -r ROUNDS (default 1, at most 10) the routes are measured in turn ROUNDS times
# (reference, route, reference, route, ...), each round's ratios are printed, and the
# last table gives each route's median ratio: on a shared, noisy machine a ratio from
# back-to-back runs is steadier than either figure alone.
#
# With -p PID (the server's process id) each route's figure also has the server's CPU
# time per request (user + system, from /proc/PID/stat), and "cpu ratio" is the
# reference's CPU time per request divided by the route's: what the route costs the
# server, less sensitive than req/s to other processes competing for the cores.
#
# P3 with the flagship example (`cargo build --release --example products --features metrics`, then
# `PORT=3997 target/release/examples/products` in another terminal): the same bytes from
# memory through the same extractors (the reference, first), the `#[cache_view]` hit,
# then the cached aggregate against the same aggregate uncached,
#
#   scripts/http-bench.sh -d 8 -r 3 -p "$(pgrep -n products)" http://127.0.0.1:3997 \
#       '/bench/reference-page?category=lamps&page=1' \
#       '/products?category=lamps&page=1' \
#       '/stats/categories' \
#       '/uncached/stats/categories'
#
# Targets (SPEC §15): a `#[cache_view]` hit at least 0.8x the req/s of the reference,
# and the uncached aggregate at most 0.05x (1/20) of the cached one. Record the figures
# and the command line in BENCHMARKS.md.
#
# Bounds: each run lasts -d seconds (default 10, at most 120) and is killed after
# d + 30 seconds whatever happens; connections default to 64 (at most 1024); only
# loopback URLs are accepted.
set -euo pipefail

duration=10
connections=64
threads=2
rounds=1
pid=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

while getopts "d:c:t:r:p:h" opt; do
    case "$opt" in
        d) duration="$OPTARG" ;;
        r) rounds="$OPTARG" ;;
        p) pid="$OPTARG" ;;
        c) connections="$OPTARG" ;;
        t) threads="$OPTARG" ;;
        h) usage 0 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ "$#" -ge 2 ] || usage

for n in "$duration" "$connections" "$threads" "$rounds"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "http-bench: '$n' is not a positive whole number" >&2; exit 2; }
done
[ "$duration" -le 120 ] || { echo "http-bench: -d is at most 120 seconds" >&2; exit 2; }
[ "$connections" -le 1024 ] || { echo "http-bench: -c is at most 1024" >&2; exit 2; }
[ "$rounds" -le 10 ] || { echo "http-bench: -r is at most 10" >&2; exit 2; }
if [ -n "$pid" ]; then
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] && [ -r "/proc/$pid/stat" ] || { echo "http-bench: -p '$pid' is not a running process" >&2; exit 2; }
fi
[ "$threads" -le "$connections" ] || threads="$connections"

base="${1%/}"
shift
case "$base" in
    http://127.0.0.1:*|http://localhost:*|http://\[::1\]:*) ;;
    *) echo "http-bench: BASE_URL must be a loopback http:// URL with a port, got '$base'" >&2; exit 2 ;;
esac

for tool in wrk curl; do
    command -v "$tool" >/dev/null || {
        echo "http-bench: '$tool' is not installed: apt-get install -y $tool (or your system's package manager)" >&2
        exit 1
    }
done

# The server's CPU time so far, in clock ticks (user + system; fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() {
    [ -n "$pid" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

# "REQ_PER_SEC REQUESTS CPU_TICKS" for one URL, from wrk and /proc.
measure() {
    local url="$1" out before after
    before="$(cpu_ticks)"
    if ! out="$(timeout $((duration + 30)) wrk -t "$threads" -c "$connections" -d "${duration}s" --latency "$url")"; then
        echo "http-bench: wrk failed on $url" >&2
        return 1
    fi
    after="$(cpu_ticks)"
    echo "$out" >&2
    if echo "$out" | grep -q "Non-2xx or 3xx responses"; then
        echo "http-bench: $url answered errors during the run; its figure is not comparable" >&2
        return 1
    fi
    echo "$out" | awk -v cpu=$((after - before)) '
        /^Requests\/sec:/ { rate = $2 }
        / requests in / { n = $1 }
        END { print rate, n, cpu }'
}

declare -a names
for route in "$@"; do
    [[ "$route" == /* ]] || route="/$route"
    status=""
    for _ in 1 2; do
        status="$(curl -s -o /dev/null -D - --max-time 30 "$base$route" | tr -d '\r' | awk 'tolower($1) == "cache-status:" { $1 = ""; print substr($0, 2) }')"
    done
    echo "== $route: Cache-Status after warm-up: ${status:-none}" >&2
    names+=("$route")
done

hz="$(getconf CLK_TCK)"
# ratios[i] (cpu_ratios[i]) holds route i's req/s (CPU) ratio of every round.
declare -a ratios cpu_ratios
for round in $(seq 1 "$rounds"); do
    declare -a rates=() costs=()
    for route in "${names[@]}"; do
        echo "== round $round: $route; ${duration}s, $connections connections, $threads threads" >&2
        read -r rate n ticks <<<"$(measure "$base$route")"
        [ -n "$rate" ] || { echo "http-bench: no Requests/sec in wrk's output for $route" >&2; exit 1; }
        rates+=("$rate")
        # Microseconds of server CPU per request.
        costs+=("$(awk -v t="$ticks" -v n="${n:-0}" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print 0 }')")
    done
    echo
    echo "round $round of $rounds"
    if [ -n "$pid" ]; then
        printf '%-50s %14s %10s %14s %10s\n' "route" "req/s" "ratio" "cpu us/req" "cpu ratio"
    else
        printf '%-50s %14s %10s\n' "route" "req/s" "ratio"
    fi
    for i in "${!names[@]}"; do
        ratio="$(awk -v a="${rates[$i]}" -v b="${rates[0]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0" }')"
        ratios[i]="${ratios[$i]:-} $ratio"
        if [ -n "$pid" ]; then
            cpu_ratio="$(awk -v a="${costs[$i]}" -v b="${costs[0]}" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "0" }')"
            cpu_ratios[i]="${cpu_ratios[$i]:-} $cpu_ratio"
            printf '%-50s %14s %9sx %14s %9sx\n' "${names[$i]}" "${rates[$i]}" "$ratio" "${costs[$i]}" "$cpu_ratio"
        else
            printf '%-50s %14s %9sx\n' "${names[$i]}" "${rates[$i]}" "$ratio"
        fi
    done
done

# The median of a space-separated list of numbers.
median() {
    echo "$1" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [ "$rounds" -gt 1 ]; then
    echo
    echo "median over $rounds rounds"
    for i in "${!names[@]}"; do
        line="$(printf '%-50s %9sx   (rounds:%s)' "${names[$i]}" "$(median "${ratios[$i]}")" "${ratios[$i]}")"
        if [ -n "$pid" ]; then
            line="$line; cpu $(median "${cpu_ratios[$i]}")x (rounds:${cpu_ratios[$i]})"
        fi
        echo "$line"
    done
fi
