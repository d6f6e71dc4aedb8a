#!/usr/bin/env bash
# Side-by-side: costlayer against DuckDB, a Python json.loads loop and
# LiteLLM. See README.md in this directory.
#
#   benches/compare/run.sh            # 1,000,000 records
#   RECORDS=200000 benches/compare/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${COMPARE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/costlayer-compare.XXXXXX")}"
venv="${COMPARE_VENV:-$work/venv}"
target="${CARGO_TARGET_DIR:-$root/target}"
trap '[ -z "${KEEP:-}" ] && rm -rf "$work/ledger" "$work/ledger_python"' EXIT

echo "== work directory: $work"
if [ ! -x "$venv/bin/python" ]; then
    echo "== creating a venv and installing LiteLLM and DuckDB from PyPI"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet litellm duckdb
fi

echo "== building cost-tracker (release)"
(cd "$root" && cargo build --release --quiet --bin cost-tracker)

echo "== measuring the stack (criterion, --quick)"
(cd "$root" && cargo bench --quiet --bench stack -- --quick \
    'stack/(call_through/UpperBound|provider_alone)$' >/dev/null 2>&1) || \
    echo "   (the stack bench failed; its ratio is left out)"

# LiteLLM must not fetch its price map from the network on import.
export LITELLM_LOCAL_MODEL_COST_MAP=True
"$venv/bin/python" "$here/compare.py" \
    --records "${RECORDS:-1000000}" \
    --work "$work" \
    --cost-tracker "$target/release/cost-tracker" \
    --criterion "$target/criterion"
