//! An endpoint's output as it is made: `POST {run}/{endpoint id}/stream`, answered with
//! server-sent events whose `data` is one JSON document each: partial outputs, the last one
//! the final output (<https://docs.fal.ai/model-apis/inference/streaming>).
//!
//! ```no_run
//! # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
//! use futures::StreamExt;
//! use fal_client::models::{FluxLora, FluxLoraInput};
//! use fal_client::stream::StreamEvent;
//!
//! let mut events = fal.stream::<FluxLora>(&FluxLoraInput::new("a red fox")).await?;
//! println!("request {:?}", events.request_id());
//! while let Some(event) = events.next().await {
//!     match event? {
//!         StreamEvent::Partial(partial) => println!("{} preview image(s)", partial.images.len()),
//!         StreamEvent::Output(output) => println!("done: {:?}", output.images.first()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A stream goes to the sync host (`fal.run`), not the queue: fal does not retry it, and
//! webhooks, priorities and start timeouts do not apply. Dropping the stream closes the
//! connection, which ends the request on fal. Like a sync run, the crate sends it again only
//! where fal cannot have taken it: a connection never made, a 429, or a 502/503/504 from
//! fal's ingress (no `x-fal-request-id`).
//!
//! fal sends no terminal event: the stream ends when fal closes it, and the last event is the
//! output (as in fal's JS client). A stream that ends with no event ended early; one whose
//! connection breaks is [`StreamBreak::Broken`]. Some models mark their events `"partial":
//! true` until the last: check it on the output when your endpoint does.

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use http::{HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::config::join;
use crate::endpoint::{Endpoint, EndpointId};
use crate::error::{decode_json, Error, OutputOf, Result};
use crate::lifecycle::ObjectLifecycle;
use crate::queue::{Body, CallOptions};
use crate::sse::SseParser;
use crate::transport::{header_str, BodyBreak, BodyReader, Op, Request, Transport};

/// An endpoint with a `/stream` sibling whose events have a declared type, for
/// [`FalClient::stream`](crate::FalClient::stream). Any other endpoint streams untyped with
/// [`FalClient::stream_json`](crate::FalClient::stream_json).
pub trait StreamingEndpoint: Endpoint {
    /// One partial event's `data`.
    type Event: DeserializeOwned + Send + 'static;
}

/// One item of an [`OutputStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent<P, O> {
    /// An event as it arrived (every event, the last one included), decoded as the endpoint's
    /// event type.
    Partial(P),
    /// The final output: the last event, decoded as the endpoint's output once the stream ended.
    /// Always the last item.
    Output(O),
}

/// How an output stream failed to reach its output ([`Error::StreamBroken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamBreak {
    /// The connection broke mid-way.
    Broken,
    /// Nothing arrived for this long (the stream's idle timeout).
    Idle(Duration),
    /// fal closed the stream with no event.
    EndedEarly,
}

impl fmt::Display for StreamBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamBreak::Broken => f.write_str("the connection broke"),
            StreamBreak::Idle(d) => write!(f, "nothing arrived for {d:?}"),
            StreamBreak::EndedEarly => f.write_str("it ended before the final output"),
        }
    }
}

/// A stream request, sent when awaited: from [`FalClient::stream`](crate::FalClient::stream)
/// and [`FalClient::stream_json`](crate::FalClient::stream_json). Awaiting it sends the input
/// and waits for fal's answer head; the events then arrive from the [`OutputStream`].
///
/// # Errors (when awaited)
/// [`Error::InvalidInput`] before anything is sent; [`Error::EndpointNotFound`] when fal serves
/// no app (or no `/stream`) at the endpoint id; [`Error::Api`] for any other refusal (401, 422
/// with field details, 429); [`Error::AmbiguousSubmit`] when the connection failed after the
/// request may have reached fal; [`Error::Credentials`].
#[must_use = "a stream request does nothing until it is awaited"]
pub struct StreamRequest<P, O> {
    transport: Arc<Transport>,
    prepared: Result<(EndpointId, Body)>,
    call: CallOptions,
    idle_timeout: Option<Duration>,
    _types: PhantomData<fn() -> (P, O)>,
}

impl<P, O> fmt::Debug for StreamRequest<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRequest")
            .field(
                "endpoint",
                &self.prepared.as_ref().map(|(e, _)| e.as_str()).ok(),
            )
            .field("call", &self.call)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<P, O> StreamRequest<P, O> {
    pub(crate) fn new(transport: Arc<Transport>, prepared: Result<(EndpointId, Body)>) -> Self {
        Self {
            transport,
            prepared,
            call: CallOptions::default(),
            idle_timeout: None,
            _types: PhantomData,
        }
    }

    /// The longest silence between two events before the stream fails with
    /// [`StreamBreak::Idle`] (default: the client's
    /// [`read_timeout`](crate::FalClientBuilder::read_timeout), 120 s). It also bounds the wait
    /// for the first event. `Duration::MAX` is no limit.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = Some(t);
        self
    }

    /// The lifecycle (expiry, initial ACL) of the files this request creates on fal's CDN
    /// (`X-Fal-Object-Lifecycle-Preference`), instead of the client's
    /// [`output_lifecycle`](crate::FalClientBuilder::output_lifecycle).
    pub fn output_lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.call.output_lifecycle = Some(lifecycle);
        self
    }

    /// An extra header (lower-cased by `http`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.call.headers.insert(name, value);
        self
    }

    /// Usage tags (`X-Fal-Tags`), checked before anything is sent; see
    /// [`UsageTags`](crate::billing::UsageTags).
    pub fn tags(mut self, tags: crate::billing::UsageTags) -> Self {
        self.call.tags = tags;
        self
    }
}

impl<P, O> IntoFuture for StreamRequest<P, O>
where
    P: DeserializeOwned + Send + 'static,
    O: DeserializeOwned + Send + 'static,
{
    type Output = Result<OutputStream<P, O>>;
    type IntoFuture = BoxFuture<'static, Result<OutputStream<P, O>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (endpoint, body) = self.prepared?;
            let headers = self.call.headers(self.transport.config())?;
            let body = body.ready().await?;
            let idle = self
                .idle_timeout
                .unwrap_or_else(|| self.transport.config().read_timeout());
            open(self.transport, endpoint, body, headers, idle).await
        })
    }
}

/// The stream URL: `{run}/{endpoint id}/stream`, unless the id already ends in `/stream` (fal's
/// JS client does the same).
fn stream_url(transport: &Transport, endpoint: &EndpointId) -> Result<url::Url> {
    let id = endpoint.as_str();
    if endpoint.path().is_some() && id.ends_with("/stream") {
        return join(transport.config().run_url(), id);
    }
    join(transport.config().run_url(), &format!("{id}/stream"))
}

async fn open<P, O>(
    transport: Arc<Transport>,
    endpoint: EndpointId,
    body: Bytes,
    headers: http::HeaderMap,
    idle: Duration,
) -> Result<OutputStream<P, O>>
where
    P: DeserializeOwned + Send + 'static,
    O: DeserializeOwned + Send + 'static,
{
    let url = stream_url(&transport, &endpoint)?;
    let mut req = Request::new(Op::Stream, Method::POST, url).json_body(body);
    req.headers.extend(headers);
    req.headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    req.endpoint = Some(endpoint.as_str());
    let span = tracing::info_span!("fal.stream", endpoint = %endpoint);
    crate::queue::warn_if_deprecated(&endpoint);
    // The answer head must come within the idle time too (a cold start may take a while: raise
    // the idle timeout for such endpoints).
    let sent = match tokio::time::Instant::now().checked_add(idle) {
        Some(until) => tokio::time::timeout_at(until, transport.send(&req).instrument(span))
            .await
            .map_err(|_| broken(&endpoint, None, 0, StreamBreak::Idle(idle), None, None))?,
        None => transport.send(&req).instrument(span).await,
    };
    let resp = sent.map_err(|e| crate::queue::endpoint_not_found(e, &endpoint, true))?;
    let request_id = header_str(resp.headers(), "x-fal-request-id").map(str::to_owned);
    let content_type = header_str(resp.headers(), "content-type").unwrap_or("");
    if !content_type.contains("text/event-stream") {
        return Err(Error::Decode {
            what: format!("{endpoint} stream"),
            path: ".".into(),
            message: format!("expected a text/event-stream answer, got {content_type:?}"),
            body_excerpt: String::new(),
            request_id,
        });
    }
    let state = Reading {
        body: transport.reader_idle(resp, idle),
        sse: SseParser::default(),
        limit: transport.config().max_response_bytes(),
        idle,
        endpoint: endpoint.clone(),
        request_id: request_id.clone(),
        events: 0,
        last: None,
    };
    let inner = stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next::<P, O>().await {
            // The output is the last item.
            Ok(output @ StreamEvent::Output(_)) => Some((Ok(output), None)),
            Ok(partial) => Some((Ok(partial), Some(state))),
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed();
    Ok(OutputStream {
        endpoint,
        request_id,
        inner,
        _types: PhantomData,
    })
}

/// The open stream: its body, the events parsed so far and the last one's `data`.
struct Reading {
    body: BodyReader,
    sse: SseParser,
    /// Largest event, in bytes (the client's `max_response_bytes`).
    limit: u64,
    idle: Duration,
    endpoint: EndpointId,
    request_id: Option<String>,
    events: usize,
    /// The last event's `data`; taken when the stream ends (the output is decoded from it).
    last: Option<Vec<u8>>,
}

impl Reading {
    /// The next item: a partial event, or the output when fal closed the stream.
    async fn next<P: DeserializeOwned, O: DeserializeOwned>(
        &mut self,
    ) -> Result<StreamEvent<P, O>> {
        // Idleness is measured between events (comments and keep-alives do not count).
        let deadline = tokio::time::Instant::now().checked_add(self.idle);
        loop {
            match self.sse.next_event() {
                Err(message) => return Err(self.decode_error(message)),
                Ok(Some(data)) if data.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(Some(data)) => {
                    self.events += 1;
                    let what = OutputOf(self.endpoint.as_str());
                    let partial = decode_json(&what, &data, self.request_id.as_deref())?;
                    self.last = Some(data);
                    return Ok(StreamEvent::Partial(partial));
                }
                Ok(None) if self.sse.pending() > self.limit => {
                    return Err(Error::ResponseTooLarge {
                        what: "output stream event",
                        url: self.endpoint.as_str().to_owned(),
                        limit: self.limit,
                        declared: None,
                        request_id: self.request_id.clone(),
                        body_excerpt: String::new(),
                    })
                }
                Ok(None) => {}
            }
            match self.body.next(deadline).await {
                Ok(Some(chunk)) => self.sse.feed(&chunk),
                Ok(None) => return self.end(),
                Err(BodyBreak::Stalled(idle)) => {
                    return Err(self.broken(StreamBreak::Idle(idle), None))
                }
                Err(BodyBreak::Broken(source)) => {
                    return Err(
                        self.broken(StreamBreak::Broken, Some(Box::new(source.without_url())))
                    )
                }
            }
        }
    }

    /// fal closed the stream: the last event is the output (as in fal's JS client), unless
    /// there is none.
    fn end<P, O: DeserializeOwned>(&mut self) -> Result<StreamEvent<P, O>> {
        let Some(last) = self.last.take() else {
            return Err(self.broken(StreamBreak::EndedEarly, None));
        };
        let what = OutputOf(self.endpoint.as_str());
        decode_json(&what, &last, self.request_id.as_deref()).map(StreamEvent::Output)
    }

    fn broken(
        &self,
        kind: StreamBreak,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        broken(
            &self.endpoint,
            self.request_id.clone(),
            self.events,
            kind,
            self.last.as_deref(),
            source,
        )
    }

    fn decode_error(&self, message: String) -> Error {
        Error::Decode {
            what: format!("{} stream", self.endpoint),
            path: ".".into(),
            message,
            body_excerpt: String::new(),
            request_id: self.request_id.clone(),
        }
    }
}

fn broken(
    endpoint: &EndpointId,
    request_id: Option<String>,
    events: usize,
    kind: StreamBreak,
    last: Option<&[u8]>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::StreamBroken {
        endpoint: endpoint.as_str().to_owned(),
        request_id,
        events,
        kind,
        last_event: last
            .and_then(|l| serde_json::from_slice(l).ok())
            .map(Box::new),
        source,
    }
}

/// The events of one streamed request: a [`Stream`](futures::Stream) of
/// [`StreamEvent::Partial`] items as they arrive, then one [`StreamEvent::Output`], then the
/// end. An error ends it (no item follows); see [`Error::StreamBroken`].
///
/// Dropping it closes the connection, which ends the request on fal.
#[must_use = "streams do nothing unless polled"]
pub struct OutputStream<P, O> {
    endpoint: EndpointId,
    request_id: Option<String>,
    inner: BoxStream<'static, Result<StreamEvent<P, O>>>,
    _types: PhantomData<fn() -> (P, O)>,
}

impl<P, O> fmt::Debug for OutputStream<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputStream")
            .field("endpoint", &self.endpoint.as_str())
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl<P, O> OutputStream<P, O> {
    /// The request id fal gave the stream (`x-fal-request-id`), when it sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The endpoint id.
    pub fn endpoint_id(&self) -> &EndpointId {
        &self.endpoint
    }
}

impl<P, O> OutputStream<P, O>
where
    P: Send + 'static,
    O: Send + 'static,
{
    /// Skip the partial events and return the output.
    ///
    /// # Errors
    /// As the stream's items.
    pub async fn output(mut self) -> Result<O> {
        while let Some(item) = self.inner.next().await {
            if let StreamEvent::Output(o) = item? {
                return Ok(o);
            }
        }
        Err(broken(
            &self.endpoint,
            self.request_id.clone(),
            0,
            StreamBreak::EndedEarly,
            None,
            None,
        ))
    }
}

impl<P, O> futures::Stream for OutputStream<P, O> {
    type Item = Result<StreamEvent<P, O>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
