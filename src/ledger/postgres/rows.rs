//! Records to rows and back, and [`ScanFilter`]s to SQL.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::ledger::{CostRecord, ScanFilter};
use crate::{CostStatus, Mode, Money, Usage};

/// The columns of `records`, in the order [`decode`] reads them.
pub(crate) const COLUMNS: &str = "id, ts, user_name, team, provider, model, mode, input_tokens, \
    output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, \
    reasoning_tokens, nano_usd, cached, saved_nano_usd, latency_ms, request_id, price_version, \
    cost_status, cost_notes, tags, extra, v, input_audio_tokens, web_search_requests";

/// The array types of `unnest(...)`, matching [`COLUMNS`].
pub(crate) const UNNEST_TYPES: [&str; 26] = [
    "text[]",
    "timestamptz[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "int8[]",
    "bool[]",
    "int8[]",
    "int8[]",
    "text[]",
    "text[]",
    "text[]",
    "jsonb[]",
    "jsonb[]",
    "jsonb[]",
    "int4[]",
    "int8[]",
    "int8[]",
];

/// The column types of [`COLUMNS`], for a binary `COPY`.
pub(crate) const COPY_TYPES: [Type; 26] = [
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::INT4,
    Type::INT8,
    Type::INT8,
];

/// One record as the values of [`COLUMNS`], for a binary `COPY` row.
pub(crate) struct CopyRow<'a> {
    id: String,
    user: &'a str,
    team: Option<&'a str>,
    provider: &'a str,
    model: &'a str,
    price_version: Option<&'a str>,
    request_id: Option<&'a str>,
    tokens: [i64; 6],
    nano: Option<i64>,
    saved: Option<i64>,
    latency: i64,
    mode: &'static str,
    status: &'static str,
    notes: serde_json::Value,
    tags: serde_json::Value,
    extra: serde_json::Value,
    v: i32,
    audio: i64,
    web: i64,
}

impl<'a> CopyRow<'a> {
    pub(crate) fn new(r: &'a CostRecord) -> Self {
        let u = &r.usage;
        CopyRow {
            id: r.id.to_string(),
            user: &r.user,
            team: r.team.as_deref(),
            provider: &r.provider,
            model: &r.model,
            price_version: r.price_version.as_deref(),
            request_id: r.request_id.as_deref(),
            tokens: [
                i64_of(u.input_tokens),
                i64_of(u.output_tokens),
                i64_of(u.cache_read_tokens),
                i64_of(u.cache_write_5m_tokens),
                i64_of(u.cache_write_1h_tokens),
                i64_of(u.reasoning_tokens),
            ],
            nano: r.nano_usd.map(Money::nanos),
            saved: r.saved_nano_usd.map(Money::nanos),
            latency: i64_of(r.latency_ms),
            mode: r.mode.as_str(),
            status: r.cost_status.as_str(),
            notes: serde_json::Value::from(r.cost_notes.clone()),
            tags: serde_json::to_value(&r.tags).unwrap_or_default(),
            extra: serde_json::Value::Object(extra_with_usage(r)),
            v: i32::try_from(r.v).unwrap_or(i32::MAX),
            audio: i64_of(u.input_audio_tokens),
            web: i64_of(u.web_search_requests),
        }
    }

    /// The values, in [`COLUMNS`] order.
    pub(crate) fn values<'b>(&'b self, r: &'b CostRecord) -> [&'b (dyn ToSql + Sync); 26] {
        [
            &self.id,
            &r.ts,
            &self.user,
            &self.team,
            &self.provider,
            &self.model,
            &self.mode,
            &self.tokens[0],
            &self.tokens[1],
            &self.tokens[2],
            &self.tokens[3],
            &self.tokens[4],
            &self.tokens[5],
            &self.nano,
            &r.cached,
            &self.saved,
            &self.latency,
            &self.request_id,
            &self.price_version,
            &self.status,
            &self.notes,
            &self.tags,
            &self.extra,
            &self.v,
            &self.audio,
            &self.web,
        ]
    }
}

/// A SQL parameter list that grows with the query.
#[derive(Default)]
pub(crate) struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Adds a parameter; returns its placeholder (`$n`).
    pub(crate) fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }

    /// The parameters, as `query` takes them.
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The `WHERE` condition of `filter` (`TRUE` when it selects everything).
pub(crate) fn filter_sql(f: &ScanFilter, p: &mut Params) -> String {
    let mut parts = Vec::new();
    if let Some(s) = f.since {
        parts.push(format!("ts >= {}", p.push(s)));
    }
    if let Some(u) = f.until {
        parts.push(format!("ts < {}", p.push(u)));
    }
    if !f.users.is_empty() {
        parts.push(format!("user_name = ANY({})", p.push(f.users.clone())));
    }
    if !f.providers.is_empty() {
        parts.push(format!("provider = ANY({})", p.push(f.providers.clone())));
    }
    if !f.models.is_empty() {
        parts.push(format!("model = ANY({})", p.push(f.models.clone())));
    }
    if let Some(t) = &f.team {
        parts.push(format!("team = {}", p.push(t.clone())));
    }
    if parts.is_empty() {
        "TRUE".to_owned()
    } else {
        format!("({})", parts.join(" AND "))
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A batch of records as one array per column, for
/// `INSERT ... SELECT * FROM unnest(...)`.
pub(crate) fn columns(records: &[CostRecord]) -> Params {
    let n = records.len();
    let mut id = Vec::with_capacity(n);
    let mut ts: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut user = Vec::with_capacity(n);
    let mut team: Vec<Option<String>> = Vec::with_capacity(n);
    let mut provider = Vec::with_capacity(n);
    let mut model = Vec::with_capacity(n);
    let mut mode = Vec::with_capacity(n);
    let mut tokens: [Vec<i64>; 6] = Default::default();
    let mut nano: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut cached = Vec::with_capacity(n);
    let mut saved: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut request_id: Vec<Option<String>> = Vec::with_capacity(n);
    let mut price_version: Vec<Option<String>> = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut extra = Vec::with_capacity(n);
    let mut v: Vec<i32> = Vec::with_capacity(n);
    let mut audio: Vec<i64> = Vec::with_capacity(n);
    let mut web: Vec<i64> = Vec::with_capacity(n);
    for r in records {
        id.push(r.id.to_string());
        ts.push(r.ts);
        user.push(r.user.to_string());
        team.push(r.team.as_ref().map(|t| t.to_string()));
        provider.push(r.provider.to_string());
        model.push(r.model.to_string());
        mode.push(r.mode.as_str().to_owned());
        let u = &r.usage;
        for (col, val) in tokens.iter_mut().zip([
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_5m_tokens,
            u.cache_write_1h_tokens,
            u.reasoning_tokens,
        ]) {
            col.push(i64_of(val));
        }
        nano.push(r.nano_usd.map(Money::nanos));
        cached.push(r.cached);
        saved.push(r.saved_nano_usd.map(Money::nanos));
        latency.push(i64_of(r.latency_ms));
        request_id.push(r.request_id.as_ref().map(|v| v.to_string()));
        price_version.push(r.price_version.as_ref().map(|v| v.to_string()));
        status.push(r.cost_status.as_str().to_owned());
        notes.push(serde_json::Value::from(r.cost_notes.clone()));
        tags.push(serde_json::to_value(&r.tags).unwrap_or_default());
        extra.push(serde_json::Value::Object(extra_with_usage(r)));
        v.push(i32::try_from(r.v).unwrap_or(i32::MAX));
        audio.push(i64_of(u.input_audio_tokens));
        web.push(i64_of(u.web_search_requests));
    }
    let mut p = Params::default();
    p.push(id);
    p.push(ts);
    p.push(user);
    p.push(team);
    p.push(provider);
    p.push(model);
    p.push(mode);
    for col in tokens {
        p.push(col);
    }
    p.push(nano);
    p.push(cached);
    p.push(saved);
    p.push(latency);
    p.push(request_id);
    p.push(price_version);
    p.push(status);
    p.push(notes);
    p.push(tags);
    p.push(extra);
    p.push(v);
    p.push(audio);
    p.push(web);
    p
}

/// A row of `records` (selected as [`COLUMNS`]) as a record; the error says
/// which column could not be read.
pub(crate) fn decode(row: &Row) -> Result<CostRecord, String> {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a Row,
        i: usize,
        name: &str,
    ) -> Result<T, String> {
        row.try_get(i).map_err(|e| format!("column {name}: {e}"))
    }
    let id: String = col(row, 0, "id")?;
    let id = ulid::Ulid::from_string(&id).map_err(|e| format!("id `{id}` is not a ULID: {e}"))?;
    let mode: String = col(row, 6, "mode")?;
    let mode: Mode = serde_json::from_value(serde_json::Value::String(mode.clone()))
        .map_err(|_| format!("mode `{mode}` is unknown"))?;
    let status: String = col(row, 19, "cost_status")?;
    let cost_status: CostStatus = serde_json::from_value(serde_json::Value::String(status.clone()))
        .map_err(|_| format!("cost_status `{status}` is unknown"))?;
    let notes: serde_json::Value = col(row, 20, "cost_notes")?;
    let tags: serde_json::Value = col(row, 21, "tags")?;
    let extra: serde_json::Value = col(row, 22, "extra")?;
    let v: i32 = col(row, 23, "v")?;
    Ok(usage_from_extra(CostRecord {
        v: u32::try_from(v).unwrap_or(0),
        id,
        ts: col(row, 1, "ts")?,
        user: col::<&str>(row, 2, "user_name")?.into(),
        team: col::<Option<&str>>(row, 3, "team")?.map(Into::into),
        provider: col::<&str>(row, 4, "provider")?.into(),
        model: col::<&str>(row, 5, "model")?.into(),
        mode,
        usage: Usage {
            input_tokens: u64_of(col(row, 7, "input_tokens")?),
            output_tokens: u64_of(col(row, 8, "output_tokens")?),
            cache_read_tokens: u64_of(col(row, 9, "cache_read_tokens")?),
            cache_write_5m_tokens: u64_of(col(row, 10, "cache_write_5m_tokens")?),
            cache_write_1h_tokens: u64_of(col(row, 11, "cache_write_1h_tokens")?),
            reasoning_tokens: u64_of(col(row, 12, "reasoning_tokens")?),
            ..Usage::default()
        },
        nano_usd: col::<Option<i64>>(row, 13, "nano_usd")?.map(Money::from_nanos),
        cached: col(row, 14, "cached")?,
        saved_nano_usd: col::<Option<i64>>(row, 15, "saved_nano_usd")?.map(Money::from_nanos),
        latency_ms: u64_of(col(row, 16, "latency_ms")?),
        request_id: col::<Option<&str>>(row, 17, "request_id")?.map(Into::into),
        tags: serde_json::from_value(tags).map_err(|e| format!("column tags: {e}"))?,
        price_version: col::<Option<&str>>(row, 18, "price_version")?.map(Into::into),
        cost_status,
        cost_notes: serde_json::from_value(notes).map_err(|e| format!("column cost_notes: {e}"))?,
        extra: match extra {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
    }))
}

/// The usage dimensions without a column of their own (audio input, web
/// searches, service tier) ride in `extra` under these keys.
const USAGE_EXTRA: &str = "_usage";

fn extra_with_usage(r: &CostRecord) -> serde_json::Map<String, serde_json::Value> {
    let mut m = r.extra.clone();
    let u = &r.usage;
    if u.input_audio_tokens > 0 || u.web_search_requests > 0 || !u.service_tier.is_standard() {
        m.insert(
            USAGE_EXTRA.into(),
            serde_json::json!({
                "input_audio_tokens": u.input_audio_tokens,
                "web_search_requests": u.web_search_requests,
                "service_tier": u.service_tier,
            }),
        );
    }
    m
}

fn usage_from_extra(mut r: CostRecord) -> CostRecord {
    if let Some(v) = r.extra.remove(USAGE_EXTRA) {
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        r.usage.input_audio_tokens = n("input_audio_tokens");
        r.usage.web_search_requests = n("web_search_requests");
        if let Some(t) = v.get("service_tier") {
            if let Ok(t) = serde_json::from_value(t.clone()) {
                r.usage.service_tier = t;
            }
        }
    }
    r
}
