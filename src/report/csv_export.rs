//! CSV export: one RFC 4180 row per record, streaming.

use std::borrow::Cow;
use std::io::Write;

use chrono::SecondsFormat;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::ledger::{CostRecord, RecordStream, ScanItem};

use super::ReportError;

/// The header row of [`export_csv`], in column order.
///
/// Every [`CostRecord`] field has a column. Money is written as exact decimal
/// dollars with nine decimals (`cost_usd`, `saved_usd`; empty when the record
/// has none, e.g. an unpriced call). `tags` is a JSON object; `extra` holds
/// the fields this version of costlayer does not know, as a JSON object.
/// `cost_status` is `exact`, `incomplete` (the usage held a billed
/// dimension the price table could not price, named in `cost_notes`,
/// `; `-separated: `cost_usd` is a lower bound) or `estimated`.
pub const CSV_HEADER: [&str; 27] = [
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
    "cost_usd",
    "cached",
    "saved_usd",
    "latency_ms",
    "request_id",
    "tags",
    "price_version",
    "extra",
    "cost_status",
    "cost_notes",
    "input_audio_tokens",
    "web_search_requests",
    "service_tier",
];

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportStats {
    /// Rows written (one per record; the header is not counted).
    pub records: u64,
    /// Corrupted ledger lines skipped.
    pub corrupted_lines: u64,
}

/// Neutralises a cell a spreadsheet would execute as a formula.
///
/// Following OWASP's CSV-injection guidance, a cell is prefixed with a
/// single quote (`'`) when it starts with a character a spreadsheet may
/// read as the start of a formula, or one it may skip before reading one:
///
/// - `=`, `+`, `-`, `@`, `|` (DDE), `%`, and their full-width forms
///   (`＝`, `＋`, `－`, `＠`, `｜`, `％`), which some spreadsheets normalise;
/// - any whitespace or control character: tab, CR, LF, space, NBSP and the
///   other Unicode spaces;
/// - invisible characters: the byte-order mark (U+FEFF), zero-width space,
///   joiners and other format characters (U+200B–U+200F, U+2060–U+2064,
///   U+202A–U+202E, U+2066–U+2069).
///
/// Every other cell is returned unchanged. Applied to every text column
/// that comes from callers or providers (user, team, model, tags, request
/// id, ...); the numeric columns costlayer writes itself are left alone.
///
/// ```
/// use costlayer::report::neutralize_cell;
/// assert_eq!(neutralize_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
/// assert_eq!(neutralize_cell(" =1+1"), "' =1+1");
/// assert_eq!(neutralize_cell("\u{FF1D}1+1"), "'\u{FF1D}1+1");
/// assert_eq!(neutralize_cell("alice"), "alice");
/// ```
pub fn neutralize_cell(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if is_risky_start(c) => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn is_risky_start(c: char) -> bool {
    matches!(
        c,
        '=' | '+'
            | '-'
            | '@'
            | '|'
            | '%'
            | '\u{FF1D}'
            | '\u{FF0B}'
            | '\u{FF0D}'
            | '\u{FF20}'
            | '\u{FF5C}'
            | '\u{FF05}'
            | '\u{FEFF}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
    ) || c.is_whitespace()
        || c.is_control()
}

/// Writes every record of `stream` to `writer` as CSV, with a header row
/// ([`CSV_HEADER`]), one record at a time: memory stays flat however large
/// the ledger. Corrupted lines are skipped and counted.
///
/// # Errors
///
/// [`ReportError::Ledger`] if the ledger cannot be read, [`ReportError::Csv`]
/// if the writer fails.
///
/// # Example
///
/// ```
/// use costlayer::ledger::{CostRecord, MemoryStorage, ScanFilter, Storage};
/// use costlayer::report::export_csv;
/// use costlayer::{Money, Usage};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ledger = MemoryStorage::new();
/// let mut r = CostRecord::new("=cmd", "openai", "gpt-4o", Usage::new(10, 5));
/// r.nano_usd = Some(Money::from_nanos(11_500_000));
/// ledger.append(&r).await?;
/// let mut out = Vec::new();
/// let stats = export_csv(ledger.scan(&ScanFilter::default()).await?, &mut out).await?;
/// assert_eq!(stats.records, 1);
/// let text = String::from_utf8(out)?;
/// assert!(text.starts_with("v,id,ts,user,"));
/// assert!(text.contains(",'=cmd,"));
/// assert!(text.contains(",0.011500000,"));
/// # Ok(()) }
/// ```
pub async fn export_csv<W: Write>(
    mut stream: RecordStream,
    writer: W,
) -> Result<ExportStats, ReportError> {
    let mut w = CsvWriter::new(writer)?;
    while let Some(item) = stream.next().await {
        w.push(&item?)?;
    }
    w.finish()
}

/// The synchronous, push-based form of [`export_csv`], for callers that
/// scan the ledger themselves (such as
/// [`JsonlStorage::scan_blocking`](crate::ledger::JsonlStorage::scan_blocking)).
///
/// [`CsvWriter::new`] writes the header; [`CsvWriter::push`] writes a
/// record or counts a corrupted line; [`CsvWriter::finish`] flushes.
///
/// ```
/// use costlayer::ledger::{CostRecord, ScanItem};
/// use costlayer::report::CsvWriter;
/// use costlayer::Usage;
///
/// let mut out = Vec::new();
/// let mut w = CsvWriter::new(&mut out).unwrap();
/// w.push(&ScanItem::Record(CostRecord::new("bob", "gemini", "gemini-2.5-pro", Usage::new(1, 2)))).unwrap();
/// assert_eq!(w.finish().unwrap().records, 1);
/// assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
/// ```
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    w: csv::Writer<W>,
    stats: ExportStats,
}

impl<W: Write> CsvWriter<W> {
    /// Starts an export to `writer` and writes the header row.
    ///
    /// # Errors
    ///
    /// [`ReportError::Csv`] if the writer fails.
    pub fn new(writer: W) -> Result<Self, ReportError> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(writer);
        w.write_record(CSV_HEADER).map_err(csv_err)?;
        Ok(CsvWriter {
            w,
            stats: ExportStats::default(),
        })
    }

    /// Writes a record's row, or counts a corrupted line.
    ///
    /// # Errors
    ///
    /// [`ReportError::Csv`] if the writer fails.
    pub fn push(&mut self, item: &ScanItem) -> Result<(), ReportError> {
        match item {
            ScanItem::Record(r) => self.write(r),
            ScanItem::Corrupt(_) => {
                self.stats.corrupted_lines += 1;
                Ok(())
            }
        }
    }

    /// Writes one record's row.
    ///
    /// # Errors
    ///
    /// [`ReportError::Csv`] if the writer fails.
    pub fn write(&mut self, r: &CostRecord) -> Result<(), ReportError> {
        self.w
            .write_record(row(r).iter().map(|c| c.as_ref()))
            .map_err(csv_err)?;
        self.stats.records += 1;
        Ok(())
    }

    /// Flushes the output and returns what was written.
    ///
    /// # Errors
    ///
    /// [`ReportError::Csv`] if the final flush fails.
    pub fn finish(mut self) -> Result<ExportStats, ReportError> {
        self.w.flush().map_err(|e| csv_err(e.into()))?;
        Ok(self.stats)
    }
}

fn csv_err(source: csv::Error) -> ReportError {
    ReportError::Csv { path: None, source }
}

fn row(r: &CostRecord) -> [Cow<'_, str>; 27] {
    // Known secrets masked (a provider echoing a key into an id), then
    // formula starts neutralised.
    let text = |s: &'_ str| neutralize_cell(&costlayer_core::redact::text(s)).into_owned();
    let json =
        |v: String| Cow::Owned(neutralize_cell(&costlayer_core::redact::text(&v)).into_owned());
    [
        Cow::Owned(r.v.to_string()),
        Cow::Owned(r.id.to_string()),
        Cow::Owned(r.ts.to_rfc3339_opts(SecondsFormat::Millis, true)),
        Cow::Owned(text(&r.user)),
        Cow::Owned(r.team.as_deref().map(text).unwrap_or_default()),
        Cow::Owned(text(&r.provider)),
        Cow::Owned(text(&r.model)),
        Cow::Borrowed(r.mode.as_str()),
        Cow::Owned(r.usage.input_tokens.to_string()),
        Cow::Owned(r.usage.output_tokens.to_string()),
        Cow::Owned(r.usage.cache_read_tokens.to_string()),
        Cow::Owned(r.usage.cache_write_5m_tokens.to_string()),
        Cow::Owned(r.usage.cache_write_1h_tokens.to_string()),
        Cow::Owned(r.usage.reasoning_tokens.to_string()),
        Cow::Owned(
            r.nano_usd
                .map(|m| m.to_decimal_string())
                .unwrap_or_default(),
        ),
        Cow::Borrowed(if r.cached { "true" } else { "false" }),
        Cow::Owned(
            r.saved_nano_usd
                .map(|m| m.to_decimal_string())
                .unwrap_or_default(),
        ),
        Cow::Owned(r.latency_ms.to_string()),
        Cow::Owned(r.request_id.as_deref().map(text).unwrap_or_default()),
        json(serde_json::to_string(&r.tags).unwrap_or_default()),
        Cow::Owned(r.price_version.as_deref().map(text).unwrap_or_default()),
        if r.extra.is_empty() {
            Cow::Borrowed("")
        } else {
            json(serde_json::Value::Object(r.extra.clone()).to_string())
        },
        Cow::Borrowed(r.cost_status.as_str()),
        Cow::Owned(text(&r.cost_notes.join("; "))),
        Cow::Owned(r.usage.input_audio_tokens.to_string()),
        Cow::Owned(r.usage.web_search_requests.to_string()),
        Cow::Borrowed(r.usage.service_tier.as_str()),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_formula_starts_are_neutralised() {
        for bad in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "\nx",
            " =x",
            "\u{a0}=x",
            "\u{feff}=x",
            "\u{200b}=x",
            "\u{ff1d}1",
            "\u{ff0b}1",
            "\u{ff0d}1",
            "\u{ff20}x",
            "|cmd",
            "%0A",
        ] {
            assert_eq!(neutralize_cell(bad), format!("'{bad}"));
        }
        for ok in ["", "alice", "a=b", "1.5", "{\"k\":\"v\"}"] {
            assert!(matches!(neutralize_cell(ok), Cow::Borrowed(_)), "{ok}");
        }
    }
}
