//! [`MemoryBook`]: the book of one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{BookError, BookKey, BookLine, BudgetBook, Hold, LineTotals, Reserved};
use crate::ledger::{CostRecord, ScanItem, Storage};
use crate::Money;

#[derive(Debug, Default)]
struct Line {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    settled: Money,
    held: Money,
    first_spend: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct State {
    lines: HashMap<BookKey, Line>,
    holds: HashMap<String, Hold>,
    /// The detached holds' expiry times.
    detached: HashMap<String, DateTime<Utc>>,
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
    async fn register(&self, lines: &[BookLine]) -> Result<(), BookError> {
        let missing: Vec<&BookLine> = {
            let st = self.lock();
            lines
                .iter()
                .filter(|l| {
                    st.lines
                        .get(&l.key)
                        .is_none_or(|have| have.start != l.start || have.end != l.end)
                })
                .collect()
        };
        for l in missing {
            let (settled, first_spend) = match &self.seed {
                Some(s) => load(s.as_ref(), l).await?,
                None => (Money::ZERO, None),
            };
            let mut st = self.lock();
            let held = st
                .holds
                .values()
                .filter(|h| h.lines.contains(&l.key))
                .fold(Money::ZERO, |a, h| a.saturating_add(h.amount));
            st.lines.insert(
                l.key.clone(),
                Line {
                    start: l.start,
                    end: l.end,
                    settled,
                    held,
                    first_spend,
                },
            );
        }
        Ok(())
    }
}

fn totals_of(st: &State, lines: &[BookLine]) -> Vec<LineTotals> {
    lines
        .iter()
        .map(|l| match st.lines.get(&l.key) {
            Some(s) => LineTotals {
                key: l.key.clone(),
                settled: s.settled,
                held: s.held,
                first_spend: s.first_spend,
            },
            None => LineTotals::zero(l.key.clone()),
        })
        .collect()
}

/// Holds `amount` under `id` in every line (registered), unless a blocking
/// one would cross its limit.
fn reserve_in(st: &mut State, lines: &[BookLine], amount: Money, id: String) -> Reserved {
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
    for l in lines {
        if let Some(s) = st.lines.get_mut(&l.key) {
            s.held = s.held.saturating_add(amount);
        }
    }
    st.holds.insert(hold.id.clone(), hold.clone());
    Reserved::Granted {
        hold,
        totals: totals_of(st, lines),
    }
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
        .filter(|(_, &at)| at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        st.detached.remove(&id);
        if let Some(hold) = st.holds.get(&id).cloned() {
            unhold(st, &hold);
        }
    }
}

fn unhold(st: &mut State, hold: &Hold) {
    if st.holds.remove(&hold.id).is_none() {
        return;
    }
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
    async fn totals(&self, lines: &[BookLine]) -> Result<Vec<LineTotals>, BookError> {
        self.register(lines).await?;
        let mut st = self.lock();
        expire_detached(&mut st);
        Ok(totals_of(&st, lines))
    }

    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError> {
        self.register(lines).await?;
        Ok(reserve_in(
            &mut self.lock(),
            lines,
            amount,
            ulid::Ulid::new().to_string(),
        ))
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
        if let Some(hold) = st.holds.get(id).cloned() {
            return Ok(Reserved::Granted {
                hold,
                totals: totals_of(&st, lines),
            });
        }
        let r = reserve_in(&mut st, lines, amount, id.to_owned());
        if matches!(r, Reserved::Granted { .. }) {
            st.detached.insert(id.to_owned(), expires);
        }
        Ok(r)
    }

    async fn release_detached(&self, id: &str) -> Result<(), BookError> {
        let mut st = self.lock();
        if let Some(hold) = st.holds.get(id).cloned() {
            unhold(&mut st, &hold);
        }
        st.detached.remove(id);
        Ok(())
    }

    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<Vec<LineTotals>, BookError> {
        let counted: Vec<BookLine> = lines.iter().filter(|l| l.counts(record)).cloned().collect();
        self.register(&counted).await?;
        let mut st = self.lock();
        if let Some(h) = &hold {
            unhold(&mut st, h);
        }
        let cost = record.cost();
        for l in &counted {
            if let Some(s) = st.lines.get_mut(&l.key) {
                s.settled = s.settled.saturating_add(cost);
                if !cost.is_zero() && s.first_spend.is_none_or(|f| record.ts < f) {
                    s.first_spend = Some(record.ts);
                }
            }
        }
        Ok(totals_of(&st, &counted))
    }

    async fn release(&self, hold: Hold) -> Result<(), BookError> {
        unhold(&mut self.lock(), &hold);
        Ok(())
    }

    async fn forget(&self) -> Result<(), BookError> {
        self.lock().lines.clear();
        Ok(())
    }
}
