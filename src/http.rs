//! The one place where requests are sent, retried and mapped to [`Error`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method};
use serde::de::DeserializeOwned;
use url::Url;

use crate::client::FalClient;
use crate::error::{decode_json_checked, excerpt, parse_error_body, ApiError, Error, Result};
use crate::retry::{retry_after, should_retry_status, CallKind, RetryPolicy};

/// Largest error body read into memory, in bytes; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Largest success body of a control answer (submit, status, cancel, upload initiation, ...):
/// 8 MiB. Such answers are a few hundred bytes; anything near this is not fal.
pub(crate) const MAX_CONTROL_BODY: u64 = 8 * 1024 * 1024;

/// Default limit of a payload answer (results, sync runs, in-memory downloads): 256 MiB
/// ([`FalClientBuilder::max_response_bytes`](crate::FalClientBuilder::max_response_bytes)).
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Which size limit applies to a success body read into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLimit {
    /// [`MAX_CONTROL_BODY`] (or the client's `max_response_bytes`, when smaller).
    Control,
    /// The client's `max_response_bytes`.
    Payload,
}

impl BodyLimit {
    /// The limit for an operation: `result`, `run` and `download` carry payloads, every other
    /// call a small control answer.
    fn for_op(op: &str) -> Self {
        match op {
            "result" | "run" | "download" => BodyLimit::Payload,
            _ => BodyLimit::Control,
        }
    }
}

/// One logical call (possibly several attempts).
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    /// Add `Authorization: Key …` (only honoured for URLs on the configured fal hosts).
    pub auth: bool,
    pub headers: HeaderMap,
    pub body: Option<CallBody>,
    pub kind: CallKind,
    /// Operation name for traces and errors: `submit`, `status`, `result`, ...
    pub op: &'static str,
    pub request_id: Option<&'a str>,
    /// Endpoint id, for traces and ambiguous-submit errors.
    pub endpoint: Option<&'a str>,
    /// Overall time limit of one attempt (`None`: only the client's read timeout applies).
    pub timeout: Option<Duration>,
    pub retry: Option<&'a RetryPolicy>,
    /// The success body must be JSON: one that is not (cut short, an HTML page) is retried on
    /// idempotent calls.
    pub expect_json: bool,
    /// Told about every body chunk handed to the connection, and about the bytes of an attempt
    /// that failed (so a retried body is not counted twice).
    pub meter: Option<Arc<dyn Meter>>,
    /// Size limit of a success body read into memory (default from `op`).
    pub body_limit: BodyLimit,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, url: Url, op: &'static str) -> Self {
        Self {
            method,
            url,
            auth: true,
            headers: HeaderMap::new(),
            body: None,
            kind: CallKind::Idempotent,
            op,
            request_id: None,
            endpoint: None,
            timeout: None,
            retry: None,
            expect_json: false,
            meter: None,
            body_limit: BodyLimit::for_op(op),
        }
    }

    /// Set [`expect_json`](Self::expect_json).
    pub(crate) fn expect_json(mut self) -> Self {
        self.expect_json = true;
        self
    }

    pub(crate) fn json_body(mut self, body: Bytes) -> Self {
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(CallBody::Bytes(body));
        self
    }
}

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone)]
pub(crate) enum CallBody {
    /// Bytes in memory (cheap to clone).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, streamed from disk on each attempt.
    File {
        path: std::path::PathBuf,
        offset: u64,
        len: u64,
    },
}

/// Size of the chunks a file body is read in (and a metered in-memory body is cut into).
const BODY_CHUNK: usize = 256 * 1024;

/// Receives body progress of a call: bytes handed to the connection, and bytes taken back when
/// an attempt failed and its body will be sent again (or not at all).
pub(crate) trait Meter: Send + Sync {
    /// `n` more bytes of the body were handed to the connection.
    fn sent(&self, n: u64);
    /// An attempt failed after `n` of its bytes had been reported with [`sent`](Self::sent).
    fn rewound(&self, n: u64);
}

/// The bytes one attempt reported to a [`Meter`]; closed when the attempt is over, so a body
/// stream still polled after a failure cannot report more.
struct Tally {
    meter: Arc<dyn Meter>,
    /// (bytes reported, closed)
    state: Mutex<(u64, bool)>,
}

impl Tally {
    fn new(meter: Arc<dyn Meter>) -> Arc<Self> {
        Arc::new(Self {
            meter,
            state: Mutex::new((0, false)),
        })
    }

    fn add(&self, n: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.1 {
            st.0 += n as u64;
            self.meter.sent(n as u64);
        }
    }

    /// The attempt failed: take its bytes back and stop counting.
    fn rewind(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.1 {
            st.1 = true;
            self.meter.rewound(st.0);
        }
    }
}

async fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
    tally: Option<Arc<Tally>>,
) -> std::io::Result<reqwest::Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    let reader = file.take(len);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, BODY_CHUNK);
    Ok(match tally {
        None => reqwest::Body::wrap_stream(stream),
        Some(t) => reqwest::Body::wrap_stream(stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                t.add(c.len());
            }
        })),
    })
}

/// An in-memory body cut into chunks (zero-copy slices) so that its progress can be reported.
fn metered_bytes_body(data: Bytes, tally: Arc<Tally>) -> reqwest::Body {
    let chunks = (0..data.len())
        .step_by(BODY_CHUNK)
        .map(move |start| data.slice(start..(start + BODY_CHUNK).min(data.len())))
        .collect::<Vec<_>>();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks).map(move |c| {
        tally.add(c.len());
        Ok::<_, std::io::Error>(c)
    }))
}

/// URL without query and fragment, for errors and logs (signed upload URLs carry tokens).
pub(crate) fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl FalClient {
    /// Send a call with the retry policy; a success (2xx) answer is returned unread, anything
    /// else becomes an [`Error`].
    pub(crate) async fn execute(&self, call: Call<'_>) -> Result<reqwest::Response> {
        self.execute_with(&call, |resp| async move { Ok(resp) })
            .await
    }

    /// The retry loop. `finish` turns a success (2xx) answer into the call's value, or into an
    /// error and whether that error may be retried (a body that broke on the way, for example).
    async fn execute_with<T, F, Fut>(&self, call: &Call<'_>, finish: F) -> Result<T>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, (Error, bool)>>,
    {
        let policy = call.retry.unwrap_or(&self.inner.retry);
        let mut attempt: u32 = 0;
        loop {
            let tally = call.meter.clone().map(Tally::new);
            // A failed attempt's body bytes are taken back from the progress count.
            let rewind = || {
                if let Some(t) = &tally {
                    t.rewind();
                }
            };
            let outcome = self.attempt(call, tally.clone()).await;
            if !matches!(&outcome, Ok(Ok(r)) if r.status().is_success()) {
                rewind();
            }
            let outcome = match outcome {
                Ok(r) => r,
                Err(io) => {
                    return Err(Error::io(
                        match &call.body {
                            Some(CallBody::File { path, .. }) => path.display().to_string(),
                            _ => String::new(),
                        },
                        io,
                    ))
                }
            };
            let (err, hint) = match outcome {
                Ok(resp) if resp.status().is_success() => match finish(resp).await {
                    Ok(value) => return Ok(value),
                    Err((err, false)) => return Err(err),
                    Err((err, true)) => {
                        rewind();
                        (err, None)
                    }
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry = should_retry_status(call.kind, status, resp.headers());
                    let err = api_error(call, resp, self.inner.read_idle_timeout).await;
                    if !retry {
                        return Err(err);
                    }
                    let hint = err.as_api().and_then(|e| e.retry_after);
                    (err, hint)
                }
                Err(source) => {
                    // A request that could not even be built (e.g. a header value) never left.
                    if source.is_builder() {
                        return Err(transport_error(call, source));
                    }
                    let retry = match call.kind {
                        CallKind::Idempotent => true,
                        // Nothing was sent when the connection could not be made.
                        CallKind::Submit => source.is_connect(),
                    };
                    if !retry {
                        return Err(if call.kind == CallKind::Submit {
                            ambiguous_submit(call, source, None)
                        } else {
                            transport_error(call, source)
                        });
                    }
                    (transport_error(call, source), None)
                }
            };
            if attempt >= policy.max_retries {
                return Err(err);
            }
            let delay = policy.delay(attempt, hint);
            attempt += 1;
            tracing::warn!(
                op = call.op,
                endpoint = call.endpoint,
                request_id = call.request_id,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "retrying fal call"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt. The outer error is a local I/O failure (a file body that cannot be read);
    /// the inner one is the HTTP outcome.
    async fn attempt(
        &self,
        call: &Call<'_>,
        tally: Option<Arc<Tally>>,
    ) -> std::io::Result<std::result::Result<reqwest::Response, reqwest::Error>> {
        let mut rb = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .headers(call.headers.clone());
        if call.auth {
            if let Some(auth) = self.auth_for(&call.url) {
                rb = rb.header(http::header::AUTHORIZATION, auth);
            }
        }
        match (&call.body, tally) {
            (Some(CallBody::Bytes(b)), None) => rb = rb.body(b.clone()),
            (Some(CallBody::Bytes(b)), Some(t)) => {
                rb = rb
                    .header(http::header::CONTENT_LENGTH, b.len())
                    .body(metered_bytes_body(b.clone(), t));
            }
            (Some(CallBody::File { path, offset, len }), t) => {
                rb = rb
                    .header(http::header::CONTENT_LENGTH, *len)
                    .body(file_body(path, *offset, *len, t).await?);
            }
            (None, _) => {}
        }
        if let Some(t) = call.timeout {
            rb = rb.timeout(t);
        }
        Ok(rb.send().await)
    }

    /// How a success body is read into memory: its byte limit and the read idle timeout.
    pub(crate) fn body_read(&self, limit: BodyLimit) -> BodyRead {
        BodyRead {
            limit: self.body_limit(limit),
            idle: self.inner.read_idle_timeout,
        }
    }

    /// The byte limit of a success body read into memory.
    pub(crate) fn body_limit(&self, limit: BodyLimit) -> u64 {
        let max = self.inner.max_response_bytes;
        match limit {
            BodyLimit::Control => max.min(MAX_CONTROL_BODY),
            BodyLimit::Payload => max,
        }
    }

    /// Execute and read the whole success body, up to the call's size limit
    /// ([`Error::ResponseTooLarge`] beyond it; the rest is never read). On an idempotent call, a
    /// body that breaks on the way, or (with [`Call::expect_json`]) is not JSON at all, is
    /// retried like a transport failure; on a submit it is not (fal has the job).
    pub(crate) async fn execute_bytes(&self, call: Call<'_>) -> Result<(HeaderMap, Bytes)> {
        let limit = self.body_read(call.body_limit);
        self.execute_with(&call, |resp| read_answer(&call, limit, resp))
            .await
    }

    /// Execute and decode the success body as JSON into `T`, straight from the response bytes
    /// and once. On an idempotent call a broken body (cut short, not JSON at all) is retried; JSON
    /// of the wrong shape is an [`Error::Decode`] naming the path, at once.
    pub(crate) async fn execute_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        what: &str,
    ) -> Result<T> {
        self.execute_json_then(call, what, |value, _| Ok(value))
            .await
    }

    /// [`execute_json`](Self::execute_json), then `then(value, body)`: a check of the decoded
    /// value that may still refuse it (with the raw body at hand for the error). Its error is
    /// final.
    pub(crate) async fn execute_json_then<T: DeserializeOwned, R>(
        &self,
        call: Call<'_>,
        what: &str,
        then: impl Fn(T, &Bytes) -> Result<R>,
    ) -> Result<R> {
        let limit = self.body_read(call.body_limit);
        self.execute_with(&call, |resp| {
            let then = &then;
            let call = &call;
            async move {
                let (headers, body) = read_body(call, limit, resp).await?;
                let rid = answer_request_id(call, &headers);
                let value = decode_json_checked(what, &body, rid)
                    .map_err(|(e, broken)| (e, broken && call.kind == CallKind::Idempotent))?;
                then(value, &body).map_err(|e| (e, false))
            }
        })
        .await
    }
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Read a success answer's body, up to `limit` bytes; the error says whether the attempt may be
/// repeated (a body that broke on the way, on an idempotent call).
async fn read_body(
    call: &Call<'_>,
    limit: BodyRead,
    resp: reqwest::Response,
) -> std::result::Result<(HeaderMap, Bytes), (Error, bool)> {
    let BodyRead { limit, idle } = limit;
    let headers = resp.headers().clone();
    let declared = resp.content_length();
    let rid = answer_request_id(call, &headers).map(str::to_owned);
    let too_large = |head: &[u8], request_id: Option<String>| {
        let err = Error::ResponseTooLarge {
            what: call.op,
            url: redact_url(&call.url),
            limit,
            declared,
            request_id,
            body_excerpt: excerpt(head),
        };
        (err, false)
    };
    let mut stream = resp.bytes_stream();
    let mut body = BytesMut::new();
    if let Some(n) = declared {
        if n > limit {
            // Read one chunk for the excerpt, then stop.
            let head = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                _ => Bytes::new(),
            };
            return Err(too_large(&head, rid));
        }
        // The declared size, within the limit: one allocation (a declared size is only a
        // claim, so at most 8 MiB are reserved up front; the rest grows as it arrives).
        body.reserve(usize::try_from(n.min(MAX_CONTROL_BODY)).unwrap_or(0));
    }
    loop {
        let chunk = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                let err = stalled(call, rid, idle);
                return Err((err, call.kind == CallKind::Idempotent));
            }
        };
        let chunk = match chunk {
            Ok(c) => c,
            Err(source) if call.kind == CallKind::Idempotent => {
                return Err((transport_error(call, source), true))
            }
            // fal answered 2xx to the submit: the job exists; its id may be in the head.
            Err(source) => return Err((ambiguous_submit(call, source, rid), false)),
        };
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            let head = if body.is_empty() {
                &chunk[..]
            } else {
                &body[..]
            };
            return Err(too_large(head, rid));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((headers, body.freeze()))
}

/// The request id for errors about an answer: the call's, else the answer's header.
fn answer_request_id<'a>(call: &'a Call<'_>, headers: &'a HeaderMap) -> Option<&'a str> {
    call.request_id
        .or_else(|| header_str(headers, "x-fal-request-id"))
}

/// Read a success answer for [`FalClient::execute_bytes`].
async fn read_answer(
    call: &Call<'_>,
    limit: BodyRead,
    resp: reqwest::Response,
) -> std::result::Result<(HeaderMap, Bytes), (Error, bool)> {
    let (headers, body) = read_body(call, limit, resp).await?;
    if call.expect_json {
        // Only the syntax is checked here: a body that is not JSON at all (cut short, an HTML
        // page from a proxy) is a broken answer; JSON of the wrong shape is decoded (and
        // reported with its path) by the caller.
        let what = format!("{} answer", call.op);
        let rid = answer_request_id(call, &headers);
        if let Err((e, broken)) = decode_json_checked::<serde::de::IgnoredAny>(&what, &body, rid) {
            return Err((e, broken && call.kind == CallKind::Idempotent));
        }
    }
    Ok((headers, body))
}

/// The reqwest error's own message repeats the full URL, query included (pre-signed upload
/// URLs, `fal_webhook=`): errors keep the redacted URL and drop reqwest's copy.
fn ambiguous_submit(call: &Call<'_>, source: reqwest::Error, request_id: Option<String>) -> Error {
    Error::AmbiguousSubmit {
        endpoint: call.endpoint.unwrap_or(call.url.path()).to_owned(),
        request_id,
        source: source.without_url(),
    }
}

/// How an answer body is read: at most `limit` bytes, at most `idle` between two chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRead {
    pub limit: u64,
    pub idle: Duration,
}

pub(crate) fn stalled(call: &Call<'_>, request_id: Option<String>, idle: Duration) -> Error {
    Error::Stalled {
        method: call.method.to_string(),
        url: redact_url(&call.url),
        request_id: request_id.or_else(|| call.request_id.map(str::to_owned)),
        idle,
    }
}

pub(crate) fn transport_error(call: &Call<'_>, source: reqwest::Error) -> Error {
    Error::Transport {
        method: call.method.to_string(),
        url: redact_url(&call.url),
        request_id: call.request_id.map(str::to_owned),
        source: source.without_url(),
    }
}

/// Read (a bounded part of) an error answer and build an [`Error::Api`].
async fn api_error(call: &Call<'_>, resp: reqwest::Response, idle: Duration) -> Error {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    // An error body that stalls is cut where it stalled: the status says enough.
    while let Ok(Some(chunk)) = tokio::time::timeout(idle, stream.next()).await {
        match chunk {
            Ok(c) => {
                let room = MAX_ERROR_BODY.saturating_sub(body.len());
                body.extend_from_slice(&c[..c.len().min(room)]);
                if body.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    api_error_from_parts(call, status, &headers, &body)
}

pub(crate) fn api_error_from_parts(
    call: &Call<'_>,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let (detail, body_error_type) = parse_error_body(body);
    let error_type =
        body_error_type.or_else(|| header_str(headers, "x-fal-error-type").map(str::to_owned));
    let request_id = header_str(headers, "x-fal-request-id")
        .map(str::to_owned)
        .or_else(|| call.request_id.map(str::to_owned));
    Error::Api(Box::new(ApiError {
        status,
        method: call.method.to_string(),
        url: redact_url(&call.url),
        request_id,
        error_type,
        timeout_type: header_str(headers, "x-fal-request-timeout-type").map(str::to_owned),
        retryable: header_str(headers, "x-fal-retryable").and_then(|v| {
            match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        }),
        retry_after: retry_after(headers, SystemTime::now()),
        detail,
        body_excerpt: excerpt(body),
    }))
}
