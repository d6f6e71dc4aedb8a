//! Reports over the ledger: summary, projection, CSV export, dashboard.
//!
//! Everything here reads the ledger as a stream of
//! [`ScanItem`](crate::ledger::ScanItem)s, in **one pass**, with memory flat
//! in the number of records (per-day, per-model, per-user maps only):
//!
//! - [`Summary`]: totals, month-to-date, breakdowns by provider, model, user,
//!   team and day, cache savings, batch vs online, unpriced calls and
//!   corrupted lines.
//! - [`Projection`]: the end-of-month estimate, linear from month-to-date and
//!   from the last 7 days' daily rate, each labelled.
//! - [`export_csv`]: every record as an RFC 4180 CSV row, cost as exact
//!   decimal dollars, formula cells neutralised.
//! - [`BudgetTally`]: each budget's spend, folded in the same pass.
//! - [`DashboardPass`]: the summary and every budget, folded in one scan.
//! - [`Dashboard`]: the terminal dashboard of `cost-tracker --dashboard`,
//!   and its `--json` form.
//!
//! All money is [`Money`](crate::Money): sums are exact integers, never `f64`.
//! Days and months are UTC calendar days and months.
//!
//! # Example
//!
//! ```
//! use costlayer::ledger::{CostRecord, MemoryStorage, ScanFilter, Storage};
//! use costlayer::report::{Projection, Summary};
//! use costlayer::{Money, Usage};
//! use chrono::{TimeZone, Utc};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), costlayer::report::ReportError> {
//! let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
//! let ledger = MemoryStorage::new();
//! for (user, nanos) in [("alice", 1_500_000_000), ("bob", 500_000_000)] {
//!     let mut r = CostRecord::new(user, "openai", "gpt-4o", Usage::new(1_000, 100));
//!     r.ts = Utc.with_ymd_and_hms(2026, 11, 10, 12, 0, 0).unwrap();
//!     r.nano_usd = Some(Money::from_nanos(nanos));
//!     ledger.append(&r).await?;
//! }
//! let summary = Summary::from_storage(&ledger, &ScanFilter::default(), now).await?;
//! assert_eq!(summary.total.calls, 2);
//! assert_eq!(summary.month.nano_usd, "2.00".parse::<Money>().unwrap());
//! assert_eq!(summary.by_user["alice"].nano_usd, Money::from_nanos(1_500_000_000));
//!
//! // Half of November has elapsed: the linear projection doubles the spend.
//! let p = Projection::from_summary(&summary);
//! assert_eq!(p.linear, "4.00".parse::<Money>().unwrap());
//! # Ok(()) }
//! ```

mod budgets;
mod csv_export;
mod dashboard;
#[cfg(feature = "postgres")]
mod group;
mod pass;
mod projection;
mod summary;
mod terminal;

pub use budgets::BudgetTally;
pub use csv_export::{export_csv, neutralize_cell, CsvWriter, ExportStats, CSV_HEADER};
pub use dashboard::{BudgetView, Dashboard, RenderOptions};
#[cfg(feature = "postgres")]
pub(crate) use group::Group;
pub use pass::DashboardPass;
pub(crate) use pass::{PassState, Recent};
pub use projection::Projection;
#[cfg(any(test, feature = "postgres"))]
pub(crate) use summary::week_start;
pub use summary::{Bucket, Summary};
pub use terminal::terminal_safe;

use std::path::PathBuf;

use crate::ledger::LedgerError;

/// Everything a report can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The CSV output could not be written.
    #[error("cannot write the CSV export{}: {source}. Check that the directory exists and is writable", path_hint(.path))]
    Csv {
        /// The file being written, if known.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: csv::Error,
    },
}

fn path_hint(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| format!(" to {}", p.display()))
        .unwrap_or_default()
}
