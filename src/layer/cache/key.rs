//! The cache key: a SHA-256 of a canonical serialisation of what determines
//! the answer.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::{ChatRequest, Error, Message, ResponseFormat, ToolChoice, ToolDefinition};

/// Version of the key derivation: bump it when the canonical form changes,
/// so a shared cache never serves an entry derived differently.
const KEY_VERSION: u32 = 1;

/// A response cache key: the SHA-256 of a canonical serialisation of the
/// fields that determine the answer — the model, the system prompt, the
/// messages, the sampling parameters (`max_tokens`, `temperature`, `top_p`,
/// `stop`), the tools, `tool_choice`, `response_format` and `extra` — plus an
/// optional namespace.
///
/// Attribution fields (`user`, `team`, `tags`) are left out, so two users
/// asking the same question share an entry. No credential is ever part of a
/// request, and the key is a one-way digest: neither the prompt nor anything
/// else can be read back from it. The request is turned into a JSON value,
/// then hashed in a canonical binary form (object keys sorted, every string
/// and container length-prefixed), so the key is stable across processes
/// and machines (a shared cache can use it) and two different requests
/// never share a canonical form.
///
/// ```
/// use costlayer::layer::cache::CacheKey;
/// use costlayer::{ChatRequest, Message};
///
/// let a = ChatRequest::new("gpt-4o").message(Message::user("hi")).user("alice");
/// let b = ChatRequest::new("gpt-4o").message(Message::user("hi")).user("bob").tag("k", "v");
/// assert_eq!(CacheKey::for_request(&a, None)?, CacheKey::for_request(&b, None)?);
/// assert_eq!(CacheKey::for_request(&a, None)?.to_hex().len(), 64);
/// # Ok::<(), costlayer::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

#[derive(Serialize)]
struct Material<'a> {
    v: u32,
    namespace: Option<&'a str>,
    model: &'a str,
    system: Option<&'a str>,
    messages: &'a [Message],
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: &'a [String],
    tools: &'a [ToolDefinition],
    tool_choice: Option<&'a ToolChoice>,
    response_format: Option<&'a ResponseFormat>,
    extra: &'a serde_json::Map<String, Value>,
}

impl CacheKey {
    /// The key of `req`, in `namespace` (for example one per deployment or
    /// per provider account sharing a cache).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if a JSON value in the request (a tool schema, `extra`)
    /// cannot be serialised; in practice this does not happen.
    pub fn for_request(req: &ChatRequest, namespace: Option<&str>) -> Result<Self, Error> {
        let material = Material {
            v: KEY_VERSION,
            namespace,
            model: &req.model,
            system: req.system.as_deref(),
            messages: &req.messages,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            stop: &req.stop,
            tools: &req.tools,
            tool_choice: req.tool_choice.as_ref(),
            response_format: req.response_format.as_ref(),
            extra: &req.extra,
        };
        let value = serde_json::to_value(&material).map_err(|e| Error::Other(Box::new(e)))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        write_canonical(&value, &mut ctx);
        let digest = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Ok(CacheKey(out))
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits (for a shared cache's key).
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Feeds `value` into the digest in a canonical, unambiguous binary form:
/// a tag byte per node, lengths as little-endian u64 before every string,
/// array and object, raw UTF-8 for strings (no JSON escaping: it is the
/// slowest part of serialising a long prompt), numbers as their 8 bytes,
/// and object keys sorted (whatever the map type behind
/// `serde_json::Map`: it keeps insertion order when some crate in the build
/// enables `preserve_order`).
fn write_canonical(value: &Value, ctx: &mut ring::digest::Context) {
    fn len(ctx: &mut ring::digest::Context, n: usize) {
        ctx.update(&(n as u64).to_le_bytes());
    }
    fn string(ctx: &mut ring::digest::Context, s: &str) {
        ctx.update(b"s");
        len(ctx, s.len());
        ctx.update(s.as_bytes());
    }
    match value {
        Value::Null => ctx.update(b"n"),
        Value::Bool(true) => ctx.update(b"t"),
        Value::Bool(false) => ctx.update(b"f"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                ctx.update(b"u");
                ctx.update(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                ctx.update(b"i");
                ctx.update(&i.to_le_bytes());
            } else {
                ctx.update(b"d");
                ctx.update(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => string(ctx, s),
        Value::Array(items) => {
            ctx.update(b"[");
            len(ctx, items.len());
            for v in items {
                write_canonical(v, ctx);
            }
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            ctx.update(b"{");
            len(ctx, entries.len());
            for (k, v) in entries {
                string(ctx, k);
                write_canonical(v, ctx);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> ChatRequest {
        ChatRequest::new("gpt-4o")
            .system("be terse")
            .message(Message::user("what is 2+2?"))
            .max_tokens(10)
    }

    fn key(r: &ChatRequest) -> CacheKey {
        CacheKey::for_request(r, None).unwrap()
    }

    #[test]
    fn attribution_does_not_change_the_key() {
        let r = base();
        let attributed = r.clone().user("alice").team("ml").tag("feature", "qa");
        assert_eq!(key(&r), key(&attributed));
    }

    #[test]
    fn everything_that_shapes_the_answer_changes_the_key() {
        let r = base();
        let k = key(&r);
        let variants = [
            ChatRequest::new("gpt-4o-mini")
                .system("be terse")
                .message(Message::user("what is 2+2?"))
                .max_tokens(10),
            r.clone().system("be verbose"),
            r.clone().message(Message::user("and 3+3?")),
            r.clone().max_tokens(11),
            r.clone().temperature(0.0),
            ChatRequest {
                top_p: Some(0.5),
                ..r.clone()
            },
            ChatRequest {
                stop: vec!["\n".into()],
                ..r.clone()
            },
            r.clone().tool(ToolDefinition {
                name: "calc".into(),
                description: None,
                parameters: json!({"type": "object"}),
            }),
            ChatRequest {
                tool_choice: Some(ToolChoice::Required),
                ..r.clone()
            },
            ChatRequest {
                response_format: Some(ResponseFormat::JsonObject),
                ..r.clone()
            },
            r.clone().extra("seed", json!(1)),
        ];
        for v in &variants {
            assert_ne!(key(v), k, "{v:?}");
        }
        assert_ne!(CacheKey::for_request(&r, Some("prod")).unwrap(), k);
    }

    #[test]
    fn object_key_order_does_not_matter() {
        let a = base()
            .extra("a", json!({"x": 1, "y": 2}))
            .extra("b", json!(2));
        let b = base()
            .extra("b", json!(2))
            .extra("a", json!({"y": 2, "x": 1}));
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn key_is_stable_across_releases() {
        // Pinned: a change here invalidates every shared cache. Bump
        // KEY_VERSION when the canonical form changes on purpose.
        let k = key(&ChatRequest::new("gpt-4o").message(Message::user("hi")));
        // = sha256 of the canonical encoding of the key material (checked with an
        // independent Python implementation of `write_canonical`).
        assert_eq!(
            k.to_hex(),
            "1455005ad25cc45797daa01f2727c861d288109af9e36dc8b8f6ac7baf69b9ac"
        );
        assert_eq!(format!("{k:?}").len(), "CacheKey()".len() + 16);
    }

    #[test]
    fn key_reveals_nothing() {
        let secret = "sk-live-THIS-IS-A-SECRET";
        let r = ChatRequest::new("gpt-4o").message(Message::user(secret));
        let k = key(&r);
        assert!(!format!("{k:?}").contains("sk-live"));
        assert!(!k.to_hex().contains("sk-live"));
        assert!(!k.to_string().contains("SECRET"));
    }
}
