//! The one place where requests are sent, retried, read and mapped to [`Error`]: every call of
//! the crate (queue, status stream, storage, downloads, upload parts, the webhook key set) goes
//! through [`Transport`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::config::Config;
use crate::credentials::Auth;
use crate::error::{
    decode_json_checked, excerpt, parse_error_body, AnswerOf, ApiError, Error, Result,
};
use crate::retry::{retry_after, CallKind, StatusFacts};

/// Largest error body read into memory, in bytes; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Largest success body of a control answer (submit, status, cancel, upload initiation, ...):
/// 8 MiB. Such answers are a few hundred bytes; anything near this is not fal.
pub(crate) const MAX_CONTROL_BODY: u64 = 8 * 1024 * 1024;

/// Largest webhook key set: 256 KiB (fal's holds a handful of keys).
const MAX_JWKS_BODY: u64 = 256 * 1024;

/// Size of the chunks a file body is read in (and a metered in-memory body is cut into).
const BODY_CHUNK: usize = 256 * 1024;

/// What a call is. Decides how it is retried, whether it carries the key, its time limit, the
/// size limit of its answer and its name in traces and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `POST {queue}/{endpoint id}`.
    Submit,
    /// `POST {run}/{endpoint id}`.
    Run,
    /// `GET .../requests/{id}/status`.
    Status,
    /// `GET .../requests/{id}/status/stream`.
    StatusStream,
    /// `GET .../requests/{id}`.
    Result,
    /// `PUT .../requests/{id}/cancel`.
    Cancel,
    /// `POST {rest}/storage/upload/initiate[-multipart]`.
    UploadInitiate,
    /// The `PUT` of a whole upload to its pre-signed URL.
    Upload,
    /// The `PUT` of one multipart part.
    UploadPart,
    /// The `POST .../complete` of a multipart upload.
    UploadComplete,
    /// A CDN token for the v3 upload flow (`POST {rest}/storage/auth/token`).
    CdnToken,
    /// The single `POST {cdn}/files/upload` of the v3 flow: each one stores a new file, so it is
    /// repeated only where the CDN cannot have stored it (like a submit).
    CdnUpload,
    /// The create call of a CDN v3 multipart upload (`POST {cdn}/files/upload/multipart`).
    UploadCreate,
    /// `POST {run}/{endpoint id}/stream`: an endpoint's output as server-sent events.
    Stream,
    /// A short-lived token (`POST {rest}/tokens/`).
    Token,
    /// A Platform API call (`{api}/models...`): reads, estimates, payload deletions (the latter
    /// with an idempotency key, so repeating it is safe).
    Platform,
    /// A file download.
    Download,
    /// The webhook key set.
    Jwks,
}

/// How large a success answer read into memory may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLimit {
    /// [`MAX_CONTROL_BODY`] (or the client's `max_response_bytes`, when smaller).
    Control,
    /// The client's `max_response_bytes`.
    Payload,
    /// [`MAX_JWKS_BODY`].
    Jwks,
}

impl Op {
    /// The name in traces and errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Submit => "submit",
            Op::Run => "run",
            Op::Status => "status",
            Op::StatusStream => "status stream",
            Op::Result => "result",
            Op::Cancel => "cancel",
            Op::UploadInitiate => "upload initiation",
            Op::Upload => "upload",
            Op::UploadPart => "upload part",
            Op::UploadComplete => "upload completion",
            Op::CdnToken => "CDN token",
            Op::CdnUpload => "CDN upload",
            Op::UploadCreate => "multipart upload creation",
            Op::Stream => "output stream",
            Op::Token => "token",
            Op::Platform => "Platform API",
            Op::Download => "download",
            Op::Jwks => "webhook key set",
        }
    }

    /// Submits and sync runs are repeated only where fal cannot have taken them.
    fn kind(self) -> CallKind {
        match self {
            Op::Submit | Op::Run | Op::Stream | Op::CdnUpload => CallKind::Submit,
            _ => CallKind::Idempotent,
        }
    }

    /// The key goes to fal's own calls; never to pre-signed upload URLs, file downloads or the
    /// key set (and, whatever the op, only to the configured fal hosts).
    fn authorized(self) -> bool {
        !matches!(
            self,
            Op::Upload
                | Op::UploadPart
                | Op::UploadComplete
                | Op::UploadCreate
                | Op::CdnUpload
                | Op::Download
                | Op::Jwks
        )
    }

    /// Control calls get the client's request timeout; sync runs, streams, uploads and
    /// downloads may legitimately take long (the read timeout bounds their silences).
    fn control(self) -> bool {
        matches!(
            self,
            Op::Submit
                | Op::Status
                | Op::Result
                | Op::Cancel
                | Op::UploadInitiate
                | Op::UploadComplete
                | Op::UploadCreate
                | Op::CdnToken
                | Op::Token
                | Op::Platform
                | Op::Jwks
        )
    }

    /// Calls without an overall time limit whose request body (or wait for the answer head) is
    /// watched instead: a silence longer than the read timeout ends the attempt.
    fn watched(self) -> bool {
        matches!(
            self,
            Op::Upload | Op::UploadPart | Op::CdnUpload | Op::Download
        )
    }

    fn limit(self) -> BodyLimit {
        match self {
            // Model listings may carry OpenAPI documents.
            Op::Result | Op::Run | Op::Stream | Op::Download | Op::Platform => BodyLimit::Payload,
            Op::Jwks => BodyLimit::Jwks,
            _ => BodyLimit::Control,
        }
    }

    /// A success answer that is not JSON at all (cut short, an HTML page from a proxy) is a
    /// broken answer, worth asking again on an idempotent call. (Submits and sync runs are never
    /// asked again once answered: their callers' one decode reports such a body.)
    fn expects_json(self) -> bool {
        matches!(
            self,
            Op::Status
                | Op::Result
                | Op::UploadInitiate
                | Op::UploadCreate
                | Op::CdnToken
                | Op::Token
                | Op::Platform
                | Op::Jwks
        )
    }
}

/// One logical call (possibly several attempts).
pub(crate) struct Request<'a> {
    pub op: Op,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Body>,
    /// The request this call concerns, for errors and traces.
    pub request_id: Option<&'a str>,
    /// Endpoint id, for traces and ambiguous-submit errors.
    pub endpoint: Option<&'a str>,
    /// Overall time limit of one attempt instead of the op's default (a sync run's own limit).
    pub timeout: Option<Duration>,
    /// Told about every body chunk handed to the connection, and about the bytes of an attempt
    /// that failed (so a retried body is not counted twice).
    pub meter: Option<Arc<dyn Meter>>,
    /// One attempt only, whatever the retry policy (an answer that is final, or a call whose
    /// caller retries later on its own).
    pub once: bool,
}

impl<'a> Request<'a> {
    pub(crate) fn new(op: Op, method: Method, url: Url) -> Self {
        Self {
            op,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            request_id: None,
            endpoint: None,
            timeout: None,
            meter: None,
            once: false,
        }
    }

    pub(crate) fn json_body(mut self, body: Bytes) -> Self {
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(Body::Bytes(body));
        self
    }
}

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Bytes in memory (cheap to clone).
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`, streamed from disk on each attempt.
    File {
        path: std::path::PathBuf,
        offset: u64,
        len: u64,
    },
}

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

/// When the request body of an attempt last moved: the watchdog of calls without an overall
/// time limit (uploads, downloads), up to the answer head. Each chunk handed to the connection
/// touches it. The attempt ends when the body stops being taken for the read timeout, or when
/// the answer head has not come within the request timeout of the body's end (a CDN may take a
/// while to store a large upload; it must still answer).
struct Activity {
    origin: tokio::time::Instant,
    /// Milliseconds from `origin` to the last chunk.
    last_ms: AtomicU64,
    /// Body bytes not yet handed over.
    remaining: AtomicU64,
}

impl Activity {
    fn new(body_len: u64) -> Arc<Self> {
        Arc::new(Self {
            origin: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            remaining: AtomicU64::new(body_len),
        })
    }

    fn touch(&self, n: usize) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
        let n = n as u64;
        // Saturating: a body longer than declared must not wrap around.
        let _ = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(n))
            });
    }

    /// Resolves with the limit that passed: `body_idle` of silence while the body is being
    /// sent, `head_wait` after its end.
    async fn silent_for(&self, body_idle: Duration, head_wait: Duration) -> Duration {
        loop {
            let limit = if self.remaining.load(Ordering::Relaxed) == 0 {
                head_wait
            } else {
                body_idle
            };
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.origin.elapsed().saturating_sub(last);
            if quiet >= limit {
                return limit;
            }
            // Look again no later than the shorter limit: the body may end meanwhile, and
            // then the other limit applies, counted from its last chunk.
            tokio::time::sleep((limit - quiet).min(body_idle.min(head_wait))).await;
        }
    }
}

/// What an attempt came to before its answer's body.
enum Sent {
    Answer(reqwest::Response),
    Failed(reqwest::Error),
    /// The watchdog fired: nothing moved for this long.
    Stalled(Duration),
}

async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    tally: Option<Arc<Tally>>,
    activity: Option<Arc<Activity>>,
) -> std::io::Result<reqwest::Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    let reader = file.take(len);
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, BODY_CHUNK);
    Ok(match (tally, activity) {
        (None, None) => reqwest::Body::wrap_stream(stream),
        (t, a) => reqwest::Body::wrap_stream(stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                if let Some(t) = &t {
                    t.add(c.len());
                }
                if let Some(a) = &a {
                    a.touch(c.len());
                }
            }
        })),
    })
}

/// An in-memory body cut into chunks (zero-copy slices) so that its progress can be reported
/// and its movement watched.
fn chunked_bytes_body(
    data: Bytes,
    tally: Option<Arc<Tally>>,
    activity: Option<Arc<Activity>>,
) -> reqwest::Body {
    let chunks = (0..data.len())
        .step_by(BODY_CHUNK)
        .map(move |start| data.slice(start..(start + BODY_CHUNK).min(data.len())))
        .collect::<Vec<_>>();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks).map(move |c| {
        if let Some(t) = &tally {
            t.add(c.len());
        }
        if let Some(a) = &activity {
            a.touch(c.len());
        }
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

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer body of a call, chunk by chunk, each chunk within the read timeout: the one loop
/// every body is read through (into memory, to a file, as a status stream, as an error).
pub(crate) struct BodyReader {
    /// Read with `chunk()`: no boxed stream per body (measured: ~2.8 k instructions per job on
    /// the lifecycle benchmark).
    resp: reqwest::Response,
    idle: Duration,
}

/// Why a body could not be read to its end.
pub(crate) enum BodyBreak {
    /// Nothing arrived within the idle time.
    Stalled(Duration),
    /// The connection broke.
    Broken(reqwest::Error),
}

impl BodyReader {
    /// The next chunk, `None` at the end of the body. Silence longer than the read timeout (or
    /// past `deadline`, when given) is [`BodyBreak::Stalled`].
    pub(crate) async fn next(
        &mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> std::result::Result<Option<Bytes>, BodyBreak> {
        // A read timeout too large to add to now is no time limit.
        let idle = tokio::time::Instant::now().checked_add(self.idle);
        let until = match (idle, deadline) {
            (Some(i), Some(d)) => Some(i.min(d)),
            (i, d) => i.or(d),
        };
        let Some(until) = until else {
            return self.resp.chunk().await.map_err(BodyBreak::Broken);
        };
        match tokio::time::timeout_at(until, self.resp.chunk()).await {
            Err(_) => Err(BodyBreak::Stalled(self.idle)),
            Ok(chunk) => chunk.map_err(BodyBreak::Broken),
        }
    }
}

/// Sends requests with one connection pool, the key (only to the configured fal hosts), the
/// retry policy and the limits of a [`Config`].
pub(crate) struct Transport {
    http: reqwest::Client,
    /// The `Authorization` header: a fixed `Key {key}` built once, or a resolver's answer;
    /// marked sensitive (never logged, not indexed by HTTP/2).
    auth: Auth,
    config: Config,
}

/// The key is never shown.
impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("key", &self.auth.is_some().then_some("[REDACTED]"))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(config: Config, http: reqwest::Client, auth: Auth) -> Self {
        Self { http, auth, config }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn has_key(&self) -> bool {
        self.auth.is_some()
    }

    /// The `Authorization` value for `url` (asked of the resolver when the client has one),
    /// only when `url` is on one of the configured fal base URLs. The key never goes anywhere
    /// else.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the client's resolver fails.
    pub(crate) async fn auth_for(&self, url: &Url) -> Result<Option<HeaderValue>> {
        if !self.config.is_fal_url(url) {
            return Ok(None);
        }
        self.auth.header().await
    }

    /// fal answered `401` to `sent`: a resolver's cached credential is dropped if it is that one.
    pub(crate) fn auth_refused(&self, sent: &HeaderValue) {
        self.auth.refused(sent);
    }

    /// A reader of a success answer's body.
    pub(crate) fn reader(&self, resp: reqwest::Response) -> BodyReader {
        self.reader_idle(resp, self.config.read_timeout)
    }

    /// A reader whose longest silence is `idle` instead of the read timeout (an output
    /// stream's own idle timeout; `Duration::MAX` is none).
    pub(crate) fn reader_idle(&self, resp: reqwest::Response, idle: Duration) -> BodyReader {
        BodyReader { resp, idle }
    }

    /// The byte limit of a success body of `op` read into memory.
    fn body_limit(&self, op: Op) -> u64 {
        let max = self.config.max_response_bytes;
        match op.limit() {
            BodyLimit::Control => max.min(MAX_CONTROL_BODY),
            BodyLimit::Payload => max,
            BodyLimit::Jwks => max.min(MAX_JWKS_BODY),
        }
    }

    /// The byte limit of one status-stream event (1 MiB, or less when the control limit is).
    pub(crate) fn event_limit(&self) -> u64 {
        self.body_limit(Op::Status).min(1024 * 1024)
    }

    /// Send with the retry policy; a success (2xx) answer is returned unread, anything else
    /// becomes an [`Error`].
    pub(crate) async fn send(&self, req: &Request<'_>) -> Result<reqwest::Response> {
        self.send_then(req, |resp| async move { Ok(resp) }).await
    }

    /// Send and read the whole success body, up to the op's size limit
    /// ([`Error::ResponseTooLarge`] beyond it; the rest is never read). On an idempotent call a
    /// body that breaks on the way, or that should be JSON and is not JSON at all, is retried like
    /// a transport failure; on a submit it is not (fal has the job).
    pub(crate) async fn bytes(&self, req: &Request<'_>) -> Result<(HeaderMap, Bytes)> {
        self.send_then(req, |resp| async move {
            let (headers, body) = self.read(req, resp).await?;
            if req.op.expects_json() {
                // Only the syntax is checked here: a wrong shape is reported by the caller's
                // decode, with its path.
                let what = AnswerOf(req.op.name());
                let rid = answer_request_id(req, &headers);
                if let Err((e, broken)) =
                    decode_json_checked::<serde::de::IgnoredAny>(&what, &body, rid)
                {
                    return Err((e, broken && req.op.kind() == CallKind::Idempotent));
                }
            }
            Ok((headers, body))
        })
        .await
    }

    /// Send and decode the success body as JSON into `T`, straight from the answer's bytes and
    /// once. A broken body (cut short, not JSON at all) is retried on idempotent calls; JSON of
    /// the wrong shape is an [`Error::Decode`] naming the path, at once.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        req: &Request<'_>,
        what: &(dyn std::fmt::Display + Sync),
    ) -> Result<T> {
        self.json_then(req, what, |value, _| Ok(value)).await
    }

    /// [`json`](Self::json), then `then(value, headers)`: a check of the decoded value that may
    /// still refuse it, or what the answer's headers add to it (billed units). Its error is
    /// final.
    pub(crate) async fn json_then<T: DeserializeOwned, R>(
        &self,
        req: &Request<'_>,
        what: &(dyn std::fmt::Display + Sync),
        then: impl Fn(T, &HeaderMap) -> Result<R>,
    ) -> Result<R> {
        self.send_then(req, |resp| {
            let then = &then;
            async move {
                let (headers, body) = self.read(req, resp).await?;
                let rid = answer_request_id(req, &headers);
                let value = decode_json_checked(what, &body, rid)
                    .map_err(|(e, broken)| (e, broken && req.op.kind() == CallKind::Idempotent))?;
                then(value, &headers).map_err(|e| (e, false))
            }
        })
        .await
    }

    /// Send and stream the success body to `path` with `.part` appended, renamed to `path` once
    /// the whole body arrived (and matched its `Content-Length`); returns the bytes written. A
    /// body that breaks or stalls on the way is downloaded again from the start, under the same
    /// retry policy as the rest of the call.
    pub(crate) async fn to_file(&self, req: &Request<'_>, path: &Path) -> Result<u64> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".part");
        let partial = std::path::PathBuf::from(partial);
        let written = self
            .send_then(req, |resp| {
                let partial = &partial;
                async move {
                    let declared = resp.content_length();
                    let io = |e| (Error::io(partial.display(), e), false);
                    let mut file = tokio::fs::File::create(partial).await.map_err(io)?;
                    let mut reader = self.reader(resp);
                    let mut written = 0u64;
                    loop {
                        match reader.next(None).await {
                            Ok(Some(chunk)) => {
                                file.write_all(&chunk).await.map_err(io)?;
                                written += chunk.len() as u64;
                            }
                            Ok(None) => break,
                            Err(b) => return Err((self.body_error(req, b, None), true)),
                        }
                    }
                    file.flush().await.map_err(io)?;
                    if let Some(n) = declared.filter(|n| *n != written) {
                        let e = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("the answer declared {n} bytes but {written} arrived"),
                        );
                        return Err((Error::io(redact_url(&req.url), e), true));
                    }
                    Ok(written)
                }
            })
            .await;
        match written {
            Ok(n) => {
                tokio::fs::rename(&partial, path)
                    .await
                    .map_err(|e| Error::io(path.display(), e))?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    /// The retry loop. `finish` turns a success (2xx) answer into the call's value, or into an
    /// error and whether that error may be retried (a body that broke on the way, for example).
    async fn send_then<T, F, Fut>(&self, req: &Request<'_>, finish: F) -> Result<T>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, (Error, bool)>>,
    {
        let policy = &self.config.retry;
        let kind = req.op.kind();
        let mut attempt: u32 = 0;
        loop {
            let tally = req.meter.clone().map(Tally::new);
            // A failed attempt's body bytes are taken back from the progress count.
            let rewind = || {
                if let Some(t) = &tally {
                    t.rewind();
                }
            };
            // Asked before every attempt: a resolver may rotate the credential.
            let auth = if req.op.authorized() {
                self.auth_for(&req.url).await?
            } else {
                None
            };
            let outcome = match self.attempt(req, tally.clone(), auth.as_ref()).await {
                Ok(outcome) => outcome,
                Err(io) => {
                    rewind();
                    let path = match &req.body {
                        Some(Body::File { path, .. }) => path.display().to_string(),
                        _ => String::new(),
                    };
                    return Err(Error::io(path, io));
                }
            };
            let (err, hint) = match outcome {
                Sent::Stalled(idle) => {
                    rewind();
                    if kind == CallKind::Submit {
                        // A v3 upload whose answer never came: the file may be stored.
                        return Err(ambiguous_submit(req, Box::new(StalledBody(idle)), None));
                    }
                    (stalled(req, idle, None), None)
                }
                Sent::Answer(resp) if resp.status().is_success() => match finish(resp).await {
                    Ok(value) => return Ok(value),
                    Err((err, retry)) => {
                        rewind();
                        if !retry {
                            return Err(err);
                        }
                        (err, None)
                    }
                },
                Sent::Answer(resp) => {
                    rewind();
                    if let Some(sent) = auth.as_ref() {
                        if resp.status() == StatusCode::UNAUTHORIZED {
                            self.auth.refused(sent);
                        }
                    }
                    // The error carries the retry decision for this call (`retried`).
                    let err = self.api_error(req, resp).await;
                    let Some(hint) = err.as_api().filter(|e| e.retried).map(|e| e.retry_after)
                    else {
                        return Err(err);
                    };
                    (err, hint)
                }
                Sent::Failed(source) => {
                    rewind();
                    // A request that could not even be built (e.g. a header value) never left.
                    if source.is_builder() {
                        return Err(transport_error(req, source));
                    }
                    let retry = match kind {
                        CallKind::Idempotent => true,
                        // Nothing was sent when the connection could not be made.
                        CallKind::Submit => source.is_connect(),
                    };
                    if !retry {
                        return Err(match kind {
                            CallKind::Submit => {
                                ambiguous_submit(req, Box::new(source.without_url()), None)
                            }
                            CallKind::Idempotent => transport_error(req, source),
                        });
                    }
                    (transport_error(req, source), None)
                }
            };
            if req.once || attempt >= policy.max_retries {
                return Err(err);
            }
            let delay = policy.delay(attempt, hint);
            attempt += 1;
            tracing::warn!(
                op = req.op.name(),
                endpoint = req.endpoint,
                request_id = req.request_id,
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
        req: &Request<'_>,
        tally: Option<Arc<Tally>>,
        auth: Option<&HeaderValue>,
    ) -> std::io::Result<Sent> {
        let activity = req.op.watched().then(|| {
            Activity::new(match &req.body {
                Some(Body::Bytes(b)) => b.len() as u64,
                Some(Body::File { len, .. }) => *len,
                None => 0,
            })
        });
        let mut rb = self.http.request(req.method.clone(), req.url.clone());
        if !req.headers.is_empty() {
            rb = rb.headers(req.headers.clone());
        }
        if let Some(auth) = auth {
            rb = rb.header(http::header::AUTHORIZATION, auth.clone());
        }
        match (&req.body, tally, &activity) {
            (Some(Body::Bytes(b)), None, None) => rb = rb.body(b.clone()),
            (Some(Body::Bytes(b)), t, a) => {
                rb = rb
                    .header(http::header::CONTENT_LENGTH, b.len())
                    .body(chunked_bytes_body(b.clone(), t, a.clone()));
            }
            (Some(Body::File { path, offset, len }), t, a) => {
                rb = rb
                    .header(http::header::CONTENT_LENGTH, *len)
                    .body(file_body(path, *offset, *len, t, a.clone()).await?);
            }
            (None, _, _) => {}
        }
        let timeout = req
            .timeout
            .or_else(|| req.op.control().then_some(self.config.request_timeout));
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        let send = rb.send();
        Ok(match activity {
            None => match send.await {
                Ok(resp) => Sent::Answer(resp),
                Err(e) => Sent::Failed(e),
            },
            Some(activity) => {
                let (body_idle, head_wait) =
                    (self.config.read_timeout, self.config.request_timeout);
                tokio::select! {
                    sent = send => match sent {
                        Ok(resp) => Sent::Answer(resp),
                        Err(e) => Sent::Failed(e),
                    },
                    limit = activity.silent_for(body_idle, head_wait) => Sent::Stalled(limit),
                }
            }
        })
    }

    /// Read a success answer's body into memory, up to the op's limit; the error says whether
    /// the attempt may be repeated (a body that broke on the way, on an idempotent call).
    async fn read(
        &self,
        req: &Request<'_>,
        mut resp: reqwest::Response,
    ) -> std::result::Result<(HeaderMap, Bytes), (Error, bool)> {
        let limit = self.body_limit(req.op);
        let declared = resp.content_length();
        // The body is read from `resp`; its headers are not needed there any more.
        let headers = std::mem::take(resp.headers_mut());
        // The request id is copied out only for an error.
        let rid = || answer_request_id(req, &headers).map(str::to_owned);
        let too_large = |head: &[u8]| {
            let err = Error::ResponseTooLarge {
                what: req.op.name(),
                url: redact_url(&req.url),
                limit,
                declared,
                request_id: rid(),
                body_excerpt: excerpt(head),
            };
            (err, false)
        };
        let mut reader = self.reader(resp);
        if declared.is_some_and(|n| n > limit) {
            // Read one chunk for the excerpt, then stop.
            let head = reader.next(None).await.ok().flatten().unwrap_or_default();
            return Err(too_large(&head));
        }
        // Most answers come in one chunk: that chunk is the body (no copy). A second chunk
        // starts a buffer.
        let mut first: Option<Bytes> = None;
        let mut body = BytesMut::new();
        loop {
            match reader.next(None).await {
                Ok(Some(chunk)) => {
                    let have = first.as_ref().map_or(body.len(), Bytes::len) as u64;
                    if have.saturating_add(chunk.len() as u64) > limit {
                        let head = match &first {
                            Some(f) => &f[..],
                            None if body.is_empty() => &chunk[..],
                            None => &body[..],
                        };
                        return Err(too_large(head));
                    }
                    if body.is_empty() && first.is_none() {
                        first = Some(chunk);
                        continue;
                    }
                    if let Some(f) = first.take() {
                        // The declared size, within the limit: one allocation (a declared size
                        // is only a claim, so at most 8 MiB are reserved up front; the rest
                        // grows as it arrives).
                        let want = declared.map_or(0, |n| n.min(MAX_CONTROL_BODY));
                        body.reserve(
                            usize::try_from(want)
                                .unwrap_or(0)
                                .max(f.len() + chunk.len()),
                        );
                        body.extend_from_slice(&f);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(b) => {
                    let idempotent = req.op.kind() == CallKind::Idempotent;
                    return Err((self.body_error(req, b, rid()), idempotent));
                }
            }
        }
        Ok((headers, first.unwrap_or_else(|| body.freeze())))
    }

    /// The error for a body that could not be read to its end. A submit's answer head already
    /// came with 2xx, so fal has the job: that is an ambiguous submit (with the request id the
    /// head carried, if any).
    fn body_error(&self, req: &Request<'_>, b: BodyBreak, request_id: Option<String>) -> Error {
        match (b, req.op.kind()) {
            (BodyBreak::Stalled(idle), CallKind::Idempotent) => stalled(req, idle, request_id),
            (BodyBreak::Stalled(idle), CallKind::Submit) => {
                ambiguous_submit(req, Box::new(StalledBody(idle)), request_id)
            }
            (BodyBreak::Broken(source), CallKind::Submit) => {
                ambiguous_submit(req, Box::new(source.without_url()), request_id)
            }
            (BodyBreak::Broken(source), CallKind::Idempotent) => transport_error(req, source),
        }
    }

    /// Read (a bounded part of) an error answer and build an [`Error::Api`].
    async fn api_error(&self, req: &Request<'_>, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut reader = self.reader(resp);
        // An error body that stalls or breaks is cut there: the status says enough.
        while let Ok(Some(chunk)) = reader.next(None).await {
            let room = MAX_ERROR_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        api_error_from_parts(req, status, &headers, &body)
    }
}

/// The request id for errors about an answer: the call's, else the answer's header.
fn answer_request_id<'a>(req: &'a Request<'_>, headers: &'a HeaderMap) -> Option<&'a str> {
    req.request_id
        .or_else(|| header_str(headers, "x-fal-request-id"))
}

/// The reqwest error's own message repeats the full URL, query included (pre-signed upload
/// URLs, `fal_webhook=`): errors keep the redacted URL and drop reqwest's copy.
fn ambiguous_submit(
    req: &Request<'_>,
    source: Box<dyn std::error::Error + Send + Sync>,
    request_id: Option<String>,
) -> Error {
    Error::AmbiguousSubmit {
        endpoint: req.endpoint.unwrap_or(req.url.path()).to_owned(),
        request_id,
        source,
    }
}

/// A submit's or sync run's answer body that stopped arriving: the source of its
/// [`Error::AmbiguousSubmit`].
#[derive(Debug)]
struct StalledBody(Duration);

impl std::fmt::Display for StalledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the answer stalled (nothing for {:?})", self.0)
    }
}

impl std::error::Error for StalledBody {}

fn stalled(req: &Request<'_>, idle: Duration, request_id: Option<String>) -> Error {
    Error::Stalled {
        method: req.method.clone(),
        url: redact_url(&req.url),
        request_id: request_id.or_else(|| req.request_id.map(str::to_owned)),
        idle,
    }
}

pub(crate) fn transport_error(req: &Request<'_>, source: reqwest::Error) -> Error {
    Error::Transport {
        method: req.method.clone(),
        url: redact_url(&req.url),
        request_id: req.request_id.map(str::to_owned),
        source: source.without_url(),
    }
}

pub(crate) fn api_error_from_parts(
    req: &Request<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let (detail, body_error_type) = parse_error_body(body);
    let error_type =
        body_error_type.or_else(|| header_str(headers, "x-fal-error-type").map(str::to_owned));
    let request_id = header_str(headers, "x-fal-request-id")
        .map(str::to_owned)
        .or_else(|| req.request_id.map(str::to_owned))
        .or_else(|| match &detail {
            crate::error::ErrorDetail::Platform(p) => p.request_id.clone(),
            _ => None,
        });
    let facts = StatusFacts::from_answer(status, headers);
    Error::Api(Box::new(ApiError {
        status,
        method: req.method.clone(),
        url: redact_url(&req.url),
        request_id,
        error_type,
        timeout_type: header_str(headers, "x-fal-request-timeout-type").map(str::to_owned),
        retryable: facts.retryable,
        retried: facts.retried(req.op.kind()),
        retry_after: retry_after(headers, SystemTime::now()),
        detail,
        body_excerpt: excerpt(body),
    }))
}
