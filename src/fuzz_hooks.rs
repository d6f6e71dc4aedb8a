//! Entry points for the fuzz targets in `fuzz/` and for the seed-corpus
//! property test (`tests/fuzz_seeds.rs`), which runs the same checks on
//! stable Rust. Not part of the public API: hidden, and may change in any
//! release. Each function must never panic on any input, except where it
//! asserts that two parsers agree.

/// The ledger line parsers, differentially: see
/// [`crate::ledger::__fuzz::ledger_lines`].
pub fn ledger_lines(data: &[u8]) {
    crate::ledger::__fuzz::ledger_lines(data);
}

/// The price-file loaders: the first byte picks the costlayer TOML loader
/// (even) or the LiteLLM JSON loader (odd); a loaded table is queried for
/// each of its models.
pub fn price_file(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let loaded = if which % 2 == 0 {
        crate::pricing::PriceTable::from_toml_str(&text, "fuzz.toml")
    } else {
        crate::pricing::PriceTable::from_litellm_str(&text, "fuzz.json")
    };
    if let Ok(table) = loaded {
        let _ = table.version();
        for line in text.lines().take(64) {
            let _ = table.get(line.trim());
            let _ = table.canonical(line.trim());
        }
    }
}

/// The provider response decoders: the first byte picks the provider
/// (OpenAI, Anthropic, Gemini) and the HTTP status; the rest is the body.
pub fn provider_response(data: &[u8]) {
    #[allow(unused_imports)]
    use costlayer_core::transport::{Codec, HttpResponse};
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let statuses = [200u16, 400, 401, 402, 404, 408, 413, 429, 500, 503, 529];
    let status = http::StatusCode::from_u16(statuses[usize::from(which >> 2) % statuses.len()])
        .unwrap_or(http::StatusCode::OK);
    let mut headers = http::HeaderMap::new();
    if which & 0x80 != 0 {
        headers.insert("retry-after", http::HeaderValue::from_static("7"));
        headers.insert("x-request-id", http::HeaderValue::from_static("req_fuzz"));
    }
    let resp = HttpResponse {
        status,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    };
    let req =
        costlayer_core::ChatRequest::new("gpt-4o").message(costlayer_core::Message::user("hi"));
    let key = costlayer_core::ApiKey::new("fuzz-key-not-secret");
    match which % 3 {
        #[cfg(feature = "openai")]
        0 => {
            let _ = crate::openai::OpenAiCodec::new(key).decode(&req, resp);
        }
        #[cfg(feature = "anthropic")]
        1 => {
            let _ = crate::anthropic::AnthropicCodec::new(key).decode(&req, resp);
        }
        #[cfg(feature = "gemini")]
        2 => {
            let _ = crate::gemini::GeminiCodec::new(key).decode(&req, resp);
        }
        _ => {
            let _ = (key, req, resp);
        }
    }
}

/// The SSE parser and the stream decoders. The first byte picks the
/// decoder (its low two bits: OpenAI chat, OpenAI Responses, Anthropic,
/// Gemini) and seeds how the rest, the body, is cut into reads. Asserts
/// what must hold for every body: the parser yields the same events
/// whether the body arrives whole, byte by byte or in the seeded chunks;
/// the decoder yields the same deltas, and ends the same way, for each of
/// those cuts; nothing panics.
pub fn sse_stream(data: &[u8]) {
    use costlayer_core::sse::{SseEvent, SseParser};
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    fn parse(body: &[u8], sizes: &[usize]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let mut rest = body;
        let mut sizes = sizes.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().filter(|&n| n > 0).unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            out.extend(p.feed(chunk));
            rest = tail;
        }
        out.extend(p.finish());
        out
    }
    // Chunk sizes 1..=17 from a xorshift seeded by the selector and length.
    let mut x = (u64::from(which) << 32 | body.len() as u64) | 1;
    let sizes: Vec<usize> = (0..16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 17) as usize + 1
        })
        .collect();
    let whole = parse(body, &[]);
    assert_eq!(parse(body, &[1]), whole, "byte by byte");
    assert_eq!(parse(body, &sizes), whole, "chunks {sizes:?}");

    let decode = |sizes: &[usize]| {
        #[allow(unused_imports)]
        use costlayer_core::{stream::decode_body, StreamCodec};
        let req =
            costlayer_core::ChatRequest::new("m").message(costlayer_core::Message::user("hi"));
        match which % 4 {
            #[cfg(feature = "openai")]
            0 => Some(decode_body(
                crate::openai::OpenAiStreamDecoder::default(),
                body,
                sizes,
            )),
            #[cfg(feature = "openai")]
            1 => Some(decode_body(
                crate::openai::OpenAiResponsesStreamDecoder::new(&req.model),
                body,
                sizes,
            )),
            #[cfg(feature = "anthropic")]
            2 => Some(decode_body(
                crate::anthropic::AnthropicStreamDecoder::default(),
                body,
                sizes,
            )),
            #[cfg(feature = "gemini")]
            3 => {
                let codec = crate::gemini::GeminiCodec::new(costlayer_core::ApiKey::new(
                    "fuzz-key-not-secret",
                ));
                Some(decode_body(codec.stream_decoder(&req), body, sizes))
            }
            _ => {
                let _ = (req, sizes);
                None::<costlayer_core::stream::DecodedBody>
            }
        }
    };
    if let (Some(a), Some(b)) = (decode(&[]), decode(&sizes)) {
        assert_eq!(a.deltas, b.deltas, "deltas, chunks {sizes:?}");
        assert_eq!(
            a.error.is_some(),
            b.error.is_some(),
            "{:?} / {:?}",
            a.error,
            b.error
        );
        let _ = a.response();
    }
}
