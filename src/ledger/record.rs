//! The ledger line.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{CostStatus, Mode, Money, SharedStr, Usage};

/// The current schema version of [`CostRecord`].
pub const SCHEMA_VERSION: u32 = 1;

/// One priced call: one JSON object per line of the ledger.
///
/// The field names are a public contract (people read ledgers with `jq` and
/// pandas):
///
/// | field | type | meaning |
/// |---|---|---|
/// | `v` | int | schema version (1) |
/// | `id` | string | ULID: unique and sortable by time |
/// | `ts` | string | UTC, RFC 3339 with milliseconds |
/// | `user`, `team` | string, string or null | attribution |
/// | `provider`, `model` | string | the provider, and the canonical model as billed |
/// | `mode` | `"online"` or `"batch"` | which prices applied |
/// | `input_tokens` … `reasoning_tokens` | int | the [`Usage`] buckets |
/// | `nano_usd` | int or null | the cost in nano-dollars; `null` when the model has no price |
/// | `cached` | bool | served from the response cache (`nano_usd` is 0) |
/// | `latency_ms` | int | wall time of the call |
/// | `request_id` | string or null | the provider's request or response id |
/// | `tags` | object of strings | free-form attribution |
/// | `price_version` | string or null | `<table version>:<model>` of the price used |
///
/// `ts` is written with millisecond precision: a finer timestamp reads back
/// truncated to the millisecond.
///
/// A cached record may carry `saved_nano_usd`, the cost the cache avoided.
/// Fields this version does not know are kept in [`CostRecord::extra`] and
/// written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Unique, sortable id (ULID).
    pub id: ulid::Ulid,
    /// When the call finished (UTC, written with milliseconds).
    #[serde(serialize_with = "ser_ts")]
    pub ts: DateTime<Utc>,
    /// Who the spend is attributed to.
    pub user: SharedStr,
    /// The team, if any.
    #[serde(default)]
    pub team: Option<SharedStr>,
    /// The provider.
    pub provider: SharedStr,
    /// The canonical model (or the billed id, if it has no price).
    pub model: SharedStr,
    /// Online or batch prices.
    #[serde(default)]
    pub mode: Mode,
    /// Token usage, flattened into the `*_tokens` fields.
    #[serde(flatten)]
    pub usage: Usage,
    /// The cost; `None` (`null`) when the model has no price.
    #[serde(default, deserialize_with = "de_nano_usd")]
    pub nano_usd: Option<Money>,
    /// Served from the response cache.
    #[serde(default)]
    pub cached: bool,
    /// What the cache saved (cached records only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_nano_usd: Option<Money>,
    /// Wall time of the call in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The provider's request or response id.
    #[serde(default)]
    pub request_id: Option<SharedStr>,
    /// Free-form attribution tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Which price-table entry priced it.
    #[serde(default)]
    pub price_version: Option<SharedStr>,
    /// How far the cost can be trusted; omitted from the line when
    /// [`CostStatus::Exact`] (so earlier records read as exact).
    #[serde(default, skip_serializing_if = "CostStatus::is_exact")]
    pub cost_status: CostStatus,
    /// Why the cost is not exact (the unpriced dimensions, the estimate
    /// made); omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cost_notes: Vec<String>,
    /// Fields unknown to this version, kept for forward compatibility.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match rfc3339_millis(ts) {
        Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
        None => s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true)),
    }
}

/// `ts` as `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it
/// (`2026-12-02T16:18:31.123Z`), on the stack instead of in a `String`:
/// every record's timestamp goes through it. `None` for what that form
/// writes otherwise (a year outside 0–9999, a leap second).
fn rfc3339_millis(ts: &DateTime<Utc>) -> Option<[u8; 24]> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(ts.year()).ok().filter(|y| *y <= 9999)?;
    if ts.nanosecond() >= 1_000_000_000 {
        return None;
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            // v % 10 < 10: the cast keeps it.
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, ts.month());
    put(8, 2, ts.day());
    put(11, 2, ts.hour());
    put(14, 2, ts.minute());
    put(17, 2, ts.second());
    put(20, 3, ts.nanosecond() / 1_000_000);
    Some(b)
}

fn de_nano_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Money>, D::Error> {
    Option::<i64>::deserialize(d).map(|o| o.map(Money::from_nanos))
}

impl CostRecord {
    /// A record with a fresh id and the current time (truncated to the
    /// millisecond, the precision of the `ts` field, so the record reads
    /// back equal), no cost, no tags.
    pub fn new(
        user: impl Into<SharedStr>,
        provider: impl Into<SharedStr>,
        model: impl Into<SharedStr>,
        usage: Usage,
    ) -> Self {
        Self::new_at(user, provider, model, usage, Utc::now().trunc_subsecs(3))
    }

    /// [`CostRecord::new`] at `ts` (the tracker's clock, read once a call).
    pub(crate) fn new_at(
        user: impl Into<SharedStr>,
        provider: impl Into<SharedStr>,
        model: impl Into<SharedStr>,
        usage: Usage,
        ts: DateTime<Utc>,
    ) -> Self {
        CostRecord {
            v: SCHEMA_VERSION,
            id: ulid::Ulid::new(),
            ts,
            user: user.into(),
            team: None,
            provider: provider.into(),
            model: model.into(),
            mode: Mode::Online,
            usage,
            nano_usd: None,
            cached: false,
            saved_nano_usd: None,
            latency_ms: 0,
            request_id: None,
            tags: BTreeMap::new(),
            price_version: None,
            cost_status: CostStatus::Exact,
            cost_notes: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The cost, zero when unpriced (use [`CostRecord::nano_usd`] to tell).
    pub fn cost(&self) -> Money {
        self.nano_usd.unwrap_or(Money::ZERO)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn timestamps_are_written_as_rfc3339_with_millis() -> Result<(), Box<dyn std::error::Error>> {
        use chrono::TimeZone;
        let at = |y, mo, d, h, mi, sec| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, sec)
                .single()
                .ok_or("a valid date")
        };
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut cases = vec![
            at(0, 1, 1, 0, 0, 0)?,
            at(9999, 12, 31, 23, 59, 59)?,
            at(2026, 12, 2, 16, 18, 31)? + chrono::Duration::milliseconds(7),
        ];
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ms = i64::try_from(seed % 253_402_300_800_000)?;
            let sub_ms = i64::try_from((seed >> 40) % 1_000_000)?;
            let ts = DateTime::from_timestamp_millis(ms).ok_or("in range")?;
            cases.push(ts + chrono::Duration::nanoseconds(sub_ms));
        }
        for ts in cases {
            let want = ts.to_rfc3339_opts(SecondsFormat::Millis, true);
            let got = rfc3339_millis(&ts).ok_or("a four-digit year")?;
            assert_eq!(std::str::from_utf8(&got)?, want);
        }
        // Outside the four-digit years: the general form.
        assert!(rfc3339_millis(&at(10_000, 1, 1, 0, 0, 0)?).is_none());
        assert!(rfc3339_millis(&at(-1, 1, 1, 0, 0, 0)?).is_none());
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .ok_or("a leap second")?
            .and_utc();
        assert!(rfc3339_millis(&leap).is_none());
        let mut r = CostRecord::new("a", "openai", "gpt-4o", Usage::new(1, 1));
        r.ts = leap;
        let line = serde_json::to_string(&r)?;
        assert!(
            line.contains(&leap.to_rfc3339_opts(SecondsFormat::Millis, true)),
            "{line}"
        );
        Ok(())
    }

    use super::*;

    #[test]
    fn field_names_are_the_public_contract() {
        let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(10, 5));
        r.nano_usd = Some(Money::from_nanos(42));
        let v: Value = serde_json::to_value(&r).expect("serialise");
        for key in [
            "v",
            "id",
            "ts",
            "user",
            "team",
            "provider",
            "model",
            "mode",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
            "nano_usd",
            "cached",
            "latency_ms",
            "request_id",
            "tags",
            "price_version",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["nano_usd"], 42);
        assert_eq!(v["mode"], "online");
        let ts = v["ts"].as_str().expect("ts string");
        assert!(
            ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000Z".len(),
            "{ts}"
        );
    }

    #[test]
    fn unknown_fields_survive_and_null_cost_reads_back() {
        let line = r#"{"v":1,"id":"01JDQ3Z6Y2V8W5H4K7M9N0P1Q2","ts":"2026-11-01T10:00:00.123Z","user":"bob","team":null,"provider":"anthropic","model":"claude-haiku-4-5","mode":"batch","input_tokens":1,"output_tokens":2,"cache_read_tokens":0,"cache_write_5m_tokens":0,"cache_write_1h_tokens":0,"reasoning_tokens":0,"nano_usd":null,"cached":false,"latency_ms":7,"request_id":null,"tags":{},"price_version":null,"future_field":{"x":1}}"#;
        let r: CostRecord = serde_json::from_str(line).expect("parse");
        assert_eq!(r.nano_usd, None);
        assert_eq!(r.mode, Mode::Batch);
        assert_eq!(r.extra["future_field"]["x"], 1);
        let back: Value = serde_json::to_value(&r).expect("serialise");
        assert_eq!(back["future_field"]["x"], 1);
        let again: CostRecord = serde_json::from_value(back).expect("parse again");
        assert_eq!(again, r);
    }
}
