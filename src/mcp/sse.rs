//! Incremental `text/event-stream` parser (WHATWG HTML, "Server-sent events" interpretation).
//!
//! Feed byte chunks of any size with [`SseParser::push`], then drain [`SseParser::next_item`].
//! Each item carries the exact bytes of its event block (every line up to and including the
//! blank line that ends it, comments too), so a proxy can forward untouched events byte for
//! byte; concatenating all items plus [`SseParser::finish`] gives back the input exactly.
//!
//! Lines end in CRLF, LF or CR, also when the CR and LF of one CRLF arrive in different chunks
//! (the LF is then the first byte of the next item). A leading UTF-8 BOM is ignored for parsing.
//! `data` lines are joined with `\n`; `id` values containing NUL are ignored; `retry` must be
//! all digits; unknown fields and comment lines (starting with `:`) are skipped.
//!
//! Bounded memory: an event block larger than the cap is not buffered. Its bytes come out as
//! [`SseItem::Oversize`] pieces as soon as they arrive (the first piece holds what was buffered
//! so far), unparsed, until the blank line that ends it. A proxy thus passes big events through
//! uninspected instead of failing them or holding them whole; the cost is that nothing inside an
//! oversize event (errors, a `tools/list` result) can be seen or changed.

use bytes::{Bytes, BytesMut};

/// One parsed, complete event block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The block's bytes exactly as received.
    pub raw: Bytes,
    /// `event:` field (the event type), if any.
    pub event: Option<String>,
    /// `data:` lines joined with `\n` (empty if there were none).
    pub data: String,
    /// Whether any `data` field was present (an empty `data` field still counts).
    pub has_data: bool,
    /// `id:` field, if any (and free of NUL).
    pub id: Option<String>,
    /// `retry:` field in milliseconds, if it was all digits.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// This event written anew with `data` (one line: it must hold no CR or LF) in place of its
    /// data; `id`, `event` and `retry` are kept, comments are not.
    pub fn with_data(&self, data: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut field = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.push(b'\n');
        };
        if let Some(id) = &self.id {
            field(b"id", id.as_bytes());
        }
        if let Some(event) = &self.event {
            field(b"event", event.as_bytes());
        }
        if let Some(retry) = self.retry {
            field(b"retry", retry.to_string().as_bytes());
        }
        field(b"data", data);
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// What [`SseParser::next_item`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event block within the cap (may be a comment-only block with no data).
    Event(SseEvent),
    /// Bytes of an event block that exceeded the cap, to pass through unparsed.
    Oversize {
        /// The bytes.
        raw: Bytes,
        /// True on the first piece of each oversize event (to count events, not pieces).
        first: bool,
    },
}

/// Fields gathered for the event being read.
#[derive(Default)]
struct Pending {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

/// Incremental parser; see the module docs.
pub struct SseParser {
    /// Bytes of the current, incomplete event block (cleared as items are taken).
    buf: BytesMut,
    /// Offset in `buf` up to which whole lines have been parsed.
    scan: usize,
    /// Offset up to which `buf` is known to hold no line end (so a long line is searched once).
    searched: usize,
    max_event: usize,
    pending: Pending,
    /// The previous line ended in CR: an LF right after it belongs to that line ending.
    skip_lf: bool,
    /// No line has been parsed yet (for the BOM).
    at_stream_start: bool,
    /// Inside an oversize event: forwarding its bytes until a blank line.
    skipping: bool,
    /// While skipping: the next byte starts a line.
    at_line_start: bool,
}

impl SseParser {
    /// A parser that buffers at most `max_event` bytes of one event block (at least 1).
    pub fn new(max_event: usize) -> SseParser {
        SseParser {
            buf: BytesMut::new(),
            scan: 0,
            searched: 0,
            max_event: max_event.max(1),
            pending: Pending::default(),
            skip_lf: false,
            at_stream_start: true,
            skipping: false,
            at_line_start: true,
        }
    }

    /// Appends a chunk; call [`next_item`](Self::next_item) until `None` afterwards.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet returned in an item.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete item, or `None` until more bytes arrive.
    pub fn next_item(&mut self) -> Option<SseItem> {
        loop {
            if self.skipping {
                return self.next_oversize_piece();
            }
            if self.skip_lf && self.scan < self.buf.len() {
                if self.buf[self.scan] == b'\n' {
                    self.scan += 1;
                }
                self.skip_lf = false;
            }
            let from = self.scan.max(self.searched);
            let Some(pos) = self.buf[from..].iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.searched = self.buf.len();
                if self.buf.len() > self.max_event {
                    // A line longer than the cap: give up parsing this event.
                    self.at_line_start = self.scan == self.buf.len();
                    return Some(self.start_oversize(self.buf.len()));
                }
                return None;
            };
            let (line_start, line_end) = (self.scan, from + pos);
            self.searched = 0;
            self.scan = self.line_end_len(line_end);
            let blank = line_start == line_end;
            if self.scan > self.max_event {
                let end = self.scan;
                if blank {
                    // The event is complete, just too big to inspect: one piece, no skipping.
                    self.reset_event();
                    return Some(SseItem::Oversize { raw: self.take(end), first: true });
                }
                self.at_line_start = true;
                return Some(self.start_oversize(end));
            }
            if blank {
                let end = self.scan;
                let p = std::mem::take(&mut self.pending);
                self.reset_event();
                let mut data = p.data;
                if data.ends_with('\n') {
                    data.pop();
                }
                let raw = self.take(end);
                return Some(SseItem::Event(SseEvent {
                    raw,
                    event: p.event,
                    data,
                    has_data: p.has_data,
                    id: p.id,
                    retry: p.retry,
                }));
            }
            let mut line = &self.buf[line_start..line_end];
            if self.at_stream_start {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            self.at_stream_start = false;
            parse_line(line, &mut self.pending);
        }
    }

    /// End of stream: the bytes of an unfinished event (which WHATWG discards), to pass on as-is.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.reset_event();
        self.skipping = false;
        self.scan = 0;
        self.searched = 0;
        let rest = self.buf.split().freeze();
        (!rest.is_empty()).then_some(rest)
    }

    /// Offset just past the line terminator at `at` (CR, LF or CRLF). A CR that ends the
    /// buffer sets `skip_lf`: its LF, if one follows, arrives with the next chunk. Taking the LF
    /// with the CR when present matters: clients that hold a trailing CR until they see what
    /// follows (httpx does) would otherwise get each CRLF event only with the next one.
    fn line_end_len(&mut self, at: usize) -> usize {
        self.skip_lf = false;
        if self.buf[at] == b'\r' {
            match self.buf.get(at + 1) {
                Some(b'\n') => return at + 2,
                Some(_) => {}
                None => self.skip_lf = true,
            }
        }
        at + 1
    }

    fn take(&mut self, end: usize) -> Bytes {
        let raw = self.buf.split_to(end).freeze();
        self.scan = 0;
        self.searched = 0;
        raw
    }

    fn reset_event(&mut self) {
        self.pending = Pending::default();
        self.at_stream_start = false;
    }

    /// Switches to skipping mode and returns the first oversize piece (`buf[..end]`).
    fn start_oversize(&mut self, end: usize) -> SseItem {
        self.reset_event();
        self.skipping = true;
        SseItem::Oversize { raw: self.take(end), first: true }
    }

    /// While skipping: everything up to the ending blank line, or all there is.
    fn next_oversize_piece(&mut self) -> Option<SseItem> {
        if self.buf.is_empty() {
            return None;
        }
        let mut end = None;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            match b {
                b'\n' if self.skip_lf => {
                    self.skip_lf = false;
                    i += 1;
                }
                b'\n' | b'\r' => {
                    i = self.line_end_len(i);
                    if self.at_line_start {
                        end = Some(i);
                        break;
                    }
                    self.at_line_start = true;
                }
                _ => {
                    self.skip_lf = false;
                    self.at_line_start = false;
                    i += 1;
                }
            }
        }
        let end = match end {
            Some(end) => {
                self.skipping = false;
                self.at_line_start = true;
                end
            }
            None => self.buf.len(),
        };
        Some(SseItem::Oversize { raw: self.take(end), first: false })
    }
}

/// Applies one non-blank line to the pending event.
fn parse_line(line: &[u8], p: &mut Pending) {
    if line.first() == Some(&b':') {
        return; // comment
    }
    let (name, value) = match line.iter().position(|&b| b == b':') {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &b""[..]),
    };
    match name {
        b"data" => {
            p.data.push_str(&String::from_utf8_lossy(value));
            p.data.push('\n');
            p.has_data = true;
        }
        b"event" => p.event = Some(String::from_utf8_lossy(value).into_owned()),
        b"id" if !value.contains(&0) => p.id = Some(String::from_utf8_lossy(value).into_owned()),
        b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
            p.retry = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "tests/sse.rs"]
mod tests;
