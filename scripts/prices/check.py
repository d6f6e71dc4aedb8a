#!/usr/bin/env python3
"""Check (and extend) costlayer's embedded price table against LiteLLM's map
and pydantic genai-prices' data.

Get the two data files (both MIT licensed) without any network but PyPI:

    pip download --no-deps litellm genai-prices -d /tmp/px
    cd /tmp/px && unzip -o -q 'litellm-*.whl' \
        'litellm/model_prices_and_context_window_backup.json' -d lit
    # genai-prices ships its data as Python; dump it to its data.json form:
    unzip -o -q 'genai_prices-*.whl' -d gp
    python3 scripts/prices/check.py dump-genai /tmp/px/gp > /tmp/px/genai.json
    # (or use prices/data.json from the pydantic/genai-prices repository)

Then:

    python3 scripts/prices/check.py check \
        --litellm /tmp/px/lit/litellm/model_prices_and_context_window_backup.json \
        --genai /tmp/px/genai.json

prints, per model of src/pricing/prices.toml, every rate on which a source
disagrees, and exits 1 if a disagreement is not acknowledged in the entry's
`source` (the word "disagree" followed by which source and why).

    python3 scripts/prices/check.py missing --litellm ... --genai ...

prints TOML entries, ready to review and paste, for the first-party chat
models LiteLLM prices that the table lacks (with genai-prices' rates
compared in a comment). Python 3.11+ (tomllib), no other dependency.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import decimal
import json
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "src" / "pricing" / "prices.toml"
FIRST_PARTY = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
GENAI_FIRST_PARTY = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}
PRICING_PAGE = {
    "openai": "https://developers.openai.com/api/docs/pricing",
    "anthropic": "https://platform.claude.com/docs/en/about-claude/pricing",
    "gemini": "https://ai.google.dev/gemini-api/docs/pricing",
}
BUCKETS = ["input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "input_audio"]
LITELLM_KEYS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write_5m": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "input_audio": "input_cost_per_audio_token",
}
GENAI_KEYS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write_5m": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "input_audio": "input_audio_mtok",
}


def norm(name: str) -> str:
    n = name.strip().lower()
    if n.startswith("models/"):
        n = n[len("models/"):]
    n = n.rsplit("/", 1)[-1]
    return n.replace(".", "-").replace("@", "-")


def per_million(per_token) -> Decimal | None:
    if per_token is None or isinstance(per_token, (dict, list, str, bool)):
        return None
    return (Decimal(repr(per_token)) * 1_000_000).normalize()


def dec(x) -> Decimal | None:
    if x is None:
        return None
    return Decimal(str(x)).normalize()


# ------------------------------------------------------------------ table ----

def load_table() -> dict[str, dict]:
    """The entry of each model in force today, by canonical name."""
    today = datetime.date.today().isoformat()
    data = tomllib.loads(TABLE.read_text())
    out: dict[str, dict] = {}
    for m in data.get("models", []):
        name = m["model"]
        cur = out.get(name)
        start = m.get("effective_from") or ""
        if start > today:
            continue
        if cur is None or start > (cur.get("effective_from") or ""):
            out[name] = m
    return out


def table_rates(m: dict) -> dict[str, Decimal | None]:
    r = {b: dec(m.get(b)) for b in BUCKETS}
    for b in ("cache_read", "cache_write_5m", "cache_write_1h"):
        if r[b] is None and m.get("provider") == "anthropic":
            r[b] = None
    return r


def table_batch(m: dict) -> dict[str, Decimal | None]:
    if "batch_percent" in m:
        p = Decimal(m["batch_percent"]) / 100
        return {b: (dec(m.get(b)) * p).normalize() if m.get(b) is not None else None for b in BUCKETS}
    if "batch" in m:
        return {b: dec(m["batch"].get(b)) for b in BUCKETS}
    return {}


# ---------------------------------------------------------------- LiteLLM ----

def litellm_entry(lit: dict, m: dict) -> tuple[str, dict] | None:
    names = [m["model"], *m.get("aliases", [])]
    for n in names:
        for key in (n, f"gemini/{n}"):
            e = lit.get(key)
            if e and e.get("litellm_provider") in FIRST_PARTY:
                return key, e
    want = {norm(n) for n in names}
    for key, e in lit.items():
        if isinstance(e, dict) and e.get("litellm_provider") in FIRST_PARTY and norm(key) in want:
            return key, e
    return None


def litellm_rates(e: dict, suffix: str = "") -> dict[str, Decimal | None]:
    return {b: per_million(e.get(k + suffix)) for b, k in LITELLM_KEYS.items()}


def litellm_tiers(e: dict) -> dict[int, dict[str, Decimal | None]]:
    tiers: dict[int, dict[str, Decimal | None]] = {}
    for k, v in e.items():
        if "_above_" not in k or not k.endswith("k_tokens"):
            continue
        base, rest = k.rsplit("_above_", 1)
        n = rest[: -len("k_tokens")]
        if not n.isdigit():
            continue
        for b, lk in LITELLM_KEYS.items():
            if base == lk:
                tiers.setdefault(int(n) * 1000, {})[b] = per_million(v)
    return tiers


# ----------------------------------------------------------- genai-prices ----

def clause_matches(c, name: str) -> bool:
    if not isinstance(c, dict):
        return False
    if "equals" in c:
        return name == c["equals"]
    if "starts_with" in c:
        return name.startswith(c["starts_with"])
    if "ends_with" in c:
        return name.endswith(c["ends_with"])
    if "contains" in c:
        return c["contains"] in name
    if "regex" in c:
        import re

        return re.search(c["regex"], name) is not None
    if "or" in c:
        return any(clause_matches(x, name) for x in c["or"])
    if "and" in c:
        return all(clause_matches(x, name) for x in c["and"])
    return False


def genai_entry(genai: list, m: dict) -> tuple[str, dict] | None:
    for p in genai:
        if p.get("id") not in GENAI_FIRST_PARTY:
            continue
        for model in p.get("models", []):
            if model["id"] == m["model"]:
                return f'{p["id"]}/{model["id"]}', model
    for p in genai:
        if p.get("id") not in GENAI_FIRST_PARTY:
            continue
        for model in p.get("models", []):
            if clause_matches(model.get("match"), m["model"]):
                return f'{p["id"]}/{model["id"]}', model
    return None


def genai_periods(model: dict) -> list[tuple[str, dict]]:
    """(start date or "", prices), oldest first; time-of-day prices skipped."""
    prices = model.get("prices")
    if isinstance(prices, list):
        dated = [
            ((cp.get("constraint") or {}).get("start_date", "")[:10], cp["prices"])
            for cp in prices
            if not cp.get("constraint") or set(cp["constraint"]) == {"start_date"}
        ]
        return sorted(dated, key=lambda x: x[0])
    return [("", prices or {})]


def genai_current(model: dict, today: str | None = None) -> dict:
    today = today or datetime.date.today().isoformat()
    periods = [p for d, p in genai_periods(model) if d <= today]
    return periods[-1] if periods else {}


def genai_rates(prices: dict) -> tuple[dict[str, Decimal | None], dict[int, dict[str, Decimal]]]:
    base: dict[str, Decimal | None] = {}
    tiers: dict[int, dict[str, Decimal]] = {}
    for b, k in GENAI_KEYS.items():
        v = prices.get(k)
        if isinstance(v, dict):
            base[b] = dec(v.get("base"))
            for t in v.get("tiers", []):
                tiers.setdefault(int(t["start"]), {})[b] = dec(t["price"])
        else:
            base[b] = dec(v)
    return base, tiers


# ----------------------------------------------------------------- check ----

def fmt(x) -> str:
    return "-" if x is None else f"{x:f}"


def check(args) -> int:
    lit = json.loads(Path(args.litellm).read_text())
    genai = json.loads(Path(args.genai).read_text())
    table = load_table()
    unexplained = 0
    for name, m in table.items():
        problems: list[str] = []
        ours = table_rates(m)
        le = litellm_entry(lit, m)
        if le:
            key, e = le
            theirs = litellm_rates(e)
            for b in BUCKETS:
                if theirs[b] is not None and ours[b] is not None and theirs[b] != ours[b]:
                    problems.append(f"{b}: ours {fmt(ours[b])}, LiteLLM `{key}` {fmt(theirs[b])}")
                if theirs[b] is not None and ours[b] is None and b != "input_audio":
                    problems.append(f"{b}: ours unset, LiteLLM `{key}` {fmt(theirs[b])}")
            ob = table_batch(m)
            lb = litellm_rates(e, "_batches")
            for b in ("input", "output", "cache_read"):
                if lb[b] is not None and ob.get(b) is not None and lb[b] != ob[b]:
                    problems.append(f"batch {b}: ours {fmt(ob[b])}, LiteLLM {fmt(lb[b])}")
            for t, rates in litellm_tiers(e).items():
                ot = next((x for x in m.get("tiers", []) if x["above_prompt_tokens"] == t), None)
                if ot is None:
                    problems.append(f"tier above {t}: missing, LiteLLM has it")
                    continue
                for b, v in rates.items():
                    if v is not None and dec(ot.get(b)) not in (None, v):
                        problems.append(f"tier {t} {b}: ours {ot.get(b)}, LiteLLM {fmt(v)}")
            dd = e.get("deprecation_date")
            if dd and m.get("deprecated") and dd != m["deprecated"]:
                problems.append(f"deprecated: ours {m['deprecated']}, LiteLLM {dd}")
        else:
            problems.append("not in LiteLLM")
        ge = genai_entry(genai, m)
        if ge:
            gid, model = ge
            base, _tiers = genai_rates(genai_current(model))
            for b in BUCKETS:
                if base.get(b) is not None and ours[b] is not None and base[b] != ours[b]:
                    problems.append(f"{b}: ours {fmt(ours[b])}, genai-prices `{gid}` {fmt(base[b])}")
        else:
            problems.append("not in genai-prices")
        if problems:
            acknowledged = "disagree" in (m.get("source") or "")
            only_absent = all(p.startswith("not in") for p in problems)
            mark = "noted" if acknowledged else ("absent" if only_absent else "UNEXPLAINED")
            if not acknowledged and not only_absent:
                unexplained += 1
            print(f"{name} [{mark}]")
            for p in problems:
                print(f"    {p}")
    print(f"\n{len(table)} models checked, {unexplained} with unexplained disagreements")
    return 1 if unexplained else 0


# --------------------------------------------------------------- missing ----

def toml_rates(r: dict[str, Decimal | None], indent: str = "") -> list[str]:
    return [f'{indent}{b} = "{v:f}"' for b in BUCKETS if (v := r.get(b)) is not None]


def inline(r: dict[str, Decimal | None]) -> str:
    return "{ " + ", ".join(f'{b} = "{v:f}"' for b in BUCKETS if (v := r.get(b)) is not None) + " }"


def missing(args) -> int:
    lit = json.loads(Path(args.litellm).read_text())
    genai = json.loads(Path(args.genai).read_text()) if args.genai else []
    table = load_table()
    known = set()
    for m in table.values():
        known.add(norm(m["model"]))
        known.update(norm(a) for a in m.get("aliases", []))
    # Dated ids become aliases of their base model when priced the same.
    entries = {}
    for key, e in lit.items():
        if not isinstance(e, dict) or e.get("litellm_provider") not in FIRST_PARTY:
            continue
        if e.get("mode") not in ("chat", "responses") or e.get("input_cost_per_token") is None:
            continue
        name = key.split("/", 1)[1] if key.startswith("gemini/") else key
        if name.startswith("ft:") or norm(name) in known:
            continue
        # Not text/chat models: music, speech, robotics, open-weight Gemma.
        if any(w in name for w in ("lyria", "-tts", "gemma", "robotics", "image")):
            continue
        entries[name] = (key, e)
    bases: dict[str, list[str]] = {}
    for name in sorted(entries):
        parent = next(
            (p for p in bases if name.startswith(p + "-") and name[len(p) + 1:][:1].isdigit()
             and litellm_rates(entries[p][1]) == litellm_rates(entries[name][1])),
            None,
        )
        if parent:
            bases[parent].append(name)
        else:
            bases[name] = []
    for name, aliases in bases.items():
        key, e = entries[name]
        prov = FIRST_PARTY[e["litellm_provider"]]
        r = litellm_rates(e)
        out = ["[[models]]", f'model = "{name}"', f'provider = "{prov}"']
        if aliases:
            out.append("aliases = [" + ", ".join(f'"{a}"' for a in aliases) + "]")
        src = e.get("source") or PRICING_PAGE[prov]
        note = f"L-new `{key}`"
        ge = genai_entry(genai, {"model": name})
        if ge:
            gid, model = ge
            gbase, _ = genai_rates(genai_current(model))
            diffs = [f"{b} {fmt(gbase[b])}" for b in BUCKETS
                     if gbase.get(b) is not None and r[b] is not None and gbase[b] != r[b]]
            note += f"; genai-prices `{gid}`" + (f" disagrees: {', '.join(diffs)}" if diffs else " agrees")
        else:
            note += "; not in genai-prices"
        out.append(f'source = "{src} ({note})"')
        if e.get("deprecation_date"):
            out.append(f'deprecated = "{e["deprecation_date"]}"')
        out += toml_rates(r)
        ws = e.get("search_context_cost_per_query")
        if not (isinstance(ws, dict) and ws.get("search_context_size_medium") is not None):
            ws = None
        if ws is not None:
            out.append(f'web_search_per_1k = "{dec(ws["search_context_size_medium"]) * 1000:f}"')
        b = litellm_rates(e, "_batches")
        deferred_batch = None
        if b["input"] is not None:
            pct = (b["input"] / r["input"] * 100) if r["input"] else None
            scaled_ok = pct is not None and all(
                b[k] is None or r[k] is None or b[k] == (r[k] * pct / 100).normalize() for k in BUCKETS
            )
            if scaled_ok and pct == pct.to_integral_value():
                out.append(f"batch_percent = {int(pct)}")
            else:
                batch = {k: (b[k] if b[k] is not None else r[k]) for k in BUCKETS}
                batch_tiers = [(t, rates) for t, rates in litellm_tiers(e).items()]
                if batch_tiers:
                    # Emitted after the online tiers, as a [models.batch] table.
                    deferred_batch = (batch, batch_tiers)
                else:
                    out.append(f"batch = {inline(batch)}")
        for variant in ("flex", "priority"):
            v = litellm_rates(e, "_" + variant)
            if v["input"] is not None:
                full = {k: v[k] for k in BUCKETS if v[k] is not None}
                out.append(f"{variant} = {inline(full)}")
        for t, rates in sorted(litellm_tiers(e).items()):
            merged = {k: rates.get(k) if rates.get(k) is not None else r[k] for k in BUCKETS}
            out.append("")
            out.append("[[models.tiers]]")
            out.append(f"above_prompt_tokens = {t}")
            out += toml_rates(merged)
        if deferred_batch:
            batch, batch_tiers = deferred_batch
            out += ["", "[models.batch]"] + toml_rates(batch)
            for t, _rates in sorted(batch_tiers):
                bt = {k: per_million(e.get(f"{LITELLM_KEYS[k]}_above_{t // 1000}k_tokens_batches")) for k in BUCKETS}
                online_t = litellm_tiers(e)[t]
                # No batch key for a bucket of this tier: the online tier
                # rate (never under-counts).
                bt = {k: bt[k] if bt[k] is not None else (online_t.get(k) if online_t.get(k) is not None else batch[k])
                      for k in BUCKETS}
                out += ["", "[[models.batch.tiers]]", f"above_prompt_tokens = {t}"] + toml_rates(bt)
        print("\n".join(out) + "\n")
        # genai-prices knows dated price changes that LiteLLM (one price per
        # entry) does not: emit each later period as its own entry.
        if ge:
            periods = genai_periods(ge[1])
            for start, prices in periods[1:]:
                if not start:
                    continue
                g, _ = genai_rates(prices)
                if all(g.get(k) == r.get(k) for k in ("input", "output", "cache_read")):
                    continue
                ratio = (g["input"] / r["input"]) if r.get("input") and g.get("input") else None
                later = ["[[models]]", f'model = "{name}"', f'provider = "{prov}"',
                         f'effective_from = "{start}"',
                         f'source = "{src} (genai-prices `{ge[0]}` from {start}; L-new `{key}` disagrees, having only the earlier price: '
                         f'genai-prices is right, the change is dated on the provider page)"']
                rates_now = {k: (g.get(k) if g.get(k) is not None else
                                 ((r[k] * ratio).normalize() if r.get(k) is not None and ratio else None))
                             for k in BUCKETS}
                later += toml_rates(rates_now)
                if ws is not None and isinstance(ws, dict):
                    later.append(f'web_search_per_1k = "{dec(ws["search_context_size_medium"]) * 1000:f}"')
                if b["input"] is not None:
                    later.append("batch_percent = 50")
                for variant in ("flex", "priority"):
                    v = litellm_rates(e, "_" + variant)
                    if v["input"] is not None and r["input"]:
                        f = v["input"] / r["input"]
                        later.append(f"{variant} = " + inline(
                            {k: (rates_now[k] * f).normalize() for k in BUCKETS
                             if rates_now.get(k) is not None and v.get(k) is not None}))
                print("\n".join(later) + "\n")
    return 0


# ------------------------------------------------------------ dump-genai ----

def dump_genai(args) -> int:
    """genai-prices' wheel data (Python) -> its data.json form."""
    root = Path(args.unpacked)
    stub = root / "_stub"
    stub.mkdir(exist_ok=True)
    (stub / "httpx2.py").write_text("")  # the updater's HTTP client, unused here
    sys.path[:0] = [str(root), str(stub)]
    from genai_prices import data  # type: ignore

    def conv(o):
        if dataclasses.is_dataclass(o):
            d = {}
            for f in dataclasses.fields(o):
                v = getattr(o, f.name)
                if v is None or f.name in ("extractors", "api_pattern", "description"):
                    continue
                d[f.name.rstrip("_")] = conv(v)
            return d
        if type(o).__name__ == "ModelPrice":
            return {k: conv(v) for k, v in o.__dict__.items() if not k.startswith("_") and v is not None}
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        if isinstance(o, (datetime.date, datetime.datetime, datetime.time)):
            return o.isoformat()
        if isinstance(o, (list, tuple)):
            return [conv(x) for x in o]
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        return o

    json.dump([conv(p) for p in data.providers], sys.stdout)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("check", "missing"):
        p = sub.add_parser(name)
        p.add_argument("--litellm", required=True)
        p.add_argument("--genai", required=name == "check")
    p = sub.add_parser("dump-genai")
    p.add_argument("unpacked", help="the unzipped genai-prices wheel")
    args = ap.parse_args()
    return {"check": check, "missing": missing, "dump-genai": dump_genai}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
