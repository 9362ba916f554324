//! The SSE status stream (PROTOCOL.md §3.3): `GET .../requests/{id}/status/stream?logs=0|1`,
//! one JSON [`QueueStatus`] per event's `data`, closed by fal after `COMPLETED`.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use http::{HeaderValue, Method};

use super::{QueueStatus, RequestHandle};
use crate::error::{Error, Result};
use crate::http::{redact_url, BodyLimit, Call};

type Events = Pin<
    Box<
        dyn Stream<
                Item = std::result::Result<eventsource_stream::Event, EventStreamError<ReadError>>,
            > + Send,
    >,
>;

/// Most bytes one status event may take before it is refused: 1 MiB. The SSE parser rescans its
/// buffer for each chunk until an event completes, so a bigger event costs quadratic time; a
/// refused stream only makes a wait fall back to polling (whose answers may take 8 MiB).
const MAX_EVENT_BYTES: u64 = 1024 * 1024;

/// Why reading the stream's bytes stopped.
#[derive(Debug)]
enum ReadError {
    Http(reqwest::Error),
    /// More than `limit` bytes arrived without completing an event.
    TooLarge {
        limit: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Http(e) => e.fmt(f),
            ReadError::TooLarge { limit } => write!(f, "an event is larger than {limit} bytes"),
        }
    }
}

/// The open stream: events, plus the count of bytes received since the last event, so that a
/// server cannot make the parser buffer an endless event.
struct Open {
    events: Events,
    pending: Arc<AtomicU64>,
}

enum State<O> {
    Start(Box<RequestHandle<O>>),
    Open {
        events: Open,
        request_id: String,
        url: String,
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
    /// [`Error::Decode`] for an event that is not a status, [`Error::ResponseTooLarge`] when
    /// more than 1 MiB arrives without completing an event, [`Error::StreamIdle`].
    pub fn events(&self, logs: bool) -> BoxStream<'static, Result<QueueStatus>> {
        let idle = self.client.inner.sse_idle_timeout;
        stream::unfold(
            State::Start(Box::new(self.clone())),
            move |state| async move {
                let (mut events, request_id, url) = match state {
                    State::Done => return None,
                    State::Start(handle) => match handle.open_stream(logs).await {
                        Ok(events) => (
                            events,
                            handle.request_id.clone(),
                            redact_url(&handle.status_url),
                        ),
                        Err(e) => return Some((Err(e), State::Done)),
                    },
                    State::Open {
                        events,
                        request_id,
                        url,
                    } => (events, request_id, url),
                };
                loop {
                    let next = match tokio::time::timeout(idle, events.events.next()).await {
                        Err(_) => {
                            let e = Error::StreamIdle {
                                request_id: request_id.clone(),
                                idle,
                            };
                            return Some((Err(e), State::Done));
                        }
                        Ok(None) => return None,
                        Ok(Some(next)) => next,
                    };
                    let event = match next {
                        Ok(ev) => {
                            events.pending.store(0, Ordering::Relaxed);
                            ev
                        }
                        Err(e) => {
                            return Some((Err(stream_error(e, &request_id, &url)), State::Done))
                        }
                    };
                    if event.data.trim().is_empty() {
                        continue; // keep-alive or comment-only event
                    }
                    return match QueueStatus::from_slice(event.data.as_bytes()) {
                        Ok(status) => {
                            let next = if status.is_completed() {
                                State::Done
                            } else {
                                State::Open {
                                    events,
                                    request_id,
                                    url,
                                }
                            };
                            Some((Ok(status), next))
                        }
                        Err(e) => Some((Err(e.with_request_id(&request_id)), State::Done)),
                    };
                }
            },
        )
        .boxed()
    }

    async fn open_stream(&self, logs: bool) -> Result<Open> {
        let mut url = self.status_url.clone();
        let path = format!("{}/stream", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut()
            .append_pair("logs", if logs { "1" } else { "0" });
        let mut call = Call::new(Method::GET, url, "status_stream");
        call.request_id = Some(&self.request_id);
        call.endpoint = Some(self.endpoint.as_str());
        call.headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        // No overall timeout: the stream lives as long as the request; idleness is checked per
        // event, and the answer head (with its retries) must come within the same idle time,
        // else a server that accepts the connection and never answers would hold the wait for
        // the whole read timeout, on every retry.
        call.timeout = None;
        let idle = self.client.inner.sse_idle_timeout;
        let resp = tokio::time::timeout(idle, self.client.execute(call))
            .await
            .map_err(|_| Error::StreamIdle {
                request_id: self.request_id.clone(),
                idle,
            })??;
        let limit = self
            .client
            .body_limit(BodyLimit::Control)
            .min(MAX_EVENT_BYTES);
        let pending = Arc::new(AtomicU64::new(0));
        let counter = pending.clone();
        let bytes = resp.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(ReadError::Http)?;
            let n = counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if n > limit {
                return Err(ReadError::TooLarge { limit });
            }
            Ok(chunk)
        });
        Ok(Open {
            events: Box::pin(bytes.eventsource()),
            pending,
        })
    }
}

fn stream_error(e: EventStreamError<ReadError>, request_id: &str, url: &str) -> Error {
    match e {
        EventStreamError::Transport(ReadError::Http(source)) => Error::Transport {
            method: "GET".into(),
            url: url.to_owned(),
            request_id: Some(request_id.to_owned()),
            source: source.without_url(),
        },
        EventStreamError::Transport(ReadError::TooLarge { limit }) => Error::ResponseTooLarge {
            what: "status stream event",
            url: url.to_owned(),
            limit,
            declared: None,
            request_id: Some(request_id.to_owned()),
            body_excerpt: String::new(),
        },
        other => Error::Decode {
            what: "status stream".into(),
            path: ".".into(),
            message: other.to_string(),
            body_excerpt: String::new(),
            request_id: Some(request_id.to_owned()),
        },
    }
}
