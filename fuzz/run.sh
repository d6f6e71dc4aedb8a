#!/bin/sh
# Runs every fuzz target for a bounded time (default 60 s each):
#   fuzz/run.sh            # 60 s per target
#   FUZZ_SECONDS=600 fuzz/run.sh ledger_line
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash is saved under fuzz/artifacts/<target>/; add it to
# fuzz/corpus/<target>/ so `cargo test --test fuzz_seeds` replays it.
set -eu
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
targets="${*:-ledger_line price_file provider_response sse_stream}"
for t in $targets; do
    echo "== $t for ${secs}s"
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=10
done
