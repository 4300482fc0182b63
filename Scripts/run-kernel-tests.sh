#!/usr/bin/env bash
# Runs the kernel tests: every test of the KernelTests target in its own process, inside its own
# fresh network namespace with lo up, on the kernel this script runs on (the host's or the VM's;
# Scripts/kernel-run.sh chooses). Prints each test's outcome, the output of failed ones, and a
# closing "N passed, N failed" line; exits non-zero when any test failed or none ran.
#
#   Scripts/run-kernel-tests.sh [FILTER]     FILTER: a substring of "KernelTests.Class/testName"
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
filter=${1:-}

# IPVS_BUILD_DIR (passed into the VM like every IPVS_* variable) selects another build folder.
build_dir=${IPVS_BUILD_DIR:-${BUILD_DIR:-.build}}
bundle=$(find "$build_dir"/debug/ -maxdepth 1 -name '*PackageTests.xctest' | head -n 1)
if [[ -z "$bundle" ]]; then
    echo "run-kernel-tests: no test bundle under $build_dir/debug; run 'swift build --build-tests' first" >&2
    exit 2
fi
if [[ ! -e /proc/net/ip_vs ]]; then
    modprobe ip_vs 2>/dev/null || true
fi
if [[ ! -e /proc/net/ip_vs ]]; then
    echo "run-kernel-tests: this kernel has no IPVS (/proc/net/ip_vs is missing); run through Scripts/kernel-run.sh" >&2
    exit 2
fi
export IPVS_KERNEL=${IPVS_KERNEL:-host}

# (No process substitution: the guest's /dev may lack the /dev/fd links.)
listing=$("$bundle" --list-tests 2>/dev/null | grep -E '^KernelTests\.' | grep -F -- "$filter" || true)
mapfile -t tests <<<"$listing"
[[ -n "$listing" ]] || tests=()
if [[ ${#tests[@]} -eq 0 ]]; then
    echo "run-kernel-tests: no kernel test matches '${filter}'" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

log_dir=$(mktemp -d)
# Tests are independent (own process, own network namespace, pid-derived names for anything
# global), so up to IPVS_TEST_JOBS of them run at once; default: one per CPU.
jobs_max=${IPVS_TEST_JOBS:-$(nproc)}
start=$(date +%s)

run_one() {
    local test=$1 log="$log_dir/${1//\//_}" t0=$EPOCHREALTIME outcome
    if unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$bundle" "$test" >"$log.log" 2>&1; then
        if grep -qE "Executed 1 test, with 1 test skipped" "$log.log"; then outcome=skipped; else outcome=passed; fi
    else
        outcome=FAILED
    fi
    echo "$outcome" >"$log.outcome"
    printf '%-8s %-90s %6.1fs\n' "$outcome" "$test" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')"
}

# Tests that change IPVS in other namespaces on purpose (their names end in "AnotherNamespaceChurns") would
# disturb the tests beside them: the kernel's service dumps of every namespace resume at a host-wide index.
# They run alone, after the others.
for test in "${tests[@]}"; do
    [[ $test == *AnotherNamespaceChurns ]] && continue
    while (( $(jobs -rp | wc -l) >= jobs_max )); do wait -n || true; done
    run_one "$test" &
done
wait
for test in "${tests[@]}"; do
    [[ $test == *AnotherNamespaceChurns ]] && run_one "$test"
done

passed=0 failed=0 skipped=0
failures=()
for test in "${tests[@]}"; do
    log="$log_dir/${test//\//_}"
    case $(cat "$log.outcome" 2>/dev/null || echo FAILED) in
    passed) passed=$((passed + 1)) ;;
    skipped) skipped=$((skipped + 1)) ;;
    *)
        failed=$((failed + 1))
        failures+=("$test")
        echo "---- $test"
        # The failed assertions first (a long log below may push them out of the tail).
        grep -E ': error: ' "$log.log" | cut -c1-400 | sed 's/^/    ! /' | head -n 20
        grep -vE '^(Test Suite|Test Case .* (started|passed))' "$log.log" | sed 's/^/    | /' | tail -n 60
        ;;
    esac
done
echo "kernel tests on the ${IPVS_KERNEL} kernel $(uname -r), ${jobs_max} at a time: $(( $(date +%s) - start ))s"
for test in "${failures[@]}"; do echo "failed: $test"; done
rm -rf "$log_dir"
if [[ $skipped -gt 0 ]]; then
    echo "kernel: ${passed} passed, ${failed} failed, ${skipped} skipped"
else
    echo "kernel: ${passed} passed, ${failed} failed"
fi
[[ $failed -eq 0 ]]
