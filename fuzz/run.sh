#!/usr/bin/env bash
# Runs the krmx-core fuzz targets, each for a bounded time, and fails if any of them crashes.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 s each, every target)
#
# Installs cargo-fuzz when missing. cargo-fuzz passes nightly-only rustc flags; RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. The sanitizer is off by default (the core forbids unsafe
# code; without ASan the targets run about 3-4 times faster): KRMX_FUZZ_SANITIZER=address turns
# it on.
#
# Each target starts from its committed seeds (fuzz/corpus/TARGET, read only) and a working
# corpus kept between runs in fuzz/target/corpus/TARGET. A crash leaves its input in
# fuzz/artifacts/TARGET/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(server_inputs frames handshake client)
fi
sanitizer="${KRMX_FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build -O -s "$sanitizer"

failed=()
summary=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    work="target/corpus/$target"
    mkdir -p "$work"
    log="target/fuzz-$target.log"
    if cargo fuzz run -O -s "$sanitizer" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
        summary+=("$target: ${done_line:-finished}")
    else
        tail -n 40 "$log"
        failed+=("$target")
        summary+=("$target: CRASHED (see fuzz/$log and fuzz/artifacts/$target/)")
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
