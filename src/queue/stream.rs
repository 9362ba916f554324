//! The SSE status stream: `GET .../requests/{id}/status/stream?logs=0|1`, one JSON
//! [`QueueStatus`] per event's `data`, closed by fal after `COMPLETED`
//! (<https://docs.fal.ai/model-endpoints/queue>).

use futures::stream::{self, BoxStream, StreamExt};
use http::{HeaderValue, Method};

use super::{QueueStatus, RequestHandle};
use crate::error::{Error, Result};
use crate::transport::{redact_url, BodyBreak, BodyReader, Op};

// The state lives in the stream's one (boxed) allocation; boxing the open state as well would
// only add an allocation per stream.
#[allow(clippy::large_enum_variant)]
enum State<O> {
    Start(RequestHandle<O>),
    Open {
        handle: RequestHandle<O>,
        body: BodyReader,
        sse: SseParser,
        limit: u64,
    },
    Done,
}

impl<O: 'static> RequestHandle<O> {
    /// The status stream: each status change as it happens, ending after `COMPLETED` (or on
    /// the first error). The stream yields [`Error::StreamIdle`] and ends when it cannot be
    /// opened, or no event arrives, within the client's SSE idle timeout (default 15 s).
    ///
    /// [`wait`](Self::wait) uses this stream first and falls back to polling when it breaks.
    ///
    /// # Errors (as items)
    /// [`Error::Api`] when the stream cannot be opened, [`Error::Transport`] when it breaks,
    /// [`Error::Decode`] when the server closes it before a `COMPLETED` status or sends an
    /// event that is not a status, [`Error::UnknownQueueStatus`], [`Error::ResponseTooLarge`]
    /// when more than 1 MiB arrives without completing an event, [`Error::StreamIdle`].
    pub fn events(&self, logs: bool) -> BoxStream<'static, Result<QueueStatus>> {
        let idle = self.inner.transport.config().sse_idle_timeout();
        stream::unfold(State::Start(self.clone()), move |state| async move {
            let (handle, mut body, mut sse, limit) = match state {
                State::Done => return None,
                State::Start(handle) => match handle.open_stream(logs).await {
                    Ok(body) => {
                        let limit = handle.inner.transport.event_limit();
                        (handle, body, SseParser::default(), limit)
                    }
                    Err(e) => return Some((Err(e), State::Done)),
                },
                State::Open {
                    handle,
                    body,
                    sse,
                    limit,
                } => (handle, body, sse, limit),
            };
            // Idleness is measured between events (comments and keep-alives do not count).
            // (An idle time too large to add to now is no limit.)
            let deadline = tokio::time::Instant::now().checked_add(idle);
            loop {
                let data = match sse.next_event() {
                    Ok(Some(data)) => data,
                    Err(message) => {
                        let e = Error::Decode {
                            what: "status stream".into(),
                            path: ".".into(),
                            message,
                            body_excerpt: String::new(),
                            request_id: Some(handle.inner.request_id.clone()),
                        };
                        return Some((Err(e), State::Done));
                    }
                    Ok(None) if sse.pending() > limit => {
                        let e = Error::ResponseTooLarge {
                            what: "status stream event",
                            url: redact_url(&handle.inner.status_url),
                            limit,
                            declared: None,
                            request_id: Some(handle.inner.request_id.clone()),
                            body_excerpt: String::new(),
                        };
                        return Some((Err(e), State::Done));
                    }
                    Ok(None) => match body.next(deadline).await {
                        Err(BodyBreak::Stalled(_)) => {
                            let e = Error::StreamIdle {
                                request_id: handle.inner.request_id.clone(),
                                idle,
                            };
                            return Some((Err(e), State::Done));
                        }
                        // The server closed the stream before `COMPLETED` (that event
                        // ends the stream on our side): say so rather than end quietly.
                        Ok(None) => {
                            let e = Error::Decode {
                                what: "status stream".into(),
                                path: ".".into(),
                                message: "the stream ended before a COMPLETED status".into(),
                                body_excerpt: String::new(),
                                request_id: Some(handle.inner.request_id.clone()),
                            };
                            return Some((Err(e), State::Done));
                        }
                        Ok(Some(chunk)) => {
                            sse.feed(&chunk);
                            continue;
                        }
                        Err(BodyBreak::Broken(source)) => {
                            let e = Error::Transport {
                                method: Method::GET,
                                url: redact_url(&handle.inner.status_url),
                                request_id: Some(handle.inner.request_id.clone()),
                                source: source.without_url(),
                            };
                            return Some((Err(e), State::Done));
                        }
                    },
                };
                if data.iter().all(u8::is_ascii_whitespace) {
                    continue; // empty event
                }
                return match QueueStatus::from_slice(&data) {
                    Ok(status) => {
                        let next = if status.is_completed() {
                            State::Done
                        } else {
                            State::Open {
                                handle,
                                body,
                                sse,
                                limit,
                            }
                        };
                        Some((Ok(status), next))
                    }
                    Err(e) => Some((
                        Err(e.with_request_id(&handle.inner.request_id)),
                        State::Done,
                    )),
                };
            }
        })
        .boxed()
    }

    async fn open_stream(&self, logs: bool) -> Result<BodyReader> {
        let mut url = self.inner.status_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("stream");
        }
        url.query_pairs_mut()
            .append_pair("logs", if logs { "1" } else { "0" });
        let mut req = self.request(Op::StatusStream, Method::GET, url);
        req.headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        // The stream lives as long as the request; idleness is checked per event, and the
        // answer head (with its retries) must come within the same idle time, else a server
        // that accepts the connection and never answers would hold the wait for the whole read
        // timeout, on every retry.
        let idle = self.inner.transport.config().sse_idle_timeout();
        let transport = &self.inner.transport;
        let resp = tokio::time::timeout(idle, transport.send(&req))
            .await
            .map_err(|_| Error::StreamIdle {
                request_id: self.inner.request_id.clone(),
                idle,
            })??;
        Ok(transport.reader(resp))
    }
}

/// Server-sent events, as far as the status stream needs them (WHATWG HTML, "Parsing an event
/// stream"): lines end with CRLF, LF or CR; `:` starts a comment; `data` lines are joined with
/// LF; a blank line dispatches the event when it has data. `event`, `id` and `retry` are ignored
/// (fal's status events carry everything in `data`). A leading UTF-8 BOM is skipped.
///
/// Why here rather than `eventsource-stream` (the crate used before): measured with callgrind
/// on `examples/bench_lifecycle` (BENCHMARKS.md, "Fixes made from these measurements"), its
/// parser cost ~14 k instructions per event, ~12 k per job — about 5% of what a bare reqwest
/// loop spends on the same three requests, against a target of at most 25% overhead in all —
/// and it rescanned its whole buffer on every chunk (a 1 MiB event took ~1.2 s in a debug
/// build; here an unfinished line is rescanned with `memchr`, milliseconds for the capped
/// 1 MiB). The status stream needs only `data` lines; this parser is covered by the unit tests
/// below and the property tests in `tests/reliability/proptests.rs`.
#[derive(Default)]
struct SseParser {
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
    fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for the event being built: its `data` so far and the unparsed rest. Checked
    /// when no complete event is left (the caller bounds it), so a chunk of many small events
    /// is never refused and a large event is caught whatever chunks it came in.
    fn pending(&self) -> u64 {
        (self.buf.len() - self.pos + self.data.len()) as u64
    }

    /// The `data` of the next complete event in what was fed, if any. A line that is not UTF-8
    /// is an error (an event stream is UTF-8 text).
    fn next_event(&mut self) -> std::result::Result<Option<Vec<u8>>, String> {
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
                    return Err(format!("the status stream is not UTF-8: {e}"));
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
