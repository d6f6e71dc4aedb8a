//! [`terminal_safe`]: strings from a ledger or a provider, made harmless
//! for a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Escapes every character a terminal would act on instead of print, so a
/// string from a ledger line or a provider cannot retitle the terminal,
/// hide text, move the cursor or forge a row:
///
/// - C0 controls (ESC, BEL, CR, LF, TAB, backspace, ...), DEL and the C1
///   controls (U+0080–U+009F, among them the 8-bit CSI) become visible
///   escapes: `\x1B`, `\x07`, `\r`, `\n`, `\t`, `\u{9B}`;
/// - bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069),
///   the line and paragraph separators (U+2028, U+2029) and zero-width
///   characters (U+200B–U+200F, U+2060, U+FEFF) become `\u{...}`.
///
/// Everything else, non-ASCII letters included, is kept. Borrows when
/// there is nothing to escape.
///
/// ```
/// use costlayer::report::terminal_safe;
/// assert_eq!(terminal_safe("gpt-4o\x1b]0;pwned\x07"), "gpt-4o\\x1B]0;pwned\\x07");
/// assert_eq!(terminal_safe("a\rb\nc"), "a\\rb\\nc");
/// assert_eq!(terminal_safe("josé"), "josé");
/// ```
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:X}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_a_terminal_acts_on_survives() {
        let nasty =
            "\x1b[2J\x1b]0;t\x07\r\n\t\x08\x7f\u{9b}31m\u{202e}\u{2066}\u{200b}\u{feff}\u{2028}";
        let out = terminal_safe(nasty);
        assert!(out.chars().all(|c| !is_unsafe(c)), "{out:?}");
        assert!(
            out.contains("\\x1B[2J") && out.contains("\\u{202E}"),
            "{out}"
        );
        assert!(matches!(terminal_safe("plain ü"), Cow::Borrowed(_)));
    }
}
