//! Streaming runs: `POST {run}/{endpoint_id}/stream`, as fal's clients call them
//! (`fal.stream` in `@fal-ai/client`'s `streaming.ts`, `fal_client.stream` in Python).
//!
//! The input is checked like a sync run's (404, 422 and planned failures answer before anything
//! is streamed). Then the answer is `200 text/event-stream` with `cache-control: no-store` and
//! `x-fal-request-id`, and its body is `data: <JSON>\n\n` events:
//! [`stream_events`](FalMockBuilder::stream_events) partial events
//! `{"images": [], "progress": k/N, "partial": true}`, then one final event holding exactly the
//! sync run's output. They are spread over the processing time (one wait of
//! `processing_time / (N + 1)` before each), and the body ends after the final event.
//!
//! A [`MockFailure::StreamCut`](super::MockFailure::StreamCut) (or
//! [`stream_cut_after`](FalMockBuilder::stream_cut_after)) aborts the connection after some
//! events; [`FalMock::streams`] counts how streams ended.

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::state::{lock, Shared};
use super::{FailureUse, FalMock, FalMockBuilder, MockFailure};

/// How the streams of one endpoint ended, from [`FalMock::streams`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StreamCounts {
    /// Streams answered with `200 text/event-stream` (after their input was accepted).
    pub started: usize,
    /// Streams that sent their final event.
    pub completed: usize,
    /// Streams the mock aborted on purpose ([`MockFailure::StreamCut`],
    /// [`FalMockBuilder::stream_cut_after`]).
    pub cut: usize,
    /// Streams whose client went away (dropped the body) before the final event.
    pub disconnected: usize,
}

/// Stream settings, from the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamConfig {
    pub(crate) events: usize,
    pub(crate) cut_after: Option<usize>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            events: 3,
            cut_after: None,
        }
    }
}

/// Stream settings and counters.
pub(crate) struct Streams {
    config: StreamConfig,
    counts: Mutex<HashMap<String, StreamCounts>>,
}

impl Streams {
    pub(crate) fn new(config: StreamConfig) -> Self {
        Self {
            config,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, endpoint: &str, f: impl FnOnce(&mut StreamCounts)) {
        f(lock(&self.counts).entry(endpoint.to_owned()).or_default());
    }
}

/// The endpoint path of a streaming run (`fal-ai/flux-lora/stream` → `fal-ai/flux-lora`), or
/// `None` for another path.
pub(crate) fn stream_target(path: &str) -> Option<&str> {
    path.strip_suffix("/stream").filter(|p| !p.is_empty())
}

/// `POST /run/{endpoint}/stream` (`path` is the endpoint's path, without `/stream`).
pub(crate) async fn stream(
    s: Arc<Shared>,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    use super::routes::{
        endpoint_or_404, failure_response, output_lifecycle, parse_body, start_timeout,
        take_http_failure_for, unprocessable, with_request_id,
    };
    let endpoint = match endpoint_or_404(&s, path) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let endpoint = endpoint.as_str().to_owned();
    let request_id = super::media::uuid();
    if let Some(r) = take_http_failure_for(&s, &endpoint, FailureUse::Stream) {
        return r;
    }
    if let Err(r) = start_timeout(headers) {
        return with_request_id(r, &request_id);
    }
    let lifecycle = match output_lifecycle(headers) {
        Ok(l) => l,
        Err(r) => return with_request_id(r, &request_id),
    };
    let input = match parse_body(body) {
        Ok(m) => m,
        Err(r) => return with_request_id(r, &request_id),
    };
    let mut cut_after = s.streams.config.cut_after;
    match s.take_failure_if(&endpoint, FailureUse::Stream, |_| true) {
        Some(MockFailure::Validation(fields)) => {
            let details: Vec<_> = fields
                .iter()
                .map(|(f, m, t)| super::validate::Detail::new(vec![json!("body"), json!(f)], m, t))
                .collect();
            return with_request_id(unprocessable(&details), &request_id);
        }
        Some(MockFailure::CompletedWithError { error, error_type }) => {
            let f = super::state::Failure::request_error(
                super::state::status_for_error_type(&error_type),
                &error,
                &error_type,
            );
            return with_request_id(
                failure_response(f.http_status, &f.body, &f.headers),
                &request_id,
            );
        }
        Some(MockFailure::StreamCut { after_events }) => cut_after = Some(after_events),
        _ => {}
    }
    if let Err(details) = s.check_input(&endpoint, &input) {
        return with_request_id(unprocessable(&details), &request_id);
    }
    s.streams.count(&endpoint, |c| c.started += 1);
    s.platform.begin(
        &request_id,
        &endpoint,
        super::platform::CallKind::Stream,
        &input,
        super::billing::PlatformHeaders::from_headers(headers),
    );
    tracing::debug!(%endpoint, %request_id, ?cut_after, "mock: stream started");
    let processing = s.timing().processing_time;
    let events = s.streams.config.events;
    let st = StreamState {
        guard: Guard {
            s: Arc::clone(&s),
            endpoint,
            request_id: request_id.clone(),
            finished: false,
        },
        request_id: request_id.clone(),
        input,
        lifecycle,
        processing,
        wait: processing / u32::try_from(events.saturating_add(1)).unwrap_or(u32::MAX),
        events,
        sent: 0,
        cut_after,
        shutdown: s.shutdown.clone(),
    };
    let body = futures::stream::unfold(st, next_event);
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_request_id(r, &request_id)
}

/// Counts a stream that ends before its final event (its body dropped) as disconnected.
struct Guard {
    s: Arc<Shared>,
    endpoint: String,
    request_id: String,
    /// Set once the stream has ended on its own terms (completed, cut or stopped by shutdown).
    finished: bool,
}

impl Guard {
    fn finish(&mut self, f: impl FnOnce(&mut StreamCounts)) {
        if !self.finished {
            self.finished = true;
            self.s.streams.count(&self.endpoint, f);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            tracing::debug!(endpoint = %self.endpoint, "mock: stream client went away");
            self.s
                .streams
                .count(&self.endpoint, |c| c.disconnected += 1);
            // Recorded as fal records a client that went away.
            self.s.platform.finish(&self.request_id, 499, None);
        }
    }
}

struct StreamState {
    guard: Guard,
    request_id: String,
    input: Map<String, Value>,
    lifecycle: Option<Value>,
    processing: Duration,
    wait: Duration,
    /// Partial events before the final one.
    events: usize,
    /// Events sent so far.
    sent: usize,
    cut_after: Option<usize>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

type Item = Result<Bytes, std::io::Error>;

/// The pause before a cut aborts the connection (the body is pending meanwhile, so hyper writes
/// out what it buffered).
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

fn abort(why: &'static str) -> Item {
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        why,
    ))
}

/// The next chunk of a stream's body: an event, or the error that aborts the connection.
async fn next_event(mut st: StreamState) -> Option<(Item, StreamState)> {
    if st.guard.finished {
        return None;
    }
    let total = st.events.saturating_add(1);
    // A cut planned after more events than there are comes right after the final one.
    let cut = st.cut_after.map(|n| n.min(total));
    if cut.is_some_and(|n| st.sent >= n) {
        tracing::debug!(endpoint = %st.guard.endpoint, sent = st.sent, "mock: cutting a stream");
        st.guard.finish(|c| c.cut += 1);
        st.guard.s.platform.finish(&st.request_id, 500, None);
        // Let hyper flush the head and the events sent so far first: an error polled while they
        // are still buffered would drop them with the connection.
        tokio::time::sleep(FLUSH_PAUSE).await;
        return Some((abort("stream cut by FalMock"), st));
    }
    if !st.wait.is_zero() {
        let mut stop = st.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(st.wait) => {}
            _ = async { while !*stop.borrow_and_update() { if stop.changed().await.is_err() { break } } } => {
                // Not counted: the mock, not the client, ended it.
                st.guard.finish(|_| {});
                st.guard.s.platform.finish(&st.request_id, 503, None);
                return Some((abort("FalMock is shutting down"), st));
            }
        }
    }
    let data = if st.sent < st.events {
        let progress = (st.sent + 1) as f64 / st.events as f64;
        json!({"images": [], "progress": progress, "partial": true})
    } else {
        let s = Arc::clone(&st.guard.s);
        let output = s.produce(&st.guard.endpoint, &st.request_id, &st.input, st.processing);
        super::cdn::record_outputs(&s, &output, st.lifecycle.as_ref());
        s.platform.finish(&st.request_id, 200, Some(output.clone()));
        output
    };
    st.sent += 1;
    if st.sent == total && cut.is_none() {
        // The final event: the body ends after it.
        st.guard.finish(|c| c.completed += 1);
    }
    Some((Ok(Bytes::from(format!("data: {data}\n\n"))), st))
}

impl FalMockBuilder {
    /// How many partial events a streaming run (`POST /run/{endpoint}/stream`) sends before its
    /// final event. Default 3.
    pub fn stream_events(mut self, n: usize) -> Self {
        self.stream.events = n;
        self
    }

    /// Cut every streaming run after this many events (the connection is aborted without
    /// finishing the body), or never (`None`, the default). A planned
    /// [`MockFailure::stream_cut`] overrides it for one stream.
    pub fn stream_cut_after(mut self, after_events: Option<usize>) -> Self {
        self.stream.cut_after = after_events;
        self
    }
}

impl FalMock {
    /// How the streaming runs of `endpoint_id` (the full id, without `/stream`) ended so far.
    pub fn streams(&self, endpoint_id: &str) -> StreamCounts {
        lock(&self.shared.streams.counts)
            .get(endpoint_id)
            .copied()
            .unwrap_or_default()
    }
}
