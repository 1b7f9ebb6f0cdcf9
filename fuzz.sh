#!/usr/bin/env bash
# Runs every fuzz target of vouch for a while each: FUZZTIME=5s by default
# (what CI runs after the tests), e.g. FUZZTIME=10m ./fuzz.sh for a long
# run; ./fuzz.sh REGEXP runs only the targets whose name matches. Targets
# are found by their `func FuzzXxx(f *testing.F)` line, so a new one runs
# without editing this script. A failing input is saved in the package's
# testdata/fuzz/FuzzXxx/ and replayed by every plain `go test` from then on.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
fuzztime=${FUZZTIME:-5s}
filter=${1:-.}
count=0
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# fuzz_once PKG TARGET: one run, its output shown and kept in $log.
fuzz_once() {
	go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}
while read -r file target; do
	[[ $target =~ $filter ]] || continue
	pkg=./$(dirname "$file")
	count=$((count + 1))
	echo "fuzz: $pkg $target for $fuzztime"
	if ! fuzz_once "$pkg" "$target"; then
		# Go 1.26's fuzz coordinator can report a bare "context deadline
		# exceeded" when -fuzztime ends while a worker is mid-call
		# (go.dev/issue/75804, fixed in Go 1.27): no input written, no
		# panic. That, and only that, is run once more.
		if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
			echo "fuzz: $target: the fuzzing engine's deadline race (go.dev/issue/75804), running it again"
			fuzz_once "$pkg" "$target" && continue
		fi
		failed+=("$pkg $target")
	fi
done < <(grep -rIo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's#^\./(.*):func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort)
echo "fuzz: $count targets run for $fuzztime each, ${#failed[@]} failed"
if ((${#failed[@]})); then
	printf 'fuzz: failed: %s\n' "${failed[@]}"
	exit 1
fi
