//! A parser of server-sent events (the status stream and endpoints' output streams).

/// Server-sent events, as far as fal's streams need them (WHATWG HTML, "Parsing an event
/// stream"): lines end with CRLF, LF or CR; `:` starts a comment; `data` lines are joined with
/// LF; a blank line dispatches the event when it has data. `event`, `id` and `retry` are ignored
/// (fal's status and output events carry everything in `data`). A leading UTF-8 BOM is skipped.
///
/// Why here rather than `eventsource-stream` (the crate used before): measured with callgrind
/// on `examples/bench_lifecycle` (BENCHMARKS.md, "Fixes made from these measurements"), its
/// parser cost ~14 k instructions per event, ~12 k per job — about 5% of what a bare reqwest
/// loop spends on the same three requests, against a target of at most 25% overhead in all —
/// and it rescanned its whole buffer on every chunk (a 1 MiB event took ~1.2 s in a debug
/// build; here an unfinished line is rescanned with `memchr`, milliseconds for the capped
/// 1 MiB). fal's streams need only `data` lines (the status stream, and an endpoint's output stream,
/// `crate::stream`); this parser is covered by the unit tests
/// below and the property tests in `tests/reliability/proptests.rs`.
#[derive(Default)]
pub(crate) struct SseParser {
    /// Bytes received and not yet consumed as lines.
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    pos: usize,
    /// `data` of the event being built (each line followed by LF).
    data: Vec<u8>,
    /// The last line ended with CR: a LF right after it belongs to that line end.
    after_cr: bool,
    /// Past the optional BOM.
    started: bool,
}

impl SseParser {
    /// Add received bytes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for the event being built: its `data` so far and the unparsed rest. Checked
    /// when no complete event is left (the caller bounds it), so a chunk of many small events
    /// is never refused and a large event is caught whatever chunks it came in.
    pub(crate) fn pending(&self) -> u64 {
        (self.buf.len() - self.pos + self.data.len()) as u64
    }

    /// The `data` of the next complete event in what was fed, if any. A line that is not UTF-8
    /// is an error (an event stream is UTF-8 text).
    pub(crate) fn next_event(&mut self) -> std::result::Result<Option<Vec<u8>>, String> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if !self.started {
            let head = &self.buf[self.pos..];
            if head.len() < BOM.len() && BOM.starts_with(head) {
                return Ok(None);
            }
            if head.starts_with(BOM) {
                self.pos += BOM.len();
            }
            self.started = true;
        }
        loop {
            if self.after_cr && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.pos..];
            let Some(len) = memchr::memchr2(b'\n', b'\r', rest) else {
                return Ok(None);
            };
            let (start, end) = (self.pos, self.pos + len);
            self.after_cr = self.buf[end] == b'\r';
            self.pos = end + 1;
            let line = &self.buf[start..end];
            if line.is_empty() {
                if self.data.is_empty() {
                    continue;
                }
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the LF after the last data line
                return Ok(Some(data));
            }
            if line[0] == b':' {
                continue; // comment
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &[][..]),
            };
            if field == b"data" {
                // Only data is checked: comments and ignored fields may hold anything.
                if let Err(e) = std::str::from_utf8(value) {
                    return Err(format!("the event stream is not UTF-8: {e}"));
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c);
            while let Some(d) = p.next_event().unwrap() {
                out.push(String::from_utf8(d).unwrap());
            }
        }
        out
    }

    #[test]
    fn data_lines_comments_and_other_fields() {
        let got = events(&[
            b": keep-alive\n\nevent: status\nid: 7\nretry: 10\ndata: {\"a\":1}\n\n",
            b"data:no-space\ndata:  two spaces\n\ndata\n\n",
        ]);
        assert_eq!(got, ["{\"a\":1}", "no-space\n two spaces", ""]);
    }

    #[test]
    fn every_line_ending_and_any_split() {
        let text = b"\xEF\xBB\xBFdata: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\r\n";
        for chunk in 1..text.len() {
            let chunks: Vec<&[u8]> = text.chunks(chunk).collect();
            assert_eq!(events(&chunks), ["a", "b", "c", "d"], "chunks of {chunk}");
        }
    }

    #[test]
    fn data_that_is_not_utf8_is_an_error_other_lines_are_ignored() {
        let mut p = SseParser::default();
        p.feed(b"data: \xde\xad\xbe\xef\n\n");
        assert!(p.next_event().unwrap_err().contains("UTF-8"));
        assert_eq!(events(&[b": \xff\xfe\n\xfe: x\n\ndata: ok\n\n"]), ["ok"]);
    }

    #[test]
    fn pending_counts_only_the_event_being_built() {
        let mut p = SseParser::default();
        // Many small complete events in one chunk leave nothing pending.
        p.feed("data: {}\n\n".repeat(1000).as_bytes());
        while p.next_event().unwrap().is_some() {}
        assert_eq!(p.pending(), 0);
        // A large event is counted across chunks, whatever came before it in its chunk.
        p.feed(b"data: 0123");
        assert!(p.next_event().unwrap().is_none());
        p.feed(b"456789\ndata: ab");
        assert!(p.next_event().unwrap().is_none());
        assert_eq!(p.pending(), 11 + 8); // "0123456789" + LF as data, "data: ab" unparsed
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert!(events(&[b"data: x\n"]).is_empty());
        assert!(events(&[b"data: x"]).is_empty());
    }
}
