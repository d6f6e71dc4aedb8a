//! The budget book: for each budget and period, the settled spend and the
//! live holds of calls in flight, shared by every process that shares it.
//!
//! A [`BudgetBook`] is the one place a hard limit is decided. The tracker
//! hands it [`BookLine`]s (a budget in its current period, keyed by stable
//! strings: budget name, period label, scope) and asks it to
//! [`reserve`](BudgetBook::reserve) a call's worst case,
//! [`settle`](BudgetBook::settle) the hold to the billed record, or
//! [`release`](BudgetBook::release) it. Every answer carries the *shared*
//! totals of the lines it touched (settled + held, after the operation), so
//! alert thresholds are evaluated on what every process spent together.
//!
//! Implementations:
//!
//! | book | shared by | how |
//! |---|---|---|
//! | [`MemoryBook`] | one process | a mutex over the totals |
//! | [`JsonlDirBook`] | every process on the host using one JSONL data directory | a directory lock, the ledger's tails read incrementally, a checkpoint, a holds file with leases |
//!
//! A book for another store (a database) is one more implementation of the
//! trait; the behaviour suite in `tests/support/book_suite.rs` checks it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use costlayer::budget::Scope;
//! use costlayer::ledger::CostRecord;
//! use costlayer::tracker::book::{BookKey, BookLine, BudgetBook, MemoryBook, Reserved};
//! use costlayer::{Money, Usage};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let book: Arc<dyn BudgetBook> = Arc::new(MemoryBook::new());
//! let line = BookLine::new(BookKey::new("monthly", "2026-12", &Scope::All), Money::from_nanos(1_000))
//!     .blocking(true);
//! let hold = match book.reserve(std::slice::from_ref(&line), Money::from_nanos(600)).await? {
//!     Reserved::Granted { hold, .. } => hold,
//!     other => panic!("expected a hold: {other:?}"),
//! };
//! // A second worst case of 600 would cross the limit while the first is held.
//! assert!(matches!(
//!     book.reserve(std::slice::from_ref(&line), Money::from_nanos(600)).await?,
//!     Reserved::Refused { .. }
//! ));
//! let mut rec = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(10, 10));
//! rec.nano_usd = Some(Money::from_nanos(250));
//! let totals = book.settle(Some(hold), &rec, std::slice::from_ref(&line)).await?;
//! assert_eq!(totals[0].committed(), Money::from_nanos(250));
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::budget::Scope;
use crate::ledger::CostRecord;
use crate::{Money, SharedStr};

mod jsonl;
mod memory;

#[cfg(feature = "postgres")]
pub use crate::ledger::PostgresBudgetBook;
pub use jsonl::{
    JsonlDirBook, JsonlDirBookBuilder, DEFAULT_CHUNK_HEADROOM_SHARE, DEFAULT_CHUNK_MAX_CALLS,
    DEFAULT_CHUNK_WINDOW, DEFAULT_LEASE,
};
pub use memory::MemoryBook;

/// The stable identity of one budget in one period: its name, the period's
/// label (`2026-12`, `total`, ...) and its scope as displayed (`all`,
/// `provider:openai`). Books key everything by it, never by a position in
/// one process's budget list, so processes with different budget lists
/// share what they have in common.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BookKey {
    /// The budget's name.
    pub budget: SharedStr,
    /// The period's label.
    pub period: SharedStr,
    /// The budget's scope, displayed.
    pub scope: SharedStr,
}

impl BookKey {
    /// The key of budget `budget` in period `period` over `scope`.
    ///
    /// Its strings are shared: a clone of a key (in a hold, in a line's
    /// totals) copies none of them.
    pub fn new(budget: impl Into<SharedStr>, period: impl Into<SharedStr>, scope: &Scope) -> Self {
        BookKey {
            budget: budget.into(),
            period: period.into(),
            scope: scope.to_string().into(),
        }
    }
}

impl fmt::Display for BookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ({})", self.budget, self.scope, self.period)
    }
}

/// One budget in its current period, as a book sees it: which records it
/// counts (scope and period bounds), its limit and whether it blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookLine {
    /// The key.
    pub key: BookKey,
    /// Whose spend it counts.
    pub scope: Scope,
    /// Inclusive start of the period; `None` for all time.
    pub start: Option<DateTime<Utc>>,
    /// Exclusive end of the period; `None` for all time.
    pub end: Option<DateTime<Utc>>,
    /// The limit.
    pub limit: Money,
    /// Whether a reservation that would cross the limit is refused.
    pub blocking: bool,
}

impl BookLine {
    /// An all-time, alert-only line over everything; set the rest with the
    /// fields or [`BookLine::blocking`]. The scope is parsed back from the
    /// key (`all` if it does not parse).
    pub fn new(key: BookKey, limit: Money) -> Self {
        let scope = key.scope.parse().unwrap_or_default();
        BookLine {
            key,
            scope,
            start: None,
            end: None,
            limit,
            blocking: false,
        }
    }

    /// Sets whether the line blocks.
    #[must_use]
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// Whether `rec` counts toward this line (scope and period).
    pub fn counts(&self, rec: &CostRecord) -> bool {
        self.start.is_none_or(|s| rec.ts >= s)
            && self.end.is_none_or(|e| rec.ts < e)
            && self.scope.matches_record(rec)
    }

    /// Whether `other` counts the same records (same key and bounds).
    pub(crate) fn same_span(
        &self,
        key: &BookKey,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> bool {
        &self.key == key && self.start == start && self.end == end
    }
}

/// A line's shared totals after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineTotals {
    /// The line.
    pub key: BookKey,
    /// Spend of records in the ledger, and of calls settled in the book
    /// whose record is not read back yet.
    pub settled: Money,
    /// Live holds of calls in flight.
    pub held: Money,
    /// The earliest non-zero spend seen, when the book knows it.
    pub first_spend: Option<DateTime<Utc>>,
}

impl LineTotals {
    /// Zero totals for `key`.
    pub fn zero(key: BookKey) -> Self {
        LineTotals {
            key,
            settled: Money::ZERO,
            held: Money::ZERO,
            first_spend: None,
        }
    }

    /// Settled plus held.
    pub fn committed(&self) -> Money {
        self.settled.saturating_add(self.held)
    }
}

/// Every line's totals, as a book answers a reservation or a settlement:
/// a list kept inline up to two lines (a call is usually in one or two
/// budgets), so answering makes no allocation. It reads as a slice of
/// [`LineTotals`] and is built like a `Vec` (`new`, `push`, `collect`).
///
/// ```
/// use costlayer::tracker::book::{BookKey, BookTotals, LineTotals};
/// use costlayer::budget::Scope;
///
/// let totals: BookTotals = [LineTotals::zero(BookKey::new("monthly", "2026-12", &Scope::All))]
///     .into_iter()
///     .collect();
/// assert_eq!(totals.len(), 1);
/// assert!(!totals.spilled()); // inline: no allocation
/// ```
pub type BookTotals = smallvec::SmallVec<[LineTotals; 2]>;

/// The keys of the lines a [`Hold`] holds its amount in, kept inline up
/// to two lines (see [`BookTotals`]).
pub type HoldKeys = smallvec::SmallVec<[BookKey; 2]>;

/// A live hold, returned by [`BudgetBook::reserve`]. Settle or release it;
/// a hold that is neither (its process died) expires after the book's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// A unique id (a ULID).
    pub id: String,
    /// The lines it holds `amount` in.
    pub lines: HoldKeys,
    /// The amount held in each line.
    pub amount: Money,
}

/// The answer of [`BudgetBook::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reserved {
    /// Held; the totals include the new hold.
    Granted {
        /// The hold.
        hold: Hold,
        /// Every line's totals after the hold.
        totals: BookTotals,
    },
    /// Refused: `key` would have crossed its limit. Nothing is held.
    Refused {
        /// The first blocking line that would have crossed its limit.
        key: BookKey,
        /// Every line's totals (without the refused amount).
        totals: BookTotals,
    },
}

/// A book's failure. A reservation that fails is refused (the call is not
/// sent).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// A file of the book could not be read or written.
    #[error("budget book: cannot {op} {path}: {source} (check the data directory's permissions and free space)")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("budget book: {0}")]
    Other(String),
    /// The book the ledger names as its default
    /// ([`Storage::default_book`](crate::ledger::Storage::default_book))
    /// could not be opened, so the tracker was not built.
    #[error("the ledger's shared budget book cannot be opened ({0}); fix that, or give the tracker a book with CostTrackerBuilder::book(..)")]
    Open(#[source] Box<BookError>),
}

impl From<BookError> for crate::Error {
    fn from(e: BookError) -> Self {
        crate::Error::Other(Box::new(e))
    }
}

/// Settled spend and live holds per budget and period, shared by the
/// processes using the book. See the [module docs](self).
///
/// Every method takes the lines it concerns and registers any it has not
/// seen (a book learns a new line's settled spend from its store the first
/// time). Totals are returned in the order of the `lines` given.
#[async_trait::async_trait]
pub trait BudgetBook: Send + Sync + fmt::Debug {
    /// The current totals of `lines`.
    async fn totals(&self, lines: &[BookLine]) -> Result<BookTotals, BookError>;

    /// Holds `amount` in every line of `lines`, unless a blocking one would
    /// end above its limit (settled + held + amount > limit), atomically
    /// for every process sharing the book.
    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError>;

    /// Settles `hold` (if any) to `record`: the hold goes, the record's cost
    /// counts in every line of `lines` it falls in, exactly once (also when
    /// the book later reads the record back from the ledger). Returns the
    /// totals of the lines the record falls in, after the operation.
    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<BookTotals, BookError>;

    /// Releases `hold` without spend.
    async fn release(&self, hold: Hold) -> Result<(), BookError>;

    /// [`reserve`](Self::reserve), answered at once when the book can
    /// decide without waiting (a memory book whose lines are loaded, a
    /// directory book's fresh chunk), or `None`, when the caller awaits
    /// [`reserve`](Self::reserve). The tracker asks this first, so a call
    /// that needs neither a lock nor a read makes no boxed future for the
    /// book. The answer must be the one `reserve` would give.
    ///
    /// The default answers `None`: a book that always waits (a database)
    /// implements only `reserve`.
    fn reserve_now(&self, lines: &[BookLine], amount: Money) -> Option<Reserved> {
        let _ = (lines, amount);
        None
    }

    /// [`settle`](Self::settle), done at once when the book can without
    /// waiting: `Some(totals)` when `hold` (if any) is settled to `record`
    /// (the caller then drops its copy of the hold), `None` when nothing
    /// was changed and the caller awaits [`settle`](Self::settle).
    ///
    /// The default answers `None`.
    fn settle_now(
        &self,
        hold: Option<&Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Option<BookTotals> {
        let _ = (hold, record, lines);
        None
    }

    /// Forgets what this process learned, so the next operation reloads it
    /// from the store (after a reset done elsewhere). Holds stay.
    async fn forget(&self) -> Result<(), BookError> {
        Ok(())
    }

    /// Holds `amount` as [`reserve`](Self::reserve) does, but under the
    /// caller's `id` and until the wall-clock time `expires`, whether or not
    /// the process that took it still runs: a batch job's hold, which must
    /// outlive the `submit` command. Any process sharing the book releases
    /// it with [`release_detached`](Self::release_detached). Reserving an
    /// `id` that is already held grants the existing hold again and holds
    /// nothing more (submitting is retried safely).
    ///
    /// The default refuses with [`BookError::Other`]: a book that keeps
    /// holds in process memory only cannot promise this across processes.
    async fn reserve_detached(
        &self,
        lines: &[BookLine],
        amount: Money,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Reserved, BookError> {
        let _ = (lines, amount, expires);
        Err(no_detached_holds(id))
    }

    /// Releases the hold `id` taken by
    /// [`reserve_detached`](Self::reserve_detached), from any process. A
    /// hold that is already gone (released, expired) is not an error.
    async fn release_detached(&self, id: &str) -> Result<(), BookError> {
        Err(no_detached_holds(id))
    }
}

/// The default answer of the detached-hold methods.
fn no_detached_holds(id: &str) -> BookError {
    BookError::Other(format!(
        "this budget book cannot keep a hold beyond its process (hold {id}): use the directory \
         book (JsonlDirBook) or the memory book"
    ))
}

/// Runs `fut` to completion now if it completes without waiting (the
/// memory and directory books do), else on the current Tokio runtime; for
/// `Drop` implementations, which cannot await. Returns whether it finished
/// inline.
pub(crate) fn run_detached<F>(fut: F, what: &'static str) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if let Poll::Ready(()) = fut.as_mut().poll(&mut cx) {
        return true;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => tracing::warn!(
            "{what} could not finish outside a Tokio runtime; a hold left behind expires after the book's lease"
        ),
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_book_is_object_safe() {
        fn _obj_safe(_: &dyn BudgetBook) {}
    }
}
