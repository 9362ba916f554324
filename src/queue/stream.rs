//! The SSE status stream: `GET .../requests/{id}/status/stream?logs=0|1`, one JSON
//! [`QueueStatus`] per event's `data`, closed by fal after `COMPLETED`
//! (<https://docs.fal.ai/model-endpoints/queue>).

use futures::stream::{self, BoxStream, StreamExt};
use http::{HeaderValue, Method};

use super::{QueueStatus, RequestHandle};
use crate::error::{Error, Result};
use crate::sse::SseParser;
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
    /// [`wait`](Self::wait) uses this stream, polls alongside it while it is silent (see
    /// [`Wait::hedge_after`](super::Wait::hedge_after)), and polls alone when it breaks.
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
