//! Versioned migrations, applied on connect under an advisory lock.

use deadpool_postgres::Client;

use super::{pg_error, quote_ident};
use crate::ledger::LedgerError;

/// One migration: its version, a name, and its SQL (`{s}` stands for the
/// quoted schema).
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Never edit a released one: add a new version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records, alerts and their archives",
        sql: r#"
CREATE TABLE {s}.records (
    id text PRIMARY KEY,
    ts timestamptz NOT NULL,
    user_name text NOT NULL,
    team text,
    provider text NOT NULL,
    model text NOT NULL,
    mode text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_5m_tokens bigint NOT NULL,
    cache_write_1h_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    nano_usd bigint,
    cached boolean NOT NULL,
    saved_nano_usd bigint,
    latency_ms bigint NOT NULL,
    request_id text,
    price_version text,
    cost_status text NOT NULL,
    cost_notes jsonb NOT NULL,
    tags jsonb NOT NULL,
    extra jsonb NOT NULL,
    v integer NOT NULL
);
CREATE INDEX records_ts ON {s}.records (ts);
CREATE INDEX records_user_ts ON {s}.records (user_name, ts);
CREATE TABLE {s}.alerts (
    key text PRIMARY KEY,
    user_name text NOT NULL,
    payload jsonb NOT NULL,
    fired_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.archives (
    id bigserial PRIMARY KEY,
    archived_at timestamptz NOT NULL DEFAULT now(),
    scope text NOT NULL,
    records bigint NOT NULL,
    alerts bigint NOT NULL
);
CREATE TABLE {s}.records_archive (
    archive_id bigint NOT NULL REFERENCES {s}.archives (id),
    LIKE {s}.records
);
CREATE INDEX records_archive_id ON {s}.records_archive (archive_id);
CREATE TABLE {s}.alerts_archive (
    archive_id bigint NOT NULL REFERENCES {s}.archives (id),
    LIKE {s}.alerts
);
"#,
    },
    Migration {
        version: 2,
        name: "budget book: lines, holds, settled records",
        sql: r#"
CREATE TABLE {s}.book_lines (
    key text PRIMARY KEY,
    budget text NOT NULL,
    period text NOT NULL,
    scope text NOT NULL,
    span_start timestamptz,
    span_end timestamptz,
    settled bigint NOT NULL DEFAULT 0,
    held bigint NOT NULL DEFAULT 0,
    first_spend timestamptz
);
CREATE TABLE {s}.book_holds (
    id text PRIMARY KEY,
    keys text[] NOT NULL,
    amount bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX book_holds_expiry ON {s}.book_holds (expires_at);
CREATE TABLE {s}.book_settled (
    record_id text NOT NULL,
    key text NOT NULL,
    PRIMARY KEY (record_id, key)
);
"#,
    },
    Migration {
        version: 3,
        name: "usage columns; hourly rollup of the records for the dashboard",
        sql: r#"
ALTER TABLE {s}.records
    ADD COLUMN input_audio_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN web_search_requests bigint NOT NULL DEFAULT 0;
ALTER TABLE {s}.records_archive
    ADD COLUMN input_audio_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN web_search_requests bigint NOT NULL DEFAULT 0;
UPDATE {s}.records SET
    input_audio_tokens = CASE WHEN jsonb_typeof(extra #> '{_usage,input_audio_tokens}') = 'number'
        THEN least(greatest(floor((extra #>> '{_usage,input_audio_tokens}')::numeric), 0), 9223372036854775807)::bigint ELSE 0 END,
    web_search_requests = CASE WHEN jsonb_typeof(extra #> '{_usage,web_search_requests}') = 'number'
        THEN least(greatest(floor((extra #>> '{_usage,web_search_requests}')::numeric), 0), 9223372036854775807)::bigint ELSE 0 END
    WHERE extra ? '_usage';
CREATE TABLE {s}.rollup (
    hour timestamptz NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    user_name text NOT NULL,
    team text NOT NULL,
    has_team boolean NOT NULL,
    mode text NOT NULL,
    cached boolean NOT NULL,
    unpriced boolean NOT NULL,
    cost_status text NOT NULL,
    calls bigint NOT NULL,
    nano_usd bigint NOT NULL,
    saved_nano_usd bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_5m_tokens bigint NOT NULL,
    cache_write_1h_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    input_audio_tokens bigint NOT NULL,
    web_search_requests bigint NOT NULL,
    min_ts timestamptz NOT NULL,
    max_ts timestamptz NOT NULL,
    PRIMARY KEY (hour, provider, model, user_name, team, has_team, mode, cached, unpriced, cost_status)
);
CREATE TABLE {s}.rollup_delta (LIKE {s}.rollup);
CREATE FUNCTION {s}.records_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO {s}.rollup_delta
    SELECT date_trunc('hour', ts, 'UTC'), provider, model, user_name, coalesce(team, ''),
        team IS NOT NULL, mode, cached, nano_usd IS NULL, cost_status,
        count(*), coalesce(sum(nano_usd), 0)::bigint,
        coalesce(sum(saved_nano_usd) FILTER (WHERE cached), 0)::bigint,
        sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint,
        sum(cache_write_5m_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
        sum(reasoning_tokens)::bigint, sum(input_audio_tokens)::bigint,
        sum(web_search_requests)::bigint, min(ts), max(ts)
    FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER records_rollup AFTER INSERT ON {s}.records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.records_rollup();
INSERT INTO {s}.rollup
SELECT date_trunc('hour', ts, 'UTC'), provider, model, user_name, coalesce(team, ''),
    team IS NOT NULL, mode, cached, nano_usd IS NULL, cost_status,
    count(*), coalesce(sum(nano_usd), 0)::bigint,
    coalesce(sum(saved_nano_usd) FILTER (WHERE cached), 0)::bigint,
    sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint,
    sum(cache_write_5m_tokens)::bigint, sum(cache_write_1h_tokens)::bigint,
    sum(reasoning_tokens)::bigint, sum(input_audio_tokens)::bigint,
    sum(web_search_requests)::bigint, min(ts), max(ts)
FROM {s}.records GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
"#,
    },
    Migration {
        version: 4,
        name: "alert outbox: delivery state per alert",
        sql: r#"
CREATE TABLE {s}.outbox (
    key text PRIMARY KEY,
    state text NOT NULL,
    entry jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX outbox_state ON {s}.outbox (state);
"#,
    },
    Migration {
        version: 5,
        name: "records: only the indexes the queries use",
        // Scans, the dashboard's boundary hours and a full reset read
        // `records_ts` (and the primary key); nothing reads
        // `records_user_ts` often enough to pay for it on every append (a
        // reset of one user scans the table once; the dashboard's per-user
        // figures come from the rollup).
        sql: r#"
DROP INDEX IF EXISTS {s}.records_user_ts;
"#,
    },
];

/// The newest schema version this build knows.
pub(crate) const LATEST: i32 = 5;

/// Creates the schema and applies every missing migration, in one
/// transaction holding a transaction-scoped advisory lock keyed by the
/// schema: of several processes starting at once, one migrates and the
/// others wait, then find nothing left to do.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, LedgerError> {
    let s = quote_ident(schema);
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error("begin the migration", e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('costlayer.migrate'), hashtext($1))",
        &[&schema],
    )
    .await
    .map_err(|e| pg_error("take the migration lock", e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(|e| pg_error("create the schema", e))?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {s}.schema_migrations"), &[])
        .await
        .map_err(|e| pg_error("read the schema version", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(newer) = applied.iter().copied().filter(|v| *v > LATEST).max() {
        return Err(LedgerError::Config(format!(
            "the PostgreSQL schema {schema} is at version {newer}, newer than this costlayer \
             knows ({LATEST}): upgrade costlayer on this host"
        )));
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(&m.sql.replace("{s}", &s))
            .await
            .map_err(|e| pg_error(&format!("apply migration {} ({})", m.version, m.name), e))?;
        tx.execute(
            &format!("INSERT INTO {s}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| pg_error("record the migration", e))?;
        done.push(m.version);
    }
    tx.commit()
        .await
        .map_err(|e| pg_error("commit the migration", e))?;
    if !done.is_empty() {
        tracing::info!(schema, versions = ?done, "costlayer: PostgreSQL schema migrated");
    }
    Ok(done)
}
