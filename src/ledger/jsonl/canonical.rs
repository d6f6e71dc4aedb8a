//! A hand-written parser for the exact form this version writes.
//!
//! [`CostRecord`]'s serialisation has a fixed key order and no whitespace.
//! This parser accepts exactly that form (with or without
//! `saved_nano_usd`) and returns `None` on anything else: another key
//! order, an escape sequence in a string, an unknown field, a float where
//! an integer goes. The caller then falls back to serde, so the result is
//! always what serde would have produced; this only makes the common case
//! several times faster.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::ledger::CostRecord;
use crate::{Mode, Money, Usage};

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    #[inline]
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + s.len())? == s {
            self.i += s.len();
            Some(())
        } else {
            None
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
    #[inline]
    fn str(&mut self) -> Option<Range<usize>> {
        self.lit(b"\"")?;
        let start = self.i;
        loop {
            let c = self.peek()?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            self.i += 1;
        }
        let r = start..self.i;
        self.i += 1;
        Some(r)
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

    fn tags(&mut self) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        self.lit(b"{")?;
        let mut tags = Vec::new();
        if self.lit(b"}").is_some() {
            return Some(tags);
        }
        loop {
            let k = self.str()?;
            self.lit(b":")?;
            let v = self.str()?;
            tags.push((k, v));
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(tags);
                }
                _ => return None,
            }
        }
    }
}

/// Parses a line in the canonical form, or returns `None`.
pub(crate) fn parse(line: &[u8]) -> Option<CostRecord> {
    let (rec, end) = parse_prefix(line)?;
    if line[end..].iter().all(u8::is_ascii_whitespace) {
        Some(rec)
    } else {
        None
    }
}

/// Parses a canonical record at the start of `bytes` (which may hold more
/// lines after it) and returns it with the index just past its closing
/// brace. The parser cannot run past a newline: literals hold none, and a
/// string with a control character (a newline included) is declined.
pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<(CostRecord, usize)> {
    let mut c = Cur { b: bytes, i: 0 };
    c.lit(b"{\"v\":")?;
    let v = u32::try_from(c.uint()?).ok()?;
    c.lit(b",\"id\":")?;
    let id = c.str()?;
    c.lit(b",\"ts\":")?;
    let ts = c.str()?;
    c.lit(b",\"user\":")?;
    let user = c.str()?;
    c.lit(b",\"team\":")?;
    let team = c.opt_str()?;
    c.lit(b",\"provider\":")?;
    let provider = c.str()?;
    c.lit(b",\"model\":")?;
    let model = c.str()?;
    c.lit(b",\"mode\":")?;
    let mode = match &bytes[c.str()?] {
        b"online" => Mode::Online,
        b"batch" => Mode::Batch,
        _ => return None,
    };
    c.lit(b",\"input_tokens\":")?;
    let input_tokens = c.uint()?;
    c.lit(b",\"output_tokens\":")?;
    let output_tokens = c.uint()?;
    c.lit(b",\"cache_read_tokens\":")?;
    let cache_read_tokens = c.uint()?;
    c.lit(b",\"cache_write_5m_tokens\":")?;
    let cache_write_5m_tokens = c.uint()?;
    c.lit(b",\"cache_write_1h_tokens\":")?;
    let cache_write_1h_tokens = c.uint()?;
    c.lit(b",\"reasoning_tokens\":")?;
    let reasoning_tokens = c.uint()?;
    c.lit(b",\"nano_usd\":")?;
    let nano_usd = c.opt_int()?.map(Money::from_nanos);
    c.lit(b",\"cached\":")?;
    let cached = c.bool()?;
    let saved_nano_usd = if c.lit(b",\"saved_nano_usd\":").is_some() {
        c.opt_int()?.map(Money::from_nanos)
    } else {
        None
    };
    c.lit(b",\"latency_ms\":")?;
    let latency_ms = c.uint()?;
    c.lit(b",\"request_id\":")?;
    let request_id = c.opt_str()?;
    c.lit(b",\"tags\":")?;
    let tags = c.tags()?;
    c.lit(b",\"price_version\":")?;
    let price_version = c.opt_str()?;
    c.lit(b"}")?;
    let end = c.i;

    // One UTF-8 check for the whole record; every range above starts and
    // ends next to an ASCII quote, so `get` cannot fail on a boundary.
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let owned = |r: Range<usize>| text.get(r).map(str::to_owned);
    let rec = CostRecord {
        v,
        id: ulid::Ulid::from_string(text.get(id)?).ok()?,
        ts: super::read::parse_ts_fast(text.get(ts)?)?,
        user: owned(user)?,
        team: match team {
            Some(r) => Some(owned(r)?),
            None => None,
        },
        provider: owned(provider)?,
        model: owned(model)?,
        mode,
        usage: Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_5m_tokens,
            cache_write_1h_tokens,
            reasoning_tokens,
        },
        nano_usd,
        cached,
        saved_nano_usd,
        latency_ms,
        request_id: match request_id {
            Some(r) => Some(owned(r)?),
            None => None,
        },
        tags: {
            let mut map = BTreeMap::new();
            for (k, v) in tags {
                map.insert(owned(k)?, owned(v)?);
            }
            map
        },
        price_version: match price_version {
            Some(r) => Some(owned(r)?),
            None => None,
        },
        extra: serde_json::Map::new(),
    };
    Some((rec, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CostRecord {
        let mut r = CostRecord::new("alice", "openai", "gpt-4o", Usage::new(3, 4));
        r.nano_usd = Some(Money::from_nanos(i64::MIN));
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
        let variants = [
            line.replace("\"user\":\"alice\"", "\"user\":\"al\\u0069ce\""), // escape
            line.replace("\"input_tokens\":3", "\"input_tokens\":03"),      // leading zero
            line.replace("\"input_tokens\":3", "\"input_tokens\":3.0"),     // float
            line.replace("\"input_tokens\":3", "\"input_tokens\":-3"),      // negative
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
}
