#!/usr/bin/env bash
# stowage-mover against restic, in the same run, on the same data, into the same MinIO:
#   first backup, second (incremental) backup after a small change, restore of the latest.
# Prints MB/s per row (bytes of the data set / wall time) and the ratio stowage / restic.
#
#   bench/mover_vs_restic.sh [SMALL_FILES] [BIG_MIB]       (defaults: 20000 files, 1536 MiB)
#   RESTORE_DIR=/dev/shm bench/mover_vs_restic.sh          restores into tmpfs: without the
#                                                          disk's file-creation costs (below)
#
# The data set: one large file of random data (incompressible, as most volume data worth a
# backup is) and many small files of 1-64 KiB, half random and half text. Both tools run with
# the machine's cores (the mover --threads $(nproc); restic uses GOMAXPROCS = the cores), both
# compress (zstd) and encrypt. The page cache is warm for both: the data set is read once
# before the first row. MinIO is started here on a free loopback port (the test environment's
# binary, scripts/testenv/build) and stopped at the end. Needs: restic (Debian package).
#
# The pod rows (POD_ROWS=1, the default as root; POD_ROWS=0 skips them): the same mover, as an
# image (scripts/testenv/images/oci-image mover), in a pod on the real node of a test
# environment started here (scripts/testenv/start, stopped at the end), backs the data set up
# into a repository of its own (a first backup: nothing deduplicates against the local rows)
# and restores it, the way mover_launch = pod runs it: the data set and the restore directory
# as hostPath volumes, the key from a Secret, hostNetwork to reach this MinIO on 127.0.0.1.
# The time is from the pod's creation until it has Succeeded: container start included.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
small=${1:-20000}
big_mib=${2:-1536}
mover=${STOWAGE_MOVER:-$top/stowage-mover}
[ -x "$mover" ] || { echo "build stowage-mover first (make)" >&2; exit 1; }
command -v restic >/dev/null || { echo "restic is not installed: apt-get install restic" >&2; exit 1; }
bin=$("$top/scripts/testenv/build" 2>/dev/null | tail -n 1)
[ -x "$bin/minio" ] || { echo "no minio in $bin (scripts/testenv/build)" >&2; exit 1; }

work=$(mktemp -d /tmp/mover-bench.XXXXXX)
restore_dir=$(mktemp -d "${RESTORE_DIR:-$work}/restore.XXXXXX")
minio_pid=
pod_rows=${POD_ROWS:-$([ "$(id -u)" -eq 0 ] && echo 1 || echo 0)}
env_root=
cleanup() {
	[ -n "$env_root" ] && "$top/scripts/testenv/stop" "$env_root" 2>/dev/null
	[ -n "$minio_pid" ] && kill "$minio_pid" 2>/dev/null && wait "$minio_pid" 2>/dev/null
	rm -rf "$work" "$restore_dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MINIO_ROOT_USER=benchadmin MINIO_ROOT_PASSWORD=benchsecret-$RANDOM$RANDOM
"$bin/minio" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" "$work/minio" \
	>"$work/minio.log" 2>&1 &
minio_pid=$!
endpoint=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$endpoint/minio/health/ready" >/dev/null && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD
for b in stowage restic stowage-pod; do	# stowage-pod: the pod rows' repository, not counted in "stored"
	curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		"$endpoint/$b" >/dev/null
done

echo "data set: one ${big_mib} MiB random file and $small small files" >&2
data=$work/data
mkdir -p "$data/big" "$data/small"
head -c "$((big_mib << 20))" /dev/urandom >"$data/big/disk.img"
python3 - "$data/small" "$small" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = [b"stowage", b"volume", b"backup", b"restore", b"cluster", b"kubernetes", b"chunk", b"pack"]
for i in range(n):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    size = rnd.randint(1024, 65536)
    data = os.urandom(size) if i % 2 else b" ".join(rnd.choice(words) for _ in range(size // 7))[:size]
    with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
        f.write(data)
PY
bytes=$(du -sb "$data" | cut -f1)
cat "$data/big/disk.img" >/dev/null
find "$data/small" -type f -exec cat {} + >/dev/null

change() {	# 1% of the small files rewritten, 16 MiB in the middle of the big file
	python3 - "$data" "$small" <<-'PY'
	import os, sys
	root, n = sys.argv[1], int(sys.argv[2])
	for i in range(0, n, 100):
	    with open(os.path.join(root, "small", f"d{i % 100:02d}", f"f{i:06d}"), "ab") as f:
	        f.write(b"changed\n")
	with open(os.path.join(root, "big", "disk.img"), "r+b") as f:
	    f.seek(os.path.getsize(f.name) // 2)
	    f.write(os.urandom(16 << 20))
	PY
}

printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/key"
chmod 600 "$work/key"
threads=$(nproc)
[ "$threads" -gt 16 ] && threads=16
mover_repo=(--repo "s3://stowage/bench?endpoint=$endpoint&region=us-east-1&path_style=1" --repo-id bench --key-file "$work/key")
export RESTIC_PASSWORD=bench-password RESTIC_REPOSITORY=s3:$endpoint/restic
restic init --quiet >/dev/null

now() { date +%s.%N; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
declare -A t
run() {	# name tool command...: times the command
	local name=$1 start end
	shift
	start=$(now)
	"$@" >"$work/$name.out" 2>"$work/$name.err" || { echo "$name failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
	end=$(now)
	t[$name]=$(seconds "$start" "$end")
}

run mover_first "$mover" backup "${mover_repo[@]}" --source "$data" --threads "$threads"
run restic_first restic backup --quiet "$data"
change
run mover_second "$mover" backup "${mover_repo[@]}" --source "$data" --threads "$threads"
run restic_second restic backup --quiet "$data"
snap=$(tail -n 1 "$work/mover_second.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
run mover_restore "$mover" restore "${mover_repo[@]}" --snapshot "$snap" --target "$restore_dir/r-mover" --threads "$threads"
run restic_restore restic restore latest --quiet --target "$restore_dir/r-restic"
cmp "$data/big/disk.img" "$restore_dir/r-mover/big/disk.img"
cmp "$data/big/disk.img" "$restore_dir/r-restic$data/big/disk.img"

# ---- the pod rows: the mover in a container on a real node ----
pod_run() {	# name mode args...: a mover pod on the source cluster's real node, timed to Succeeded
	local name=$1 mode=$2 start end phase= pod=${1//_/-}
	shift 2
	python3 - "$pod" "$mode" "$image" "$data" "$restore_dir" "$@" <<-'PY' >"$work/$name.json"
	import json, sys
	name, mode, image, data, restore = sys.argv[1:6]
	args = sys.argv[6:]
	vol = {"name": "data", "hostPath": {"path": data if mode == "backup" else restore + "/r-pod",
	                                    "type": "Directory" if mode == "backup" else "DirectoryOrCreate"}}
	print(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
	    "spec": {"hostNetwork": True, "restartPolicy": "Never", "nodeSelector": {"stowage.dev/node": "real"},
	             "tolerations": [{"key": "stowage.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
	             "containers": [{"name": "mover", "image": image, "imagePullPolicy": "Never",
	                             "command": ["stowage-mover"], "args": args,
	                             "envFrom": [{"secretRef": {"name": "bench-s3"}}],
	                             "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": mode == "backup"},
	                                              {"name": "key", "mountPath": "/var/run/stowage", "readOnly": True}]}],
	             "volumes": [vol, {"name": "key", "secret": {"secretName": "bench-key", "defaultMode": 256}}]}}))
	PY
	start=$(now)
	k apply -f "$work/$name.json" >/dev/null
	while :; do
		phase=$(k get pod "$pod" -o 'jsonpath={.status.phase}')
		case $phase in Succeeded) break ;; Failed) echo "$name failed:" >&2; k logs "$pod" | tail -5 >&2; exit 1 ;; esac
		sleep 0.2
	done
	end=$(now)
	t[$name]=$(seconds "$start" "$end")
	k logs "$pod" >"$work/$name.out"
}
if [ "$pod_rows" = 1 ]; then
	echo "pod rows: starting a test environment (scripts/testenv/start)" >&2
	env_root=$work/env
	"$top/scripts/testenv/start" "$env_root" 2>"$work/testenv.log" || { tail -5 "$work/testenv.log" >&2; exit 1; }
	# shellcheck disable=SC1091
	. "$env_root/env"
	k() { "$KUBECTL" --kubeconfig="$SOURCE_KUBECONFIG" -n default "$@"; }
	image=stowage.test/mover:bench
	"$top/scripts/testenv/images/oci-image" mover "$work/mover.tar" "$image" "$mover"
	"$CTR" --address "$SOURCE_CONTAINERD_SOCKET" --namespace k8s.io images import "$work/mover.tar" >/dev/null
	k create secret generic bench-s3 --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
		--from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" >/dev/null
	k create secret generic bench-key --from-file=mover.key="$work/key" >/dev/null
	pod_repo=(--repo "s3://stowage-pod/bench-pod?endpoint=$endpoint&region=us-east-1&path_style=1" --repo-id bench-pod
		--key-file /var/run/stowage/mover.key)
	pod_run pod_first backup backup "${pod_repo[@]}" --source /data --threads "$threads"
	psnap=$(tail -n 1 "$work/pod_first.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
	pod_run pod_restore restore restore "${pod_repo[@]}" --snapshot "$psnap" --target /data --threads "$threads"
	cmp "$data/big/disk.img" "$restore_dir/r-pod/big/disk.img"
fi

stored() { du -sb "$work/minio/$1" | cut -f1; }
echo
printf 'data set %.0f MiB (%s small files); stored: stowage %.0f MiB, restic %.0f MiB; %s cores\n' \
	"$(echo "$bytes / 1048576" | bc -l)" "$small" "$(echo "$(stored stowage) / 1048576" | bc -l)" \
	"$(echo "$(stored restic) / 1048576" | bc -l)" "$(nproc)"
printf '%-18s %10s %10s %10s %10s %8s\n' row "stowage s" "restic s" "stowage MB/s" "restic MB/s" ratio
for row in first second restore; do
	m=${t[mover_$row]} r=${t[restic_$row]}
	printf '%-18s %10s %10s %12.1f %11.1f %7.2fx\n' "$row" "$m" "$r" \
		"$(echo "$bytes / 1000000 / $m" | bc -l)" "$(echo "$bytes / 1000000 / $r" | bc -l)" \
		"$(echo "$r / $m" | bc -l)"
done
if [ "$pod_rows" = 1 ]; then	# the data set after change(): the pod backed up that one
	pbytes=$(du -sb "$data" | cut -f1)
	for row in first restore; do
		m=${t[pod_$row]}
		printf '%-18s %10s %10s %12.1f %11s %8s\n' "pod $row" "$m" - "$(echo "$pbytes / 1000000 / $m" | bc -l)" - -
	done
fi
