//! A sans-I/O parser for server-sent events (the `text/event-stream`
//! format every provider streams in).
//!
//! Feed it bytes as they arrive, in chunks of any size; it returns each
//! event once its blank line has been read. It follows the WHATWG
//! [event-stream interpretation](https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//! lines end with LF, CRLF or CR (a CRLF split across two chunks is one line
//! end); lines starting with `:` are comments (keep-alives); one optional
//! space after the colon is dropped; several `data:` lines of one event are
//! joined with `\n`; unknown fields are ignored; a UTF-8 BOM at the very
//! start is skipped.
//!
//! One deliberate departure: [`SseParser::finish`] returns an event whose
//! blank line never came (the body ended right after its last `data:` line,
//! with or without a final newline). The standard drops it; a provider's
//! last chunk is the one that carries the billed usage, so costlayer keeps
//! it and lets the decoder judge it (a truncated JSON payload still fails to
//! parse, and the stream is then reported as cut).
//!
//! Why not a crate: the stream adapters on crates.io (`eventsource-stream`)
//! wrap a `Stream` of bytes, drop that unterminated last event, and cannot
//! be driven from synchronous code (fuzzing, replaying a cached stream);
//! the format itself is a page of code.
//!
//! # Example
//!
//! ```
//! use costlayer_core::sse::SseParser;
//!
//! let mut p = SseParser::new();
//! // A frame split across reads, a keep-alive comment, CRLF line ends.
//! assert!(p.feed(b": keep-alive\r\n\r\nevent: delta\r\ndata: {\"a\"").is_empty());
//! let events = p.feed(b":1}\r\n\r\ndata: [DONE]");
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event.as_deref(), Some("delta"));
//! assert_eq!(events[0].data, "{\"a\":1}");
//! // The body ended without a final newline: the last event is still read.
//! let last = p.finish().expect("the unterminated event");
//! assert_eq!(last.data, "[DONE]");
//! ```

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (the standard's default type is `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field (milliseconds), if any.
    pub retry: Option<u64>,
}

/// The incremental parser. See the [module docs](self).
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being read (no line end yet).
    line: Vec<u8>,
    /// The event being assembled.
    event: SseEvent,
    /// Whether the event has any field at all (so an empty `data:` line
    /// still dispatches an event, while a lone blank line does not).
    has_data: bool,
    /// The previous chunk ended with CR: a leading LF of the next chunk
    /// belongs to the same line end.
    after_cr: bool,
    /// The first bytes of the stream have been looked at (BOM check).
    started: bool,
    /// How many bytes of a leading BOM have been read so far.
    bom: usize,
}

/// The UTF-8 byte order mark, skipped at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Reads a chunk; returns the events completed by it, in order.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.started {
            // A BOM may itself arrive split across reads.
            let mut i = 0;
            while i < chunk.len() && self.bom < BOM.len() && chunk[i] == BOM[self.bom] {
                self.bom += 1;
                i += 1;
            }
            chunk = &chunk[i..];
            if self.bom == BOM.len() {
                self.started = true;
            } else if chunk.is_empty() {
                return out; // all of it could still be a BOM
            } else {
                // Not a BOM after all: those bytes start the first line.
                self.started = true;
                self.line.extend_from_slice(&BOM[..self.bom]);
            }
        }
        // (An empty read leaves a pending CR pending.)
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.line.extend_from_slice(chunk);
                    break;
                }
                Some(i) => {
                    self.line.extend_from_slice(&chunk[..i]);
                    let cr = chunk[i] == b'\r';
                    chunk = &chunk[i + 1..];
                    if cr {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_done(&line) {
                        out.push(ev);
                    }
                    self.line = line;
                    self.line.clear();
                }
            }
        }
        out
    }

    /// The body ended: the event still being assembled, if it has data
    /// (see the [module docs](self) on why it is kept).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.started {
            // The body was a BOM's first bytes, and nothing else.
            self.started = true;
            self.line.extend_from_slice(&BOM[..self.bom]);
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.field(&line);
        }
        self.after_cr = false;
        self.dispatch()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        self.field(line);
        None
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // a comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.event.id = Some(value.into_owned()),
            b"retry" => {
                if let Ok(ms) = value.parse() {
                    self.event.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let ev = std::mem::take(&mut self.event);
        let had = std::mem::replace(&mut self.has_data, false);
        had.then_some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c));
        }
        out.extend(p.finish());
        out
    }

    fn data(evs: &[SseEvent]) -> Vec<&str> {
        evs.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let body =
            b"event: a\r\ndata: one\r\ndata: two\r\n\r\n: ping\n\ndata:three\r\rdata: four\n\n";
        let whole = all(&[body]);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
        assert_eq!(data(&whole), ["one\ntwo", "three", "four"]);
        assert_eq!(whole[0].event.as_deref(), Some("a"));
        assert_eq!(whole[1].event, None);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let evs = all(&[b"data: x\r", b"\n\r", b"\ndata: y\n\n"]);
        assert_eq!(data(&evs), ["x", "y"]);
        // An empty read between the CR and the LF changes nothing.
        let evs = all(&[b"data: x\r", b"", b"\ndata: y\n\n"]);
        assert_eq!(data(&evs), ["x\ny"]);
    }

    #[test]
    fn comments_and_blank_lines_alone_dispatch_nothing() {
        assert!(all(&[b": keep-alive\n\n\n\n:another\r\n\r\n"]).is_empty());
    }

    #[test]
    fn missing_final_newline_keeps_the_last_event() {
        assert_eq!(
            data(&all(&[b"data: a\n\ndata: {\"done\":true}"])),
            ["a", "{\"done\":true}"]
        );
        assert_eq!(data(&all(&[b"data: a\n\ndata: b\n"])), ["a", "b"]);
    }

    #[test]
    fn empty_data_line_is_an_event_and_fields_parse() {
        let evs = all(&[b"data\n\nid: 7\nretry: 1500\ndata: z\nunknown: q\n\n"]);
        assert_eq!(data(&evs), ["", "z"]);
        assert_eq!(evs[1].id.as_deref(), Some("7"));
        assert_eq!(evs[1].retry, Some(1500));
    }

    #[test]
    fn bom_only_at_the_start() {
        assert_eq!(data(&all(&[b"\xEF\xBB\xBFdata: a\n\n"])), ["a"]);
        // Split across reads, it is still a BOM.
        assert_eq!(data(&all(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"])), ["a"]);
        // Its first bytes and then something else are the first line's bytes.
        let evs = all(&[b"\xEF\xBB", b"data: a\n\ndata: b\n\n"]);
        assert_eq!(data(&evs), ["b"]);
        assert_eq!(evs, all(&[b"\xEF\xBBdata: a\n\ndata: b\n\n"]));
        // Later, it is data.
        assert_eq!(data(&all(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"])), ["a"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_a_panic() {
        let evs = all(&[b"data: \xff\xfe\n\n"]);
        assert_eq!(evs.len(), 1);
        assert!(evs[0].data.contains('\u{fffd}'));
    }
}
