//! Reading the seed tool's single `costs.json` file; the format is
//! documented on [`super::JsonlStorage`] ("Legacy `costs.json`").

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::files::{fnv1a64, io_error};
use super::read::{Quarantine, Sink};
use super::{ScanSummary, LEGACY_FILE};
use crate::ledger::{CorruptLine, CostRecord, LedgerError, ScanFilter, ScanItem};
use crate::{Mode, Money, Usage};

/// Scans the legacy file; returns false if the sink asked to stop.
pub(crate) fn scan_legacy(
    path: &Path,
    default_user: &str,
    quarantine: &Quarantine,
    filter: &ScanFilter,
    summary: &mut ScanSummary,
    sink: &mut Sink<'_>,
) -> Result<bool, LedgerError> {
    // Never through a link, only a regular file: a link is reported and
    // skipped, its target neither read nor copied to quarantine.
    let bytes = match super::safe_open::read_to_end(path) {
        Ok(b) => b,
        Err(e) => match super::read::refused_entry(path, &e) {
            Some(c) => {
                summary.corrupt += 1;
                return Ok(sink(ScanItem::Corrupt(c)));
            }
            None => return Err(io_error(path, "read the legacy ledger", e)),
        },
    };
    let corrupt = |line: u64,
                   raw: &[u8],
                   reason: String,
                   summary: &mut ScanSummary,
                   sink: &mut Sink<'_>| {
        summary.corrupt += 1;
        let c = CorruptLine {
            source: path.display().to_string(),
            line,
            quarantined_to: quarantine.keep(LEGACY_FILE, line, raw, &reason),
            reason,
        };
        tracing::warn!(file = %c.source, entry = line, reason = %c.reason, "skipped a corrupt legacy ledger entry");
        sink(ScanItem::Corrupt(c))
    };
    let root: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("the legacy file is not valid JSON ({e}); no entry was imported");
            return Ok(corrupt(1, &bytes, reason, summary, sink));
        }
    };
    let entries = match entries(root) {
        Ok(e) => e,
        Err(reason) => return Ok(corrupt(1, &bytes, reason, summary, sink)),
    };
    for (i, (key, entry)) in entries.into_iter().enumerate() {
        let n = i as u64 + 1;
        let rec = to_record(entry.clone(), key.as_deref(), default_user).and_then(|r| {
            super::amounts::check(&r.usage, r.nano_usd, r.saved_nano_usd).map(|()| r)
        });
        match rec {
            Ok(rec) => {
                summary.records += 1;
                if filter.matches(&rec) {
                    summary.matched += 1;
                    if !sink(ScanItem::Record(rec)) {
                        return Ok(false);
                    }
                }
            }
            Err(reason) => {
                let raw = serde_json::to_vec(&entry).unwrap_or_default();
                let reason = format!("legacy entry {n}: {reason}");
                if !corrupt(n, &raw, reason, summary, sink) {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

type Entries = Vec<(Option<String>, Value)>;

fn entries(root: Value) -> Result<Entries, String> {
    match root {
        Value::Array(items) => Ok(items.into_iter().map(|v| (None, v)).collect()),
        Value::Object(mut map) => {
            for key in ["records", "calls", "entries", "history", "costs"] {
                if let Some(Value::Array(_)) = map.get(key) {
                    if let Some(Value::Array(items)) = map.remove(key) {
                        return Ok(items.into_iter().map(|v| (None, v)).collect());
                    }
                }
            }
            if map.contains_key("model") {
                return Ok(vec![(None, Value::Object(map))]);
            }
            if !map.is_empty() && map.values().all(Value::is_object) {
                return Ok(map.into_iter().map(|(k, v)| (Some(k), v)).collect());
            }
            Err("the legacy file is neither a JSON array of calls nor an object of calls; no entry was imported".to_owned())
        }
        _ => Err(
            "the legacy file is neither a JSON array nor an object; no entry was imported"
                .to_owned(),
        ),
    }
}

fn take_first(map: &mut Map<String, Value>, keys: &[&str]) -> Option<Value> {
    keys.iter()
        .find_map(|k| map.remove(*k))
        .filter(|v| !v.is_null())
}

fn as_u64(v: Option<Value>, what: &str) -> Result<u64, String> {
    match v {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("`{what}` is not a token count: {n}")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{what}` is not a token count: {s}")),
        Some(other) => Err(format!("`{what}` is not a token count: {other}")),
    }
}

fn as_string(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_usd(v: &Value) -> Result<Money, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().trim_start_matches('$').to_owned(),
        other => return Err(format!("the cost is not a number: {other}")),
    };
    // Exponent forms (1e-5) and more than nine decimals: exact from the
    // text, rounded half away from zero to the nano-dollar.
    decimal_to_money(&text).ok_or_else(|| format!("the cost is not a dollar amount: {text}"))
}

fn parse_ts(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Ok(t.and_utc());
                }
            }
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                if let Some(t) = d.and_hms_opt(0, 0, 0) {
                    return Ok(t.and_utc());
                }
            }
            Err(format!("unrecognised timestamp `{s}`"))
        }
        Value::Number(n) => {
            let f = n.as_f64().ok_or("bad timestamp")?;
            let ms = if f.abs() >= 1e12 { f } else { f * 1000.0 };
            Utc.timestamp_millis_opt(ms.round() as i64)
                .single()
                .ok_or_else(|| format!("timestamp out of range: {n}"))
        }
        other => Err(format!("unrecognised timestamp {other}")),
    }
}

fn infer_provider(model: &str) -> &'static str {
    let m = model.to_ascii_lowercase();
    if m.starts_with("gpt")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || m.starts_with("chatgpt")
    {
        "openai"
    } else if m.starts_with("claude") {
        "anthropic"
    } else if m.starts_with("gemini") {
        "gemini"
    } else {
        "unknown"
    }
}

/// Converts one legacy `costs.json` entry.
pub(crate) fn to_record(
    entry: Value,
    key: Option<&str>,
    default_user: &str,
) -> Result<CostRecord, String> {
    map_entry(entry, key, default_user, LEGACY_FILE)
}

/// The `legacy_import` marker of records read from the earlier Python
/// tool's per-user JSONL lines.
pub(crate) const PYTHON_JSONL: &str = "python-jsonl";

/// Reads one line of the earlier Python tool's per-user
/// `costs_<user>.jsonl` (the mapping is documented on
/// [`super::JsonlStorage`], "Lines of the earlier Python tool"). The cost in
/// dollars is converted exactly from the line's decimal text (`0.0115`,
/// `1.23e-05`, `"0.0115"`), rounded half away from zero to the nano-dollar.
pub(crate) fn python_line(line: &[u8], file_user: &str) -> Result<CostRecord, String> {
    let entry: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = &entry else {
        return Err("not a JSON object".to_owned());
    };
    if !map.contains_key("model") {
        return Err("no `model`".to_owned());
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_owned())?;
    let exact = COST_KEYS
        .iter()
        .find_map(|k| map.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
        .map(|(k, v)| exact_cost(text, k, v))
        .transpose()?;
    let has_nanos = map.contains_key("nano_usd");
    let mut rec = map_entry(entry, None, file_user, PYTHON_JSONL)?;
    if let (Some(m), false) = (exact, has_nanos) {
        rec.nano_usd = Some(m);
    }
    Ok(rec)
}

/// The dollar-cost fields, first match wins.
const COST_KEYS: [&str; 4] = ["cost", "cost_usd", "total_cost", "usd"];

/// The cost under `key` from its decimal text in the raw line: a JSON
/// string's content, or the number token itself (checked against the parsed
/// value, so a `"key"` inside another string is never taken for it).
fn exact_cost(line: &str, key: &str, parsed: &Value) -> Result<Money, String> {
    let text = match parsed {
        Value::String(s) => s.trim().trim_start_matches('$').to_owned(),
        Value::Number(n) => number_token(line, key)
            .filter(|t| t.parse::<f64>().ok() == n.as_f64())
            .map_or_else(|| n.to_string(), str::to_owned),
        other => return Err(format!("the cost is not a number: {other}")),
    };
    decimal_to_money(&text).ok_or_else(|| format!("the cost is not a dollar amount: {text}"))
}

/// The number token after `"key":` in `line`, if there is one.
fn number_token<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = line[from..].find(&quoted) {
        let after = from + at + quoted.len();
        from = after;
        let rest = line[after..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(rest.len());
        if end > 0 {
            return Some(&rest[..end]);
        }
    }
    None
}

/// A decimal dollar amount (`-12.5`, `0.0115`, `1.23e-05`, `$3`) as exact
/// nano-dollars, rounded half away from zero past the ninth decimal.
/// `None` if it is not a decimal number or does not fit.
pub(crate) fn decimal_to_money(text: &str) -> Option<Money> {
    let t = text.trim().trim_start_matches('$');
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits × 10^(exp − frac.len()) dollars = digits × 10^shift nano-dollars
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let shift = i64::from(exp) - frac.len() as i64 + 9;
    if digits.is_empty() {
        return Some(Money::ZERO);
    }
    if shift >= 0 {
        if digits.len() as i64 + shift > 19 {
            return None;
        }
        let n: i128 = digits.parse::<i128>().ok()? * 10i128.pow(shift as u32);
        let n = i64::try_from(if neg { -n } else { n }).ok()?;
        return Some(Money::from_nanos(n));
    }
    let cut = (-shift) as usize;
    if cut > digits.len() {
        // Less than a tenth of a nano-dollar.
        return Some(Money::ZERO);
    }
    let (keep, dropped) = digits.split_at(digits.len() - cut);
    if keep.len() > 19 {
        return None;
    }
    let mut n: i128 = if keep.is_empty() {
        0
    } else {
        keep.parse().ok()?
    };
    if dropped.as_bytes().first().is_some_and(|d| *d >= b'5') {
        n += 1;
    }
    let n = i64::try_from(if neg { -n } else { n }).ok()?;
    Some(Money::from_nanos(n))
}

/// Converts one entry of either legacy format, marking it with `source`.
fn map_entry(
    entry: Value,
    key: Option<&str>,
    default_user: &str,
    source: &str,
) -> Result<CostRecord, String> {
    let Value::Object(mut map) = entry else {
        return Err("not a JSON object".to_owned());
    };
    let fingerprint = fnv1a64(
        0,
        serde_json::to_string(&map).unwrap_or_default().as_bytes(),
    );
    if let Ok(mut rec) = serde_json::from_value::<CostRecord>(Value::Object(map.clone())) {
        rec.extra
            .insert("legacy_import".into(), Value::String(source.into()));
        return Ok(rec);
    }
    let ts = take_first(&mut map, &["ts", "timestamp", "time", "date", "created_at"])
        .ok_or("no timestamp (`timestamp` or `ts`)")?;
    let ts = parse_ts(&ts)?;
    let model = match take_first(&mut map, &["model"]) {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err("no `model`".to_owned()),
    };
    let provider = as_string(take_first(&mut map, &["provider"]))
        .unwrap_or_else(|| infer_provider(&model).to_owned());
    let user = as_string(take_first(&mut map, &["user", "user_id"]))
        .unwrap_or_else(|| default_user.to_owned());
    let team = as_string(take_first(&mut map, &["team"]));
    let usage = Usage {
        input_tokens: as_u64(
            take_first(&mut map, &["input_tokens", "prompt_tokens"]),
            "input_tokens",
        )?,
        output_tokens: as_u64(
            take_first(&mut map, &["output_tokens", "completion_tokens"]),
            "output_tokens",
        )?,
        cache_read_tokens: as_u64(
            take_first(
                &mut map,
                &[
                    "cache_read_tokens",
                    "cached_tokens",
                    "cache_read_input_tokens",
                ],
            ),
            "cache_read_tokens",
        )?,
        cache_write_5m_tokens: as_u64(
            take_first(
                &mut map,
                &[
                    "cache_write_5m_tokens",
                    "cache_write_tokens",
                    "cache_creation_input_tokens",
                ],
            ),
            "cache_write_5m_tokens",
        )?,
        cache_write_1h_tokens: as_u64(
            take_first(&mut map, &["cache_write_1h_tokens"]),
            "cache_write_1h_tokens",
        )?,
        reasoning_tokens: as_u64(
            take_first(&mut map, &["reasoning_tokens"]),
            "reasoning_tokens",
        )?,
        ..Usage::default()
    };
    let nano_usd = match take_first(&mut map, &["nano_usd"]) {
        Some(Value::Number(n)) => Some(Money::from_nanos(
            n.as_i64().ok_or("`nano_usd` is not an integer")?,
        )),
        Some(_) => return Err("`nano_usd` is not an integer".to_owned()),
        None => match take_first(&mut map, &COST_KEYS) {
            Some(v) => Some(parse_usd(&v)?),
            None => None,
        },
    };
    let mode = match take_first(&mut map, &["mode"]) {
        Some(Value::String(s)) if s == "batch" => Mode::Batch,
        _ => match map.remove("batch") {
            Some(Value::Bool(true)) => Mode::Batch,
            _ => Mode::Online,
        },
    };
    let cached = matches!(
        take_first(&mut map, &["cached", "cache_hit"]),
        Some(Value::Bool(true))
    );
    let latency_ms = as_u64(take_first(&mut map, &["latency_ms"]), "latency_ms")?;
    let request_id = as_string(take_first(&mut map, &["request_id"]));
    let tags = match take_first(&mut map, &["tags"]) {
        Some(Value::Object(t)) => t
            .into_iter()
            .filter_map(|(k, v)| as_string(Some(v)).map(|v| (k, v)))
            .collect(),
        _ => Default::default(),
    };
    let price_version = as_string(take_first(&mut map, &["price_version"]));
    let v = map.remove("v");
    let _ = v;
    let legacy_id = map
        .remove("id")
        .or_else(|| key.map(|k| Value::String(k.to_owned())));
    let id = match legacy_id
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| ulid::Ulid::from_string(s).ok())
    {
        Some(id) => id,
        None => {
            let ms = u64::try_from(ts.timestamp_millis()).unwrap_or(0);
            let random = (u128::from(fingerprint) << 64)
                | u128::from(fnv1a64(0x5eed, &fingerprint.to_le_bytes()));
            if let Some(orig) = legacy_id {
                map.insert("legacy_id".into(), orig);
            }
            ulid::Ulid::from_parts(ms, random)
        }
    };
    map.insert("legacy_import".into(), Value::String(source.into()));
    Ok(CostRecord {
        v: crate::ledger::SCHEMA_VERSION,
        id,
        ts,
        user: user.into(),
        team: team.map(Into::into),
        provider: provider.into(),
        model: model.into(),
        mode,
        usage,
        nano_usd,
        cached,
        saved_nano_usd: None,
        latency_ms,
        request_id: request_id.map(Into::into),
        tags,
        price_version: price_version.map(Into::into),
        cost_status: crate::CostStatus::Exact,
        cost_notes: Vec::new(),
        extra: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_seed_fields_exactly() {
        let e = json!({"timestamp": "2025-01-15 10:30:00", "model": "claude-sonnet-4.5",
                       "prompt_tokens": 1000, "completion_tokens": 200, "cost": 0.0115, "note": "x"});
        let r = to_record(e.clone(), None, "seed").expect("maps");
        assert_eq!(r.provider, "anthropic");
        assert_eq!(r.user, "seed");
        assert_eq!(r.usage, Usage::new(1000, 200));
        assert_eq!(r.nano_usd, Some(Money::from_nanos(11_500_000)));
        assert_eq!(r.ts.to_rfc3339(), "2025-01-15T10:30:00+00:00");
        assert_eq!(r.extra["note"], "x");
        assert_eq!(r.extra["legacy_import"], "costs.json");
        // Stable id across reads.
        assert_eq!(to_record(e, None, "seed").expect("maps").id, r.id);
    }

    #[test]
    fn accepts_arrays_wrapped_arrays_and_maps() {
        assert_eq!(entries(json!([{"model": "a"}])).expect("array").len(), 1);
        assert_eq!(
            entries(json!({"calls": [{"model": "a"}, {"model": "b"}]}))
                .expect("wrapped")
                .len(),
            2
        );
        let m = entries(json!({"x1": {"model": "a"}, "x2": {"model": "b"}})).expect("map");
        assert_eq!(m[0].0.as_deref(), Some("x1"));
        assert!(entries(json!(42)).is_err());
        assert!(entries(json!({"a": 1})).is_err());
    }

    #[test]
    fn decimal_text_converts_exactly() {
        let m = |s: &str| decimal_to_money(s).map(Money::nanos);
        assert_eq!(m("0.0115"), Some(11_500_000));
        assert_eq!(m("1.23e-05"), Some(12_300));
        assert_eq!(m("1.23E-5"), Some(12_300));
        assert_eq!(m("$3"), Some(3_000_000_000));
        assert_eq!(m("-0.5"), Some(-500_000_000));
        assert_eq!(m("0.1234567894"), Some(123_456_789));
        assert_eq!(m("0.1234567895"), Some(123_456_790));
        assert_eq!(m("-0.0000000005"), Some(-1));
        assert_eq!(m("4e-11"), Some(0));
        assert_eq!(m("2.5e3"), Some(2_500_000_000_000));
        // 0.1 + 0.2 in f64 is 0.30000000000000004; the text is exact.
        assert_eq!(m("0.3"), Some(300_000_000));
        assert_eq!(m("0"), Some(0));
        for bad in [
            "",
            ".",
            "abc",
            "1e",
            "1.2.3",
            "0x10",
            "1e400",
            "99999999999",
        ] {
            assert_eq!(m(bad), None, "{bad}");
        }
    }

    #[test]
    fn python_lines_map_with_the_files_user() {
        let line = br#"{"timestamp": "2025-01-15T10:30:00.123456", "provider": "anthropic", "model": "claude-sonnet-4.5", "input_tokens": 1000, "output_tokens": 200, "cost": 0.0115, "feature": "chat"}"#;
        let r = python_line(line, "bob").expect("maps");
        assert_eq!(r.user, "bob");
        assert_eq!(r.provider, "anthropic");
        assert_eq!(r.model, "claude-sonnet-4.5");
        assert_eq!(r.usage, Usage::new(1000, 200));
        assert_eq!(r.nano_usd, Some(Money::from_nanos(11_500_000)));
        assert_eq!(r.ts.to_rfc3339(), "2025-01-15T10:30:00.123456+00:00");
        assert_eq!(r.extra["legacy_import"], PYTHON_JSONL);
        assert_eq!(r.extra["feature"], "chat");
        // A stable id across reads.
        assert_eq!(python_line(line, "bob").expect("maps").id, r.id);
        // More digits than a float keeps, exponent forms, strings, a user field.
        let r = python_line(
            br#"{"timestamp": "2025-01-15 10:30:00", "model": "gpt-4o", "cost": 0.12345678949999999999, "user": "carol"}"#,
            "bob",
        )
        .expect("maps");
        assert_eq!(r.nano_usd, Some(Money::from_nanos(123_456_789)));
        assert_eq!((r.user.as_str(), r.provider.as_str()), ("carol", "openai"));
        let r = python_line(
            br#"{"timestamp": 1736937000, "model": "gemini-2.5-pro", "cost": 1.23e-05}"#,
            "u",
        )
        .expect("maps");
        assert_eq!(r.nano_usd, Some(Money::from_nanos(12_300)));
        let r = python_line(br#"{"note": "\"cost\": 9", "timestamp": "2025-01-15", "model": "gpt-4o", "cost_usd": "$0.25"}"#, "u")
            .expect("maps");
        assert_eq!(r.nano_usd, Some(Money::from_nanos(250_000_000)));
        // A "cost" inside another string is not taken for the field.
        let r = python_line(
            br#"{"note": "\"cost\": 9", "timestamp": "2025-01-15", "model": "gpt-4o", "cost": 0.5}"#,
            "u",
        )
        .expect("maps");
        assert_eq!(r.nano_usd, Some(Money::from_nanos(500_000_000)));
        for bad in [
            &br#"{"timestamp": "2025-01-15", "cost": 0.1}"#[..],
            br#"{"model": "gpt-4o", "cost": 0.1}"#,
            br#"{"timestamp": "2025-01-15", "model": "gpt-4o", "cost": "lots"}"#,
            br#"[1, 2]"#,
        ] {
            assert!(
                python_line(bad, "u").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bad_entries_say_why() {
        assert!(to_record(json!({"model": "gpt-4o"}), None, "u")
            .expect_err("no ts")
            .contains("timestamp"));
        assert!(to_record(
            json!({"ts": 1_700_000_000, "model": "gpt-4o", "cost": "abc"}),
            None,
            "u"
        )
        .expect_err("bad cost")
        .contains("dollar"));
        assert!(to_record(json!(3), None, "u").is_err());
    }
}
