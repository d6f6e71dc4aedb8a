//! Metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): install any recorder (for Prometheus,
//! `metrics-exporter-prometheus`) and costlayer's counters and gauges
//! appear in it. Without the feature, or without a recorder, these calls
//! do nothing.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `costlayer_calls_total` | counter | `provider`, `model`, `user`, `cached` | calls recorded in the ledger |
//! | `costlayer_cost_nano_usd_total` | counter | `provider`, `model`, `user` | their cost, in integer nano-dollars |
//! | `costlayer_tokens_total` | counter | `provider`, `model`, `user`, `kind` (`input`, `output`, `cache_read`, `cache_write`) | billed tokens |
//! | `costlayer_cache_hits_total` | counter | `model` | responses served by the cache layer |
//! | `costlayer_cache_saved_nano_usd_total` | counter | `provider`, `model`, `user` | what those hits would have cost |
//! | `costlayer_blocked_calls_total` | counter | `budget`, `user` | calls refused by a blocking budget |
//! | `costlayer_budget_spent_ratio` | gauge | `budget` | spent / limit of each budget (1.0 = the limit) |
//! | `costlayer_alert_deliveries_total` | counter | `sink`, `outcome` (`delivered`, `failed`) | alert deliveries |
//!
//! Money is counted in nano-dollars (integers), never summed as floats;
//! divide by 1e9 in the dashboard. Every function here is called from one
//! place: the record path, the cache layer, the budget refusal, the budget
//! tally and the alert dispatch.

#[cfg(feature = "metrics")]
use ::metrics::{counter, gauge};

use crate::ledger::CostRecord;
use crate::Money;

/// Counts one recorded call: calls, cost, tokens and (for a cache hit) the
/// saving.
pub(crate) fn record(rec: &CostRecord) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("provider", rec.provider.to_string()),
            ("model", rec.model.to_string()),
            ("user", rec.user.to_string()),
        ];
        let cached = if rec.cached { "true" } else { "false" };
        let mut with_cached = labels.to_vec();
        with_cached.push(("cached", cached.to_owned()));
        counter!("costlayer_calls_total", &with_cached).increment(1);
        if let Some(n) = rec.nano_usd.and_then(|m| u64::try_from(m.nanos()).ok()) {
            counter!("costlayer_cost_nano_usd_total", &labels).increment(n);
        }
        let u = &rec.usage;
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cache_read", u.cache_read_tokens),
            (
                "cache_write",
                u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            ),
        ] {
            if n > 0 {
                let mut l = labels.to_vec();
                l.push(("kind", kind.to_owned()));
                counter!("costlayer_tokens_total", &l).increment(n);
            }
        }
        if let Some(n) = rec
            .saved_nano_usd
            .and_then(|m| u64::try_from(m.nanos()).ok())
        {
            counter!("costlayer_cache_saved_nano_usd_total", &labels).increment(n);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = rec;
}

/// Counts one response served by the cache layer.
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) fn cache_hit(model: &str) {
    #[cfg(feature = "metrics")]
    counter!("costlayer_cache_hits_total", "model" => model.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = model;
}

/// Counts one call refused by the blocking budget `budget`.
pub(crate) fn blocked(budget: &str, user: &str) {
    #[cfg(feature = "metrics")]
    counter!(
        "costlayer_blocked_calls_total",
        "budget" => budget.to_owned(),
        "user" => user.to_owned()
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (budget, user);
}

/// Sets a budget's spent ratio (a display value: the exact amounts are in
/// the ledger).
pub(crate) fn budget_spent(budget: &str, spent: Money, limit: Money) {
    #[cfg(feature = "metrics")]
    if limit.nanos() > 0 {
        // Ratio for display only; money itself is never summed as a float.
        let ratio = spent.nanos() as f64 / limit.nanos() as f64;
        gauge!("costlayer_budget_spent_ratio", "budget" => budget.to_owned()).set(ratio);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (budget, spent, limit);
}

/// Counts one alert delivery to `sink`, delivered or failed.
pub(crate) fn alert_delivery(sink: &str, delivered: bool) {
    #[cfg(feature = "metrics")]
    counter!(
        "costlayer_alert_deliveries_total",
        "sink" => sink.to_owned(),
        "outcome" => if delivered { "delivered" } else { "failed" }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (sink, delivered);
}
