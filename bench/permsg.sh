#!/usr/bin/env bash
# bench/permsg.sh: vouch's cost per message, in numbers that a busy machine
# does not blur much: syscalls per message (strace -c), context switches
# and CPU time per message (perf stat), and a CPU profile (vouch serve
# -cpuprofile) of each row, for the signing row (pure Go and the fast build),
# screening only and inbound (screen + SPF + DMARC), small corpus, one
# message per TCP milter connection, c=8. See "Per-message cost" in
# bench/README.md.
#
#   bench/permsg.sh                        # as root; strace and perf installed
#   N=4000 ROWS="screen" bench/permsg.sh
#
# Environment:
#   N        messages per measurement (default 2000)
#   ROWS     any of "sign sign-fast screen inbound" (default all)
#   KEEP=1   keep the work directory (profiles, strace and perf output)
set -euo pipefail

N=${N:-2000}
ROWS=${ROWS:-"sign sign-fast screen inbound"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/vouch-permsg.XXXXXX)
CHILDREN=()
cleanup() {
	local rc=$?
	for pid in "${CHILDREN[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
die() { echo "permsg.sh: $*" >&2; exit 1; }
command -v strace >/dev/null && command -v perf >/dev/null || die "needs strace and perf (apt-get install strace linux-perf)"

(cd "$ROOT" && CGO_ENABLED=0 go build -o "$WORK/vouch" ./cmd/vouch && go build -o "$WORK/milterbench" ./cmd/milterbench &&
	GOEXPERIMENT=boringcrypto CGO_ENABLED=1 go build -tags openssl -o "$WORK/vouch-fast" ./cmd/vouch)
MB="$WORK/milterbench"
mkdir -p "$WORK/keys/rsa"
"$WORK/vouch" genkey -d example.com -s mail -b 2048 -D "$WORK/keys/rsa" >/dev/null
cp "$ROOT/bench/screen.zone" "$WORK/screen.zone"
"$MB" -dns-serve "$WORK/screen.zone" -dns-addr-file "$WORK/dns.addr" >"$WORK/dns.log" 2>&1 &
CHILDREN+=($!)
for _ in $(seq 50); do [ -s "$WORK/dns.addr" ] && break; sleep 0.1; done
[ -s "$WORK/dns.addr" ] || die "DNS server did not start"
PORT=28990
SOCK="inet:$PORT@127.0.0.1"

# serve BIN CONFIG [ARGS]: starts vouch, sets VP, waits for the socket.
serve() {
	"$1" serve -config "$2" "${@:3}" >"$WORK/vouch.log" 2>&1 &
	VP=$!
	CHILDREN+=("$VP")
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
	cat "$WORK/vouch.log" >&2
	die "vouch did not listen on $SOCK"
}

echo "| row | syscalls/msg | read | write | setsockopt | futex | context switches/msg | CPU µs/msg | top of the CPU profile |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|---|"
for row in $ROWS; do
	bin="$WORK/vouch" tmpl=vouch.toml args=(-domain example.com -verify-every 0)
	case $row in
	sign) ;;
	sign-fast) bin="$WORK/vouch-fast" ;;
	screen | inbound)
		tmpl="vouch-$row.toml"
		args=(-expect accept -verify-every 0 -client-ip 192.0.2.10 -client-name mail.client.test -helo mail.client.test -domain client.test)
		;;
	*) die "unknown row $row" ;;
	esac
	sed -e "s|@WORK@|$WORK|g" -e "s|@SOCKET@|$SOCK|g" -e "s|@NAME@|$row|g" -e "s|@DNS@|$(cat "$WORK/dns.addr")|g" \
		"$ROOT/bench/$tmpl" >"$WORK/$row.toml"
	run() { "$MB" -socket "$SOCK" -c 8 -count "$1" "${args[@]}" >/dev/null; }

	serve "$bin" "$WORK/$row.toml"
	run 300 # warm-up: DNS cache, key, goroutine stacks
	strace -c -f -p "$VP" -o "$WORK/$row.strace" 2>/dev/null &
	sp=$!
	sleep 1
	run "$N"
	kill -INT "$sp"
	wait "$sp" || true
	perf stat -e context-switches,task-clock -p "$VP" -o "$WORK/$row.perf" &
	pp=$!
	sleep 0.5
	run "$N"
	kill -INT "$pp"
	wait "$pp" || true
	kill "$VP"
	wait "$VP" || true

	serve "$bin" "$WORK/$row.toml" -cpuprofile "$WORK/$row.prof"
	run 300
	run "$N"
	kill "$VP"
	wait "$VP" || true
	top=$(go tool pprof -top -nodecount=4 "$bin" "$WORK/$row.prof" 2>/dev/null |
		awk '/^ +[0-9.]+m?s/ { f = $NF == "(inline)" ? $(NF - 1) : $NF; printf "%s%s %s", sep, $2, f; sep = ", " }')

	awk -v n="$N" -v row="$row" -v top="$top" '
		FILENAME ~ /strace$/ && $NF == "total" { total = $4 }
		FILENAME ~ /strace$/ && NF >= 5 { c[$NF] = $4 }
		FILENAME ~ /perf$/ && /context-switches/ { gsub(",", "", $1); cs = $1 }
		FILENAME ~ /perf$/ && /task-clock/ { gsub(",", "", $1); tc = $1 }
		END { printf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %s |\n", row, total / n, c["read"] / n,
			(c["write"] + c["writev"]) / n, c["setsockopt"] / n, c["futex"] / n, cs / n, tc * 1000 / n, top }
	' "$WORK/$row.strace" "$WORK/$row.perf"
done
