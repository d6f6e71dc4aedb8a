//! The dashboard's line scanner: reads the fields a report needs out of
//! **any** valid line of the ledger's schema, whatever its layout.
//!
//! The canonical parser ([`super::canonical`]) only takes the exact bytes
//! this version writes, and the same with Python's `json.dumps`
//! separators (a space after every `:` and `,`). Lines written by other
//! tools in another key order, with other whitespace, escapes, unknown
//! fields or optional fields left out, used to go through serde, several
//! times slower. This scanner takes them all:
//!
//! - whitespace between tokens, keys in any order, fields left out (they
//!   take serde's defaults), unknown fields (their values are checked as
//!   JSON and skipped, as serde keeps them in `extra`);
//! - escapes: the strings a report keeps (user, team, provider, model) are
//!   decoded into a scratch buffer; every other string is checked, as
//!   serde would check it, and skipped;
//! - the id, tags, request id, price version and cost notes are checked
//!   (type, ULID alphabet, UTF-8) but not kept.
//!
//! It never guesses: anything it is not certain serde would read the same
//! way (a float where an integer goes, a repeated
//! field, a control character, a timestamp in another form, a negative
//! amount, nesting deeper than [`MAX_DEPTH`]) makes it return `None`, and
//! the caller falls back to the full parser, which decides. The
//! differential tests check that whatever it accepts, the full parser
//! reads to the same [`RecordRef`].

use std::ops::Range;

use crate::ledger::RecordRef;
use crate::{CostStatus, Mode, Money, ServiceTier, Usage};

/// Nesting deeper than this inside an unknown field's value is left to the
/// full parser (serde_json stops at 128).
const MAX_DEPTH: u32 = 64;

/// Where the decoded strings of escaped fields go, reused from line to
/// line (no allocation once warm), and the key order the lines read so far
/// used.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// For each field (and [`field::START`], before the first), the field
    /// that followed it in the last line where the one expected did not:
    /// lines of one file are usually written by one writer, in one key
    /// order (costlayer's, or sorted as Python's `sort_keys=True` and
    /// serde_json's `Value` write them), so after a line or two every key
    /// is the one expected, read by one comparison. Starts as costlayer's
    /// order. Only a guess: a key not expected is read and looked up.
    next: [u8; field::START as usize + 1],
    user: String,
    team: String,
    provider: String,
    model: String,
    /// The current key, if escaped.
    key: String,
    /// Escaped strings that are checked, not kept.
    junk: String,
}

impl Default for Scratch {
    fn default() -> Self {
        let mut next = [field::UNKNOWN; field::START as usize + 1];
        next[..field::NEXT.len()].copy_from_slice(&field::NEXT);
        next[usize::from(field::START)] = field::V;
        Scratch {
            next,
            user: String::new(),
            team: String::new(),
            provider: String::new(),
            model: String::new(),
            key: String::new(),
            junk: String::new(),
        }
    }
}

/// A kept string: in the line, or decoded into the scratch buffer.
#[derive(Clone)]
enum Src {
    Line(Range<usize>),
    Decoded,
}

/// A string token: its raw bytes (between the quotes) and whether it holds
/// an escape.
struct Tok {
    raw: Range<usize>,
    escaped: bool,
}

/// A cursor over one line, which [`scan_line`] has checked is valid UTF-8
/// as a whole: every string between two quotes of it is then valid UTF-8
/// too (a quote is never part of a multi-byte character), so strings are
/// not checked one by one.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    #[inline]
    fn ws(&mut self) {
        // The common cases first: no whitespace (costlayer's layout), or one
        // space (`json.dumps`).
        match self.b.get(self.i) {
            Some(&c) if c > b' ' => return,
            Some(b' ') if self.b.get(self.i + 1).is_some_and(|&c| c > b' ') => {
                self.i += 1;
                return;
            }
            _ => {}
        }
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + s.len())? == s {
            self.i += s.len();
            Some(())
        } else {
            None
        }
    }

    /// A string token (after whitespace): checked as serde would check it
    /// (valid escapes, no control character; UTF-8 was checked for the
    /// whole line), not decoded.
    ///
    /// Plain runs are skipped eight bytes at a time (the canonical parser's
    /// word tricks); only a stop byte (`"`, `\\`, a control character) and
    /// the last few bytes of the line are looked at one by one.
    #[inline]
    fn string(&mut self) -> Option<Tok> {
        use super::canonical::{stops, word_at};
        self.eat(b'"')?;
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(w) = word_at(b, i) {
                let stop = stops(w);
                if stop != 0 {
                    i += (stop.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let c = *b.get(i)?;
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character: serde refuses it.
                0..=0x1f => return None,
                // A plain byte of the line's last few (fewer than eight).
                _ => i += 1,
            }
        }
        self.i = i + 1;
        Some(Tok {
            raw: start..i,
            escaped,
        })
    }

    /// A string's text as bytes: borrowed from the line, or decoded into
    /// `buf` if it holds an escape (ids, timestamps, enum values, keys).
    #[inline]
    fn text<'s>(&mut self, buf: &'s mut String) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        let t = self.string()?;
        if !t.escaped {
            return Some(&self.b[t.raw]);
        }
        buf.clear();
        decode(&self.b[t.raw], buf)?;
        Some(buf.as_bytes())
    }

    /// A string that should be exactly `N` bytes of ASCII letters, digits
    /// and punctuation other than `"` and `\\` (an id, a timestamp): taken
    /// without looking at each byte when a quote is where its closing quote
    /// should be, as the canonical parser does. The caller's check of the
    /// value (ULID, timestamp) refuses anything else, exactly as it would
    /// the text [`Cur::text`] reads.
    #[inline]
    fn fixed_or_text<'s, const N: usize>(&mut self, buf: &'s mut String) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        if self.peek()? == b'"' && self.b.get(self.i + 1 + N) == Some(&b'"') {
            let r = self.i + 1..self.i + 1 + N;
            self.i += N + 2;
            return Some(&self.b[r]);
        }
        self.text(buf)
    }

    /// A string, checked and thrown away (escapes decoded into `junk`, so a
    /// lone surrogate is refused as serde refuses it).
    fn skip_string(&mut self, junk: &mut String) -> Option<()> {
        let t = self.string()?;
        if t.escaped {
            junk.clear();
            decode(&self.b[t.raw], junk)?;
        }
        Some(())
    }

    /// A non-negative JSON integer that fits in u64, and nothing more of a
    /// number after it (a fraction or exponent is left to serde).
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let first = b.get(start)?.wrapping_sub(b'0');
        if first > 9 {
            return None;
        }
        let mut n = u64::from(first);
        let mut i = start + 1;
        // No leading zero: a zero is the whole integer.
        if first != 0 {
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                if i - start < 19 {
                    // Up to 19 digits cannot overflow.
                    n = n * 10 + u64::from(d);
                } else {
                    n = n.checked_mul(10)?.checked_add(u64::from(d))?;
                }
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'0'..=b'9' | b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = i;
        Some(n)
    }

    /// `null`, or a non-negative integer that fits in i64 (negative amounts
    /// are corrupt lines: the full parser says so).
    #[inline]
    fn opt_amount(&mut self) -> Option<Option<Money>> {
        if self.peek()? == b'n' {
            self.lit(b"null")?;
            return Some(None);
        }
        let n = i64::try_from(self.uint()?).ok()?;
        Some(Some(Money::from_nanos(n)))
    }

    #[inline]
    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.lit(b"true").map(|()| true),
            b'f' => self.lit(b"false").map(|()| false),
            _ => None,
        }
    }

    /// `null` or a string, checked and thrown away.
    fn opt_skip_string(&mut self, junk: &mut String) -> Option<()> {
        if self.peek()? == b'n' {
            self.lit(b"null")
        } else {
            self.skip_string(junk)
        }
    }

    /// An object whose values are all strings (`tags`).
    fn string_map(&mut self, junk: &mut String) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.skip_string(junk)?;
            self.eat(b':')?;
            self.skip_string(junk)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array whose items are all strings (`cost_notes`).
    fn string_list(&mut self, junk: &mut String) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.skip_string(junk)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value (an unknown field's), checked and thrown away.
    /// Numbers other than plain integers of up to 18 digits are left to
    /// serde (its float parsing has limits of its own).
    fn skip_value(&mut self, junk: &mut String, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(junk),
            b'{' => {
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_string(junk)?;
                    self.eat(b':')?;
                    self.skip_value(junk, depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(junk, depth + 1)?;
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'-' => {
                self.i += 1;
                // `-` must be followed by digits (no whitespace).
                if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                self.small_int()
            }
            b'0'..=b'9' => self.small_int(),
            _ => None,
        }
    }

    fn small_int(&mut self) -> Option<()> {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || len > 18 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(())
    }
}

/// Decodes the raw bytes of a JSON string (already checked by
/// [`Cur::string`]) into `out`, as serde_json does; `None` on a lone
/// surrogate.
fn decode(raw: &[u8], out: &mut String) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        let run = raw[i..]
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(raw.len() - i);
        out.push_str(std::str::from_utf8(&raw[i..i + run]).ok()?);
        i += run;
        if i >= raw.len() {
            break;
        }
        let c = *raw.get(i + 1)?;
        i += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                match hi {
                    0xD800..=0xDBFF => {
                        if raw.get(i..i + 2)? != b"\\u" {
                            return None;
                        }
                        let lo = hex4(raw.get(i + 2..i + 6)?)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(hi)?,
                }
            }
            _ => return None,
        };
        out.push(ch);
    }
    Some(())
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// The fields a line may hold, numbered in the order costlayer writes
/// them; `1 << id` is the field's bit in the set of fields seen (to refuse
/// a repeated field, as serde does).
mod field {
    pub(super) const V: u8 = 0;
    pub(super) const ID: u8 = 1;
    pub(super) const TS: u8 = 2;
    pub(super) const USER: u8 = 3;
    pub(super) const TEAM: u8 = 4;
    pub(super) const PROVIDER: u8 = 5;
    pub(super) const MODEL: u8 = 6;
    pub(super) const MODE: u8 = 7;
    pub(super) const INPUT: u8 = 8;
    pub(super) const OUTPUT: u8 = 9;
    pub(super) const CACHE_READ: u8 = 10;
    pub(super) const CACHE_5M: u8 = 11;
    pub(super) const CACHE_1H: u8 = 12;
    pub(super) const REASONING: u8 = 13;
    pub(super) const AUDIO: u8 = 14;
    pub(super) const SEARCH: u8 = 15;
    pub(super) const TIER: u8 = 16;
    pub(super) const NANO: u8 = 17;
    pub(super) const CACHED: u8 = 18;
    pub(super) const SAVED: u8 = 19;
    pub(super) const LATENCY: u8 = 20;
    pub(super) const REQUEST_ID: u8 = 21;
    pub(super) const TAGS: u8 = 22;
    pub(super) const PRICE_VERSION: u8 = 23;
    pub(super) const STATUS: u8 = 24;
    pub(super) const NOTES: u8 = 25;
    /// A key of no field of the schema (serde keeps it in `extra`).
    pub(super) const UNKNOWN: u8 = 26;
    /// Before the first key (a slot of the learned order only).
    pub(super) const START: u8 = 27;

    /// Each field's key, with its closing quote and the colon after it
    /// (costlayer's layout, and json.dumps'), by id.
    pub(super) const KEYS: [&[u8]; 26] = [
        b"v\":",
        b"id\":",
        b"ts\":",
        b"user\":",
        b"team\":",
        b"provider\":",
        b"model\":",
        b"mode\":",
        b"input_tokens\":",
        b"output_tokens\":",
        b"cache_read_tokens\":",
        b"cache_write_5m_tokens\":",
        b"cache_write_1h_tokens\":",
        b"reasoning_tokens\":",
        b"input_audio_tokens\":",
        b"web_search_requests\":",
        b"service_tier\":",
        b"nano_usd\":",
        b"cached\":",
        b"saved_nano_usd\":",
        b"latency_ms\":",
        b"request_id\":",
        b"tags\":",
        b"price_version\":",
        b"cost_status\":",
        b"cost_notes\":",
    ];

    /// The field that follows each one in costlayer's order (passing over
    /// the fields it leaves out at their defaults; also the order of any
    /// tool that writes the fields it read back in order): the first guess
    /// of [`Scratch`]'s learned order. `UNKNOWN` after the last.
    pub(super) const NEXT: [u8; 26] = [
        ID,
        TS,
        USER,
        TEAM,
        PROVIDER,
        MODEL,
        MODE,
        INPUT,
        OUTPUT,
        CACHE_READ,
        CACHE_5M,
        CACHE_1H,
        REASONING,
        NANO,
        SEARCH,
        TIER,
        NANO,
        CACHED,
        LATENCY,
        LATENCY,
        REQUEST_ID,
        TAGS,
        PRICE_VERSION,
        UNKNOWN,
        NOTES,
        UNKNOWN,
    ];

    /// A key, its closing quote and colon as three masked little-endian
    /// words (and their length), so that the bytes at the cursor are
    /// compared with it without a `memcmp` call.
    pub(super) struct Key {
        words: [u64; 3],
        masks: [u64; 3],
        /// How many bytes it is.
        len: usize,
    }

    const fn word(b: &[u8; 24], at: usize) -> u64 {
        let mut w = [0u8; 8];
        let mut j = 0;
        while j < 8 {
            w[j] = b[at + j];
            j += 1;
        }
        u64::from_le_bytes(w)
    }

    const fn key(k: &[u8]) -> Key {
        assert!(k.len() <= 24);
        let mut bytes = [0u8; 24];
        let mut mask = [0u8; 24];
        let mut i = 0;
        while i < k.len() {
            bytes[i] = k[i];
            mask[i] = 0xff;
            i += 1;
        }
        Key {
            words: [word(&bytes, 0), word(&bytes, 8), word(&bytes, 16)],
            masks: [word(&mask, 0), word(&mask, 8), word(&mask, 16)],
            len: k.len(),
        }
    }

    /// [`KEYS`] as [`Key`]s.
    pub(super) static MASKED: [Key; 26] = {
        let mut out = [const {
            Key {
                words: [0; 3],
                masks: [0; 3],
                len: 0,
            }
        }; 26];
        let mut i = 0;
        while i < 26 {
            out[i] = key(KEYS[i]);
            i += 1;
        }
        out
    };

    /// If `rest` starts with field `id`'s key, closing quote and colon,
    /// their length.
    #[inline]
    pub(super) fn starts(rest: &[u8], id: usize) -> Option<usize> {
        let (Some(k), Some(r)) = (MASKED.get(id), rest.get(..24)) else {
            // Near the end of the line.
            let k = KEYS.get(id)?;
            return rest.starts_with(k).then_some(k.len());
        };
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let differ = ((w(0) ^ k.words[0]) & k.masks[0])
            | ((w(1) ^ k.words[1]) & k.masks[1])
            | ((w(2) ^ k.words[2]) & k.masks[2]);
        (differ == 0).then_some(k.len)
    }

    /// The field a key names (the key as decoded, without quotes).
    pub(super) fn of(key: &[u8]) -> u8 {
        KEYS.iter()
            .position(|k| k.len() == key.len() + 2 && k.starts_with(key))
            .map_or(UNKNOWN, |id| id as u8)
    }

    pub(super) const REQUIRED: u32 = 1 << ID | 1 << TS | 1 << USER | 1 << PROVIDER | 1 << MODEL;
}

/// Reads one line (without its line break) into a view of the record, or
/// `None` if the full parser must decide (see the module docs). The view
/// borrows from `line` and, for escaped strings, from `scratch`.
pub(crate) fn scan_line<'a>(line: &'a [u8], scratch: &'a mut Scratch) -> Option<RecordRef<'a>> {
    // UTF-8 once for the whole line (a line that is not is left to the full
    // parser), so no string needs a check of its own.
    let text_line = std::str::from_utf8(line).ok()?;
    let mut c = Cur { b: line, i: 0 };
    let mut seen = 0u32;
    let mut ts = None;
    let mut user = None;
    let mut team: Option<Src> = None;
    let mut provider = None;
    let mut model = None;
    let mut mode = Mode::Online;
    let mut usage = Usage::default();
    let mut nano_usd = None;
    let mut cached = false;
    let mut saved_nano_usd = None;
    let mut latency_ms = 0;
    let mut cost_status = CostStatus::Exact;

    // A kept string: borrowed if it has no escape, else decoded into `out`.
    fn kept(c: &mut Cur<'_>, out: &mut String) -> Option<Src> {
        let t = c.string()?;
        if !t.escaped {
            return Some(Src::Line(t.raw));
        }
        out.clear();
        decode(&c.b[t.raw], out)?;
        Some(Src::Decoded)
    }

    c.eat(b'{')?;
    if c.peek()? == b'}' {
        // `{}`: no required field.
        return None;
    }
    // The key expected next (the order learned from the lines before; most
    // files keep one), read by one comparison with its bytes, closing quote
    // and colon (it holds no escape, so those bytes are exactly the string
    // token; whitespace before the colon reads it the long way).
    let mut prev = field::START;
    let mut expected = scratch.next[usize::from(prev)];
    loop {
        let hit = if c.peek()? == b'"' {
            field::starts(
                line.get(c.i + 1..).unwrap_or_default(),
                usize::from(expected),
            )
        } else {
            None
        };
        // The key and its colon (a value's reader passes over the
        // whitespace before it).
        let key = match hit {
            Some(n) => {
                c.i += 1 + n;
                expected
            }
            None => {
                let key = field::of(c.text(&mut scratch.key)?);
                // Expected next time.
                if let Some(slot) = scratch.next.get_mut(usize::from(prev)) {
                    *slot = key;
                }
                c.eat(b':')?;
                key
            }
        };
        let b = match key {
            field::V => {
                u32::try_from(c.uint()?).ok()?;
                1 << field::V
            }
            field::ID => {
                if !super::canonical::is_ulid(c.fixed_or_text::<26>(&mut scratch.junk)?) {
                    return None;
                }
                1 << field::ID
            }
            field::TS => {
                ts = Some(super::read::parse_ts_bytes(
                    c.fixed_or_text::<24>(&mut scratch.junk)?,
                )?);
                1 << field::TS
            }
            field::USER => {
                user = Some(kept(&mut c, &mut scratch.user)?);
                1 << field::USER
            }
            field::TEAM => {
                team = if c.peek()? == b'n' {
                    c.lit(b"null")?;
                    None
                } else {
                    Some(kept(&mut c, &mut scratch.team)?)
                };
                1 << field::TEAM
            }
            field::PROVIDER => {
                provider = Some(kept(&mut c, &mut scratch.provider)?);
                1 << field::PROVIDER
            }
            field::MODEL => {
                model = Some(kept(&mut c, &mut scratch.model)?);
                1 << field::MODEL
            }
            field::MODE => {
                mode = match c.text(&mut scratch.junk)? {
                    b"online" => Mode::Online,
                    b"batch" => Mode::Batch,
                    _ => return None,
                };
                1 << field::MODE
            }
            field::INPUT => {
                usage.input_tokens = c.uint()?;
                1 << field::INPUT
            }
            field::OUTPUT => {
                usage.output_tokens = c.uint()?;
                1 << field::OUTPUT
            }
            field::CACHE_READ => {
                usage.cache_read_tokens = c.uint()?;
                1 << field::CACHE_READ
            }
            field::CACHE_5M => {
                usage.cache_write_5m_tokens = c.uint()?;
                1 << field::CACHE_5M
            }
            field::CACHE_1H => {
                usage.cache_write_1h_tokens = c.uint()?;
                1 << field::CACHE_1H
            }
            field::REASONING => {
                usage.reasoning_tokens = c.uint()?;
                1 << field::REASONING
            }
            field::AUDIO => {
                usage.input_audio_tokens = c.uint()?;
                1 << field::AUDIO
            }
            field::SEARCH => {
                usage.web_search_requests = c.uint()?;
                1 << field::SEARCH
            }
            field::TIER => {
                usage.service_tier = match c.text(&mut scratch.junk)? {
                    b"standard" => ServiceTier::Standard,
                    b"flex" => ServiceTier::Flex,
                    b"priority" => ServiceTier::Priority,
                    _ => return None,
                };
                1 << field::TIER
            }
            field::NANO => {
                nano_usd = c.opt_amount()?;
                1 << field::NANO
            }
            field::CACHED => {
                cached = c.bool()?;
                1 << field::CACHED
            }
            field::SAVED => {
                saved_nano_usd = c.opt_amount()?;
                1 << field::SAVED
            }
            field::LATENCY => {
                latency_ms = c.uint()?;
                1 << field::LATENCY
            }
            field::REQUEST_ID => {
                c.opt_skip_string(&mut scratch.junk)?;
                1 << field::REQUEST_ID
            }
            field::TAGS => {
                c.string_map(&mut scratch.junk)?;
                1 << field::TAGS
            }
            field::PRICE_VERSION => {
                c.opt_skip_string(&mut scratch.junk)?;
                1 << field::PRICE_VERSION
            }
            field::STATUS => {
                cost_status = match c.text(&mut scratch.junk)? {
                    b"exact" => CostStatus::Exact,
                    b"incomplete" => CostStatus::Incomplete,
                    b"estimated" => CostStatus::Estimated,
                    _ => return None,
                };
                1 << field::STATUS
            }
            field::NOTES => {
                c.string_list(&mut scratch.junk)?;
                1 << field::NOTES
            }
            // An unknown field: serde keeps it in `extra`.
            _ => {
                c.skip_value(&mut scratch.junk, 1)?;
                0
            }
        };
        if seen & b != 0 {
            return None;
        }
        seen |= b;
        prev = key;
        if let Some(&next) = scratch.next.get(usize::from(key)) {
            expected = next;
        }
        // `, ` (json.dumps) likewise.
        if line.get(c.i..c.i + 2) == Some(b", ") {
            c.i += 2;
            continue;
        }
        match c.peek()? {
            b',' => c.i += 1,
            b'}' => {
                c.i += 1;
                break;
            }
            _ => return None,
        }
    }
    c.ws();
    if c.i != line.len() || seen & field::REQUIRED != field::REQUIRED {
        return None;
    }
    super::amounts::check(&usage, nano_usd, saved_nano_usd).ok()?;

    let scratch: &'a Scratch = scratch;
    let text = |src: Src, decoded: &'a str| -> Option<&'a str> {
        match src {
            // Between two quotes of a UTF-8 line: on character boundaries.
            Src::Line(r) => text_line.get(r),
            Src::Decoded => Some(decoded),
        }
    };
    Some(RecordRef {
        ts: ts?,
        user: text(user?, &scratch.user)?,
        team: match team {
            Some(src) => Some(text(src, &scratch.team)?),
            None => None,
        },
        provider: text(provider?, &scratch.provider)?,
        model: text(model?, &scratch.model)?,
        mode,
        usage,
        nano_usd,
        cached,
        saved_nano_usd,
        latency_ms,
        cost_status,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::ledger::CostRecord;

    /// A small deterministic generator (PCG-style LCG).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    const NAMES: &[&str] = &[
        "alice",
        "bob",
        "c\"arol",
        "d\\ave",
        "josé",
        "用户",
        "emoji 🚀 user",
        "tab\there",
        "slash/name",
        "",
        "ÿ\u{7f}",
    ];
    const MODELS: &[(&str, &str)] = &[
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-pro"),
        ("custom", "模型-🙂"),
        ("Open\"AI", "gpt\n4o"),
    ];

    /// A record with every kind of field value the schema allows.
    fn record(rng: &mut Rng) -> CostRecord {
        let (p, m) = *rng.pick(MODELS);
        let mut r = CostRecord::new(*rng.pick(NAMES), p, m, Usage::default());
        r.ts = chrono::DateTime::from_timestamp_millis(
            1_700_000_000_000 + (rng.next() as i64 % 100_000_000_000),
        )
        .unwrap();
        let tokens = |rng: &mut Rng| match rng.below(4) {
            0 => 0,
            1 => rng.below(10),
            2 => rng.below(1_000_000),
            _ => super::super::amounts::MAX_TOKENS - rng.below(2),
        };
        r.usage.input_tokens = tokens(rng);
        r.usage.output_tokens = tokens(rng);
        r.usage.cache_read_tokens = tokens(rng);
        r.usage.cache_write_5m_tokens = tokens(rng);
        r.usage.cache_write_1h_tokens = tokens(rng);
        r.usage.reasoning_tokens = tokens(rng);
        if rng.chance(20) {
            r.usage.input_audio_tokens = tokens(rng);
            r.usage.web_search_requests = rng.below(5);
            r.usage.service_tier = *rng.pick(&[
                ServiceTier::Standard,
                ServiceTier::Flex,
                ServiceTier::Priority,
            ]);
        }
        r.nano_usd = match rng.below(6) {
            0 => None,
            1 => Some(Money::ZERO),
            2 => Some(Money::from_nanos(super::super::amounts::MAX_RECORD_NANOS)),
            _ => Some(Money::from_nanos(rng.below(50_000_000) as i64)),
        };
        if rng.chance(40) {
            r.team = Some((*rng.pick(NAMES)).into());
        }
        if rng.chance(20) {
            r.mode = Mode::Batch;
        }
        if rng.chance(15) {
            r.cached = true;
            r.saved_nano_usd = Some(Money::from_nanos(rng.below(1_000) as i64));
        }
        r.latency_ms = rng.below(5_000);
        if rng.chance(30) {
            r.request_id = Some(format!("req_{}\u{e9}\"x", rng.next()).into());
        }
        if rng.chance(30) {
            r.price_version = Some("2026-11-01:gpt-4o".into());
        }
        for _ in 0..rng.below(3) {
            r.tags
                .insert((*rng.pick(NAMES)).into(), (*rng.pick(NAMES)).into());
        }
        if rng.chance(15) {
            r.cost_status = *rng.pick(&[CostStatus::Incomplete, CostStatus::Estimated]);
            r.cost_notes = vec!["audio \"unpriced\"".into(), "😀".into()];
        }
        if rng.chance(10) {
            r.extra.insert(
                "future".into(),
                json!({"a": [1, -2, true, null, "x\u{1F600}"], "b": {"c": []}}),
            );
        }
        r
    }

    /// Writes `v` as JSON with random whitespace and escapes.
    fn write(rng: &mut Rng, v: &Value, out: &mut String, style: u64) {
        let ws = |rng: &mut Rng, out: &mut String| match style {
            0 => {}
            1 => out.push(' '),
            _ => {
                for _ in 0..rng.below(3) {
                    out.push(*rng.pick(&[' ', '\t', ' ', '\r']));
                }
            }
        };
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                // Any key order.
                for i in (1..keys.len()).rev() {
                    keys.swap(i, rng.below(i as u64 + 1) as usize);
                }
                out.push('{');
                for (n, k) in keys.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                        ws(rng, out);
                    }
                    ws(rng, out);
                    let p = if rng.chance(2) { 30 } else { 0 };
                    write_str(rng, k, out, p);
                    ws(rng, out);
                    out.push(':');
                    ws(rng, out);
                    write(rng, &m[k.as_str()], out, style);
                    ws(rng, out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (n, x) in a.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                        ws(rng, out);
                    }
                    write(rng, x, out, style);
                }
                out.push(']');
            }
            Value::String(s) => {
                let p = if rng.chance(30) { 40 } else { 0 };
                write_str(rng, s, out, p)
            }
            other => out.push_str(&other.to_string()),
        }
    }

    /// A JSON string; `percent` of the characters escaped that need not be.
    fn write_str(rng: &mut Rng, s: &str, out: &mut String, percent: u64) {
        out.push('"');
        for ch in s.chars() {
            let must = ch == '"' || ch == '\\' || (ch as u32) < 0x20;
            if !must && !rng.chance(percent) {
                out.push(ch);
                continue;
            }
            match (ch, rng.below(2)) {
                ('"', 0) => out.push_str("\\\""),
                ('\\', 0) => out.push_str("\\\\"),
                ('\n', 0) => out.push_str("\\n"),
                ('\t', 0) => out.push_str("\\t"),
                ('/', 0) => out.push_str("\\/"),
                _ => {
                    let mut units = [0u16; 2];
                    for u in ch.encode_utf16(&mut units) {
                        if rng.chance(50) {
                            out.push_str(&format!("\\u{u:04X}"));
                        } else {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
        }
        out.push('"');
    }

    /// The line for `r`: some optional fields left out when they hold
    /// their default, then written in one of the styles.
    fn line(rng: &mut Rng, r: &CostRecord) -> String {
        let mut v = serde_json::to_value(r).unwrap();
        let m: &mut Map<String, Value> = v.as_object_mut().unwrap();
        let defaults = [
            ("v", json!(1)),
            ("team", Value::Null),
            ("mode", json!("online")),
            ("input_tokens", json!(0)),
            ("cache_read_tokens", json!(0)),
            ("cache_write_5m_tokens", json!(0)),
            ("cache_write_1h_tokens", json!(0)),
            ("reasoning_tokens", json!(0)),
            ("nano_usd", Value::Null),
            ("cached", json!(false)),
            ("latency_ms", json!(0)),
            ("request_id", Value::Null),
            ("tags", json!({})),
            ("price_version", Value::Null),
        ];
        for (k, d) in defaults {
            if m.get(k) == Some(&d) && rng.chance(40) {
                m.remove(k);
            }
        }
        if rng.chance(10) && !m.contains_key("cost_status") {
            m.insert("cost_status".into(), json!("exact"));
        }
        let mut out = String::new();
        let style = rng.below(3);
        write(rng, &v, &mut out, style);
        if rng.chance(10) {
            out.push_str(" \t ");
        }
        out
    }

    /// What the full parser makes of a line, as a view.
    fn full(line: &[u8]) -> Option<CostRecord> {
        super::super::read::parse_line_of(line, "file-user").ok()
    }

    /// The byte-by-byte form of [`Cur::string`] (what it was before it
    /// read words): the reference the word-at-a-time scan must agree with.
    fn string_bytewise(b: &[u8]) -> Option<(Range<usize>, bool, usize)> {
        let mut i = 0;
        while b.get(i).is_some_and(|c| b" \t\r\n".contains(c)) {
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let start = i;
        let (mut escaped, mut high) = (false, false);
        loop {
            let c = *b.get(i)?;
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            if !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    high |= c >= 0x80;
                    i += 1;
                }
            }
        }
        if high {
            std::str::from_utf8(&b[start..i]).ok()?;
        }
        Some((start..i, escaped, i + 1))
    }

    #[test]
    fn word_at_a_time_strings_read_as_byte_by_byte() {
        // Every special byte (and escape) at every offset of strings of up
        // to 40 bytes, so that each lands at each position of a word and
        // in the bytewise tail.
        let specials: [&[u8]; 16] = [
            b"\"",
            b"\\",
            b"\x00",
            b"\x1f",
            b" ",
            b"\x7f",
            b"\xc3\xa9",
            b"\xc3",
            b"\xff",
            b"\\n",
            b"\\u00e9",
            b"\\u00g9",
            b"\\q",
            b"\\\"",
            b"\xf0\x9f\x9a\x80",
            b"a",
        ];
        let mut checked = 0;
        for len in 0..40 {
            for at in 0..=len {
                for x in specials {
                    for end in [&b"\""[..], b"\"}", b"x", b"\\", b""] {
                        let mut b = vec![b' ', b'"'];
                        b.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                        if at < len {
                            b.splice(2 + at..3 + at, x.iter().copied());
                        }
                        b.extend_from_slice(end);
                        if std::str::from_utf8(&b).is_err() {
                            // `scan_line` refuses such a line before any
                            // string is read (the test below).
                            continue;
                        }
                        let mut c = Cur { b: &b, i: 0 };
                        let got = c.string().map(|t| (t.raw, t.escaped, c.i));
                        assert_eq!(
                            got,
                            string_bytewise(&b),
                            "{:?}",
                            String::from_utf8_lossy(&b)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn integers_read_as_std_reads_them() {
        for text in [
            "0",
            "7",
            "00",
            "01",
            "10",
            "0.5",
            "0e1",
            "5E3",
            "12.0",
            "-1",
            "",
            "x",
            "12x",
            " 42",
            "  9,",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "9999999999999999999",
            "1234567890123456789",
            "100000000000000000000",
            "000000000000000000000001",
        ] {
            let mut c = Cur {
                b: text.as_bytes(),
                i: 0,
            };
            let got = c.uint().map(|n| (n, c.i));
            let t = text.trim_start();
            let skipped = text.len() - t.len();
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            let after = t[digits.len()..].chars().next();
            let want = if digits.is_empty()
                || (digits.len() > 1 && digits.starts_with('0'))
                || matches!(after, Some('.' | 'e' | 'E'))
            {
                None
            } else {
                digits
                    .parse::<u64>()
                    .ok()
                    .map(|n| (n, skipped + digits.len()))
            };
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_left_to_the_full_parser() {
        let line = |user: &[u8], extra: &[u8]| {
            let mut l = br#"{"id": "01M514ZRKG0000000000000000", "ts": "2026-10-16T01:24:54.000Z", "user": ""#.to_vec();
            l.extend_from_slice(user);
            l.extend_from_slice(br#"", "provider": "openai", "model": "gpt-4o""#);
            l.extend_from_slice(extra);
            l.push(b'}');
            l
        };
        let mut scratch = Scratch::default();
        let ok = line("jos\u{e9} \u{1f680}".as_bytes(), b"");
        assert_eq!(
            scan_line(&ok, &mut scratch).map(|r| r.user),
            Some("jos\u{e9} \u{1f680}")
        );
        assert!(full(&ok).is_some());
        for bad in [
            &b"\xc3"[..],
            b"\xff",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\xf0\x9f\x9a",
        ] {
            // In a kept string, in a skipped one, in an unknown field.
            for l in [
                line(bad, b""),
                line(b"bob", &[br#", "request_id": ""#, bad, b"\""].concat()),
                line(b"bob", &[br#", "x": [""#, bad, b"\"]"].concat()),
            ] {
                assert!(scan_line(&l, &mut scratch).is_none(), "{l:?}");
                assert!(full(&l).is_none(), "{l:?}");
            }
        }
    }

    #[test]
    fn the_scanner_reads_what_the_full_parser_reads_on_any_layout() {
        let mut rng = Rng(0x5EED);
        let mut scratch = Scratch::default();
        let (mut taken, mut total) = (0u32, 0u32);
        for _ in 0..20_000 {
            let r = record(&mut rng);
            let l = line(&mut rng, &r);
            let parsed = full(l.as_bytes()).unwrap_or_else(|| panic!("valid line refused: {l}"));
            assert_eq!(RecordRef::from(&parsed), RecordRef::from(&r), "{l}");
            total += 1;
            if let Some(view) = scan_line(l.as_bytes(), &mut scratch) {
                taken += 1;
                assert_eq!(view, RecordRef::from(&parsed), "{l}");
            }
        }
        // Every valid line of these takes the fast path.
        assert_eq!(taken, total, "fast path took {taken} of {total}");
    }

    #[test]
    fn python_json_dumps_lines_take_the_fast_path() {
        let mut rng = Rng(7);
        let mut scratch = Scratch::default();
        for _ in 0..2_000 {
            let r = record(&mut rng);
            let v = serde_json::to_value(&r).unwrap();
            // json.dumps: ", " and ": ", non-ASCII as \u escapes.
            let mut l = String::new();
            let ascii = |s: &str, out: &mut String| {
                out.push('"');
                for ch in s.chars() {
                    match ch {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 || !c.is_ascii() => {
                            let mut u = [0u16; 2];
                            for x in c.encode_utf16(&mut u) {
                                out.push_str(&format!("\\u{x:04x}"));
                            }
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            };
            fn dumps(v: &Value, out: &mut String, s: &dyn Fn(&str, &mut String)) {
                match v {
                    Value::Object(m) => {
                        out.push('{');
                        for (i, (k, x)) in m.iter().enumerate() {
                            if i > 0 {
                                out.push_str(", ");
                            }
                            s(k, out);
                            out.push_str(": ");
                            dumps(x, out, s);
                        }
                        out.push('}');
                    }
                    Value::Array(a) => {
                        out.push('[');
                        for (i, x) in a.iter().enumerate() {
                            if i > 0 {
                                out.push_str(", ");
                            }
                            dumps(x, out, s);
                        }
                        out.push(']');
                    }
                    Value::String(x) => s(x, out),
                    o => out.push_str(&o.to_string()),
                }
            }
            dumps(&v, &mut l, &ascii);
            let view = scan_line(l.as_bytes(), &mut scratch)
                .unwrap_or_else(|| panic!("fast path refused {l}"));
            assert_eq!(view, RecordRef::from(&r), "{l}");
            assert_eq!(RecordRef::from(&full(l.as_bytes()).unwrap()), view);
        }
    }

    #[test]
    fn lines_in_another_fixed_key_order_are_read_and_their_order_learned(
    ) -> Result<(), serde_json::Error> {
        let mut rng = Rng(11);
        let mut scratch = Scratch::default();
        for n in 0..2_000 {
            let r = record(&mut rng);
            // Sorted keys, as Python's `sort_keys=True` and serde_json's
            // `Value` write them.
            let Value::Object(m) = serde_json::to_value(&r)? else {
                panic!("a record is an object");
            };
            let sorted: std::collections::BTreeMap<String, Value> = m.into_iter().collect();
            let l = serde_json::to_string(&sorted)?;
            let view = scan_line(l.as_bytes(), &mut scratch)
                .unwrap_or_else(|| panic!("fast path refused {l}"));
            assert_eq!(view, RecordRef::from(&r), "{l}");
            assert_eq!(full(l.as_bytes()).as_ref().map(RecordRef::from), Some(view));
            if n > 0 {
                // What the last line began with is expected first.
                let first = sorted
                    .keys()
                    .next()
                    .map_or(field::UNKNOWN, |k| field::of(k.as_bytes()));
                assert_eq!(scratch.next[usize::from(field::START)], first);
            }
        }
        // Costlayer's own order again: read as well, whatever was learned.
        let r = record(&mut rng);
        let l = serde_json::to_string(&r)?;
        assert_eq!(
            scan_line(l.as_bytes(), &mut scratch),
            Some(RecordRef::from(&r))
        );
        assert_eq!(scratch.next[usize::from(field::START)], field::V);
        Ok(())
    }

    #[test]
    fn broken_lines_are_never_read_differently() {
        let mut rng = Rng(99);
        let mut scratch = Scratch::default();
        let specials: &[&[u8]] = &[
            b"\"",
            b"\\",
            b"\\u",
            b"\\ud800",
            b"\\udc00",
            b"-",
            b"-0",
            b"0",
            b"01",
            b"1.0",
            b"1e3",
            b"null",
            b"true",
            b",",
            b":",
            b"}",
            b"{",
            b"[",
            b"]",
            b" ",
            b"\t",
            b"\x00",
            b"\xff",
            b"\xc3",
            b"\xe9",
            b"\x7f",
            b"\"id\":",
            b"\"user\":\"x\",",
        ];
        let mut accepted_mutants = 0;
        for _ in 0..20_000 {
            let r = record(&mut rng);
            let mut l = line(&mut rng, &r).into_bytes();
            for _ in 0..=rng.below(3) {
                let at = rng.below(l.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < l.len() => {
                        l.remove(at);
                    }
                    1 => {
                        for (k, &b) in rng.pick(specials).iter().enumerate() {
                            l.insert(at + k, b);
                        }
                    }
                    _ if at < l.len() => l[at] = *rng.pick(b"09\"x}"),
                    _ => {}
                }
            }
            if let Some(view) = scan_line(&l, &mut scratch) {
                accepted_mutants += 1;
                let parsed = full(&l).unwrap_or_else(|| {
                    panic!(
                        "scanner took a line the parser refuses: {}",
                        String::from_utf8_lossy(&l)
                    )
                });
                assert_eq!(
                    view,
                    RecordRef::from(&parsed),
                    "{}",
                    String::from_utf8_lossy(&l)
                );
            }
        }
        // Some mutants are still valid records (a digit changed).
        assert!(accepted_mutants > 100, "{accepted_mutants}");
    }

    #[test]
    fn what_the_scanner_leaves_to_serde() {
        let mut scratch = Scratch::default();
        let base = r#"{"v":1,"id":"01JDQ3Z6Y2V8W5H4K7M9N0P1Q2","ts":"2026-11-01T10:00:00.123Z","user":"u","provider":"p","model":"m","nano_usd":5}"#;
        assert!(scan_line(base.as_bytes(), &mut scratch).is_some());
        for (from, to) in [
            ("\"nano_usd\":5", "\"nano_usd\":5.0"),
            ("\"nano_usd\":5", "\"nano_usd\":-5"),
            ("\"nano_usd\":5", "\"nano_usd\":-0"),
            ("\"nano_usd\":5", "\"nano_usd\":5,\"nano_usd\":5"),
            ("\"user\":\"u\"", "\"user\":\"u\",\"us\\u0065r\":\"u\""),
            ("\"user\":\"u\"", "\"user\":\"\\ud800\""),
            ("\"user\":\"u\"", "\"user\":null"),
            ("\"user\":\"u\",", ""),
            ("\"model\":\"m\"", "\"model\":\"m\",\"x\":1e400"),
            ("\"model\":\"m\"", "\"model\":\"m\",\"tags\":{\"a\":1}"),
            ("\"model\":\"m\"", "\"model\":\"m\",\"mode\":null"),
            (
                "\"ts\":\"2026-11-01T10:00:00.123Z\"",
                "\"ts\":\"2026-11-01T12:00:00+02:00\"",
            ),
            ("{", "\u{feff}{"),
        ] {
            let l = base.replacen(from, to, 1);
            assert!(scan_line(l.as_bytes(), &mut scratch).is_none(), "{l}");
        }
        let deep = base.replacen(
            "\"model\":\"m\"",
            &format!(
                "\"model\":\"m\",\"x\":{}1{}",
                "[".repeat(100),
                "]".repeat(100)
            ),
            1,
        );
        assert!(scan_line(deep.as_bytes(), &mut scratch).is_none());
    }
}
