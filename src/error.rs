//! The crate's one error type.
//!
//! Every fallible call returns [`Error`]. It separates what went wrong *before* a request
//! ([`Error::InvalidInput`], [`Error::InvalidEndpointId`], [`Error::Config`]), on the wire
//! ([`Error::Transport`], [`Error::AmbiguousSubmit`]), at fal ([`Error::Api`],
//! [`Error::RequestFailed`]), while reading an answer ([`Error::Decode`],
//! [`Error::ResponseTooLarge`]) and while waiting
//! ([`Error::Timeout`]). Whenever fal already knows the request, the error carries its request
//! id ([`Error::request_id`]) so a caller can resume instead of paying twice.
//!
//! API error bodies follow fal's two documented shapes
//! (<https://docs.fal.ai/errors>, <https://docs.fal.ai/documentation/model-apis/request-errors>):
//! a validation body `{"detail": [{"loc", "msg", "type", ...}]}` (usually with status 422) and a
//! request error `{"detail": "...", "error_type": "..."}`; a plain-string `detail` is tolerated.

use std::fmt;
use std::time::Duration;

use crate::archive::ArchiveError;
use crate::deprecation::Deprecation;
use crate::webhook::WebhookError;

pub(crate) use crate::detail::parse_error_body;
pub use crate::detail::{ErrorDetail, LocItem, PlatformError, ValidationDetail};

/// Any error, boxed: what a [`CredentialResolver`](crate::credentials::CredentialResolver) or
/// [`TokenProvider`](crate::tokens::TokenProvider) closure may return, and the source of
/// [`Error::Credentials`], [`Error::StreamBroken`] and [`Error::Realtime`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest body excerpt kept in an error, in bytes.
pub(crate) const EXCERPT_LEN: usize = 512;

/// Everything that can go wrong when talking to fal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client could not be configured (missing key, bad base URL, bad option).
    #[error("configuration error: {0}")]
    Config(String),

    /// An endpoint id does not follow fal's grammar (`owner/alias[/path]`,
    /// `workflows|comfy/owner/alias[/path]` or a legacy `123-alias`).
    #[error("invalid endpoint id {id:?}: {reason}")]
    InvalidEndpointId {
        /// The id as given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An input failed validation before anything was sent (no money spent).
    #[error("invalid input: `{field}` {message}")]
    InvalidInput {
        /// The field name as it appears on the wire (e.g. `steps`, `loras[0].scale`).
        field: String,
        /// What is wrong, with the accepted range where there is one.
        message: String,
    },

    /// The HTTP exchange failed: connection refused or reset, TLS, a timeout, a broken body.
    #[error("transport error on {method} {url}: {source}")]
    Transport {
        /// HTTP method of the failed call.
        method: http::Method,
        /// URL of the failed call, without its query string.
        url: String,
        /// Request id, when the call concerned a known request.
        request_id: Option<String>,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// A call stalled: nothing moved for longer than the client's read timeout
    /// ([`FalClientBuilder::read_timeout`](crate::FalClientBuilder::read_timeout)) — an answer's
    /// body stopped arriving, or an upload's body stopped being taken, or a download's answer
    /// never came. Only idempotent calls end with it (they retry it first;
    /// [`Error::is_retryable`] is `true`); a submit or sync run whose answer stalls is
    /// [`Error::AmbiguousSubmit`].
    #[error("{method} {url}: the answer stalled (nothing for {idle:?}){}", request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    Stalled {
        /// HTTP method of the call.
        method: http::Method,
        /// URL of the call, without its query string.
        url: String,
        /// Request id, when known.
        request_id: Option<String>,
        /// The read timeout that passed.
        idle: Duration,
    },

    /// A submit (or sync run) whose outcome is unknown: the connection failed or stalled after
    /// the request may have reached fal, so the job may or may not be queued (and billed). The
    /// crate never retries such a submit on its own; check your fal dashboard or webhook before
    /// submitting again.
    #[error("submit to {endpoint} may or may not have reached fal (the connection failed after the request was sent); it was not retried: {source}")]
    AmbiguousSubmit {
        /// The endpoint id the submit went to.
        endpoint: String,
        /// The request id, when fal's answer head carried one (`x-fal-request-id`) before its
        /// body broke: the job then exists under this id.
        request_id: Option<String>,
        /// The failure: the transport's error, or the answer's stall.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// fal answered with a non-success HTTP status.
    #[error("{0}")]
    Api(Box<ApiError>),

    /// fal answered `404` to a submit or a sync run: it serves no app at this endpoint id (a
    /// typo, an app fal removed, or a private app the key cannot see). Nothing was queued or
    /// billed. When the crate knows fal deprecated the endpoint, `deprecation` says so and names
    /// the replacement (the message too). The full answer is in `api`.
    #[error("{}", endpoint_not_found_message(endpoint, *deprecation))]
    EndpointNotFound {
        /// The endpoint id the request went to.
        endpoint: String,
        /// What the crate knows of its deprecation on fal, if anything.
        deprecation: Option<&'static Deprecation>,
        /// fal's answer (status 404, body, headers).
        api: Box<ApiError>,
    },

    /// A queued request reached `COMPLETED` but failed (status `error`/`error_type`), or the
    /// result call returned the model's error.
    #[error("request {request_id} on {endpoint} failed: {message}{}", error_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    RequestFailed {
        /// The request id.
        request_id: String,
        /// The endpoint id.
        endpoint: String,
        /// fal's message (e.g. `Runner disconnected`).
        message: String,
        /// fal's category (e.g. `runner_disconnected`), when given.
        error_type: Option<String>,
    },

    /// A queue status (a poll's answer or a status-stream event) carried a `status` this crate
    /// does not know (fal's are `IN_QUEUE`, `IN_PROGRESS` and `COMPLETED`). A wait ends with it
    /// at once, as in fal's Python client: asking again would only repeat it.
    #[error("unknown queue status {status:?}{}", request_id.as_deref().map(|id| format!(" for request {id}")).unwrap_or_default())]
    UnknownQueueStatus {
        /// The status as sent.
        status: String,
        /// The request id, when known.
        request_id: Option<String>,
    },

    /// An answer could not be decoded into the expected type.
    #[error("could not decode {what} at `{path}`: {message} (body starts: {body_excerpt:?})")]
    Decode {
        /// What was being decoded (e.g. `queue status`, `fal-ai/flux-lora output`).
        what: String,
        /// JSON path of the failure (`.` for the root), as given by `serde_path_to_error`.
        path: String,
        /// The decoder's message.
        message: String,
        /// The first bytes of the body (lossy UTF-8, at most 512 bytes).
        body_excerpt: String,
        /// Request id, when known.
        request_id: Option<String>,
    },

    /// An answer was larger than the client accepts, so it was not read further (and never
    /// buffered whole). Control answers (submit, status, cancel, upload initiation) are limited to
    /// 8 MiB; results, sync runs and in-memory downloads to
    /// [`FalClientBuilder::max_response_bytes`](crate::FalClientBuilder::max_response_bytes)
    /// (default 256 MiB). Stream big files to disk with
    /// [`Storage::download_to_file`](crate::storage::Storage::download_to_file) instead.
    #[error("the {what} answer from {url} is larger than the {limit}-byte limit{}; it was not read further (body starts: {body_excerpt:?})", request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    ResponseTooLarge {
        /// The operation whose answer it was (`status`, `submit`, `result`, `download`,
        /// `status stream event`, ...).
        what: &'static str,
        /// URL of the call, without its query string.
        url: String,
        /// The limit that applied, in bytes.
        limit: u64,
        /// The size the server declared (`Content-Length`), when it declared one.
        declared: Option<u64>,
        /// Request id, when known.
        request_id: Option<String>,
        /// The first bytes of the body (lossy UTF-8, at most 512 bytes).
        body_excerpt: String,
    },

    /// A wait passed its deadline. The request is still known to fal under `request_id`:
    /// rebuild the handle with [`FalClient::resume`](crate::FalClient::resume) to continue.
    #[error("{}", timeout_message(request_id.as_deref(), endpoint, *waited, *cancel_requested))]
    Timeout {
        /// The request id. The crate's waits start once the request is queued, so they always
        /// set it.
        request_id: Option<String>,
        /// The endpoint id.
        endpoint: String,
        /// How long the wait ran.
        waited: Duration,
        /// Whether a cancel was sent to fal when the deadline passed.
        cancel_requested: bool,
    },

    /// The status stream sent nothing for longer than its idle timeout. Waiting falls back to
    /// polling on its own; this reaches callers only through
    /// [`RequestHandle::events`](crate::queue::RequestHandle::events).
    #[error("the status stream of request {request_id} was silent for {idle:?}")]
    StreamIdle {
        /// The request id.
        request_id: String,
        /// The idle timeout that passed.
        idle: Duration,
    },

    /// A file upload to fal storage failed in a way that is not an HTTP status (e.g. the
    /// initiate answer lacks `upload_url`, a multipart part lost its ETag, sizes disagree).
    #[error("upload failed: {0}")]
    Upload(String),

    /// A local file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A training archive could not be built or failed validation.
    #[error(transparent)]
    Archive(#[from] ArchiveError),

    /// A webhook delivery failed verification or could not be parsed.
    #[error(transparent)]
    Webhook(#[from] WebhookError),

    /// An output stream ([`FalClient::stream`](crate::FalClient::stream)) broke, went silent
    /// or ended before its final output. fal does not retry streams and neither does the crate
    /// (the run may be billed): stream again, or run the request through the queue.
    #[error("the output stream of {endpoint}{} failed after {events} event(s): {kind}", request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    StreamBroken {
        /// The endpoint id.
        endpoint: String,
        /// The request id fal gave the stream (`x-fal-request-id`), when known.
        request_id: Option<String>,
        /// How many events arrived before it failed.
        events: usize,
        /// How it failed.
        kind: crate::stream::StreamBreak,
        /// The last event that arrived, when it was JSON.
        last_event: Option<Box<serde_json::Value>>,
        /// The transport's error, for [`StreamBreak::Broken`](crate::stream::StreamBreak::Broken).
        #[source]
        source: Option<BoxError>,
    },

    /// A realtime session ([`FalClient::realtime`](crate::FalClient::realtime)) could not be
    /// opened, was refused, or failed; see [`RealtimeFailure`](crate::realtime::RealtimeFailure).
    #[error("realtime session with {endpoint}: {failure}")]
    Realtime {
        /// The endpoint id.
        endpoint: String,
        /// What happened.
        failure: crate::realtime::RealtimeFailure,
        /// The WebSocket's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A training plan's estimate is above its budget
    /// ([`TrainingPlan::set_budget`](crate::avatar::TrainingPlan::set_budget)): nothing was
    /// uploaded or submitted.
    #[error("{endpoint} would cost an estimated {estimate:.2} {currency}, above the budget of {budget:.2} {currency}; nothing was submitted")]
    OverBudget {
        /// The endpoint id.
        endpoint: String,
        /// fal's estimate.
        estimate: f64,
        /// The cap.
        budget: f64,
        /// The currency of both.
        currency: String,
    },

    /// The client's [`CredentialResolver`](crate::credentials::CredentialResolver) failed, so
    /// the request was not sent.
    #[error("could not resolve fal credentials: {0}")]
    Credentials(#[source] BoxError),
}

fn endpoint_not_found_message(endpoint: &str, deprecation: Option<&Deprecation>) -> String {
    match deprecation {
        Some(d) => format!(
            "fal has no endpoint {endpoint} (404): it is deprecated on fal ({}, {}); use {} instead",
            d.note, d.page, d.replacement
        ),
        None => format!(
            "fal has no endpoint {endpoint} (404): check the id, or whether fal removed the model \
             (https://fal.ai/models)"
        ),
    }
}

fn timeout_message(
    request_id: Option<&str>,
    endpoint: &str,
    waited: Duration,
    cancel_requested: bool,
) -> String {
    match request_id {
        Some(id) => format!(
            "waiting for request {id} on {endpoint} timed out after {:.1?}{}; resume with FalClient::resume(\"{endpoint}\", \"{id}\")",
            waited,
            if cancel_requested { " (cancel requested on fal)" } else { "" }
        ),
        None => format!("submit to {endpoint} timed out after {waited:.1?} before fal returned a request id"),
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The fal request id this error concerns, when one is known (`x-fal-request-id`, the
    /// queue request id of a failed or timed-out wait, ...). Store it: a request id is the only
    /// way to get the result of a job that is already paid for.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api(e) | Error::EndpointNotFound { api: e, .. } => e.request_id.as_deref(),
            Error::RequestFailed { request_id, .. } | Error::StreamIdle { request_id, .. } => {
                Some(request_id)
            }
            Error::Timeout { request_id, .. }
            | Error::UnknownQueueStatus { request_id, .. }
            | Error::Decode { request_id, .. }
            | Error::ResponseTooLarge { request_id, .. }
            | Error::Transport { request_id, .. }
            | Error::Stalled { request_id, .. }
            | Error::AmbiguousSubmit { request_id, .. }
            | Error::StreamBroken { request_id, .. } => request_id.as_deref(),
            Error::Webhook(e) => e.request_id(),
            _ => None,
        }
    }

    /// The HTTP status for [`Error::Api`] and [`Error::EndpointNotFound`], else `None`.
    pub fn status(&self) -> Option<http::StatusCode> {
        self.as_api().map(|e| e.status)
    }

    /// fal's answer, for [`Error::Api`] and [`Error::EndpointNotFound`].
    pub fn as_api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) | Error::EndpointNotFound { api: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Whether making the same call again later may succeed without harm: the retry policy's
    /// own decision for this call (see [`crate::retry`]). For status, result, cancel, uploads
    /// and downloads: transport failures, stalls, and 408, 429, 500, 502, 503, 504 — except a
    /// 504 caused by the caller's own `x-fal-request-timeout` and any answer with
    /// `x-fal-retryable: false`. For a submit or sync run only what fal cannot have taken: a
    /// connection never made, 429, and a 502/503/504 from ingress (without `x-fal-request-id`);
    /// [`Error::AmbiguousSubmit`] is never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Stalled { .. } => true,
            Error::Api(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// Attach a request id to an error that lacks one (transport and decode errors of calls
    /// about a known request).
    pub(crate) fn with_request_id(mut self, id: &str) -> Self {
        match &mut self {
            Error::Transport { request_id, .. }
            | Error::Decode { request_id, .. }
            | Error::UnknownQueueStatus { request_id, .. }
            | Error::ResponseTooLarge { request_id, .. }
                if request_id.is_none() =>
            {
                *request_id = Some(id.to_owned());
            }
            Error::Api(e) if e.request_id.is_none() => e.request_id = Some(id.to_owned()),
            _ => {}
        }
        self
    }
}

/// A non-success answer from fal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status code.
    pub status: http::StatusCode,
    /// HTTP method of the call.
    pub method: http::Method,
    /// URL of the call, without its query string.
    pub url: String,
    /// `x-fal-request-id` response header, or the request id the call concerned.
    pub request_id: Option<String>,
    /// `error_type` from the body, else the `x-fal-error-type` header (body wins), e.g.
    /// `request_timeout`, `runner_disconnected`.
    pub error_type: Option<String>,
    /// `x-fal-request-timeout-type` header (`user` when the caller's start timeout expired).
    pub timeout_type: Option<String>,
    /// `x-fal-retryable` header, when present.
    pub retryable: Option<bool>,
    /// The retry policy's decision for this answer to this call (see [`Self::is_retryable`]).
    pub(crate) retried: bool,
    /// `Retry-After` header, parsed (seconds or HTTP date), when present.
    pub retry_after: Option<Duration>,
    /// The parsed `detail`.
    pub detail: ErrorDetail,
    /// The first bytes of the body (lossy UTF-8, at most 512 bytes).
    pub body_excerpt: String,
}

impl ApiError {
    /// Field errors of a validation (422) answer; empty for other answers.
    pub fn field_errors(&self) -> &[ValidationDetail] {
        match &self.detail {
            ErrorDetail::Validation(v) => v,
            _ => &[],
        }
    }

    /// The human-readable message: the string `detail`, the first field error's `msg`, or the
    /// body excerpt.
    pub fn message(&self) -> &str {
        match &self.detail {
            ErrorDetail::Message(m) => m,
            ErrorDetail::Platform(p) => &p.message,
            ErrorDetail::Validation(v) if !v.is_empty() => &v[0].msg,
            _ => &self.body_excerpt,
        }
    }

    /// `true` for a 504 caused by the caller's own start timeout (`X-Fal-Request-Timeout`).
    pub fn is_user_timeout(&self) -> bool {
        self.status == http::StatusCode::GATEWAY_TIMEOUT
            && self.timeout_type.as_deref() == Some("user")
    }

    /// See [`Error::is_retryable`]: the retry policy's own decision for this answer to this
    /// call (a submit's 500 is not retryable; a status call's is).
    pub fn is_retryable(&self) -> bool {
        self.retried
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fal answered {} to {} {}",
            self.status.as_u16(),
            self.method,
            self.url
        )?;
        if let Some(t) = &self.error_type {
            write!(f, " [{t}]")?;
        }
        match &self.detail {
            ErrorDetail::Validation(v) => {
                for d in v {
                    write!(f, "; {}: {} ({})", d.field_path(), d.msg, d.kind)?;
                }
            }
            ErrorDetail::Message(m) => write!(f, ": {m}")?,
            ErrorDetail::Platform(p) => {
                write!(f, ": {}", p.message)?;
                if let Some(url) = &p.docs_url {
                    write!(f, " (see {url})")?;
                }
            }
            ErrorDetail::None => {
                if !self.body_excerpt.is_empty() {
                    write!(f, ": {}", self.body_excerpt)?;
                }
            }
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// The start of a body as lossy UTF-8, at most [`EXCERPT_LEN`] bytes long (plus `…` when cut).
/// Invalid bytes become U+FFFD (three bytes each), so the string is cut again after decoding.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(EXCERPT_LEN);
    let mut s = String::from_utf8_lossy(&body[..end]).into_owned();
    let mut cut = s.len().min(EXCERPT_LEN);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let shortened = cut < s.len() || body.len() > EXCERPT_LEN;
    s.truncate(cut);
    if shortened {
        s.push('…');
    }
    s
}

/// What was decoded, for [`Error::Decode`]: `"{0} output"`, formatted only on a failure.
pub(crate) struct OutputOf<'a>(pub(crate) &'a str);

impl fmt::Display for OutputOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} output", self.0)
    }
}

/// What was decoded, for [`Error::Decode`]: `"{0} answer"`, formatted only on a failure.
pub(crate) struct AnswerOf(pub(crate) &'static str);

impl fmt::Display for AnswerOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answer", self.0)
    }
}

/// Decode JSON bytes into `T`, naming the JSON path on failure.
///
/// Bodies that decode (nearly all) go through plain `serde_json` once; only a body that fails
/// is decoded a second time with `serde_path_to_error` to find the path. Path tracking on every
/// body cost about as much as the rest of the decoding (`cargo bench --bench lifecycle`).
pub(crate) fn decode_json<'de, T: serde::Deserialize<'de>>(
    what: &dyn fmt::Display,
    body: &'de [u8],
    request_id: Option<&str>,
) -> Result<T> {
    decode_json_checked(what, body, request_id).map_err(|(e, _)| e)
}

/// [`decode_json`], also saying whether the body is *broken* JSON (cut short, or not JSON at
/// all, like an HTML page from a proxy) rather than JSON of the wrong shape. A broken answer to
/// an idempotent call is worth asking again; a wrong shape is not.
#[allow(clippy::result_large_err)] // crate-internal; the pair lives one call
pub(crate) fn decode_json_checked<'de, T: serde::Deserialize<'de>>(
    what: &dyn fmt::Display,
    body: &'de [u8],
    request_id: Option<&str>,
) -> std::result::Result<T, (Error, bool)> {
    let fast = match serde_json::from_slice(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let broken = matches!(
        fast.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    );
    let de = &mut serde_json::Deserializer::from_slice(body);
    let (path, message) = match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => (e.path().to_string(), e.inner().to_string()),
        // Cannot happen (same bytes, same type); keep the first error rather than panic.
        Ok(_) => (".".to_owned(), fast.to_string()),
    };
    let err = Error::Decode {
        what: what.to_string(),
        path,
        message,
        body_excerpt: excerpt(body),
        request_id: request_id.map(str::to_owned),
    };
    Err((err, broken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn validation_body_is_parsed_with_field_paths() {
        let body = br#"{"detail":[{"loc":["body","loras",0,"scale"],"msg":"too big","type":"value_error.number.not_le","ctx":{"limit_value":4}}]}"#;
        let (detail, et) = parse_error_body(body);
        assert_eq!(et, None);
        let ErrorDetail::Validation(v) = detail else {
            panic!("expected validation detail")
        };
        assert_eq!(v[0].field_path(), "loras.0.scale");
        assert_eq!(v[0].field(), Some("scale"));
        assert_eq!(v[0].kind, "value_error.number.not_le");
        assert_eq!(v[0].ctx.as_ref().unwrap()["limit_value"], 4);
    }

    #[test]
    fn string_detail_and_error_type() {
        let (detail, et) =
            parse_error_body(br#"{"detail":"Request timed out","error_type":"request_timeout"}"#);
        assert_eq!(detail, ErrorDetail::Message("Request timed out".into()));
        assert_eq!(et.as_deref(), Some("request_timeout"));
    }

    #[test]
    fn non_json_body_gives_no_detail() {
        let (detail, et) = parse_error_body(b"<html>502 Bad Gateway</html>");
        assert_eq!(detail, ErrorDetail::None);
        assert_eq!(et, None);
        let (detail, _) = parse_error_body(b"");
        assert_eq!(detail, ErrorDetail::None);
    }

    #[test]
    fn decode_error_names_the_path() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Out {
            images: Vec<Img>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Img {
            url: String,
            width: u32,
        }
        let err = decode_json::<Out>(
            &"output",
            br#"{"images":[{"url":"a","width":1},{"url":"b","width":"wide"}]}"#,
            Some("req-1"),
        )
        .unwrap_err();
        match &err {
            Error::Decode {
                path, request_id, ..
            } => {
                assert_eq!(path, "images[1].width");
                assert_eq!(request_id.as_deref(), Some("req-1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.request_id(), Some("req-1"));
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = vec![b'x'; 2000];
        let e = excerpt(&long);
        assert!(e.len() <= EXCERPT_LEN + '…'.len_utf8());
        assert!(e.ends_with('…'));
        // Found by the `queue_status` fuzz target: invalid bytes triple in size when decoded.
        for body in [
            vec![0xfd; 600],
            vec![0xb5; 100],
            "é".repeat(300).into_bytes(),
        ] {
            let e = excerpt(&body);
            assert!(e.len() <= EXCERPT_LEN + '…'.len_utf8(), "{} bytes", e.len());
        }
        assert_eq!(excerpt(b"short"), "short");
        assert_eq!(excerpt(&[0xff]), "\u{fffd}");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::{json, Value};

        fn detail() -> impl Strategy<Value = Value> {
            prop_oneof![
                "\\PC{0,20}".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                prop::collection::vec(("[a-z]{1,6}", 0u64..5, "\\PC{0,10}"), 0..3).prop_map(|v| {
                    Value::Array(
                        v.into_iter()
                            .map(|(f, i, m)| json!({"loc": ["body", f, i], "msg": m, "type": "t"}))
                            .collect(),
                    )
                }),
                prop::collection::vec(any::<i64>(), 1..3).prop_map(|v| json!(v)),
                Just(json!({"nested": true})),
            ]
        }

        proptest! {
            // A fixed seed: deterministic runs.
            #![proptest_config(ProptestConfig {
                cases: 512,
                rng_seed: proptest::test_runner::RngSeed::Fixed(0xfa1),
                ..ProptestConfig::default()
            })]

            /// Any bytes: never a panic, an excerpt of bounded length, no detail unless JSON.
            #[test]
            fn error_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..1200)) {
                let (detail, _) = parse_error_body(&body);
                let e = excerpt(&body);
                prop_assert!(e.len() <= EXCERPT_LEN + '…'.len_utf8());
                if serde_json::from_slice::<Value>(&body).is_err() {
                    prop_assert_eq!(detail, ErrorDetail::None);
                }
            }

            /// Any JSON `detail`: a string is the message, a list of field errors a validation
            /// detail, anything else is kept as text; a string `error_type` is read.
            #[test]
            fn error_details_of_any_shape(
                detail in proptest::option::of(detail()),
                error_type in proptest::option::of("[a-z_]{1,12}"),
            ) {
                let mut body = json!({});
                if let Some(d) = &detail { body["detail"] = d.clone(); }
                if let Some(t) = &error_type { body["error_type"] = t.clone().into(); }
                let (parsed, et) = parse_error_body(body.to_string().as_bytes());
                prop_assert_eq!(et, error_type);
                match (&detail, parsed) {
                    (None, ErrorDetail::None) => {}
                    (Some(Value::String(s)), ErrorDetail::Message(m)) => prop_assert_eq!(s, &m),
                    (Some(Value::Array(items)), ErrorDetail::Validation(v)) => {
                        prop_assert_eq!(items.len(), v.len());
                        for d in &v {
                            prop_assert!(d.field_path().starts_with(|c: char| c.is_ascii_lowercase()));
                        }
                    }
                    (Some(_), ErrorDetail::Message(m)) => prop_assert!(!m.is_empty()),
                    (d, p) => prop_assert!(false, "{:?} parsed as {:?}", d, p),
                }
            }
        }
    }

    #[test]
    fn timeout_message_says_how_to_resume() {
        let e = Error::Timeout {
            request_id: Some("abc".into()),
            endpoint: "fal-ai/flux-lora".into(),
            waited: Duration::from_secs(3),
            cancel_requested: true,
        };
        let s = e.to_string();
        assert!(s.contains("abc") && s.contains("resume"), "{s}");
        assert_eq!(e.request_id(), Some("abc"));
    }
}
