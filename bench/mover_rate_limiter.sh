#!/usr/bin/env bash
# What the bandwidth limiter costs when it does not limit: stowage-mover backs the same data up
# into fresh file:// repositories (no network, so the mover's own work is all that is timed),
# ROUNDS times each, alternating: without --rate-upload (no limiter at all, the case of a cluster
# without windows) and with a schedule whose window is unlimited now and limited a day later
# (the limiter runs, looks the rate up on every object and never waits). Prints the median
# seconds of each and their ratio; the mover's rate_wait_ms must be 0.
#
#   bench/mover_rate_limiter.sh [MIB] [ROUNDS]      (defaults: 512 MiB of random data, 5 rounds)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mib=${1:-512}
rounds=${2:-5}
mover=${STOWAGE_MOVER:-$top/stowage-mover}
[ -x "$mover" ] || { echo "build stowage-mover first (make)" >&2; exit 1; }
work=$(mktemp -d /tmp/rate-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/data"
head -c "$((mib << 20))" /dev/urandom >"$work/data/disk.img"
cat "$work/data/disk.img" >/dev/null
printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/key"
chmod 600 "$work/key"
now=$(date +%s)
schedule="$((now - 60)):0,$((now + 86400)):1000000"
declare -a plain limited
for i in $(seq "$rounds"); do
	for kind in plain limited; do
		rm -rf "$work/repo"
		args=(backup --repo "file://$work/repo" --repo-id bench --key-file "$work/key" --source "$work/data" --threads 2)
		[ "$kind" = limited ] && args+=(--rate-upload "$schedule")
		start=$(date +%s.%N)
		"$mover" "${args[@]}" >"$work/out"
		end=$(date +%s.%N)
		wait_ms=$(tail -n 1 "$work/out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate_wait_ms"])')
		[ "$wait_ms" = 0 ] || { echo "$kind: the mover waited $wait_ms ms" >&2; exit 1; }
		s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$end")
		if [ "$kind" = plain ]; then plain+=("$s"); else limited+=("$s"); fi
	done
done
python3 - "$mib" "${plain[*]}" "${limited[*]}" <<'PY'
import statistics, sys
mib, plain, limited = int(sys.argv[1]), [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
p, l = statistics.median(plain), statistics.median(limited)
print(f"{mib} MiB, {len(plain)} rounds each (median): no limiter {p:.2f} s ({mib * 1.048576 / p:.0f} MB/s), "
      f"limiter with an unlimited window {l:.2f} s ({mib * 1.048576 / l:.0f} MB/s), ratio {l / p:.3f}")
print(f"fastest: no limiter {min(plain):.2f} s, unlimited window {min(limited):.2f} s, ratio {min(limited) / min(plain):.3f}")
print("runs, no limiter:", " ".join(f"{x:.2f}" for x in plain))
print("runs, unlimited window:", " ".join(f"{x:.2f}" for x in limited))
PY
