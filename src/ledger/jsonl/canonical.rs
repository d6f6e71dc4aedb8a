//! A hand-written parser for the exact form this version writes.
//!
//! [`CostRecord`]'s serialisation has a fixed key order and no whitespace.
//! This parser accepts exactly that form (with or without
//! `saved_nano_usd`), and the same form with Python's `json.dumps`
//! separators (`", "` and `": "`, as a script that reads records and
//! writes them back with Python's defaults leaves them), and returns
//! `None` on anything else: another key order, other whitespace, an
//! escape sequence in a string, an unknown field, a float where an integer
//! goes. The caller then falls back to the layout-independent scanner or
//! serde, so the result is always what serde would have produced; this
//! only makes the common case several times faster.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::OnceLock;

use crate::ledger::{CostRecord, RecordRef};
use crate::{Mode, Money, Usage};

const LO: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `i` as a little-endian word, if there are eight.
#[inline]
pub(super) fn word_at(b: &[u8], i: usize) -> Option<u64> {
    let word: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(word))
}

/// The bytes of `w` that end a plain run inside a JSON string (`"`, `\\`,
/// or a control character below 0x20), as their high bits, with the usual
/// zero-byte bit tricks. Exact for the lowest such byte, which is all a
/// caller may use: `trailing_zeros() / 8` is its index.
#[inline]
pub(super) fn stops(w: u64) -> u64 {
    let q = w ^ (LO * u64::from(b'"'));
    let s = w ^ (LO * u64::from(b'\\'));
    ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s) | (w.wrapping_sub(LO * 0x20) & !w)) & HI
}

/// Whether any of the first `n` (< 8) bytes of `w` is not ASCII.
#[inline]
fn high_before(w: u64, n: usize) -> bool {
    let before = (1u64 << (n * 8)).wrapping_sub(1);
    w & HI & before != 0
}

/// `s` as an array of `N` bytes (`N` its length), for [`Cur::lit`]'s
/// fixed-size comparisons.
const fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = s[i];
        i += 1;
    }
    out
}

/// The separator and key before a field, `,"key":` or, in json.dumps'
/// layout (`$spaced`), `, "key": `, as a literal of known length.
macro_rules! key {
    ($c:ident, $spaced:expr, $k:literal) => {{
        const COMPACT: &[u8] = concat!(",\"", $k, "\":").as_bytes();
        const SPACED: &[u8] = concat!(", \"", $k, "\": ").as_bytes();
        const COMPACT_N: [u8; COMPACT.len()] = arr(COMPACT);
        const SPACED_N: [u8; SPACED.len()] = arr(SPACED);
        if $spaced {
            $c.lit(&SPACED_N)
        } else {
            $c.lit(&COMPACT_N)
        }
    }};
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
    /// Whether a string read by [`Cur::str`] held a non-ASCII byte.
    high: bool,
}

impl<'a> Cur<'a> {
    /// A literal; its length is known at compile time, so the comparison
    /// is a few word compares, not a `memcmp` call.
    #[inline]
    fn lit<const N: usize>(&mut self, s: &[u8; N]) -> Option<()> {
        let got: &[u8; N] = self.b.get(self.i..self.i + N)?.try_into().ok()?;
        if got == s {
            self.i += N;
            Some(())
        } else {
            None
        }
    }

    /// A string that should be exactly `N` bytes of ASCII letters, digits
    /// and punctuation other than `"` and `\` (an id, a timestamp): taken
    /// without looking at each byte when its closing quote is where it
    /// should be. The caller's parse of the value (ULID, timestamp) rejects
    /// anything else, exactly as it would the range [`Cur::str`] finds.
    #[inline]
    fn fixed_str<const N: usize>(&mut self) -> Option<Range<usize>> {
        if self.b.get(self.i) == Some(&b'"') && self.b.get(self.i + 1 + N) == Some(&b'"') {
            let r = self.i + 1..self.i + 1 + N;
            self.i += N + 2;
            Some(r)
        } else {
            self.str()
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A non-negative JSON integer that fits in u64 (no leading zeros).
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        // The common case, one digit (most token counts are 0).
        if let Some(c @ b'0'..=b'9') = self.peek() {
            if !self.b.get(start + 1).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
                return Some(u64::from(c - b'0'));
            }
        }
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        Some(n)
    }

    #[inline]
    fn int(&mut self) -> Option<i64> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            let m = self.uint()?;
            if m == 0 {
                // serde_json reads `-0` as a float, which an integer field
                // refuses: serde decides.
                return None;
            }
            if m == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(m).ok().map(|v| -v)
            }
        } else {
            i64::try_from(self.uint()?).ok()
        }
    }

    /// A string without escapes or control characters, as a byte range
    /// (UTF-8 is checked once for the whole record, at the end).
    ///
    /// Eight bytes at a time: a word's bytes that are `"`, `\\` or below
    /// 0x20 are found with the usual zero-byte bit tricks (exact for the
    /// lowest such byte, which is all that is used).
    #[inline]
    fn str(&mut self) -> Option<Range<usize>> {
        self.lit(b"\"")?;
        let start = self.i;
        let b = self.b;
        let mut i = start;
        while let Some(w) = word_at(b, i) {
            let stop = stops(w);
            if stop != 0 {
                // The first such byte: `n` < 8.
                let n = (stop.trailing_zeros() / 8) as usize;
                self.high |= high_before(w, n);
                i += n;
                break;
            }
            self.high |= w & HI != 0;
            i += 8;
        }
        loop {
            let c = *b.get(i)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            self.high |= c >= 0x80;
            i += 1;
        }
        self.i = i + 1;
        Some(start..i)
    }

    #[inline]
    fn opt_str(&mut self) -> Option<Option<Range<usize>>> {
        if self.lit(b"null").is_some() {
            Some(None)
        } else {
            self.str().map(Some)
        }
    }

    #[inline]
    fn opt_int(&mut self) -> Option<Option<i64>> {
        if self.lit(b"null").is_some() {
            Some(None)
        } else {
            self.int().map(Some)
        }
    }

    fn bool(&mut self) -> Option<bool> {
        if self.lit(b"true").is_some() {
            Some(true)
        } else {
            self.lit(b"false").map(|()| false)
        }
    }

    /// A flat object of string values; `each` sees every key and value.
    /// `S`: json.dumps' separators (`", "` and `": "`), as in [`fields`].
    fn tags<const S: bool>(
        &mut self,
        mut each: impl FnMut(Range<usize>, Range<usize>),
    ) -> Option<()> {
        self.lit(b"{")?;
        if self.lit(b"}").is_some() {
            return Some(());
        }
        loop {
            let k = self.str()?;
            if S {
                self.lit(b": ")?;
            } else {
                self.lit(b":")?;
            }
            let v = self.str()?;
            each(k, v);
            match self.peek()? {
                b',' if S => self.lit(b", ")?,
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Parses a line in the canonical form, or returns `None`.
pub(crate) fn parse(line: &[u8]) -> Option<CostRecord> {
    let (rec, end) = parse_prefix(line)?;
    // Only JSON whitespace may follow (a form feed may not, as for serde).
    if line[end..].iter().all(super::amounts::is_json_ws) {
        Some(rec)
    } else {
        None
    }
}

/// The fields of a canonical line: numbers parsed, strings as byte ranges
/// into the line (not yet checked as UTF-8).
struct Fields {
    /// Whether a string other than the id and timestamp holds a non-ASCII
    /// byte (if not, those strings are ASCII, so valid UTF-8).
    high: bool,
    v: u32,
    id: Range<usize>,
    ts: Range<usize>,
    user: Range<usize>,
    team: Option<Range<usize>>,
    provider: Range<usize>,
    model: Range<usize>,
    mode: Mode,
    usage: Usage,
    nano_usd: Option<Money>,
    cached: bool,
    saved_nano_usd: Option<Money>,
    latency_ms: u64,
    request_id: Option<Range<usize>>,
    price_version: Option<Range<usize>>,
}

/// Reads the canonical form at the start of `bytes`: the fields and the
/// index just past the closing brace. `tag` sees every tag. `S` is
/// whether the separators are json.dumps' (`", "` and `": "`) rather than
/// costlayer's (`,` and `:`): the same fields in the same order, as a
/// script that reads records and writes them back with Python's defaults
/// leaves them.
#[inline]
fn fields<const S: bool>(
    bytes: &[u8],
    tag: impl FnMut(Range<usize>, Range<usize>),
) -> Option<(Fields, usize)> {
    let mut c = Cur {
        b: bytes,
        i: 0,
        high: false,
    };
    if S {
        c.lit(b"{\"v\": ")?;
    } else {
        c.lit(b"{\"v\":")?;
    }
    let v = u32::try_from(c.uint()?).ok()?;
    key!(c, S, "id")?;
    let id = c.fixed_str::<26>()?;
    key!(c, S, "ts")?;
    let ts = c.fixed_str::<24>()?;
    key!(c, S, "user")?;
    let user = c.str()?;
    key!(c, S, "team")?;
    let team = c.opt_str()?;
    key!(c, S, "provider")?;
    let provider = c.str()?;
    key!(c, S, "model")?;
    let model = c.str()?;
    key!(c, S, "mode")?;
    let mode = match &bytes[c.str()?] {
        b"online" => Mode::Online,
        b"batch" => Mode::Batch,
        _ => return None,
    };
    key!(c, S, "input_tokens")?;
    let input_tokens = c.uint()?;
    key!(c, S, "output_tokens")?;
    let output_tokens = c.uint()?;
    key!(c, S, "cache_read_tokens")?;
    let cache_read_tokens = c.uint()?;
    key!(c, S, "cache_write_5m_tokens")?;
    let cache_write_5m_tokens = c.uint()?;
    key!(c, S, "cache_write_1h_tokens")?;
    let cache_write_1h_tokens = c.uint()?;
    key!(c, S, "reasoning_tokens")?;
    let reasoning_tokens = c.uint()?;
    key!(c, S, "nano_usd")?;
    let nano_usd = c.opt_int()?.map(Money::from_nanos);
    key!(c, S, "cached")?;
    let cached = c.bool()?;
    let saved_nano_usd = if key!(c, S, "saved_nano_usd").is_some() {
        c.opt_int()?.map(Money::from_nanos)
    } else {
        None
    };
    key!(c, S, "latency_ms")?;
    let latency_ms = c.uint()?;
    key!(c, S, "request_id")?;
    let request_id = c.opt_str()?;
    key!(c, S, "tags")?;
    c.tags::<S>(tag)?;
    key!(c, S, "price_version")?;
    let price_version = c.opt_str()?;
    c.lit(b"}")?;
    let usage = Usage {
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_5m_tokens,
        cache_write_1h_tokens,
        reasoning_tokens,
        ..Usage::default()
    };
    // Out-of-range amounts are declined here and reported by the fallback
    // parser, which applies the same check.
    super::amounts::check(&usage, nano_usd, saved_nano_usd).ok()?;
    let f = Fields {
        high: c.high,
        v,
        id,
        ts,
        user,
        team,
        provider,
        model,
        mode,
        usage,
        nano_usd,
        cached,
        saved_nano_usd,
        latency_ms,
        request_id,
        price_version,
    };
    Some((f, c.i))
}

/// [`fields`] in costlayer's layout or json.dumps' (told apart by the
/// byte after `{"v":`).
#[inline]
fn either_layout(
    bytes: &[u8],
    tag: impl FnMut(Range<usize>, Range<usize>),
) -> Option<(Fields, usize)> {
    if bytes.get(5) == Some(&b' ') {
        fields::<true>(bytes, tag)
    } else {
        fields::<false>(bytes, tag)
    }
}

/// Parses a canonical record at the start of `bytes` (which may hold more
/// lines after it) and returns it with the index just past its closing
/// brace. The parser cannot run past a newline: literals hold none, and a
/// string with a control character (a newline included) is declined.
pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<(CostRecord, usize)> {
    let mut tags = Vec::new();
    let (f, end) = either_layout(bytes, |k, v| tags.push((k, v)))?;
    // One UTF-8 check for the whole record; every range above starts and
    // ends next to an ASCII quote, so `get` cannot fail on a boundary.
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let owned = |r: Range<usize>| text.get(r).map(str::to_owned);
    let opt = |r: Option<Range<usize>>| match r {
        Some(r) => owned(r).map(Some),
        None => Some(None),
    };
    let rec = CostRecord {
        v: f.v,
        id: ulid::Ulid::from_string(text.get(f.id)?).ok()?,
        ts: super::read::parse_ts_fast(text.get(f.ts)?)?,
        user: owned(f.user)?.into(),
        team: opt(f.team)?.map(Into::into),
        provider: owned(f.provider)?.into(),
        model: owned(f.model)?.into(),
        mode: f.mode,
        usage: f.usage,
        nano_usd: f.nano_usd,
        cached: f.cached,
        saved_nano_usd: f.saved_nano_usd,
        latency_ms: f.latency_ms,
        request_id: opt(f.request_id)?.map(Into::into),
        tags: {
            let mut map = BTreeMap::new();
            for (k, v) in tags {
                map.insert(owned(k)?, owned(v)?);
            }
            map
        },
        price_version: opt(f.price_version)?.map(Into::into),
        cost_status: crate::CostStatus::Exact,
        cost_notes: Vec::new(),
        extra: serde_json::Map::new(),
    };
    Some((rec, end))
}

/// Whether `ulid::Ulid::from_string` accepts these bytes: 26 of them, each
/// a digit of its base 32 alphabet. The alphabet is read from the `ulid`
/// crate itself, once, so the two can never disagree.
pub(crate) fn is_ulid(b: &[u8]) -> bool {
    // Indexed by any byte, so the loop below needs no bounds check.
    static DIGITS: OnceLock<[bool; 256]> = OnceLock::new();
    let digits = DIGITS.get_or_init(|| {
        let mut ok = [false; 256];
        let mut s = [b'0'; 26];
        for (c, slot) in (0u8..128).zip(ok.iter_mut()) {
            s[25] = c;
            *slot = std::str::from_utf8(&s)
                .ok()
                .is_some_and(|s| ulid::Ulid::from_string(s).is_ok());
        }
        ok
    });
    b.len() == 26 && b.iter().all(|&c| digits[usize::from(c)])
}

/// [`parse_prefix`] without allocating: the same lines are accepted (the
/// same UTF-8, id and timestamp checks), and the view borrows its strings
/// from `bytes`.
pub(crate) fn parse_prefix_ref(bytes: &[u8]) -> Option<(RecordRef<'_>, usize)> {
    let (f, end) = either_layout(bytes, |_, _| {})?;
    // The record is valid UTF-8 if every string is: the rest is ASCII. If
    // no string held a non-ASCII byte, only the id and timestamp could
    // hold one, and their checks accept ASCII alone.
    if f.high {
        std::str::from_utf8(&bytes[..end]).ok()?;
    }
    if !is_ulid(&bytes[f.id]) {
        return None;
    }
    let ts = super::read::parse_ts_bytes(&bytes[f.ts])?;
    // user, team, provider and model are next to each other: one UTF-8
    // conversion for the four.
    let base = f.user.start;
    let text = std::str::from_utf8(&bytes[base..f.model.end]).ok()?;
    let text = |r: Range<usize>| text.get(r.start - base..r.end - base);
    let team = match f.team {
        Some(r) => Some(text(r)?),
        None => None,
    };
    let rec = RecordRef {
        ts,
        user: text(f.user)?,
        team,
        provider: text(f.provider)?,
        model: text(f.model)?,
        mode: f.mode,
        usage: f.usage,
        nano_usd: f.nano_usd,
        cached: f.cached,
        saved_nano_usd: f.saved_nano_usd,
        latency_ms: f.latency_ms,
        // The exact form has no `cost_status` (omitted when exact); a line
        // that carries one falls back to the full parse.
        cost_status: crate::CostStatus::Exact,
    };
    Some((rec, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time reading the word-at-a-time [`Cur::str`] replaces.
    fn str_bytewise(b: &[u8]) -> Option<(Range<usize>, bool, usize)> {
        if b.first() != Some(&b'"') {
            return None;
        }
        let mut high = false;
        let mut i = 1;
        loop {
            let c = *b.get(i)?;
            if c == b'"' {
                return Some((1..i, high, i + 1));
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            high |= c >= 0x80;
            i += 1;
        }
    }

    #[test]
    fn word_at_a_time_strings_read_as_byte_by_byte_and_integers_as_std() {
        let specials = [
            b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xc3, 0xff, b'a',
        ];
        for len in 0..40 {
            for at in 0..=len {
                for &x in &specials {
                    for &y in &[b'"', b'x', 0xe9] {
                        let mut b = vec![b'"'];
                        b.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                        if at < len {
                            b[1 + at] = x;
                        }
                        b.push(y);
                        for pad in 0..3 {
                            let mut c = Cur {
                                b: &b,
                                i: 0,
                                high: false,
                            };
                            let got = c.str().map(|r| (r, c.high, c.i));
                            assert_eq!(got, str_bytewise(&b), "{b:?}");
                            b.push(b'"');
                            let _ = pad;
                        }
                    }
                }
            }
        }
        for text in [
            "0",
            "7",
            "00",
            "01",
            "10",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "9999999999999999999",
            "1234567890123456789",
            "",
            "x",
            "12x",
            "000000000000000000000001",
        ] {
            let mut c = Cur {
                b: text.as_bytes(),
                i: 0,
                high: false,
            };
            let got = c.uint().map(|n| (n, c.i));
            let want = if text.is_empty()
                || !text.as_bytes()[0].is_ascii_digit()
                || (text.len() > 1 && text.starts_with('0') && text.as_bytes()[1].is_ascii_digit())
            {
                None
            } else {
                let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok().map(|n| (n, digits.len()))
            };
            assert_eq!(got, want, "{text}");
        }
    }

    fn sample() -> CostRecord {
        let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(3, 4));
        r.nano_usd = Some(Money::from_nanos(super::super::amounts::MAX_RECORD_NANOS));
        r.tags.insert("a".into(), "b".into());
        r.tags.insert("é".into(), "ü".into());
        r.team = Some("t".into());
        r.latency_ms = u64::MAX;
        r
    }

    #[test]
    fn parses_what_serde_writes() {
        for mut r in [sample(), CostRecord::new("u", "p", "m", Usage::default())] {
            for saved in [None, Some(Money::from_nanos(5))] {
                r.saved_nano_usd = saved;
                r.cached = saved.is_some();
                let line = serde_json::to_vec(&r).expect("ser");
                assert_eq!(
                    parse(&line).as_ref(),
                    Some(&r),
                    "{}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }

    #[test]
    fn declines_everything_else_so_serde_decides() {
        let line = String::from_utf8(serde_json::to_vec(&sample()).expect("ser")).expect("utf8");
        // The amount's digits.
        let nano = line.find("\"nano_usd\":").expect("nano_usd") + "\"nano_usd\":".len();
        let nano_end = nano + line[nano..].find(',').expect("comma");
        let minus_zero = format!("{}-0{}", &line[..nano], &line[nano_end..]);
        assert!(
            serde_json::from_str::<CostRecord>(&minus_zero).is_err(),
            "serde refuses -0 for an integer: {minus_zero}"
        );
        let variants = [
            line.replace("\"user\":\"alice\"", "\"user\":\"al\\u0069ce\""), // escape
            line.replace("\"input_tokens\":3", "\"input_tokens\":03"),      // leading zero
            line.replace("\"input_tokens\":3", "\"input_tokens\":3.0"),     // float
            line.replace("\"input_tokens\":3", "\"input_tokens\":-3"),      // negative
            minus_zero.clone(),                                             // minus zero
            line.replace("\"mode\":\"online\"", "\"mode\":\"Online\""),     // bad enum
            line.replace('}', ",\"x\":1}"),                                 // unknown field
            line.replace("{\"v\":1,", "{ \"v\":1,"),                        // whitespace
            format!("{line}x"),                                             // trailing junk
            line[..line.len() - 1].to_owned(),                              // torn
        ];
        for v in variants {
            assert!(parse(v.as_bytes()).is_none(), "{v}");
        }
        let big = line.replace(
            "\"input_tokens\":3",
            "\"input_tokens\":18446744073709551616",
        );
        assert!(parse(big.as_bytes()).is_none());
        assert!(parse(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn the_borrowed_view_accepts_exactly_the_same_lines() {
        let mut fixed = sample();
        fixed.ts = "2026-11-01T10:20:00.123Z".parse().expect("ts");
        fixed.id = "01JDQ3Z6Y2V8W5H4K7M9N0P1Q2".parse().expect("id");
        let line = String::from_utf8(serde_json::to_vec(&fixed).expect("ser")).expect("utf8");
        let mut lines = vec![
            line.clone(),
            format!("{line}\n{line}\n"),
            line.replace("\"id\":\"0", "\"id\":\"U"), // not Crockford base 32
            line.replace("\"id\":\"0", "\"id\":\"0U"), // 27 chars
            line.replace("T", "t"),                   // lower-case time separator
            line.replace(":00.", ":60."),             // second 60
            line.replace("\"team\":\"t\"", "\"team\":null"),
            line.replace("\"tags\":{", "\"tags\":{\"x\":\"\\u00e9\","),
            line.replace("\"user\":\"alice\"", "\"user\":\"al\u{e9}ce\""),
            line.replace("alice", "al\u{7f}ce"),
            line.replace("01JDQ3Z6Y2V8", "01JDQ3Z6Y2\u{e9}"), // non-ASCII id, 26 bytes
            line.replace("01JDQ3Z6Y2V8", "01JDQ3Z6Y2\"8"),    // quote inside the id
            line.replace("01JDQ3Z6Y2V8", "01JDQ3Z6Y2\\8"),    // backslash inside the id
            line.replace(".123Z", "Z\"\"\"\""),               // 24 bytes, not a timestamp
            line.replace(".123Z", "\u{e9}Z\""),               // non-ASCII timestamp
        ];
        let mut bad_utf8 = line.clone().into_bytes();
        let at = line.find("gpt").expect("model");
        bad_utf8[at] = 0xc3;
        for saved in [Some(Money::from_nanos(3)), None] {
            let mut r = CostRecord::new("b", "anthropic", "claude", Usage::new(1, 1));
            r.saved_nano_usd = saved;
            r.mode = Mode::Batch;
            lines.push(serde_json::to_string(&r).expect("ser"));
        }
        let mut accepted = 0;
        for l in lines
            .iter()
            .map(|l| l.as_bytes())
            .chain([bad_utf8.as_slice()])
        {
            let owned = parse_prefix(l);
            let view = parse_prefix_ref(l);
            match (&owned, view) {
                (Some((r, e1)), Some((v, e2))) => {
                    assert_eq!(RecordRef::from(r), v);
                    assert_eq!(*e1, e2);
                    accepted += 1;
                }
                (None, None) => {}
                _ => panic!("disagree on {}", String::from_utf8_lossy(l)),
            }
        }
        // The sample twice, team null, non-ASCII and DEL, and the two
        // records with and without savings.
        assert_eq!(accepted, 7);
    }

    /// `compact` JSON with json.dumps' separators: a space after every
    /// `:` and `,` outside strings.
    fn spaced(compact: &str) -> String {
        let (mut out, mut in_str, mut esc) = (String::new(), false, false);
        for ch in compact.chars() {
            out.push(ch);
            if in_str {
                match (esc, ch) {
                    (true, _) => esc = false,
                    (false, '\\') => esc = true,
                    (false, '"') => in_str = false,
                    _ => {}
                }
            } else if ch == '"' {
                in_str = true;
            } else if ch == ':' || ch == ',' {
                out.push(' ');
            }
        }
        out
    }

    #[test]
    fn json_dumps_separators_are_read_as_serde_reads_them() -> Result<(), serde_json::Error> {
        let mut records = vec![sample(), CostRecord::new("u", "p", "m", Usage::default())];
        let mut saved = sample();
        saved.saved_nano_usd = Some(Money::from_nanos(5));
        saved.cached = true;
        saved.team = None;
        records.push(saved);
        for r in &records {
            let line = spaced(&serde_json::to_string(r)?);
            assert!(line.contains("\"v\": 1, \"id\": \""), "{line}");
            assert_eq!(serde_json::from_str::<CostRecord>(&line)?, *r);
            assert_eq!(parse(line.as_bytes()).as_ref(), Some(r), "{line}");
            let (view, end) = parse_prefix_ref(line.as_bytes()).expect("view");
            assert_eq!(view, RecordRef::from(r));
            assert_eq!(end, line.len());
            // A second line after it is not read into the first.
            let two = format!("{line}\n{line}\n");
            let (owned, end) = parse_prefix(two.as_bytes()).expect("prefix");
            assert_eq!((&owned, end), (r, line.len()));
            // Separators of both layouts in one line: serde reads it, this
            // parser leaves it to the scanner.
            for (from, to) in [(", \"ts\": ", ",\"ts\": "), ("\"ts\": ", "\"ts\":")] {
                let mixed = line.replacen(from, to, 1);
                assert_ne!(mixed, line);
                assert_eq!(serde_json::from_str::<CostRecord>(&mixed)?, *r);
                assert!(parse(mixed.as_bytes()).is_none(), "{mixed}");
                assert!(parse_prefix_ref(mixed.as_bytes()).is_none(), "{mixed}");
            }
            // Two spaces, or a tab, where json.dumps writes one.
            for (from, to) in [("\"ts\": ", "\"ts\":  "), (", \"ts\"", ",\t\"ts\"")] {
                assert!(parse(line.replacen(from, to, 1).as_bytes()).is_none());
            }
        }
        // The tags' own separators must match the line's.
        let line = spaced(&serde_json::to_string(&sample())?);
        let odd = line.replacen("\"a\": \"b\", ", "\"a\":\"b\",", 1);
        assert_ne!(odd, line);
        assert!(parse(odd.as_bytes()).is_none(), "{odd}");
        Ok(())
    }

    #[test]
    fn the_ulid_check_agrees_with_the_ulid_crate() {
        let good = "01JDQ3Z6Y2V8W5H4K7M9N0P1Q2";
        let mut cases = vec![
            good.to_owned(),
            good.to_lowercase(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        ];
        for c in (1u8..128).map(char::from).chain(['\u{e9}', '\u{2603}']) {
            for at in [0, 13, 25] {
                let mut s: Vec<char> = good.chars().collect();
                s[at] = c;
                cases.push(s.into_iter().collect());
            }
        }
        cases.push(good[..25].to_owned());
        cases.push(format!("{good}0"));
        for s in cases {
            assert_eq!(
                is_ulid(s.as_bytes()),
                ulid::Ulid::from_string(&s).is_ok(),
                "{s:?}"
            );
        }
    }
}
