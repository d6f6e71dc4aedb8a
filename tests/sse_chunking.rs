//! The SSE parser and every provider's stream decoder, on stable Rust:
//! recorded-shape streams of each provider (`tests/fixtures/streams/`) cut
//! into many deterministic pseudo-random reads, with their line ends
//! rewritten, comments and keep-alives inserted, the final newline taken
//! away and random bytes spliced in, and plain random noise. The same
//! events and the same deltas must come out whatever the cut; nothing may
//! panic. The cargo-fuzz target `sse_stream` (fuzz/README.md) explores the
//! same checks (`costlayer::__fuzz::sse_stream`) without bounds.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use costlayer::anthropic::AnthropicStreamDecoder;
use costlayer::core::sse::{SseEvent, SseParser};
use costlayer::core::stream::{decode_body, DecodedBody};
use costlayer::core::{ApiKey, StreamCodec};
use costlayer::gemini::GeminiCodec;
use costlayer::openai::{OpenAiResponsesStreamDecoder, OpenAiStreamDecoder};
use costlayer::{ChatRequest, Message, Usage};

/// The recorded streams, and what each decodes to: text and final usage.
const STREAMS: &[(&str, &str)] = &[
    (
        "openai_chat",
        include_str!("fixtures/streams/openai_chat.sse"),
    ),
    (
        "openai_responses",
        include_str!("fixtures/streams/openai_responses.sse"),
    ),
    ("anthropic", include_str!("fixtures/streams/anthropic.sse")),
    ("gemini", include_str!("fixtures/streams/gemini.sse")),
];

fn decode(provider: &str, body: &[u8], sizes: &[usize]) -> DecodedBody {
    match provider {
        "openai_chat" => decode_body(OpenAiStreamDecoder::default(), body, sizes),
        "openai_responses" => {
            decode_body(OpenAiResponsesStreamDecoder::new("gpt-4.1"), body, sizes)
        }
        "anthropic" => decode_body(AnthropicStreamDecoder::default(), body, sizes),
        "gemini" => {
            let codec = GeminiCodec::new(ApiKey::new("k"));
            let req = ChatRequest::new("gemini-2.5-flash").message(Message::user("hi"));
            decode_body(codec.stream_decoder(&req), body, sizes)
        }
        other => panic!("no decoder for {other}"),
    }
}

/// A deterministic xorshift generator: the same cuts on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Read sizes for one cut: mostly small (every frame and line end
    /// split), sometimes large.
    fn sizes(&mut self) -> Vec<usize> {
        let max = [2, 5, 17, 64, 700][self.below(5)];
        (0..1 + self.below(12))
            .map(|_| 1 + self.below(max))
            .collect()
    }
}

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

/// The same events, the same deltas and the same ending for `variant` as
/// for the stream's LF original, whole, under `cuts` random cuts.
fn assert_same(provider: &str, original: &str, variant: &[u8], rng: &mut Rng, cuts: usize) {
    let events = parse(original.as_bytes(), &[]);
    let decoded = decode(provider, original.as_bytes(), &[]);
    for _ in 0..cuts {
        let sizes = rng.sizes();
        assert_eq!(
            parse(variant, &sizes),
            events,
            "{provider}: events differ, reads {sizes:?}"
        );
        let d = decode(provider, variant, &sizes);
        assert_eq!(
            d.deltas, decoded.deltas,
            "{provider}: deltas, reads {sizes:?}"
        );
        assert_eq!(d.error.is_some(), decoded.error.is_some(), "{provider}");
    }
}

#[test]
fn each_recorded_stream_decodes_completely() {
    let expect: &[(&str, &str, Usage)] = &[
        (
            "openai_chat",
            "Hello",
            Usage {
                input_tokens: 176,
                cache_read_tokens: 1024,
                output_tokens: 7,
                ..Usage::default()
            },
        ),
        (
            "openai_responses",
            "Invoice total: 42 EUR.",
            Usage {
                input_tokens: 6000,
                cache_read_tokens: 4000,
                output_tokens: 2000,
                reasoning_tokens: 1500,
                ..Usage::default()
            },
        ),
        (
            "anthropic",
            "Let me check",
            Usage {
                input_tokens: 50,
                cache_read_tokens: 100_000,
                output_tokens: 500,
                ..Usage::default()
            },
        ),
        (
            "gemini",
            "Hello",
            Usage {
                input_tokens: 200,
                cache_read_tokens: 1000,
                output_tokens: 14,
                reasoning_tokens: 10,
                ..Usage::default()
            },
        ),
    ];
    for ((provider, body), (name, text, usage)) in STREAMS.iter().zip(expect) {
        assert_eq!(provider, name);
        let d = decode(provider, body.as_bytes(), &[]);
        assert!(d.error.is_none(), "{provider}: {:?}", d.error);
        assert!(d.is_done(), "{provider}");
        let resp = d.response();
        assert_eq!(resp.text, *text, "{provider}");
        assert_eq!(resp.usage.input_tokens, usage.input_tokens, "{provider}");
        assert_eq!(
            resp.usage.cache_read_tokens, usage.cache_read_tokens,
            "{provider}"
        );
        assert_eq!(resp.usage.output_tokens, usage.output_tokens, "{provider}");
        assert_eq!(
            resp.usage.reasoning_tokens, usage.reasoning_tokens,
            "{provider}"
        );
    }
}

#[test]
fn the_same_events_whatever_the_reads() {
    let mut rng = Rng(0x0005_eed0_f55e_c4a1);
    for (provider, body) in STREAMS {
        // Every single cut point, in two reads.
        let events = parse(body.as_bytes(), &[]);
        for at in 1..body.len() {
            let mut p = SseParser::new();
            let (a, b) = body.as_bytes().split_at(at);
            let mut got = p.feed(a);
            got.extend(p.feed(b));
            got.extend(p.finish());
            assert_eq!(got, events, "{provider}: cut at {at}");
        }
        assert_same(provider, body, body.as_bytes(), &mut rng, 300);
    }
}

#[test]
fn crlf_lf_and_cr_line_ends_are_equivalent() {
    let mut rng = Rng(0xc0ff_ee15_900d);
    for (provider, body) in STREAMS {
        for end in ["\r\n", "\r"] {
            let variant = body.replace('\n', end);
            assert_same(provider, body, variant.as_bytes(), &mut rng, 150);
        }
        // Mixed: each line end picked at random (except that a CR
        // followed by an empty line's LF would be one CRLF, not two ends).
        let mut prev_cr = false;
        let mixed: String = body
            .split_inclusive('\n')
            .map(|l| {
                let l = l.strip_suffix('\n').unwrap_or(l);
                let mut end = ["\n", "\r\n", "\r"][rng.below(3)];
                if prev_cr && l.is_empty() && end == "\n" {
                    end = "\r";
                }
                prev_cr = end == "\r";
                format!("{l}{end}")
            })
            .collect();
        assert_same(provider, body, mixed.as_bytes(), &mut rng, 150);
    }
}

#[test]
fn comments_and_keep_alives_are_ignored() {
    let mut rng = Rng(0x0bad_cafe_1234);
    for (provider, body) in STREAMS {
        let mut variant = String::from(": connected\n\n");
        for frame in body.split_inclusive("\n\n") {
            // A keep-alive or stray blank lines between frames, and a
            // comment line inside the frame.
            variant
                .push_str([": keep-alive\n\n", ":\n\n", "\n\n", ": ping 1\r\n\r\n"][rng.below(4)]);
            match frame.split_once('\n') {
                Some((first, rest)) if rng.below(2) == 0 => {
                    variant.push_str(first);
                    variant.push_str("\n: a comment between fields\n");
                    variant.push_str(rest);
                }
                _ => {
                    variant.push_str(": before the frame\n");
                    variant.push_str(frame);
                }
            }
        }
        variant.push_str(": keep-alive\n\n");
        assert_same(provider, body, variant.as_bytes(), &mut rng, 150);
    }
}

#[test]
fn a_missing_final_newline_is_handled() {
    let mut rng = Rng(0xfeed_f00d_0042);
    for (provider, body) in STREAMS {
        let one = body.strip_suffix('\n').unwrap();
        let none = body.trim_end_matches('\n');
        assert_same(provider, body, one.as_bytes(), &mut rng, 100);
        assert_same(provider, body, none.as_bytes(), &mut rng, 100);
        let crlf = body.replace('\n', "\r\n");
        assert_same(provider, body, crlf.trim_end().as_bytes(), &mut rng, 100);
    }
}

#[test]
fn random_noise_never_panics_and_is_read_alike_whatever_the_reads() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // Bytes the parser cares about, and any byte.
    const SPECIAL: &[u8] = b"\r\n:data event id retry \xEF\xBB\xBF{}\"[]\x00\xff";
    let providers: Vec<&str> = STREAMS.iter().map(|(p, _)| *p).collect();
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..400 {
        let len = rng.below(600);
        inputs.push(
            (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        (rng.next() & 0xff) as u8
                    } else {
                        SPECIAL[rng.below(SPECIAL.len())]
                    }
                })
                .collect(),
        );
    }
    // Noise spliced into the recorded streams: edits, insertions, cuts.
    for (_, body) in STREAMS {
        for _ in 0..150 {
            let mut v = body.as_bytes().to_vec();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(v.len());
                match rng.below(3) {
                    0 => v[i] = SPECIAL[rng.below(SPECIAL.len())],
                    1 => v.insert(i, (rng.next() & 0xff) as u8),
                    _ => v.truncate(i.max(1)),
                }
            }
            inputs.push(v);
        }
    }
    for input in &inputs {
        let whole = parse(input, &[]);
        for _ in 0..4 {
            let sizes = rng.sizes();
            assert_eq!(parse(input, &sizes), whole, "reads {sizes:?} of {input:?}");
        }
        for provider in &providers {
            let a = decode(provider, input, &[]);
            let sizes = rng.sizes();
            let b = decode(provider, input, &sizes);
            assert_eq!(
                a.deltas, b.deltas,
                "{provider}: reads {sizes:?} of {input:?}"
            );
            assert_eq!(a.error.is_some(), b.error.is_some());
            // A stream that did not complete says so.
            assert!(a.is_done() || a.error.is_some(), "{provider}: {input:?}");
        }
    }
}
