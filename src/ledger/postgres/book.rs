//! [`PostgresBudgetBook`]: the budget book on PostgreSQL, shared by a fleet.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{filter_sql, Params};
use super::{quote_ident, PostgresStorage};
use crate::ledger::CostRecord;
use crate::tracker::book::{
    BookError, BookKey, BookLine, BookTotals, BudgetBook, Hold, LineTotals, Reserved, DEFAULT_LEASE,
};
use crate::Money;

fn err(action: &str, e: impl std::fmt::Display) -> BookError {
    BookError::Other(format!(
        "PostgreSQL: cannot {action}: {e}. Check the database URL and that the server is running"
    ))
}

/// One text key per line: budget, period and scope joined by U+001F.
fn key_of(k: &BookKey) -> String {
    format!("{}\u{1f}{}\u{1f}{}", k.budget, k.period, k.scope)
}

/// The budget book on PostgreSQL, in the same schema as a
/// [`PostgresStorage`] ledger: every host reserving against a budget sees
/// every other host's holds and settled spend.
///
/// - One counter row per budget and period (`book_lines`: settled, held),
///   created from the ledger's own sum the first time the period is used.
/// - [`reserve`](BudgetBook::reserve) locks the lines' rows (in key order,
///   so two reservations never deadlock), checks `settled + held + amount
///   <= limit` for each blocking line, adds the hold and inserts a hold row,
///   in one short transaction: the row lock is held for two statements,
///   never across a provider call.
/// - Holds carry a lease (`expires_at`, default [`DEFAULT_LEASE`]): the
///   holds of a crashed host are reaped by the next reservation on the same
///   lines.
/// - [`reserve_detached`](BudgetBook::reserve_detached) (a batch job's
///   hold) is a hold row under the caller's id whose `expires_at` is the
///   caller's end time: it outlives the process, any host releases it by id
///   ([`release_detached`](BudgetBook::release_detached)), and reserving the
///   same id again grants the existing hold without holding more.
/// - [`settle`](BudgetBook::settle) drops the hold and adds the billed cost
///   once per record and line (`book_settled` is keyed by record id), in
///   one transaction.
///
/// ```no_run
/// use costlayer::ledger::PostgresStorage;
/// use costlayer::tracker::book::PostgresBudgetBook;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ledger = PostgresStorage::connect("postgres://costlayer@db.internal/costs").await?;
/// let book = PostgresBudgetBook::new(&ledger);
/// # let _ = book; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresBudgetBook {
    storage: PostgresStorage,
    lease: Duration,
    lines: String,
    holds: String,
    settled: String,
    records: String,
}

impl PostgresBudgetBook {
    /// The book in `storage`'s schema (its tables are created by the
    /// ledger's migrations), with the default lease.
    pub fn new(storage: &PostgresStorage) -> Self {
        let s = quote_ident(storage.schema());
        PostgresBudgetBook {
            storage: storage.clone(),
            lease: DEFAULT_LEASE,
            lines: format!("{s}.book_lines"),
            holds: format!("{s}.book_holds"),
            settled: format!("{s}.book_settled"),
            records: format!("{s}.records"),
        }
    }

    /// How long a hold lives without being settled or released before
    /// another host may reap it (a crashed host's holds). Defaults to
    /// [`DEFAULT_LEASE`]; make it longer than your slowest call.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, BookError> {
        self.storage
            .client()
            .await
            .map_err(|e| BookError::Other(e.to_string()))
    }

    /// Creates the lines' rows from the ledger's sums if missing, and
    /// recomputes a line whose span moved (rolling windows).
    async fn ensure(&self, lines: &[BookLine]) -> Result<(), BookError> {
        if lines.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let keys: Vec<String> = lines.iter().map(|l| key_of(&l.key)).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT key, span_start, span_end FROM {} WHERE key = ANY($1)",
                    self.lines
                ),
                &[&keys],
            )
            .await
            .map_err(|e| err("read the budget book", e))?;
        for (l, key) in lines.iter().zip(&keys) {
            let have = rows.iter().find(|r| r.get::<_, String>(0) == *key);
            let same = have.is_some_and(|r| {
                r.get::<_, Option<DateTime<Utc>>>(1) == l.start
                    && r.get::<_, Option<DateTime<Utc>>>(2) == l.end
            });
            if same {
                continue;
            }
            let mut p = Params::default();
            let pk = p.push(key.clone());
            let pb = p.push(l.key.budget.to_string());
            let pp = p.push(l.key.period.to_string());
            let ps = p.push(l.key.scope.to_string());
            let pstart = p.push(l.start);
            let pend = p.push(l.end);
            let mut f = l.scope.filter();
            f.since = l.start;
            f.until = l.end;
            let cond = filter_sql(&f, &mut p);
            let sums = format!(
                "SELECT coalesce(sum(nano_usd), 0)::bigint AS s, \
                 min(ts) FILTER (WHERE coalesce(nano_usd, 0) <> 0) AS f FROM {} WHERE {cond}",
                self.records
            );
            let sql = if have.is_none() {
                format!(
                    "INSERT INTO {} (key, budget, period, scope, span_start, span_end, settled, first_spend) \
                     SELECT {pk}, {pb}, {pp}, {ps}, {pstart}, {pend}, sums.s, sums.f FROM ({sums}) AS sums \
                     ON CONFLICT (key) DO NOTHING",
                    self.lines
                )
            } else {
                format!(
                    "UPDATE {} SET span_start = {pstart}, span_end = {pend}, settled = sums.s, \
                     first_spend = sums.f FROM ({sums}) AS sums \
                     WHERE key = {pk} AND budget = {pb} AND period = {pp} AND scope = {ps}",
                    self.lines
                )
            };
            client
                .execute(&sql, &p.refs())
                .await
                .map_err(|e| err("open a budget period", e))?;
        }
        Ok(())
    }

    /// Releases the expired holds (of crashed hosts) on `keys`.
    async fn reap(&self, keys: &[String]) -> Result<(), BookError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "WITH gone AS (DELETE FROM {h} WHERE expires_at < now() AND keys && $1 \
                     RETURNING keys, amount), \
                     per AS (SELECT k, sum(amount)::bigint AS a FROM gone, unnest(gone.keys) AS k GROUP BY k) \
                     UPDATE {l} b SET held = greatest(0, b.held - per.a) FROM per WHERE b.key = per.k",
                    h = self.holds,
                    l = self.lines
                ),
                &[&keys],
            )
            .await
            .map_err(|e| err("reap expired holds", e))?;
        Ok(())
    }

    /// Begins a transaction on `client` and locks the rows of `keys`
    /// (sorted and deduplicated here, so two transactions always lock in
    /// the same order and never deadlock). Returns the locked rows
    /// (`key, settled, held, first_spend`).
    async fn lock_lines<'c>(
        &self,
        client: &'c mut deadpool_postgres::Client,
        keys: &mut Vec<String>,
        what: &str,
    ) -> Result<(deadpool_postgres::Transaction<'c>, Vec<tokio_postgres::Row>), BookError> {
        keys.sort();
        keys.dedup();
        let tx = client
            .transaction()
            .await
            .map_err(|e| err(&format!("begin {what}"), e))?;
        let rows = tx
            .query(
                &format!(
                    "SELECT key, settled, held, first_spend FROM {} WHERE key = ANY($1) \
                     ORDER BY key FOR UPDATE",
                    self.lines
                ),
                &[&*keys],
            )
            .await
            .map_err(|e| err("lock the budget lines", e))?;
        Ok((tx, rows))
    }

    /// Deletes the hold `id` and takes its amount off its lines, in `tx`
    /// (nothing if the hold is already gone).
    async fn unhold(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: &str,
    ) -> Result<(), BookError> {
        tx.execute(
            &format!(
                "WITH gone AS (DELETE FROM {} WHERE id = $1 RETURNING keys, amount) \
                 UPDATE {} b SET held = greatest(0, b.held - gone.amount) \
                 FROM gone WHERE b.key = ANY(gone.keys)",
                self.holds, self.lines
            ),
            &[&id],
        )
        .await
        .map_err(|e| err("release the hold", e))?;
        Ok(())
    }

    /// Holds `amount` on `lines` under `id` until `expires` (SQL), unless a
    /// blocking line would cross its limit; with `reuse`, an existing hold
    /// `id` is granted again without holding more.
    async fn hold(
        &self,
        lines: &[BookLine],
        amount: Money,
        id: String,
        expires: Expiry,
        reuse: bool,
    ) -> Result<Reserved, BookError> {
        self.ensure(lines).await?;
        let line_keys: Vec<String> = lines.iter().map(|l| key_of(&l.key)).collect();
        self.reap(&line_keys).await?;
        let mut keys = line_keys.clone();
        let mut client = self.client().await?;
        let (tx, rows) = self
            .lock_lines(&mut client, &mut keys, "a reservation")
            .await?;
        let before = totals(lines, &line_keys, &rows);
        if reuse {
            let existing = tx
                .query_opt(
                    &format!("SELECT amount FROM {} WHERE id = $1", self.holds),
                    &[&id],
                )
                .await
                .map_err(|e| err("read the hold", e))?;
            if let Some(row) = existing {
                tx.commit()
                    .await
                    .map_err(|e| err("end the reservation", e))?;
                return Ok(Reserved::Granted {
                    hold: Hold {
                        id,
                        lines: lines.iter().map(|l| l.key.clone()).collect(),
                        amount: Money::from_nanos(row.get(0)),
                    },
                    totals: before,
                });
            }
        }
        for (l, t) in lines.iter().zip(&before) {
            if l.blocking && t.committed().checked_add(amount).unwrap_or(Money::MAX) > l.limit {
                tx.rollback()
                    .await
                    .map_err(|e| err("end a refused reservation", e))?;
                return Ok(Reserved::Refused {
                    key: l.key.clone(),
                    totals: before,
                });
            }
        }
        let (lease_ms, at) = match expires {
            Expiry::Lease(lease) => (
                i64::try_from(lease.as_millis()).unwrap_or(i64::MAX) as f64,
                None,
            ),
            Expiry::At(at) => (0.0, Some(at)),
        };
        let inserted = tx
            .query_one(
                &format!(
                    "WITH ins AS (INSERT INTO {h} (id, keys, amount, expires_at) \
                     VALUES ($3, $1, $2, coalesce($5::timestamptz, now() + $4 * interval '1 millisecond')) \
                     ON CONFLICT (id) DO NOTHING RETURNING 1), \
                     upd AS (UPDATE {l} SET held = held + $2 \
                     WHERE key = ANY($1) AND EXISTS (SELECT 1 FROM ins) RETURNING 1) \
                     SELECT count(*) FROM ins",
                    h = self.holds,
                    l = self.lines
                ),
                &[&keys, &amount.nanos(), &id, &lease_ms, &at],
            )
            .await
            .map_err(|e| err("hold the reservation", e))?
            .get::<_, i64>(0);
        if inserted == 0 {
            tx.rollback()
                .await
                .map_err(|e| err("end the reservation", e))?;
            return Err(BookError::Other(format!(
                "the hold id `{id}` is already held on other budget lines: give each batch job its own id"
            )));
        }
        tx.commit()
            .await
            .map_err(|e| err("commit the reservation", e))?;
        let totals = before
            .into_iter()
            .map(|mut t| {
                t.held = t.held.saturating_add(amount);
                t
            })
            .collect();
        Ok(Reserved::Granted {
            hold: Hold {
                id,
                lines: lines.iter().map(|l| l.key.clone()).collect(),
                amount,
            },
            totals,
        })
    }

    async fn read(&self, lines: &[BookLine]) -> Result<BookTotals, BookError> {
        let client = self.client().await?;
        let keys: Vec<String> = lines.iter().map(|l| key_of(&l.key)).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT key, settled, held, first_spend FROM {} WHERE key = ANY($1)",
                    self.lines
                ),
                &[&keys],
            )
            .await
            .map_err(|e| err("read the budget book", e))?;
        Ok(totals(lines, &keys, &rows))
    }
}

/// When a hold ends: after the book's lease, or at a wall-clock time (a
/// detached hold).
enum Expiry {
    Lease(Duration),
    At(DateTime<Utc>),
}

fn totals(lines: &[BookLine], keys: &[String], rows: &[tokio_postgres::Row]) -> BookTotals {
    lines
        .iter()
        .zip(keys)
        .map(
            |(l, k)| match rows.iter().find(|r| r.get::<_, String>(0) == *k) {
                Some(r) => {
                    let mut t = LineTotals::zero(l.key.clone());
                    t.settled = Money::from_nanos(r.get(1));
                    t.held = Money::from_nanos(r.get(2));
                    t.first_spend = r.get(3);
                    t
                }
                None => LineTotals::zero(l.key.clone()),
            },
        )
        .collect()
}

#[async_trait]
impl BudgetBook for PostgresBudgetBook {
    async fn totals(&self, lines: &[BookLine]) -> Result<BookTotals, BookError> {
        self.ensure(lines).await?;
        let keys: Vec<String> = lines.iter().map(|l| key_of(&l.key)).collect();
        self.reap(&keys).await?;
        self.read(lines).await
    }

    async fn reserve(&self, lines: &[BookLine], amount: Money) -> Result<Reserved, BookError> {
        let id = ulid::Ulid::new().to_string();
        self.hold(lines, amount, id, Expiry::Lease(self.lease), false)
            .await
    }

    async fn reserve_detached(
        &self,
        lines: &[BookLine],
        amount: Money,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<Reserved, BookError> {
        self.hold(lines, amount, id.to_owned(), Expiry::At(expires), true)
            .await
    }

    async fn release_detached(&self, id: &str) -> Result<(), BookError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT keys FROM {} WHERE id = $1", self.holds),
                &[&id],
            )
            .await
            .map_err(|e| err("read the hold", e))?;
        let Some(row) = row else {
            return Ok(());
        };
        drop(client);
        let mut keys: Vec<String> = row.get(0);
        let mut client = self.client().await?;
        let (tx, _) = self.lock_lines(&mut client, &mut keys, "a release").await?;
        self.unhold(&tx, id).await?;
        tx.commit()
            .await
            .map_err(|e| err("commit the release", e))?;
        Ok(())
    }

    async fn settle(
        &self,
        hold: Option<Hold>,
        record: &CostRecord,
        lines: &[BookLine],
    ) -> Result<BookTotals, BookError> {
        let counted: Vec<BookLine> = lines.iter().filter(|l| l.counts(record)).cloned().collect();
        self.ensure(&counted).await?;
        let counted_keys: Vec<String> = counted.iter().map(|l| key_of(&l.key)).collect();
        let mut lock: Vec<String> = counted_keys.clone();
        if let Some(h) = &hold {
            lock.extend(h.lines.iter().map(key_of));
        }
        let mut client = self.client().await?;
        let (tx, _) = self
            .lock_lines(&mut client, &mut lock, "a settlement")
            .await?;
        if let Some(h) = &hold {
            self.unhold(&tx, &h.id).await?;
        }
        let cost = record.cost();
        tx.execute(
            &format!(
                "WITH new AS (INSERT INTO {s} (record_id, key) SELECT $1, k FROM unnest($2::text[]) AS k \
                 ON CONFLICT DO NOTHING RETURNING key) \
                 UPDATE {l} b SET settled = b.settled + $3, \
                 first_spend = CASE WHEN $3 <> 0 AND (b.first_spend IS NULL OR $4 < b.first_spend) \
                 THEN $4 ELSE b.first_spend END \
                 FROM new WHERE b.key = new.key",
                s = self.settled,
                l = self.lines
            ),
            &[&record.id.to_string(), &counted_keys, &cost.nanos(), &record.ts],
        )
        .await
        .map_err(|e| err("settle the spend", e))?;
        let rows = tx
            .query(
                &format!(
                    "SELECT key, settled, held, first_spend FROM {} WHERE key = ANY($1)",
                    self.lines
                ),
                &[&counted_keys],
            )
            .await
            .map_err(|e| err("read the budget book", e))?;
        tx.commit()
            .await
            .map_err(|e| err("commit the settlement", e))?;
        Ok(totals(&counted, &counted_keys, &rows))
    }

    async fn release(&self, hold: Hold) -> Result<(), BookError> {
        let mut keys: Vec<String> = hold.lines.iter().map(key_of).collect();
        let mut client = self.client().await?;
        let (tx, _) = self.lock_lines(&mut client, &mut keys, "a release").await?;
        self.unhold(&tx, &hold.id).await?;
        tx.commit()
            .await
            .map_err(|e| err("commit the release", e))?;
        Ok(())
    }
}
