#!/bin/bash
# SPDX-License-Identifier: MIT
# run.sh - run libFuzzer targets: fuzz/run.sh SECONDS JOBS KEEP TARGET...
#
# Each target starts from its kept corpus (fuzz/corpus/NAME, in git), its
# seeds (fuzz/seeds/NAME) and its regression inputs (fuzz/regress/NAME: past
# crashes, replayed on every run); new inputs go to a scratch directory
# under build/. With KEEP=1 (make fuzz-long) what the run found is merged,
# minimised, into fuzz/corpus/NAME afterwards. JOBS targets run at once.
# A crash leaves build/fuzz/crash-NAME-* and fails the run: once fixed,
# move the input into fuzz/regress/NAME.
set -u
secs=$1 jobs=$2 keep=$3
shift 3

one() {
	local t=$1 n work log rc dirs=()
	n=$(basename "$t")
	work=build/fuzz/work/$n
	log=build/fuzz/$n.log
	rm -rf "$work"
	mkdir -p "$work"
	[ "$keep" = 1 ] && mkdir -p "fuzz/corpus/$n"
	for d in "fuzz/corpus/$n" "fuzz/seeds/$n" "fuzz/regress/$n"; do
		[ -d "$d" ] && dirs+=("$d")
	done
	"$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz/crash-$n-" \
		"$work" "${dirs[@]}" > "$log" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "fuzz: $n FAILED (rc $rc; log $log; inputs build/fuzz/crash-$n-*)"
		return 1
	fi
	if [ "$keep" = 1 ]; then
		"$t" -merge=1 "fuzz/corpus/$n" "$work" > "build/fuzz/$n.merge.log" 2>&1 ||
			{ echo "fuzz: $n: merge failed (build/fuzz/$n.merge.log)"; return 1; }
	fi
	local runs kept=
	runs=$(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
	[ "$keep" = 1 ] && kept=", $(ls "fuzz/corpus/$n" | wc -l) inputs kept in fuzz/corpus/$n"
	echo "fuzz: $n ${secs}s: $runs runs$kept"
}
export -f one
export secs keep
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one {}'
