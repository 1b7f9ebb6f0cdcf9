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
while read -r file target; do
	[[ $target =~ $filter ]] || continue
	pkg=./$(dirname "$file")
	count=$((count + 1))
	echo "fuzz: $pkg $target for $fuzztime"
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
		failed+=("$pkg $target")
	fi
done < <(grep -rIo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's#^\./(.*):func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort)
echo "fuzz: $count targets run for $fuzztime each, ${#failed[@]} failed"
if ((${#failed[@]})); then
	printf 'fuzz: failed: %s\n' "${failed[@]}"
	exit 1
fi
