#!/usr/bin/env bash
# HTTP benchmark for SPEC §9 P3: requests per second of routes on a running server,
# measured with wrk on loopback, each for a bounded time, with ratios to the first route.
#
# Usage:
#   scripts/http-bench.sh [-d SECONDS] [-c CONNECTIONS] [-t THREADS] BASE_URL ROUTE [ROUTE...]
#
# The first route is the reference: the "ratio" column is each route's req/s divided by
# the first route's. Before measuring, each route is requested twice (so a cached view is
# warm and the run measures hits) and its Cache-Status is shown.
#
# P3 with the flagship example (`cargo run --release --example products` in another
# terminal, listening on 127.0.0.1:3000): the cached aggregate against the same
# aggregate uncached, and a cached view,
#
#   scripts/http-bench.sh http://127.0.0.1:3000 \
#       '/stats/categories' \
#       '/uncached/stats/categories' \
#       '/products?category=3&page=1'
#
# and for the "same bytes from memory" reference, put a route of yours that returns the
# cached view's body from memory first, then the `#[cache_view]` route. Targets: a
# `#[cache_view]` hit at least 0.7x the req/s of that reference, and the uncached
# aggregate at most 0.05x (1/20) of the cached one. Record the figures and the command
# line in BENCHMARKS.md.
#
# Bounds: each run lasts -d seconds (default 10, at most 120) and is killed after
# d + 30 seconds whatever happens; connections default to 64 (at most 1024); only
# loopback URLs are accepted.
set -euo pipefail

duration=10
connections=64
threads=2

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

while getopts "d:c:t:h" opt; do
    case "$opt" in
        d) duration="$OPTARG" ;;
        c) connections="$OPTARG" ;;
        t) threads="$OPTARG" ;;
        h) usage 0 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ "$#" -ge 2 ] || usage

for n in "$duration" "$connections" "$threads"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "http-bench: '$n' is not a positive whole number" >&2; exit 2; }
done
[ "$duration" -le 120 ] || { echo "http-bench: -d is at most 120 seconds" >&2; exit 2; }
[ "$connections" -le 1024 ] || { echo "http-bench: -c is at most 1024" >&2; exit 2; }
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

# Requests per second reported by wrk for one URL.
measure() {
    local url="$1" out
    if ! out="$(timeout $((duration + 30)) wrk -t "$threads" -c "$connections" -d "${duration}s" --latency "$url")"; then
        echo "http-bench: wrk failed on $url" >&2
        return 1
    fi
    echo "$out" >&2
    if echo "$out" | grep -q "Non-2xx or 3xx responses"; then
        echo "http-bench: $url answered errors during the run; its figure is not comparable" >&2
        return 1
    fi
    echo "$out" | awk '/^Requests\/sec:/ { print $2 }'
}

declare -a names rates
for route in "$@"; do
    [[ "$route" == /* ]] || route="/$route"
    url="$base$route"
    status=""
    for _ in 1 2; do
        status="$(curl -s -o /dev/null -D - --max-time 30 "$url" | tr -d '\r' | awk 'tolower($1) == "cache-status:" { $1 = ""; print substr($0, 2) }')"
    done
    echo "== $route (Cache-Status after warm-up: ${status:-none}); ${duration}s, $connections connections, $threads threads" >&2
    rate="$(measure "$url")"
    [ -n "$rate" ] || { echo "http-bench: no Requests/sec in wrk's output for $url" >&2; exit 1; }
    names+=("$route")
    rates+=("$rate")
done

echo
printf '%-50s %14s %10s\n' "route" "req/s" "ratio"
for i in "${!names[@]}"; do
    ratio="$(awk -v a="${rates[$i]}" -v b="${rates[0]}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
    printf '%-50s %14s %10s\n' "${names[$i]}" "${rates[$i]}" "$ratio"
done
