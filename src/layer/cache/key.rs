//! The cache key: a BLAKE3 digest of a canonical binary encoding of what
//! determines the answer, written straight from the request (no
//! intermediate JSON value, no allocation for maps of up to
//! `INLINE_ENTRIES` entries).

use std::fmt;

use serde::{ser, Serialize};
use serde_json::Value;

use crate::{ChatRequest, Error, Message, ResponseFormat, ToolChoice, ToolDefinition};

/// Version of the key derivation: bump it when the canonical form changes,
/// so a shared cache never serves an entry derived differently. Version 1
/// was a SHA-256 over a `serde_json::Value`; version 2 BLAKE3 over the
/// encoding below with eight-byte lengths; version 3 wrote lengths and
/// unsigned integers as LEB128 varints, which halved the bytes hashed for a
/// typical request (BLAKE3 was the largest part of a cache hit); version 4
/// (this one) writes the key material's own fields by position, without
/// their names (a third of a short request's bytes).
const KEY_VERSION: u32 = 4;

/// The domain of the keys: BLAKE3 runs in keyed mode with the (plain)
/// BLAKE3 hash of this string as its key, so cache keys are separated from
/// any other BLAKE3 digest of the same bytes.
const CONTEXT: &str = "costlayer 2026-12 response cache key v4";

fn domain_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| *blake3::hash(CONTEXT.as_bytes()).as_bytes())
}

/// A response cache key: the BLAKE3 digest of a canonical binary encoding
/// of the fields that determine the answer — the model, the system prompt,
/// the messages, the sampling parameters (`max_tokens`, `temperature`,
/// `top_p`, `stop`), the tools, `tool_choice`, `response_format` and
/// `extra` — plus an optional namespace.
///
/// Attribution fields (`user`, `team`, `tags`) are left out, so two users
/// asking the same question share an entry. No credential is ever part of a
/// request, and the key is a one-way digest: neither the prompt nor anything
/// else can be read back from it.
///
/// The encoding is prefix-free (a tag byte per value, every string
/// length-prefixed, containers closed by an end byte), so two different
/// requests never share it; JSON objects (`extra`, tool schemas) are
/// encoded as the sorted digests of their entries, so key order — and
/// whitespace, which never reaches a parsed value — does not change the key.
/// It is the same in every process and on every machine, so a shared cache
/// can use it.
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

/// What a key is derived from, written by [`Material::write`].
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
    /// [`Error::Other`] if a value in the request refuses to be serialised
    /// (no type in [`ChatRequest`] does; the `Result` is kept for custom
    /// content).
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
        let mut sink = Sink::new(blake3::Hasher::new_keyed(domain_key()));
        material
            .write(&mut sink)
            .map_err(|e| Error::Other(Box::new(e)))?;
        Ok(CacheKey(sink.finalize()))
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

/// A value that refused to be serialised into the key.
#[derive(Debug, thiserror::Error)]
#[error("a request field could not be encoded into its cache key: {0}")]
pub(crate) struct KeyError(String);

impl ser::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

// Tag bytes. Every value starts with one; `]` and `}` close containers and
// start no value, so the encoding is prefix-free.
const NULL: &[u8] = b"n";
const TRUE: &[u8] = b"t";
const FALSE: &[u8] = b"f";
const UINT: &[u8] = b"u";
const INT: &[u8] = b"i";
const UINT128: &[u8] = b"U";
const INT128: &[u8] = b"I";
const FLOAT: &[u8] = b"d";
const STR: &[u8] = b"s";
const BYTES: &[u8] = b"b";
const VARIANT: &[u8] = b"V";
const SEQ: &[u8] = b"[";
const SEQ_END: &[u8] = b"]";
const STRUCT: &[u8] = b"{";
const STRUCT_END: &[u8] = b"}";
const MAP: &[u8] = b"M";

/// Map entries whose digests are sorted on the stack; larger maps spill
/// to the heap.
pub(crate) const INLINE_ENTRIES: usize = 16;

impl Material<'_> {
    /// The fields in declaration order, each in the canonical encoding,
    /// between a struct's `{` and `}` but without their names: none is
    /// ever left out (an absent `Option` is written as `n`, an empty list as
    /// `[]`), so a field's position names it, and the version (first)
    /// fixes the order. Names stay inside the messages, tools and formats,
    /// whose fields may be skipped when empty.
    fn write(&self, sink: &mut Sink) -> Result<(), KeyError> {
        sink.update(STRUCT);
        self.v.serialize(Canonical(sink))?;
        self.namespace.serialize(Canonical(sink))?;
        self.model.serialize(Canonical(sink))?;
        self.system.serialize(Canonical(sink))?;
        self.messages.serialize(Canonical(sink))?;
        self.max_tokens.serialize(Canonical(sink))?;
        self.temperature.serialize(Canonical(sink))?;
        self.top_p.serialize(Canonical(sink))?;
        self.stop.serialize(Canonical(sink))?;
        self.tools.serialize(Canonical(sink))?;
        self.tool_choice.serialize(Canonical(sink))?;
        self.response_format.serialize(Canonical(sink))?;
        self.extra.serialize(Canonical(sink))?;
        sink.update(STRUCT_END);
        Ok(())
    }
}

/// Bytes bound for a BLAKE3 hasher, gathered on the stack first: the
/// encoding is mostly one-byte tags and eight-byte lengths, and each
/// `Hasher::update` call has a fixed cost far above copying a few bytes.
struct Sink {
    hasher: blake3::Hasher,
    buf: [u8; SINK_BUFFER],
    len: usize,
}

const SINK_BUFFER: usize = 512;

impl Sink {
    fn new(hasher: blake3::Hasher) -> Self {
        Sink {
            hasher,
            buf: [0; SINK_BUFFER],
            len: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > SINK_BUFFER {
            self.flush();
            if bytes.len() >= SINK_BUFFER {
                // Long strings (prompts) go to the hasher as they are.
                self.hasher.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// A one-byte tag and `v` as a LEB128 varint (seven bits a byte, low
    /// bits first, the high bit set on every byte but the last: prefix
    /// free), in one write.
    fn tagged_varint(&mut self, tag: &[u8], mut v: u64) {
        let mut out = [0u8; 11];
        out[0] = tag[0];
        let mut n = 1;
        while v >= 0x80 {
            out[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        out[n] = v as u8;
        self.update(&out[..=n]);
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }

    fn finalize(&mut self) -> [u8; 32] {
        self.flush();
        *self.hasher.finalize().as_bytes()
    }
}

/// A `serde` serializer that feeds the canonical encoding into a BLAKE3
/// hasher:
///
/// - unsigned integers as `u` + LEB128 varint (negative ones as `i` +
///   i64, little-endian); `f32` is widened to `f64` and written as `d` +
///   its bits, little-endian;
/// - strings as `s` + length (LEB128) + UTF-8, bytes as `b` + length +
///   bytes;
///   `None` and `()` as `n`; `Some(x)` and newtypes as `x` (as JSON does);
/// - sequences and tuples as `[` items `]`; structs as `{` (field name,
///   value)* `}` in declaration order (fixed by the type); enum variants
///   as `V` + name + content, unit variants as their name;
/// - maps as `M` + entry count (LEB128) + the 32-byte BLAKE3 digests of each
///   entry's encoding (key, then value), sorted: independent of the map's
///   iteration order (`serde_json::Map` keeps insertion order when some
///   crate in the build enables `preserve_order`).
struct Canonical<'h>(&'h mut Sink);

impl Canonical<'_> {
    fn str(&mut self, s: &str) {
        self.bytes_tagged(STR, s.as_bytes());
    }

    fn bytes_tagged(&mut self, tag: &[u8], b: &[u8]) {
        self.0.tagged_varint(tag, b.len() as u64);
        self.0.update(b);
    }

    fn reborrow(&mut self) -> Canonical<'_> {
        Canonical(&mut *self.0)
    }
}

impl<'h> ser::Serializer for Canonical<'h> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapDigests<'h>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.0.update(if v { TRUE } else { FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        // Non-negative integers encode as unsigned, whatever their type, as
        // a JSON number does.
        match u64::try_from(v) {
            Ok(u) => self.serialize_u64(u),
            Err(_) => {
                self.0.update(INT);
                self.0.update(&v.to_le_bytes());
                Ok(())
            }
        }
    }
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) => {
                self.0.update(INT128);
                self.0.update(&v.to_le_bytes());
                Ok(())
            }
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.0.tagged_varint(UINT, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        match u64::try_from(v) {
            Ok(v) => self.serialize_u64(v),
            Err(_) => {
                self.0.update(UINT128);
                self.0.update(&v.to_le_bytes());
                Ok(())
            }
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.0.update(FLOAT);
        self.0.update(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(mut self, v: char) -> Result<(), KeyError> {
        self.str(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(mut self, v: &str) -> Result<(), KeyError> {
        self.str(v);
        Ok(())
    }
    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), KeyError> {
        self.bytes_tagged(BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), KeyError> {
        self.0.update(NULL);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), KeyError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), KeyError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.0.update(VARIANT);
        self.str(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, KeyError> {
        self.0.update(SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, KeyError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, KeyError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, KeyError> {
        self.0.update(VARIANT);
        self.str(variant);
        self.0.update(SEQ);
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapDigests<'h>, KeyError> {
        Ok(MapDigests {
            out: self.0,
            entry: None,
            inline: [[0; 32]; INLINE_ENTRIES],
            len: 0,
            spilled: Vec::new(),
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, KeyError> {
        self.0.update(STRUCT);
        Ok(self)
    }
    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, KeyError> {
        self.0.update(VARIANT);
        self.str(variant);
        self.0.update(STRUCT);
        Ok(self)
    }
}

impl ser::SerializeSeq for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        self.0.update(SEQ_END);
        Ok(())
    }
}

impl ser::SerializeTuple for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeStruct for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.str(key);
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        self.0.update(STRUCT_END);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Canonical<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), KeyError> {
        ser::SerializeStruct::end(self)
    }
}

/// A map being encoded: each entry is hashed on its own, and the sorted
/// entry digests go into the parent hasher at the end.
///
/// An entry written whole ([`SerializeMap::serialize_entry`], as
/// `serde_json::Map` and the std maps do) is hashed by a hasher on the
/// stack of that call, so the map itself stays small (a BLAKE3 hasher is
/// about 2 KB: an empty `extra` map must not build, zero and move one).
///
/// [`SerializeMap::serialize_entry`]: ser::SerializeMap::serialize_entry
struct MapDigests<'h> {
    out: &'h mut Sink,
    /// The entry whose key was written on its own and whose value is
    /// awaited (boxed: only a hand-written `Serialize` writes a key and a
    /// value in two calls).
    entry: Option<Box<Sink>>,
    inline: [[u8; 32]; INLINE_ENTRIES],
    len: usize,
    spilled: Vec<[u8; 32]>,
}

impl MapDigests<'_> {
    fn push(&mut self, digest: [u8; 32]) {
        if self.len < INLINE_ENTRIES {
            self.inline[self.len] = digest;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(digest);
        }
        self.len += 1;
    }
}

impl ser::SerializeMap for MapDigests<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), KeyError> {
        let mut entry = Box::new(Sink::new(blake3::Hasher::new()));
        key.serialize(Canonical(&mut entry))?;
        self.entry = Some(entry);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), KeyError> {
        let Some(mut entry) = self.entry.take() else {
            return Err(ser::Error::custom("a map value came without its key"));
        };
        value.serialize(Canonical(&mut entry))?;
        let digest = entry.finalize();
        self.push(digest);
        Ok(())
    }
    fn serialize_entry<K: ?Sized + Serialize, V: ?Sized + Serialize>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), KeyError> {
        let mut entry = Sink::new(blake3::Hasher::new());
        key.serialize(Canonical(&mut entry))?;
        value.serialize(Canonical(&mut entry))?;
        let digest = entry.finalize();
        self.push(digest);
        Ok(())
    }
    fn end(mut self) -> Result<(), KeyError> {
        let digests: &mut [[u8; 32]] = if self.len <= INLINE_ENTRIES {
            &mut self.inline[..self.len]
        } else {
            &mut self.spilled
        };
        digests.sort_unstable();
        self.out.tagged_varint(MAP, digests.len() as u64);
        for d in digests.iter() {
            self.out.update(d);
        }
        Ok(())
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
    fn equal_requests_share_a_key_whatever_the_json_layout() {
        // The same tool schema and `extra`, written with other whitespace
        // and key order (as another program would send them).
        let compact: Value = serde_json::from_str(
            r#"{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"string"}},"required":["x"]}"#,
        )
        .unwrap();
        let spaced: Value = serde_json::from_str(
            "{ \"required\" : [ \"x\" ],\n  \"properties\": { \"y\": {\"type\": \"string\"},\n \"x\": { \"type\" : \"number\" } },\n  \"type\": \"object\" }",
        )
        .unwrap();
        let with = |schema: Value, extra: &str| {
            let mut r = base().tool(ToolDefinition {
                name: "calc".into(),
                description: Some("adds".into()),
                parameters: schema,
            });
            r.extra = serde_json::from_str(extra).unwrap();
            r
        };
        let a = with(compact.clone(), r#"{"seed":7,"logit_bias":{"1":2,"3":4}}"#);
        let b = with(
            spaced,
            "{ \"logit_bias\": {\"3\": 4, \"1\": 2},\n \"seed\": 7 }",
        );
        assert_eq!(key(&a), key(&b));
        // A field that matters, changed deep inside: another key.
        let c = with(compact, r#"{"seed":7,"logit_bias":{"1":2,"3":5}}"#);
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn values_are_not_confused_across_shapes() {
        // Pairs a naive concatenation would encode alike.
        let pairs = [
            (json!({"ab": "c"}), json!({"a": "bc"})),
            (json!(["a", "b"]), json!(["ab"])),
            (json!([["a"], "b"]), json!([["a", "b"]])),
            (json!({"a": ["b"]}), json!([["a", "b"]])),
            (json!(1), json!(1.0)),
            (json!(1), json!("1")),
            (json!(null), json!([])),
            (json!({}), json!([])),
            (json!(-1), json!(u64::MAX)),
        ];
        for (x, y) in pairs {
            let kx = key(&base().extra("v", x.clone()));
            let ky = key(&base().extra("v", y.clone()));
            assert_ne!(kx, ky, "{x} vs {y}");
        }
        // Large maps (past the entries sorted on the stack) are order-free too.
        let forward: serde_json::Map<String, Value> =
            (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut backward = serde_json::Map::new();
        for i in (0..40).rev() {
            backward.insert(format!("k{i}"), json!(i));
        }
        let mut changed = forward.clone();
        changed.insert("k39".into(), json!(-1));
        let k = |m: serde_json::Map<String, Value>| key(&base().extra("m", Value::Object(m)));
        assert_eq!(k(forward.clone()), k(backward));
        assert_ne!(k(forward), k(changed));
    }

    /// A map serialised in the order of its vector (as an insertion-ordered
    /// map would be).
    struct Entries(Vec<(&'static str, u32)>);

    impl Serialize for Entries {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    /// The same entries, each written as a key and then a value.
    struct SplitEntries(Vec<(&'static str, u32)>);

    impl Serialize for SplitEntries {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut m = s.serialize_map(None)?;
            for (k, v) in &self.0 {
                m.serialize_key(k)?;
                m.serialize_value(v)?;
            }
            m.end()
        }
    }

    #[test]
    fn an_entry_written_in_two_calls_hashes_as_one_written_whole() {
        let entries = vec![("model", 1), ("seed", 7), ("a", 0)];
        assert_eq!(
            digest(&Entries(entries.clone())),
            digest(&SplitEntries(entries))
        );
        // A value without its key is refused, not hashed as something else.
        struct Orphan;
        impl Serialize for Orphan {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use ser::SerializeMap;
                let mut m = s.serialize_map(None)?;
                m.serialize_value(&1)?;
                m.end()
            }
        }
        let mut sink = Sink::new(blake3::Hasher::new());
        assert!(Orphan.serialize(Canonical(&mut sink)).is_err());
    }

    #[test]
    fn lengths_and_integers_are_leb128() {
        let bytes = |v: u64| {
            let mut sink = Sink::new(blake3::Hasher::new());
            sink.tagged_varint(UINT, v);
            sink.buf[..sink.len].to_vec()
        };
        assert_eq!(bytes(0), b"u\x00");
        assert_eq!(bytes(127), b"u\x7f");
        assert_eq!(bytes(128), b"u\x80\x01");
        assert_eq!(bytes(300), b"u\xac\x02");
        assert_eq!(bytes(16_384), b"u\x80\x80\x01");
        let max = bytes(u64::MAX);
        assert_eq!(max.len(), 11);
        assert_eq!(max[10], 0x01);
        assert!(max[1..10].iter().all(|b| *b == 0xff));
        // A string's length is a varint too; strings of every length
        // around the one-byte limit stay apart.
        let strings: Vec<[u8; 32]> = [126, 127, 128, 129]
            .iter()
            .map(|n| digest(&"x".repeat(*n)))
            .collect();
        for (i, a) in strings.iter().enumerate() {
            for b in &strings[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn key_with_objects_is_stable_across_releases() {
        // Pinned as the previous test, for a request with JSON objects
        // (`extra` and a tool's schema): their entries are hashed apart.
        let r = ChatRequest::new("gpt-4o")
            .message(Message::user("hi"))
            .extra("seed", json!(7))
            .extra("metadata", json!({"b": [1, 2], "a": null}))
            .tool(ToolDefinition {
                name: "calc".into(),
                description: Some("adds".into()),
                parameters: json!({"type": "object", "properties": {"x": {"type": "number"}}}),
            });
        assert_eq!(
            key(&r).to_hex(),
            "ca25631f50b65d449c512f7415a6080741661787218f395e4149f193f22e9603"
        );
    }

    fn digest(v: &impl Serialize) -> [u8; 32] {
        let mut sink = Sink::new(blake3::Hasher::new());
        v.serialize(Canonical(&mut sink)).unwrap();
        sink.finalize()
    }

    #[test]
    fn map_iteration_order_does_not_matter() {
        for n in [2, INLINE_ENTRIES, INLINE_ENTRIES + 5] {
            const NAMES: [&str; 21] = [
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
                "q", "r", "s", "t", "u",
            ];
            let forward: Vec<_> = (0..n).map(|i| (NAMES[i], i as u32)).collect();
            let mut backward = forward.clone();
            backward.reverse();
            let mut changed = forward.clone();
            changed[n - 1].1 += 1;
            assert_eq!(
                digest(&Entries(forward.clone())),
                digest(&Entries(backward))
            );
            assert_ne!(digest(&Entries(forward)), digest(&Entries(changed)));
        }
    }

    #[test]
    fn the_same_value_in_another_field_is_another_key() -> Result<(), Error> {
        // The key material's fields are written by position, without their
        // names: the same text or number in each of them must still give
        // keys that all differ.
        let r = ChatRequest::new("x").message(Message::user("x"));
        let mut keys = vec![key(&r), CacheKey::for_request(&r, Some("x"))?];
        keys.push(key(&r.clone().system("x")));
        keys.push(key(&ChatRequest {
            stop: vec!["x".into()],
            ..r.clone()
        }));
        keys.push(key(&r.clone().max_tokens(1)));
        keys.push(key(&ChatRequest {
            temperature: Some(1.0),
            ..r.clone()
        }));
        keys.push(key(&ChatRequest {
            top_p: Some(1.0),
            ..r.clone()
        }));
        keys.push(key(&r.clone().extra("x", json!("x"))));
        keys.push(key(&r.clone().message(Message::user("x"))));
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        Ok(())
    }

    #[test]
    fn key_is_stable_across_releases() {
        // Pinned: a change here invalidates every shared cache. Bump
        // KEY_VERSION when the canonical form changes on purpose.
        let k = key(&ChatRequest::new("gpt-4o").message(Message::user("hi")));
        // = keyed BLAKE3 (key: BLAKE3 of CONTEXT) of the version-4 encoding
        // of the key material, pinned when version 4 was introduced.
        assert_eq!(
            k.to_hex(),
            "660dd35c2ccba9a542b289e305f7b902ed57bb40a3815b6895efc58d766a7142"
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
