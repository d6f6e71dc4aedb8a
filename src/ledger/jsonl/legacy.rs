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
    if let Ok(m) = text.parse::<Money>() {
        return Ok(m);
    }
    // Exponent forms (1e-5): go through f64, rounded to the nano-dollar.
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f.abs() < 9.0e9 => {
            Ok(Money::from_nanos((f * 1e9).round() as i64))
        }
        _ => Err(format!("the cost is not a dollar amount: {text}")),
    }
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

/// Converts one legacy entry.
pub(crate) fn to_record(
    entry: Value,
    key: Option<&str>,
    default_user: &str,
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
            .insert("legacy_import".into(), Value::String(LEGACY_FILE.into()));
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
    };
    let nano_usd = match take_first(&mut map, &["nano_usd"]) {
        Some(Value::Number(n)) => Some(Money::from_nanos(
            n.as_i64().ok_or("`nano_usd` is not an integer")?,
        )),
        Some(_) => return Err("`nano_usd` is not an integer".to_owned()),
        None => match take_first(&mut map, &["cost", "cost_usd", "total_cost", "usd"]) {
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
    map.insert("legacy_import".into(), Value::String(LEGACY_FILE.into()));
    Ok(CostRecord {
        v: crate::ledger::SCHEMA_VERSION,
        id,
        ts,
        user,
        team,
        provider,
        model,
        mode,
        usage,
        nano_usd,
        cached,
        saved_nano_usd: None,
        latency_ms,
        request_id,
        tags,
        price_version,
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
