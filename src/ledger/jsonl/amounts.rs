//! The range checks every parser of a ledger line applies (the canonical
//! parser, its borrowed form, the serde fallbacks and the legacy import),
//! so a line is a record or corrupt whichever parser reads it.
//!
//! A hostile or broken line must not be able to cancel real spend (a
//! negative cost) or push a total past what an `i64` of nano-dollars holds
//! in a few lines. With every amount non-negative and bounded, sums are
//! exact until they pass `i64::MAX`, and the same whatever the order of
//! addition (so whatever the thread count of a parallel fold).

use crate::{Money, Usage};

/// The largest cost one record may carry: $1,000,000 (10^15 nano-dollars),
/// far above any single LLM call.
pub(crate) const MAX_RECORD_NANOS: i64 = 1_000_000_000_000_000;

/// The largest token count one bucket of one record may carry (10^12).
pub(crate) const MAX_TOKENS: u64 = 1_000_000_000_000;

/// Checks the amounts of one record; the error says which field is wrong.
pub(crate) fn check(
    usage: &Usage,
    nano_usd: Option<Money>,
    saved_nano_usd: Option<Money>,
) -> Result<(), String> {
    for (name, m) in [("nano_usd", nano_usd), ("saved_nano_usd", saved_nano_usd)] {
        let Some(m) = m else { continue };
        if m.is_negative() {
            return Err(format!(
                "`{name}` is negative ({}): a cost is never negative",
                m.nanos()
            ));
        }
        if m.nanos() > MAX_RECORD_NANOS {
            return Err(format!(
                "`{name}` ({}) is over the limit of one call ($1,000,000)",
                m.nanos()
            ));
        }
    }
    for (name, n) in [
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("cache_read_tokens", usage.cache_read_tokens),
        ("cache_write_5m_tokens", usage.cache_write_5m_tokens),
        ("cache_write_1h_tokens", usage.cache_write_1h_tokens),
        ("reasoning_tokens", usage.reasoning_tokens),
    ] {
        if n > MAX_TOKENS {
            return Err(format!(
                "`{name}` ({n}) is over the limit of one call ({MAX_TOKENS} tokens)"
            ));
        }
    }
    Ok(())
}

/// Whether `b` is JSON whitespace (RFC 8259: space, tab, LF, CR). A form
/// feed or vertical tab is not, as `jq` would say.
pub(crate) fn is_json_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let u = Usage::new(1, 1);
        assert!(check(&u, Some(Money::from_nanos(0)), None).is_ok());
        assert!(check(&u, Some(Money::from_nanos(MAX_RECORD_NANOS)), None).is_ok());
        assert!(check(&u, Some(Money::from_nanos(MAX_RECORD_NANOS + 1)), None).is_err());
        assert!(check(&u, Some(Money::from_nanos(-1)), None)
            .unwrap_err()
            .contains("negative"));
        assert!(check(&u, None, Some(Money::from_nanos(-1))).is_err());
        assert!(check(&Usage::new(MAX_TOKENS + 1, 0), None, None)
            .unwrap_err()
            .contains("input_tokens"));
        assert!(!is_json_ws(&0x0c));
    }
}
