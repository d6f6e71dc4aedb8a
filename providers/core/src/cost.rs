//! What the cost layer recorded for a call: how far its cost can be trusted
//! ([`CostStatus`]) and the ledger record it went into ([`RecordedCost`]).

use serde::{Deserialize, Serialize};

use crate::Money;

/// How far a recorded cost can be trusted.
///
/// Written to every ledger record as `cost_status` (omitted when `exact`,
/// so records of earlier versions read as exact), and shown apart on the
/// dashboard and in CSV exports, so no figure is silently wrong.
///
/// # Example
///
/// ```
/// use costlayer_core::CostStatus;
///
/// assert_eq!(CostStatus::default(), CostStatus::Exact);
/// assert_eq!(CostStatus::Incomplete.as_str(), "incomplete");
/// let s: CostStatus = serde_json::from_str("\"estimated\"").unwrap();
/// assert_eq!(s, CostStatus::Estimated);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CostStatus {
    /// Every billed dimension of the usage was priced by the table.
    #[default]
    Exact,
    /// The usage holds a billed dimension the price table cannot price
    /// (named in the record's `cost_notes`): the cost is a lower bound.
    Incomplete,
    /// The usage itself is an estimate (a stream dropped before the
    /// provider's final usage, a record settled from a reservation).
    Estimated,
}

impl CostStatus {
    /// `"exact"`, `"incomplete"` or `"estimated"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CostStatus::Exact => "exact",
            CostStatus::Incomplete => "incomplete",
            CostStatus::Estimated => "estimated",
        }
    }

    /// Whether this is [`CostStatus::Exact`] (used to omit the field).
    pub fn is_exact(&self) -> bool {
        matches!(self, CostStatus::Exact)
    }
}

impl std::fmt::Display for CostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the cost layer wrote to the ledger for a call, carried on
/// [`ChatResponse::recorded`](crate::ChatResponse::recorded) so callers
/// learn the cost without wrapping the storage.
///
/// `None` on a response that did not pass through a cost layer.
///
/// # Example
///
/// ```
/// use costlayer_core::{CostStatus, Money, RecordedCost};
///
/// let mut r = RecordedCost::default();
/// r.record_id = "01JDZ3V7Q4B2X8K9M6N5P4R3S2".parse().unwrap();
/// r.nano_usd = Some(Money::from_nanos(410_400));
/// r.durable = true;
/// assert_eq!(r.status, CostStatus::Exact);
/// assert_eq!(r.nano_usd.unwrap().to_string(), "$0.0004104");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RecordedCost {
    /// The ledger record's id (a ULID: `Display` writes its 26
    /// characters, as the ledger does; serialised as that string).
    pub record_id: ulid::Ulid,
    /// The cost recorded; `None` when the model has no price.
    pub nano_usd: Option<Money>,
    /// How far the cost can be trusted.
    pub status: CostStatus,
    /// Whether the record reached the ledger (`false`: it went to the
    /// spool and is retried; it still counts in the budgets).
    pub durable: bool,
}
