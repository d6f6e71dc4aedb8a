"""Generates a ledger and prints costlayer's figures next to DuckDB's, a
plain Python loop's and LiteLLM's. Run through run.sh (it makes the venv)."""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
USERS = ["alice", "bob", "carol", "dave"]
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-pro"),
]
NOW = datetime(2026, 11, 16, 12, 0, 0, tzinfo=timezone.utc)


def ulid(ms, n):
    value = (ms << 80) | n
    return "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


def record(i, rng):
    ts = NOW - timedelta(seconds=rng.randrange(60 * 86_400))
    ms = int(ts.timestamp() * 1000)
    provider, model = MODELS[rng.randrange(len(MODELS))]
    # The field order costlayer writes.
    return {
        "v": 1,
        "id": ulid(ms, i),
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "user": USERS[i % 4],
        "team": None,
        "provider": provider,
        "model": model,
        "mode": "batch" if i % 5 == 0 else "online",
        "input_tokens": rng.randrange(5_000),
        "output_tokens": rng.randrange(800),
        "cache_read_tokens": 0,
        "cache_write_5m_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "nano_usd": rng.randrange(50_000_000),
        "cached": False,
        "latency_ms": rng.randrange(3_000),
        "request_id": None,
        "tags": {},
        "price_version": None,
    }


def generate(dirs, n):
    """The same records twice: costlayer's compact layout, and json.dumps'
    default layout (", " and ": "), as Python scripts write them."""
    compact, python = dirs
    rng = random.Random(7)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    fc = [open(compact / f"costs_{u}.jsonl", "w") for u in USERS]
    fp = [open(python / f"costs_{u}.jsonl", "w") for u in USERS]
    for i in range(n):
        r = record(i, rng)
        fc[i % 4].write(json.dumps(r, separators=(",", ":")) + "\n")
        fp[i % 4].write(json.dumps(r) + "\n")
    for f in fc + fp:
        f.close()
    return sum(p.stat().st_size for p in compact.glob("*.jsonl"))


def best(f, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def costlayer_dashboard(exe, d, full=True):
    # A full recount unless asked: the dashboard's checkpoint (left by the
    # previous run) would let it read only what was appended since.
    if full:
        (d / "dashboard_checkpoint.bin").unlink(missing_ok=True)
    out = subprocess.run(
        [exe, "--dashboard", "--team", "--json", "--data-dir", str(d)],
        env={**os.environ, "COSTLAYER_NOW": "2026-11-16T12:00:00Z", "NO_COLOR": "1"},
        check=True,
        capture_output=True,
    )
    return json.loads(out.stdout)


def duckdb_groupby(d):
    import duckdb

    return duckdb.sql(
        f"SELECT provider, model, \"user\", count(*), sum(nano_usd) "
        f"FROM read_json_auto('{d}/costs_*.jsonl') GROUP BY ALL"
    ).fetchall()


def python_loop(d):
    sums = {}
    for p in sorted(Path(d).glob("costs_*.jsonl")):
        with open(p) as f:
            for line in f:
                r = json.loads(line)
                k = (r["provider"], r["model"], r["user"])
                c, s = sums.get(k, (0, 0))
                sums[k] = (c + 1, s + (r["nano_usd"] or 0))
    return sums


def criterion_median_ns(root, group, name):
    p = Path(root) / group / name / "new" / "estimates.json"
    try:
        return json.loads(p.read_text())["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def litellm_call_ns(calls=300):
    import litellm

    litellm.telemetry = False
    msgs = [{"role": "user", "content": "What is the capital of France?"}]

    def one():
        resp = litellm.completion(model="gpt-4o-mini", messages=msgs, mock_response="Paris")
        litellm.completion_cost(completion_response=resp)

    for _ in range(20):
        one()
    times = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        one()
        times.append(time.perf_counter_ns() - t)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--work", required=True)
    ap.add_argument("--cost-tracker", required=True)
    ap.add_argument("--criterion", required=True)
    a = ap.parse_args()

    work = Path(a.work)
    compact, python = work / "ledger", work / "ledger_python"
    print(f"== generating {a.records:,} records")
    size = generate((compact, python), a.records)
    print(f"   {size / 1e6:.0f} MB in costlayer's layout")

    print("== dashboard over the ledger (best of several runs, warm cache)")
    dash = costlayer_dashboard(a.cost_tracker, compact)
    assert dash["total_calls"] == a.records, dash["total_calls"]
    t_cl = best(lambda: costlayer_dashboard(a.cost_tracker, compact), 5)
    t_cl_py = best(lambda: costlayer_dashboard(a.cost_tracker, python), 5)
    costlayer_dashboard(a.cost_tracker, compact)
    t_repeat = best(lambda: costlayer_dashboard(a.cost_tracker, compact, full=False), 5)
    rows = duckdb_groupby(compact)
    assert sum(r[3] for r in rows) == a.records
    t_duck = best(lambda: duckdb_groupby(compact), 3)
    t_py = best(lambda: python_loop(compact), 1)

    def line(what, t, ref):
        print(f"   {what:<46} {t:8.3f} s  {size / t / 1e9:6.2f} GB/s  {t / ref:7.1f}x")

    print(f"   {'':<46} {'time':>10}  {'read':>11}  {'vs costlayer':>8}")
    line("costlayer cost-tracker --dashboard --team", t_cl, t_cl)
    line("costlayer, json.dumps layout (', ' ': ')", t_cl_py, t_cl)
    print(f"   {'costlayer, repeat from its checkpoint':<46} {t_repeat:8.3f} s  {'(nothing new)':>11}  {t_repeat / t_cl:7.2f}x")
    line("DuckDB read_json_auto + GROUP BY", t_duck, t_cl)
    line("Python json.loads loop", t_py, t_cl)

    print("== per-call overhead")
    stack = criterion_median_ns(a.criterion, "stack", "call_through_UpperBound")
    alone = criterion_median_ns(a.criterion, "stack", "provider_alone")
    lite = litellm_call_ns()
    print(f"   LiteLLM completion(mock_response) + completion_cost: {lite / 1e3:10.1f} us")
    if stack is not None and alone is not None:
        over = stack - alone
        print(f"   costlayer full stack over the simulated provider:    {over / 1e3:10.1f} us")
        print(f"   ratio: LiteLLM is {lite / over:,.0f}x the costlayer overhead")
    else:
        print("   (no criterion figure for the stack: run `cargo bench --bench stack` first)")


if __name__ == "__main__":
    sys.exit(main())
