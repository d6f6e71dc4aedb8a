//! Differential checks of the ledger line parsers, for the fuzz targets in
//! `fuzz/` and the seed-corpus property test (`tests/fuzz_seeds.rs`). Not
//! part of the public API: hidden, and may change in any release.

use std::io::Read as _;

use super::read::{parse_line, Line, Lines};
use super::{amounts, canonical, read};
use crate::ledger::{CostRecord, RecordRef};

/// Parses `data` (one line, or several) with every parser and panics if
/// two disagree:
///
/// - the hand-written canonical parser, its borrowed form, the serde struct
///   without `flatten` and the full serde parse accept the same records,
///   with the same fields;
/// - every parser applies the same amount checks;
/// - the dashboard's layout-independent scanner, where it takes a line,
///   reads what the general parser reads;
/// - reading `data` as a file (the fast in-buffer path, then the line
///   path) gives, line by line, what the general parser says of the line.
///
/// Never panics otherwise (no input may crash a parser).
pub fn ledger_lines(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        one_line(line);
    }
    file_reading(data);
}

fn one_line(line: &[u8]) {
    let general = parse_line(line);
    let full = serde_json::from_slice::<CostRecord>(line)
        .ok()
        .filter(|r| amounts::check(&r.usage, r.nano_usd, r.saved_nano_usd).is_ok());
    if let Some(fast) = canonical::parse(line) {
        assert_eq!(
            general.as_ref().ok(),
            Some(&fast),
            "canonical vs parse_line"
        );
        assert_eq!(full.as_ref(), Some(&fast), "canonical vs serde");
    }
    match (
        canonical::parse_prefix(line),
        canonical::parse_prefix_ref(line),
    ) {
        (Some((r, e1)), Some((v, e2))) => {
            assert_eq!(RecordRef::from(&r), v, "owned vs borrowed");
            assert_eq!(e1, e2, "owned vs borrowed end");
            assert!(amounts::check(&r.usage, r.nano_usd, r.saved_nano_usd).is_ok());
        }
        (None, None) => {}
        _ => panic!("the owned and borrowed canonical parsers disagree"),
    }
    if let Some(r) = read::fast_parse_for_fuzz(line) {
        let ok = amounts::check(&r.usage, r.nano_usd, r.saved_nano_usd).is_ok();
        if ok {
            assert_eq!(general.as_ref().ok(), Some(&r), "struct vs parse_line");
        } else {
            assert!(general.is_err(), "amounts accepted by one path only");
        }
    }
    let mut scratch = super::scan::Scratch::default();
    if let Some(view) = super::scan::scan_line(line, &mut scratch) {
        let parsed = general.as_ref().ok().map(RecordRef::from);
        assert_eq!(parsed, Some(view), "scanner vs parse_line");
    }
    // The general parser is serde's verdict (or the Python-tool mapping's)
    // plus the amount checks.
    match (&general, &full) {
        (Ok(g), Some(f)) => assert_eq!(g, f, "parse_line vs serde"),
        (Err(_), None) => {}
        // A line of the earlier Python tool: mapped by its own reader.
        (Ok(g), None) => assert_eq!(
            super::legacy::python_line(line, "").ok().as_ref(),
            Some(g),
            "parse_line accepted what neither serde nor the Python-tool mapping reads"
        ),
        (Err(e), Some(_)) => panic!("parse_line rejected what serde accepts: {e}"),
    }
}

fn file_reading(data: &[u8]) {
    let mut lines = Lines::with_capacity(64, data.take(u64::MAX));
    let mut buf = Vec::new();
    loop {
        let before = lines.number;
        let fast = lines.next_canonical().unwrap_or(None);
        if let Some(r) = fast {
            // The line the fast path consumed, parsed on its own.
            let n = usize::try_from(lines.number).unwrap_or(usize::MAX);
            let line = data.split(|&b| b == b'\n').nth(n - 1).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert_eq!(parse_line(line).ok(), Some(r), "in-buffer path vs line");
            continue;
        }
        assert_eq!(lines.number, before);
        match lines.next(&mut buf) {
            Ok(Some(Line::Normal { .. } | Line::Oversized { .. })) => {}
            _ => break,
        }
    }
}
