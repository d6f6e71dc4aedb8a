//! [`MemoryBook`]: the book of one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{BookError, BookKey, BookLine, BookTotals, BudgetBook, Hold, LineTotals, Reserved};
use crate::ledger::{CostRecord, ScanItem, Storage};
use crate::Money;

#[derive(Debug, Default)]
struct Line {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    settled: Money,
    held: Money,
    first_spend: Option<DateTime<Utc>>,
    /// Forgotten: the settled spend is loaded again at the next use (the
    /// holds in it stay).
    stale: bool,
}

/// The book's own maps, hashed with foldhash: their keys are budget
/// names and periods from the configuration and the book's own random
/// ULIDs, and SipHash cost most of a reserve + settle (a book key is three
/// strings, hashed several times a call).
type FastMap<K, V> = foldhash::HashMap<K, V>;

#[derive(Debug, Default)]
struct State {
    lines: FastMap<BookKey, Line>,
    /// The live holds this book made, by their ULID (a hold names its own
    /// lines when it is settled or released, so only its amount is kept:
    /// no clone of the hold per call).
    holds: FastMap<u128, Money>,
    /// The detached holds (caller-chosen ids): the hold and its end.
    detached: HashMap<String, (Hold, DateTime<Utc>)>,
}

/// The key of a hold this book made (its id is a ULID).
fn hold_key(id: &str) -> Option<u128> {
    id.parse::<ulid::Ulid>().ok().map(u128::from)
}

/// The budget book of one process: totals in memory, behind a mutex. A new
/// line's settled spend is loaded once from the storage given to
/// [`MemoryBook::seeded_from`] (none for [`MemoryBook::new`]); after that
/// every settlement is added in memory. Other processes appending to the
/// same storage are not seen: use [`JsonlDirBook`](super::JsonlDirBook) for
/// a JSONL directory shared by several processes.
pub struct MemoryBook {
    seed: Option<Arc<dyn Storage>>,
    state: Mutex<State>,
}

impl fmt::Debug for MemoryBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBook")
            .field("seeded", &self.seed.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBook {
    fn default() -> Self {
        MemoryBook::new()
    }
}

impl MemoryBook {
    /// An empty book: every line starts at zero.
    pub fn new() -> Self {
        MemoryBook {
            seed: None,
            state: Mutex::new(State::default()),
        }
    }

    /// A book whose lines start at their spend in `storage`.
    pub fn seeded_from(storage: Arc<dyn Storage>) -> Self {
        MemoryBook {
            seed: Some(storage),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a plain assignment: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the lines not known yet, loading them from the seed.
    async fn register<'a>(
        &self,
        lines: impl IntoIterator<Item = &'a BookLine> + Clone,
    ) -> Result<(), BookError> {
        let missing: Vec<&BookLine> = {
            let st = self.lock();
            if all_known(&st, lines.clone()) {
                return Ok(());
            }
            lines.into_iter().filter(|l| !known(&st, l)).collect()
        };
        for l in missing {
            let (settled, first_spend) = match &self.seed {
                Some(s) => load(s.as_ref(), l).await?,
                None => (Money::ZERO, None),
            };
            let mut st = self.lock();
            // The live holds already in this line (forgotten, or a new span
            // of it) stay.
            let held = st.lines.get(&l.key).map_or(Money::ZERO, |have| have.held);
            st.lines.insert(
                l.key.clone(),
                Line {
                    start: l.start,
                    end: l.end,
                    settled,
                    held,
                    first_spend,
                    stale: false,
                },
            );
        }
        Ok(())
    }
}

/// Whether `l` is registered and current: its spend is loaded, for the
/// same span.
fn known(st: &State, l: &BookLine) -> bool {
    st.lines
        .get(&l.key)
        .is_some_and(|have| !have.stale && have.start == l.start && have.end == l.end)
}

/// Whether every line is known (an operation on them needs no load).
fn all_known<'a>(st: &State, lines: impl IntoIterator<Item = &'a BookLine>) -> bool {
    lines.into_iter().all(|l| known(st, l))
}

fn totals_from(key: &BookKey, s: &Line) -> LineTotals {
    LineTotals {
        key: key.clone(),
        settled: s.settled,
        held: s.held,
        first_spend: s.first_spend,
    }
}

fn totals_of<'a>(st: &State, lines: impl IntoIterator<Item = &'a BookLine>) -> BookTotals {
    lines
        .into_iter()
        .map(|l| match st.lines.get(&l.key) {
            Some(s) => totals_from(&l.key, s),
            None => LineTotals::zero(l.key.clone()),
        })
        .collect()
}

/// Holds `amount` under `id` in every line (registered), unless a blocking
/// one would cross its limit. `key` is the id's ULID for a hold of this
/// book, `None` for a detached hold (kept in `detached` by the caller).
fn reserve_in(
    st: &mut State,
    lines: &[BookLine],
    amount: Money,
    id: String,
    key: Option<u128>,
) -> Reserved {
    expire_detached(st);
    for l in lines.iter().filter(|l| l.blocking) {
        let committed = st
            .lines
            .get(&l.key)
            .map_or(Money::ZERO, |s| s.settled.saturating_add(s.held));
        let would_be = committed.checked_add(amount).unwrap_or(Money::MAX);
        if would_be > l.limit {
            return Reserved::Refused {
                key: l.key.clone(),
                totals: totals_of(st, lines),
            };
        }
    }
    let hold = Hold {
        id,
        lines: lines.iter().map(|l| l.key.clone()).collect(),
        amount,
    };
    // Held and read back in one lookup per line.
    let totals = lines
        .iter()
        .map(|l| match st.lines.get_mut(&l.key) {
            Some(s) => {
                s.held = s.held.saturating_add(amount);
                totals_from(&l.key, s)
            }
            None => LineTotals::zero(l.key.clone()),
        })
        .collect();
    if let Some(k) = key {
        st.holds.insert(k, amount);
    }
    Reserved::Granted { hold, totals }
}

/// Ends `hold` (if any) and adds `record`'s cost to each registered line
/// of `lines` it counts in; their totals after it.
fn settle_in(
    st: &mut State,
    hold: Option<&Hold>,
    record: &CostRecord,
    lines: &[BookLine],
) -> BookTotals {
    if let Some(h) = hold {
        unhold(st, h);
    }
    let cost = record.cost();
    // Settled and read back in one lookup per line.
    lines
        .iter()
        .filter(|l| l.counts(record))
        .map(|l| match st.lines.get_mut(&l.key) {
            Some(s) => {
                s.settled = s.settled.saturating_add(cost);
                if !cost.is_zero() && s.first_spend.is_none_or(|f| record.ts < f) {
                    s.first_spend = Some(record.ts);
                }
                totals_from(&l.key, s)
            }
            None => LineTotals::zero(l.key.clone()),
        })
        .collect()
}

/// [`reserve_in`] under a new hold of this book (a ULID).
fn reserve_own(st: &mut State, lines: &[BookLine], amount: Money) -> Reserved {
    let id = ulid::Ulid::new();
    reserve_in(st, lines, amount, id.to_string(), Some(u128::from(id)))
}

/// Drops the detached holds whose time ran out.
fn expire_detached(st: &mut State) {
    if st.detached.is_empty() {
        return;
    }
    let now = Utc::now();
    let gone: Vec<String> = st
        .detached
        .iter()
        .filter(|(_, (_, at))| *at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some((hold, _)) = st.detached.remove(&id) {
            take_from_lines(st, &hold);
        }
    }
}

/// Ends `hold` (once: a second settle or release of it does nothing).
fn unhold(st: &mut State, hold: &Hold) {
    let live = match hold_key(&hold.id) {
        Some(k) if st.holds.remove(&k).is_some() => true,
        _ => st.detached.remove(&hold.id).is_some(),
    };
    if live {
        take_from_lines(st, hold);
    }
}

fn take_from_lines(st: &mut State, hold: &Hold) {
    for k in &hold.lines {
        if let Some(s) = st.lines.get_mut(k) {
            s.held = s.held.saturating_sub(hold.amount).max(Money::ZERO);
        }
    }
}

/// A line's spend in `storage`, and its first spend (all-time lines only).
async fn load(
    storage: &dyn Storage,
    line: &BookLine,
) -> Result<(Money, Option<DateTime<Utc>>), BookError> {
    let err = |e: crate::ledger::LedgerError| BookError::Other(e.to_string());
    let mut filter = line.scope.filter();
    filter.since = line.start;
    filter.until = line.end;
    if line.start.is_some() {
        let agg = storage.aggregate(&filter).await.map_err(err)?;
        return Ok((agg.nano_usd, None));
    }
    let mut stream = storage.scan(&filter).await.map_err(err)?;
    let (mut spent, mut first): (Money, Option<DateTime<Utc>>) = (Money::ZERO, None);
    while let Some(item) = stream.next().await {
        if let ScanItem::Record(r) = item.map_err(err)? {
            spent = spent.saturating_add(r.cost());
            if !r.cost().is_zero() && first.is_none_or(|f| r.ts < f) {
                first = Some(r.ts);
            }
        }
    }
    Ok((spent, first))
}

#[async_trait::async_trait]
impl BudgetBook for MemoryBook {
    async fn totals(&self, lines: &[BookLine]) -> Result<BookTotals, BookError> {
        self.register(lines).await?;
        let mut st = self.lock();
        expire_detached(&mut st);
        Ok(totals_of(&st, lines))
    }

    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError> {
        self.register(lines).await?;
        Ok(reserve_own(&mut self.lock(), lines, amount))
    }

    async fn reserve_detached(
        &self,
        lines: &[BookLine],
        amount: Money,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Reserved, BookError> {
        self.register(lines).await?;
        let mut st = self.lock();
        expire_detached(&mut st);
        if let Some((hold, _)) = st.detached.get(id) {
            return Ok(Reserved::Granted {
                hold: hold.clone(),
                totals: totals_of(&st, lines),
            });
        }
        let r = reserve_in(&mut st, lines, amount, id.to_owned(), None);
        if let Reserved::Granted { hold, .. } = &r {
            st.detached.insert(id.to_owned(), (hold.clone(), expires));
        }
        Ok(r)
    }

    async fn release_detached(&self, id: &str) -> Result<(), BookError> {
        let mut st = self.lock();
        if let Some((hold, _)) = st.detached.remove(id) {
            take_from_lines(&mut st, &hold);
        }
        Ok(())
    }

    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<BookTotals, BookError> {
        let counted = lines.iter().filter(|l| l.counts(record));
        if let Err(e) = self.register(counted.clone()).await {
            // The caller hands the hold over: it is released here, not
            // left behind (this book has no lease).
            if let Some(h) = &hold {
                unhold(&mut self.lock(), h);
            }
            return Err(e);
        }
        Ok(settle_in(&mut self.lock(), hold.as_ref(), record, lines))
    }

    fn reserve_now(&self, lines: &[BookLine], amount: Money) -> Option<Reserved> {
        let mut st = self.lock();
        all_known(&st, lines).then(|| reserve_own(&mut st, lines, amount))
    }

    fn settle_now(
        &self,
        hold: Option<&Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Option<BookTotals> {
        let mut st = self.lock();
        if !all_known(&st, lines.iter().filter(|l| l.counts(record))) {
            return None;
        }
        Some(settle_in(&mut st, hold, record, lines))
    }

    async fn release(&self, hold: Hold) -> Result<(), BookError> {
        unhold(&mut self.lock(), &hold);
        Ok(())
    }

    async fn forget(&self) -> Result<(), BookError> {
        for line in self.lock().lines.values_mut() {
            line.stale = true;
        }
        Ok(())
    }
}
