//! The one redaction helper: what every string that is logged, stored
//! (ledger, alert history, CSV) or printed (errors, the CLI) goes through
//! when it may carry a secret.
//!
//! [`text`] removes, in this order:
//!
//! 1. every **known secret**: the values given to [`register_secret`] and
//!    [`register_credentials`] (configured API keys, SMTP passwords and
//!    their `AUTH` encodings, webhook URL tokens), wherever they appear;
//! 2. **URL credentials**: the `user:password@` part of any `scheme://`
//!    URL, and the values of query parameters that carry keys (`key`,
//!    `api_key`, `token`, `access_token`, `password`, `secret`, `sig`,
//!    `signature`, ...);
//! 3. **SMTP authentication data**: the token after `AUTH PLAIN`,
//!    `AUTH LOGIN`, `AUTH XOAUTH2`, ... (a server that quotes the client's
//!    `AUTH` line in its reply would otherwise hand the password to the log);
//! 4. **HTTP credentials**: the token after `Bearer` or `Basic` (an
//!    `Authorization` header quoted in an error).
//!
//! Each is replaced by [`MASK`]. [`ApiKey::new`](crate::ApiKey::new)
//! registers its key, so a provider that echoes the key into a response id
//! or an error body cannot put it in the ledger.
//!
//! ```
//! use costlayer_core::redact;
//!
//! assert_eq!(redact::url("http://user:s3cret@proxy:8080/v1"), "http://[REDACTED]@proxy:8080/v1");
//! assert_eq!(
//!     redact::text("535 5.7.8 AUTH PLAIN AGFsaWNlAGh1bnRlcjI= rejected"),
//!     "535 5.7.8 AUTH PLAIN [REDACTED] rejected"
//! );
//! redact::register_secret("sk-live-0123456789");
//! assert_eq!(redact::text("id chatcmpl-sk-live-0123456789"), "id chatcmpl-[REDACTED]");
//! ```

use std::borrow::Cow;
use std::sync::RwLock;

/// What a redacted secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Shorter values are not registered (they would mask ordinary words).
pub const MIN_SECRET_LEN: usize = 6;

static SECRETS: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// Registers a secret (and its base64 form, as sent by SMTP `AUTH LOGIN`)
/// to be masked by [`text`] from now on, in this process. Values shorter
/// than [`MIN_SECRET_LEN`] are ignored.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    add(secret);
    add(&base64(secret.as_bytes()));
}

/// Registers SMTP credentials: the password, and the `AUTH PLAIN` and
/// `AUTH LOGIN` encodings of the pair.
pub fn register_credentials(username: &str, password: &str) {
    if password.is_empty() {
        return;
    }
    register_secret(password);
    add(&base64(format!("\0{username}\0{password}").as_bytes()));
    add(&base64(
        format!("{username}\0{username}\0{password}").as_bytes(),
    ));
}

/// Registers the secret parts of a URL (a webhook's): its password, the
/// values of its query parameters, and any path segment long enough to be a
/// token (Slack's and Discord's webhook URLs carry their secret in the
/// path).
pub fn register_url(url: &str) {
    let Some((_, rest)) = url.split_once("://") else {
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        register_secret(password);
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    for seg in path.split('/') {
        if seg.len() >= 16 {
            register_secret(seg);
        }
    }
    for pair in query.split('&') {
        if let Some((_, v)) = pair.split_once('=') {
            register_secret(v);
        }
    }
}

fn add(s: &str) {
    let mut all = SECRETS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !all.iter().any(|k| &**k == s) {
        all.push(s.into());
        // Longest first, so a secret containing another is masked whole.
        all.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// Masks every known secret, URL credential and SMTP `AUTH` token in `s`
/// (see the module docs). Borrows when there is nothing to mask.
pub fn text(s: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(s);
    {
        let all = SECRETS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for secret in all.iter() {
            if out.contains(&**secret) {
                out = Cow::Owned(out.replace(&**secret, MASK));
            }
        }
    }
    if let Cow::Owned(u) = url(&out) {
        out = Cow::Owned(u);
    }
    if let Cow::Owned(a) = smtp_auth(&out) {
        out = Cow::Owned(a);
    }
    if let Cow::Owned(a) = http_auth(&out) {
        out = Cow::Owned(a);
    }
    out
}

/// Masks the credential after the word `Bearer` or `Basic` (any case), as
/// an `Authorization` header quoted in an error carries it.
pub fn http_auth(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    let find = |from: usize| {
        bytes
            .get(from..)?
            .windows(5)
            .position(|w| w.eq_ignore_ascii_case(b"beare") || w.eq_ignore_ascii_case(b"basic"))
    };
    if find(0).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut search = 0;
    let mut changed = false;
    while let Some(found) = find(search) {
        let at = search + found;
        search = at + 5;
        let word_len =
            if bytes[at..].len() >= 6 && bytes[at..at + 6].eq_ignore_ascii_case(b"bearer") {
                6
            } else if bytes[at..at + 5].eq_ignore_ascii_case(b"basic") {
                5
            } else {
                continue;
            };
        let before_ok = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let after = &s[at + word_len..];
        if !before_ok || !after.starts_with(' ') {
            continue;
        }
        let tok_start = after.len() - after.trim_start_matches(' ').len();
        let tok = &after[tok_start..];
        let tok_len = tok
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | ';'))
            .unwrap_or(tok.len());
        // A credential is one long word, not the next word of a sentence.
        if tok_len < 8 {
            continue;
        }
        let tok_abs = at + word_len + tok_start;
        out.push_str(&s[last..tok_abs]);
        out.push_str(MASK);
        last = tok_abs + tok_len;
        search = last;
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// [`text`] into an owned string.
pub fn string(s: &str) -> String {
    text(s).into_owned()
}

/// Removes the `user:password@` of every `scheme://` URL in `s`, and the
/// values of key-carrying query parameters.
pub fn url(s: &str) -> Cow<'_, str> {
    let userinfo = strip_userinfo(s);
    match strip_key_params(&userinfo) {
        Cow::Owned(o) => Cow::Owned(o),
        Cow::Borrowed(_) => userinfo,
    }
}

fn strip_userinfo(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace/quote.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | ')') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if at > 0 => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

const KEY_PARAMS: [&str; 12] = [
    "key",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "access_token",
    "auth",
    "password",
    "passwd",
    "secret",
    "sig",
    "signature",
];

fn strip_key_params(s: &str) -> Cow<'_, str> {
    if !s.contains('=') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut changed = false;
    for (i, &b) in bytes.iter().enumerate() {
        if (b != b'?' && b != b'&') || i < last {
            continue;
        }
        let name_start = i + 1;
        let Some(eq) = s[name_start..].find('=').map(|e| name_start + e) else {
            continue;
        };
        let name = &s[name_start..eq];
        if !KEY_PARAMS.iter().any(|k| name.eq_ignore_ascii_case(k)) {
            continue;
        }
        let value_end = s[eq + 1..]
            .find(|c: char| matches!(c, '&' | '#' | '"' | '\'' | ')' | '>') || c.is_whitespace())
            .map_or(s.len(), |e| eq + 1 + e);
        if value_end == eq + 1 {
            continue;
        }
        out.push_str(&s[last..=eq]);
        out.push_str(MASK);
        last = value_end;
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// Masks the token after `AUTH <mechanism>` (any case), and the base64
/// lines of an `AUTH LOGIN` exchange quoted after a `334` prompt.
pub fn smtp_auth(s: &str) -> Cow<'_, str> {
    // Case-insensitive search without a lower-case copy (this runs on every
    // string a record holds).
    let find_auth = |from: usize| {
        s.as_bytes()
            .get(from..)?
            .windows(4)
            .position(|w| w.eq_ignore_ascii_case(b"auth"))
    };
    if find_auth(0).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut search = 0;
    let mut changed = false;
    while let Some(found) = find_auth(search) {
        let at = search + found;
        search = at + 4;
        // A word on its own: not "author", not "oauth".
        let before_ok = at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric();
        let after = &s[at + 4..];
        if !before_ok || !after.starts_with([' ', '=', ':']) {
            continue;
        }
        // AUTH <mechanism> <token>
        let mech_start = after.len() - after.trim_start_matches([' ', '=', ':']).len();
        let mech_rest = &after[mech_start..];
        let mech_len = mech_rest
            .find(|c: char| c.is_whitespace())
            .unwrap_or(mech_rest.len());
        let mech = &mech_rest[..mech_len];
        if mech.is_empty()
            || !mech
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            continue;
        }
        let tok_area = &mech_rest[mech_len..];
        let tok_start = tok_area.len() - tok_area.trim_start_matches(' ').len();
        let tok = &tok_area[tok_start..];
        let tok_len = tok
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')')
            .unwrap_or(tok.len());
        if tok_len == 0 || tok_start == 0 {
            continue;
        }
        let tok_abs = at + 4 + mech_start + mech_len + tok_start;
        out.push_str(&s[last..tok_abs]);
        out.push_str(MASK);
        last = tok_abs + tok_len;
        search = last;
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// Standard base64 with padding (RFC 4648), as SMTP `AUTH` uses.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("\0alice\0hunter2", "AGFsaWNlAGh1bnRlcjI="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn urls_lose_their_credentials_and_keys() {
        assert_eq!(
            url("error sending request for url (http://user:secret@127.0.0.1:1/v1/chat)"),
            "error sending request for url (http://[REDACTED]@127.0.0.1:1/v1/chat)"
        );
        assert_eq!(url("https://a@b.c"), "https://[REDACTED]@b.c");
        assert_eq!(
            url("https://g.example/v1?key=AIzaXYZ&alt=sse"),
            "https://g.example/v1?key=[REDACTED]&alt=sse"
        );
        assert_eq!(
            url("https://x.example/v1?model=m"),
            "https://x.example/v1?model=m"
        );
        assert!(matches!(url("plain text"), Cow::Borrowed(_)));
        assert_eq!(url("mailto:a@b.c"), "mailto:a@b.c");
    }

    #[test]
    fn smtp_auth_tokens_are_masked() {
        let r = "535 5.7.8 Error: authentication failed: AUTH PLAIN AGFsaWNlAGh1bnRlcjI=";
        assert_eq!(
            smtp_auth(r),
            "535 5.7.8 Error: authentication failed: AUTH PLAIN [REDACTED]"
        );
        assert_eq!(
            smtp_auth("auth login dXNlcg== x"),
            "auth login [REDACTED] x"
        );
        assert_eq!(smtp_auth("AUTH PLAIN"), "AUTH PLAIN");
        assert_eq!(smtp_auth("the author said"), "the author said");
        assert!(matches!(smtp_auth("250 OK"), Cow::Borrowed(_)));
    }

    #[test]
    fn http_credentials_are_masked() {
        assert_eq!(
            http_auth("401: Authorization: Bearer sk-abcdefghijklmnop refused"),
            "401: Authorization: Bearer [REDACTED] refused"
        );
        assert_eq!(
            http_auth("header \"basic dXNlcjpwYXNzd29yZA==\""),
            "header \"basic [REDACTED]\""
        );
        assert!(matches!(http_auth("a basic problem"), Cow::Borrowed(_)));
        assert!(matches!(
            http_auth("the bearer of bad news"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(http_auth("250 OK"), Cow::Borrowed(_)));
    }

    #[test]
    fn registered_secrets_and_their_encodings_are_masked() {
        register_credentials("bob@example.com", "pa55-w0rd-xyz");
        let plain = base64(b"\0bob@example.com\0pa55-w0rd-xyz");
        let login = base64(b"pa55-w0rd-xyz");
        let s = format!("535 quoted {plain} and {login} and pa55-w0rd-xyz");
        let out = text(&s);
        assert!(!out.contains(&plain) && !out.contains(&login), "{out}");
        assert!(!out.contains("pa55-w0rd-xyz"), "{out}");
        register_secret("abc"); // too short: ignored
        assert_eq!(text("abc"), "abc");
        register_url("https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX");
        assert_eq!(
            text("posted to https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"),
            "posted to https://hooks.example.com/services/T000/B000/[REDACTED]"
        );
    }
}
