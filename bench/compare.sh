#!/usr/bin/env bash
# bench/compare.sh: vouch against its peers in one run on one machine,
# driven by cmd/milterbench at each concurrency for DURATION per cell:
#   - signing (same RSA-2048 key, domain, relaxed/relaxed), on a TCP and on
#     a unix socket: the no-op milter (the protocol's ceiling), the naive
#     go-msgauth signer (both milterbench -peer), vouch (pure Go), vouch-fast
#     (the fast build: GOEXPERIMENT=boringcrypto -tags openssl), OpenDKIM
#     and rspamd (signing only, as
#     ../shared/bench/rspamd: rspamd at its best);
#   - an Ed25519-only vouch domain;
#   - inbound on TCP (untrusted client, warm DNS cache against a local DNS
#     server): screening alone, screening + SPF + DMARC of an unsigned
#     message, and the same with a DKIM-signed message.
# Prints the tables and the ratios the performance targets are about.
#
#   bench/compare.sh                      # as root on Debian 12
#   DURATION=30s CONCURRENCY="1 8 32" bench/compare.sh
#
# Environment:
#   DURATION     per cell (default 10s)
#   ROUNDS       rounds of cells (default 1); every daemon runs throughout
#                and each round runs one cell of every row, so drift hits
#                all rows alike; the tables give the median of the rounds
#   CONCURRENCY  concurrent milter sessions, one cell each (default "1 4 16 64")
#   CORPUS       milterbench -corpus (default small)
#   PER_CONN     messages per milter connection (default 1, as Postfix with one message per SMTP session)
#   TRANSPORTS   default "tcp unix"
#   RSPAMD       auto (default: run rspamd if installed), 1 (install it from apt
#                if missing), 0 (leave it out).
#   SKIP_OPENDKIM=1, SKIP_ED25519=1, SKIP_SCREEN=1, SKIP_PEERS=1, SKIP_FAST=1
#                leave parts out
#   KEEP=1       keep the work directory (configs, logs, JSON reports)
#   OUT          also write the final tables to this file
set -euo pipefail

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-"1 4 16 64"}
CORPUS=${CORPUS:-small}
PER_CONN=${PER_CONN:-1}
TRANSPORTS=${TRANSPORTS:-"tcp unix"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
export PATH="/usr/local/go/bin:$PATH"

WORK=$(mktemp -d /tmp/vouch-bench.XXXXXX)
chmod 700 "$WORK"
CHILDREN=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${CHILDREN[@]:-}"; do
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${CHILDREN[@]:-}"; do
		[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "compare.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (OpenDKIM runs as root in the foreground, /proc/PID/clear_refs)"
if ! command -v opendkim >/dev/null && [ "${SKIP_OPENDKIM:-0}" != 1 ]; then
	log "installing opendkim from apt"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opendkim opendkim-tools >/dev/null
fi

RSPAMD=${RSPAMD:-auto}
if [ "$RSPAMD" = 1 ] && ! command -v rspamd >/dev/null; then
	log "installing rspamd from apt"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rspamd >/dev/null
fi
if [ "$RSPAMD" = auto ]; then
	if command -v rspamd >/dev/null; then RSPAMD=1; else RSPAMD=0; log "rspamd not installed: left out (RSPAMD=1 installs it)"; fi
fi

log "building vouch (pure Go), vouch-fast (BoringCrypto, RSA signing through OpenSSL) and milterbench"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$WORK/vouch" ./cmd/vouch && go build -o "$WORK/milterbench" ./cmd/milterbench)
if [ "${SKIP_FAST:-0}" != 1 ]; then
	(cd "$ROOT" && GOEXPERIMENT=boringcrypto CGO_ENABLED=1 go build -tags openssl -o "$WORK/vouch-fast" ./cmd/vouch)
	"$WORK/vouch-fast" version | grep -q 'crypto: BoringCrypto, RSA signing: OpenSSL' ||
		die "vouch-fast is not the fast build: $("$WORK/vouch-fast" version)"
fi
MB="$WORK/milterbench"
# Write the new binaries out and drop them from the page cache: a binary
# just written by the external linker (the fast build links libcrypto with
# gcc) sits there in large folios, and a process mapping it counts whole
# folios in its RSS: 38 MiB peak for vouch-fast fresh from the linker,
# 30.5 MiB once its pages are read back as after a reboot or a package
# install (dirty pages cannot be dropped, hence the sync first).
for f in "$WORK"/vouch "$WORK"/vouch-fast "$MB"; do
	[ -f "$f" ] || continue
	sync "$f"
	dd if="$f" iflag=nocache count=0 status=none
done

mkdir -p "$WORK/keys/rsa" "$WORK/keys/ed" "$WORK/run"
"$WORK/vouch" genkey -d example.com -s mail -b 2048 -D "$WORK/keys/rsa" >/dev/null
"$WORK/vouch" genkey -d ed.example -s ed -t ed25519 -D "$WORK/keys/ed" >/dev/null

# render TEMPLATE OUT SOCKET NAME [DNS]
render() {
	sed -e "s|@WORK@|$WORK|g" -e "s|@SOCKET@|$3|g" -e "s|@NAME@|$4|g" -e "s|@DNS@|${5:-}|g" "$1" >"$2"
}

free_port() {
	local p
	for p in $(seq 28891 28991); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port in 28891-28991"
}

# peer_listen SPEC: milterbench -peer-listen's form of a socket spec.
peer_listen() {
	case "$1" in
	inet:*) local p=${1#inet:}; echo "${p#*@}:${p%@*}" ;;
	*) echo "$1" ;;
	esac
}

# socket_spec TRANSPORT NAME: a milter socket for the transport.
socket_spec() {
	case "$1" in
	tcp) echo "inet:$(free_port)@127.0.0.1" ;;
	unix) echo "unix:$WORK/run/$2.sock" ;;
	*) die "unknown transport $1" ;;
	esac
}

# wait_socket SPEC PID LOG [SECONDS]: until the socket answers, the process
# died, or SECONDS (default 15) have passed.
wait_socket() {
	local spec=$1 pid=$2 logf=$3 secs=${4:-15} i
	for i in $(seq $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "process $pid exited before listening on $spec"; }
		case "$spec" in
		unix:*) [ -S "${spec#unix:}" ] && return 0 ;;
		inet:*)
			local port=${spec#inet:}
			port=${port%@*}
			(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
			;;
		esac
		sleep 0.1
	done
	cat "$logf" >&2
	die "nothing listens on $spec after $secs s"
}

PID=
# start NAME COMMAND...: runs it in the background, sets PID.
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PID=$!
	CHILDREN+=("$PID")
}

# Every row is started once, warmed up, and left running; then the cells
# run in ROUNDS rounds, each round one cell of every row at every
# concurrency, the rows in a rotated order. On a shared machine the speed
# drifts by tens of percent within minutes: interleaving puts every row
# under the same drift, and the report takes the median of the rounds.
ROUNDS=${ROUNDS:-1}
case "$ROUNDS" in '' | *[!0-9]* | 0) die "ROUNDS must be a positive number" ;; esac
RAW="$WORK/rounds.tsv"      # ROUND ROW GROUP SIGNER TRANSPORT <milterbench -format tsv fields>
RESULTS="$WORK/results.tsv" # the same without ROUND: one line per cell, the medians
: >"$RAW"
ROW_GROUP=() ROW_SIGNER=() ROW_TRANSPORT=() ROW_SOCK=() ROW_PID=() ROW_ARGS=()

# add_row GROUP SIGNER TRANSPORT SOCKET PID [milterbench args...]: warms the
# row up and adds it to the rounds. The arguments are words without blanks.
add_row() {
	local group=$1 signer=$2 transport=$3 socket=$4 pid=$5
	shift 5
	"$MB" -socket "$socket" -c 4 -count 200 -verify-every 0 -label warmup "$@" >/dev/null 2>"$WORK/warmup-$group-$signer-$transport.err" ||
		{ cat "$WORK/warmup-$group-$signer-$transport.err" >&2; die "warm-up of $signer on $transport failed"; }
	ROW_GROUP+=("$group") ROW_SIGNER+=("$signer") ROW_TRANSPORT+=("$transport")
	ROW_SOCK+=("$socket") ROW_PID+=("$pid") ROW_ARGS+=("$*")
}

# cell ROW C ROUND: a short warm-up (the row sat idle since its last cell),
# then one cell into RAW.
cell() {
	local i=$1 c=$2 round=$3 rc=0 line name
	local group=${ROW_GROUP[$i]} signer=${ROW_SIGNER[$i]} transport=${ROW_TRANSPORT[$i]} socket=${ROW_SOCK[$i]}
	local -a args
	read -r -a args <<<"${ROW_ARGS[$i]}"
	name="$group-$signer-$transport-c$c-r$round"
	"$MB" -socket "$socket" -c "$c" -count 50 -verify-every 0 -label warmup "${args[@]}" >/dev/null 2>"$WORK/$name.warmup.err" ||
		{ cat "$WORK/$name.warmup.err" >&2; die "warm-up of $signer on $transport failed"; }
	line=$("$MB" -socket "$socket" -c "$c" -per-conn "$PER_CONN" -duration "$DURATION" -corpus "$CORPUS" \
		-pid "${ROW_PID[$i]}" -label "$signer" -format tsv -json "$WORK/$name.json" "${args[@]}" 2>"$WORK/$name.err") || rc=$?
	if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
		cat "$WORK/$name.err" >&2
		die "milterbench failed ($rc) for $signer $transport c=$c"
	fi
	[ "$rc" = 3 ] && log "errors for $signer $transport c=$c: $(head -3 "$WORK/$name.err" | tr '\n' ' ')"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$i" "$group" "$signer" "$transport" "$line" >>"$RAW"
	log "round $round: $group $signer $transport c=$c: $(cut -f4 <<<"$line") msgs/s, p99 $(cut -f8 <<<"$line") ms"
}

# start_rspamd: one rspamd for every transport (its proxy workers listen
# on each socket), started from Debian's rspamd.conf with our
# local.d/override.d; --var moves every directory it writes to under WORK.
start_rspamd() {
	local transport sock f d pids bind=() socks=()
	for transport in $TRANSPORTS; do
		sock=$(socket_spec "$transport" rspamd)
		socks+=("$sock")
		case "$sock" in
		inet:*) bind+=("$(peer_listen "$sock")") ;;
		unix:*) bind+=("${sock#unix:} mode=0666") ;;
		esac
	done
	mkdir -p "$WORK/rspamd/local.d" "$WORK/rspamd/override.d" "$WORK/rspamd/db" "$WORK/rspamd/run" "$WORK/rspamd/log" "$WORK/rspamd-keys"
	cp "$WORK/keys/rsa/mail.private" "$WORK/rspamd-keys/example.com.mail.key"
	for f in "$BENCH"/rspamd/local.d/* "$BENCH"/rspamd/override.d/*; do
		d=$(basename "$(dirname "$f")")
		# one bind_socket line per transport
		awk -v binds="$(printf '%s\n' "${bind[@]}")" '
			/@BIND@/ { n = split(binds, b, "\n"); for (i = 1; i <= n; i++) if (b[i] != "") { l = $0; sub(/@BIND@/, b[i], l); print l }; next }
			{ print }' "$f" | sed -e "s|@WORK@|$WORK|g" -e "s|@WORKERS@|$(nproc)|g" >"$WORK/rspamd/$d/$(basename "$f")"
	done
	start rspamd rspamd -f -i -u root -g root -c /etc/rspamd/rspamd.conf --var "LOCAL_CONFDIR=$WORK/rspamd" \
		--var "DBDIR=$WORK/rspamd/db" --var "RUNDIR=$WORK/rspamd/run" --var "LOGDIR=$WORK/rspamd/log"
	local rspamd_pid=$PID
	for sock in "${socks[@]}"; do wait_socket "$sock" "$rspamd_pid" "$WORK/rspamd.log" 90; done
	sleep 2 # let every proxy worker come up
	# At start rspamd's hs_helper compiles its Hyperscan databases (a CPU
	# minute or more); measuring meanwhile would not be rspamd at its best.
	local hs busy=1 t0 t1 i
	hs=$(pgrep -f 'rspamd: hs_helper' | head -1 || true)
	for i in $(seq 120); do
		[ -n "$hs" ] && [ -r "/proc/$hs/stat" ] || break
		t0=$(awk '{ print $14 + $15 }' "/proc/$hs/stat")
		sleep 1
		t1=$(awk '{ print $14 + $15 }' "/proc/$hs/stat" 2>/dev/null || echo "$t0")
		if [ "$t0" = "$t1" ]; then busy=$((busy + 1)); else busy=0; fi
		[ "$busy" -ge 3 ] && break
	done
	pids=$(pgrep -d, -P "$rspamd_pid" || true)
	set -- $TRANSPORTS
	for sock in "${socks[@]}"; do
		add_row sign rspamd "$1" "$sock" "$rspamd_pid${pids:+,$pids}" -domain example.com -pubkey "$WORK/keys/rsa/mail.txt"
		shift
	done
}

# start_vouch BINARY LABEL TRANSPORT: a vouch build signing (RSA-2048).
start_vouch() {
	local bin=$1 label=$2 transport=$3 sock
	sock=$(socket_spec "$transport" "$label")
	render "$BENCH/vouch.toml" "$WORK/$label-$transport.toml" "$sock" "$label-$transport"
	"$bin" serve -check -config "$WORK/$label-$transport.toml" >/dev/null 2>"$WORK/vouch-check.log" ||
		{ cat "$WORK/vouch-check.log" >&2; die "vouch serve -check failed"; }
	start "$label-$transport" "$bin" serve -config "$WORK/$label-$transport.toml"
	wait_socket "$sock" "$PID" "$WORK/$label-$transport.log"
	add_row sign "$label" "$transport" "$sock" "$PID" -domain example.com -pubkey "$WORK/keys/rsa/mail.txt"
}

# start_peer KIND TRANSPORT: a milterbench -peer (noop or naive).
start_peer() {
	local kind=$1 transport=$2 sock
	sock=$(socket_spec "$transport" "$kind")
	start "$kind-$transport" "$MB" -peer "$kind" -peer-listen "$(peer_listen "$sock")" \
		-peer-key "$WORK/keys/rsa/mail.private" -domain example.com -selector mail
	wait_socket "$sock" "$PID" "$WORK/$kind-$transport.log"
	if [ "$kind" = noop ]; then
		add_row ceiling noop "$transport" "$sock" "$PID" -expect accept -verify-every 0 -domain example.com
	else
		add_row sign "$kind" "$transport" "$sock" "$PID" -domain example.com -pubkey "$WORK/keys/rsa/mail.txt"
	fi
}

# start_opendkim TRANSPORT: OpenDKIM with the same key.
start_opendkim() {
	local transport=$1 sock
	sock=$(socket_spec "$transport" opendkim)
	render "$BENCH/opendkim.conf" "$WORK/opendkim-$transport.conf" "$sock" "$transport"
	start "opendkim-$transport" opendkim -f -x "$WORK/opendkim-$transport.conf"
	wait_socket "$sock" "$PID" "$WORK/opendkim-$transport.log"
	add_row sign opendkim "$transport" "$sock" "$PID" -domain example.com -pubkey "$WORK/keys/rsa/mail.txt"
}

for transport in $TRANSPORTS; do
	if [ "${SKIP_PEERS:-0}" != 1 ]; then
		start_peer noop "$transport"
		start_peer naive "$transport"
	fi
	start_vouch "$WORK/vouch" vouch "$transport"
	[ "${SKIP_FAST:-0}" = 1 ] || start_vouch "$WORK/vouch-fast" vouch-fast "$transport"
	[ "${SKIP_OPENDKIM:-0}" = 1 ] || start_opendkim "$transport"
done
[ "$RSPAMD" = 1 ] && start_rspamd

if [ "${SKIP_ED25519:-0}" != 1 ]; then
	sock=$(socket_spec tcp vouch-ed)
	render "$BENCH/vouch-ed25519.toml" "$WORK/vouch-ed25519.toml" "$sock" vouch-ed
	start vouch-ed25519 "$WORK/vouch" serve -config "$WORK/vouch-ed25519.toml"
	wait_socket "$sock" "$PID" "$WORK/vouch-ed25519.log"
	add_row ed25519 "vouch-ed25519" tcp "$sock" "$PID" -domain ed.example -pubkey "$WORK/keys/ed/ed.txt"
fi

if [ "${SKIP_SCREEN:-0}" != 1 ]; then
	# The remote sender's Ed25519 key for the DKIM-signed inbound row.
	mkdir -p "$WORK/keys/client"
	"$WORK/vouch" genkey -d client.test -s ed -t ed25519 -D "$WORK/keys/client" >/dev/null
	cp "$BENCH/screen.zone" "$WORK/screen.zone"
	printf 'ed._domainkey.client.test. 3600 IN TXT "%s"\n' \
		"$(tr -d '\n' <"$WORK/keys/client/ed.txt" | sed -e 's/^[^"]*"//' -e 's/"[^"]*$//' -e 's/"[[:space:]]*"//g')" >>"$WORK/screen.zone"
	start dns "$MB" -dns-serve "$WORK/screen.zone" -dns-addr-file "$WORK/dns.addr"
	for i in $(seq 50); do [ -s "$WORK/dns.addr" ] && break; sleep 0.1; done
	[ -s "$WORK/dns.addr" ] || { cat "$WORK/dns.log" >&2; die "DNS server did not start"; }
	dns=$(cat "$WORK/dns.addr")
	inbound="-expect accept -verify-every 0 -client-ip 192.0.2.10 -client-name mail.client.test -helo mail.client.test -domain client.test"
	# name TEMPLATE [milterbench args]: screening alone, then with SPF and
	# DMARC (unsigned), then with a DKIM signature to verify too.
	for row in "vouch-screen vouch-screen.toml" "vouch-inbound vouch-inbound.toml" \
		"vouch-inbound-dkim vouch-inbound.toml -presign $WORK/keys/client/ed.private -selector ed"; do
		read -r name tmpl extra <<<"$row"
		sock=$(socket_spec tcp "$name")
		render "$BENCH/$tmpl" "$WORK/$name.toml" "$sock" "$name" "$dns"
		start "$name" "$WORK/vouch" serve -config "$WORK/$name.toml"
		wait_socket "$sock" "$PID" "$WORK/$name.log"
		# shellcheck disable=SC2086 # word lists
		add_row inbound "$name" tcp "$sock" "$PID" $inbound $extra
	done
fi

nrows=${#ROW_SIGNER[@]}
log "$nrows rows running; $ROUNDS round(s) of $(wc -w <<<"$CONCURRENCY") cell(s) each, $DURATION per cell"
for round in $(seq "$ROUNDS"); do
	for c in $CONCURRENCY; do
		for k in $(seq 0 $((nrows - 1))); do
			cell $(((k + round - 1) % nrows)) "$c" "$round"
		done
	done
done
[ "${SKIP_SCREEN:-0}" = 1 ] || log "DNS: $(tail -1 "$WORK/dns.log")"

# RESULTS: one line per row and concurrency, in the order the rows were
# started: the median of the rounds for rates, latencies and CPU, the
# highest peak RSS, and the sums of messages, errors and verified
# signatures.
: >"$RESULTS"
for i in $(seq 0 $((nrows - 1))); do
	for c in $CONCURRENCY; do
		awk -F'\t' -v OFS='\t' -v row="$i" -v c="$c" '
			function median(s,   n, v, i, j, t) {
				n = split(s, v, " ")
				for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
				if (n == 0 || v[1] == "-") return "-"
				return n % 2 ? v[(n + 1) / 2] : sprintf("%.6g", (v[n / 2] + v[n / 2 + 1]) / 2)
			}
			$2 == row && $7 == c {
				head = $3 OFS $4 OFS $5 OFS $6 OFS $7
				msgs += $8; errs += $15; ver += $16; smp += $17
				for (f = 9; f <= 14; f++) col[f] = col[f] " " $f
				cpu = cpu " " $19
				if (peak == "" || $18 + 0 > peak + 0) peak = $18
			}
			END {
				if (head == "") exit
				line = head OFS msgs
				for (f = 9; f <= 14; f++) line = line OFS median(col[f])
				print line, errs, ver, smp, peak, median(cpu)
			}' "$RAW" >>"$RESULTS"
	done
done

report() {
	echo "## milterbench: corpus $CORPUS, $DURATION per cell, $PER_CONN message(s) per milter connection$([ "$ROUNDS" -gt 1 ] && echo ", median of $ROUNDS interleaved rounds")"
	echo
	echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'), $(uname -sr); $(opendkim -V 2>/dev/null | head -1 || true); $(rspamd --version 2>/dev/null | head -1 || true); $("$WORK/vouch" version | head -1)"
	echo
	echo "| signer | transport | c | msgs/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | errors | verified | peak RSS MiB | CPU µs/msg |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s |\n", $2, $3, $5, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 }' "$RESULTS"
	if [ "${SKIP_OPENDKIM:-0}" != 1 ]; then
		echo
		echo "### vouch / OpenDKIM (RSA-2048, same key and headers)"
		echo
		echo "| transport | c | vouch msgs/s | OpenDKIM msgs/s | ratio | vouch p99 ms | OpenDKIM p99 ms | ratio | vouch RSS MiB | OpenDKIM RSS MiB | ratio | vouch CPU µs/msg | OpenDKIM CPU µs/msg | ratio |"
		echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
		awk -F'\t' '
			function ratio(a, b) { return (b + 0 > 0 && a != "-" && b != "-") ? sprintf("%.2f", a / b) : "-" }
			$1 == "sign" { k = $3 SUBSEP $5; tput[$2, k] = $7; p99[$2, k] = $11; rss[$2, k] = $16; cpu[$2, k] = $17; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
			END {
				for (i = 1; i <= n; i++) {
					k = order[i]; split(k, tc, SUBSEP)
					if (!(("opendkim", k) in tput)) continue
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", tc[1], tc[2],
						tput["vouch", k], tput["opendkim", k], ratio(tput["vouch", k], tput["opendkim", k]),
						p99["vouch", k], p99["opendkim", k], ratio(p99["vouch", k], p99["opendkim", k]),
						rss["vouch", k], rss["opendkim", k], ratio(rss["vouch", k], rss["opendkim", k]),
						cpu["vouch", k], cpu["opendkim", k], ratio(cpu["vouch", k], cpu["opendkim", k])
				}
			}' "$RESULTS"
	fi
}

report_rspamd() {
	[ "$RSPAMD" = 1 ] || return 0
	echo
	echo "### vouch / rspamd (TCP, RSA-2048, same key; rspamd memory is the PSS sum of all its processes)"
	echo
	echo "| c | vouch msgs/s | rspamd msgs/s | ratio | vouch p99 ms | rspamd p99 ms | ratio | vouch RSS MiB | rspamd PSS MiB | vouch CPU µs/msg | rspamd CPU µs/msg |"
	echo "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	awk -F'\t' '
		function ratio(a, b) { return (b + 0 > 0) ? sprintf("%.2f", a / b) : "-" }
		$1 == "sign" && $3 == "tcp" { tput[$2, $5] = $7; p99[$2, $5] = $11; rss[$2, $5] = $16; cpu[$2, $5] = $17; if ($2 == "rspamd") order[++n] = $5 }
		END {
			for (i = 1; i <= n; i++) {
				c = order[i]; r = rss["rspamd", c]; sub(/ PSS/, "", r)
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c,
					tput["vouch", c], tput["rspamd", c], ratio(tput["vouch", c], tput["rspamd", c]),
					p99["vouch", c], p99["rspamd", c], ratio(p99["vouch", c], p99["rspamd", c]),
					rss["vouch", c], r, cpu["vouch", c], cpu["rspamd", c]
			}
		}' "$RESULTS"
}

# report_rounds: each round's msgs/s of every cell (with ROUNDS > 1).
report_rounds() {
	[ "$ROUNDS" -gt 1 ] || return 0
	echo
	echo "### msgs/s of each round (the tables above give the medians)"
	echo
	echo "| signer | transport | c | rounds | median |"
	echo "|---|---|--:|---|--:|"
	local i c
	for i in $(seq 0 $((nrows - 1))); do
		for c in $CONCURRENCY; do
			awk -F'\t' -v row="$i" -v c="$c" '
				$2 == row && $7 == c { s = s sep $9; sep = ", "; name = $4; tr = $5 }
				END { if (name != "") printf "| %s | %s | %s | %s |", name, tr, c, s }' "$RAW"
			awk -F'\t' -v s="${ROW_SIGNER[$i]}" -v t="${ROW_TRANSPORT[$i]}" -v c="$c" \
				'$2 == s && $3 == t && $5 == c { printf " %s |", $7 }' "$RESULTS"
			echo
		done
	done
}

# The performance targets (issue 15) as ratios of this run's rows: msgs/s
# of NUM over DEN on the same transport and concurrency.
report_targets() {
	echo
	echo "### Ratios of this run (msgs/s, same transport and concurrency)"
	echo
	echo "| ratio | transport | c | msgs/s | of | ratio | target |"
	echo "|---|---|--:|--:|--:|--:|---|"
	awk -F'\t' '
		{ tput[$2, $3, $5] = $7; if (!(($3, $5) in seen)) { seen[$3, $5] = 1; order[++n] = $3 SUBSEP $5 } }
		function row(num, den, target,   i, k, tc) {
			for (i = 1; i <= n; i++) {
				k = order[i]; split(k, tc, SUBSEP)
				if (!((num, k) in tput) || !((den, k) in tput) || tput[den, k] + 0 <= 0) continue
				printf "| %s / %s | %s | %s | %s | %s | %.2f | %s |\n", num, den, tc[1], tc[2], tput[num, k], tput[den, k], tput[num, k] / tput[den, k], target
			}
		}
		END {
			row("vouch-fast", "rspamd", "≥ 1.2 at c=16, 64")
			row("vouch", "naive", "≥ 1.0")
			row("vouch", "opendkim", "≥ 3 (tcp), ≥ 1.5 (unix) at c=16")
			row("vouch-fast", "vouch", "-")
			row("vouch", "noop", "-")
			row("vouch-screen", "noop", "≥ 0.9")
			row("vouch-inbound", "noop", "≥ 0.75")
			row("vouch-inbound-dkim", "noop", "reported")
		}' "$RESULTS"
}

echo
if [ -n "${OUT:-}" ]; then
	{ report; report_rspamd; report_targets; report_rounds; } | tee "$OUT"
else
	report
	report_rspamd
	report_targets
	report_rounds
fi
