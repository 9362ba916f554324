//! fal's queue: submit, status, status stream, result, cancel, waiting, and sync run.
//!
//! Wire facts: PROTOCOL.md §3 and <https://docs.fal.ai/model-endpoints/queue>.
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! use std::time::Duration;
//! use fal_client::models::{FluxLora, FluxLoraInput};
//! use fal_client::queue::{SubmitOptions, WaitOptions};
//! use fal_client::FalClient;
//!
//! let fal = FalClient::from_env()?;
//! let job = fal
//!     .submit::<FluxLora>(&FluxLoraInput::new("a red fox"), SubmitOptions::default())
//!     .await?;
//! println!("queued as {}", job.request_id()); // store it: it resumes the job after a restart
//! let out = job.wait(WaitOptions::default().timeout(Duration::from_secs(600))).await?;
//! println!("{}", out.images[0].url);
//! # Ok(()) }
//! ```

mod status;
mod stream;
mod wait;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

use crate::client::FalClient;
use crate::endpoint::{Endpoint, EndpointId};
use crate::error::{decode_json, Error, Result};
use crate::http::{header_str, Call};
use crate::retry::{CallKind, RetryPolicy};

pub use status::{Metrics, QueueStatus, RequestLog};
pub use wait::{WaitEvent, WaitOptions};

/// Queue priority (`x-fal-queue-priority`): `low` requests wait behind all `normal` ones of the
/// same endpoint queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Priority {
    /// The default.
    #[default]
    Normal,
    /// Behind every `normal` request.
    Low,
}

impl Priority {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// Options of a queue submit. All optional; `SubmitOptions::default()` sends only the body.
///
/// ```
/// use std::time::Duration;
/// use fal_client::queue::{Priority, SubmitOptions};
/// let opts = SubmitOptions::default()
///     .webhook("https://example.com/webhook/fal/status".parse().unwrap())
///     .priority(Priority::Low)
///     .start_timeout(Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    pub(crate) webhook: Option<Url>,
    pub(crate) priority: Option<Priority>,
    pub(crate) runner_hint: Option<String>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) headers: HeaderMap,
    pub(crate) retry: Option<RetryPolicy>,
}

impl SubmitOptions {
    /// Have fal `POST` the outcome to this URL when the request finishes (query `fal_webhook`).
    /// Verify deliveries with [`crate::webhook`].
    pub fn webhook(mut self, url: Url) -> Self {
        self.webhook = Some(url);
        self
    }

    /// Queue priority (`x-fal-queue-priority`). Not sent unless set (fal's default is `normal`).
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = Some(p);
        self
    }

    /// Routing / session-affinity hint (`x-fal-runner-hint`).
    pub fn runner_hint(mut self, hint: impl Into<String>) -> Self {
        self.runner_hint = Some(hint.into());
        self
    }

    /// Server-side deadline for the request to *start* (`x-fal-request-timeout`, seconds): it
    /// covers queue wait and runner acquisition; on expiry fal answers 504 with
    /// `x-fal-request-timeout-type: user`. Must be more than 1 s (checked at submit, like the
    /// official clients).
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = Some(t);
        self
    }

    /// An extra header (lower-cased by `http`); the typed options above override headers of the
    /// same name.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// A retry policy for this submit instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The headers this submit sends (user headers, then the typed options).
    pub(crate) fn build_headers(&self) -> Result<HeaderMap> {
        let mut h = self.headers.clone();
        if let Some(p) = self.priority {
            h.insert("x-fal-queue-priority", HeaderValue::from_static(p.as_str()));
        }
        common_headers(&mut h, self.runner_hint.as_deref(), self.start_timeout)?;
        Ok(h)
    }
}

/// Options of a sync run ([`FalClient::run`]).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub(crate) runner_hint: Option<String>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Option<Duration>,
}

impl RunOptions {
    /// See [`SubmitOptions::runner_hint`].
    pub fn runner_hint(mut self, hint: impl Into<String>) -> Self {
        self.runner_hint = Some(hint.into());
        self
    }

    /// See [`SubmitOptions::start_timeout`].
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = Some(t);
        self
    }

    /// See [`SubmitOptions::header`].
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Overall client-side limit of the call, model time included (default: none — a sync run
    /// may legitimately take minutes; a dead connection is found by TCP keep-alive, and an
    /// answer body that stalls by the read timeout).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

fn common_headers(
    h: &mut HeaderMap,
    hint: Option<&str>,
    start_timeout: Option<Duration>,
) -> Result<()> {
    if let Some(hint) = hint {
        let v = HeaderValue::from_str(hint)
            .map_err(|_| Error::invalid_input("runner_hint", "must be a valid header value"))?;
        h.insert("x-fal-runner-hint", v);
    }
    if let Some(t) = start_timeout {
        h.insert("x-fal-request-timeout", timeout_header(t)?);
    }
    Ok(())
}

/// `x-fal-request-timeout` value: whole seconds without a fraction (`30`), else the shortest
/// decimal (`2.5`), as fal-js. Must be more than 1 s.
pub(crate) fn timeout_header(t: Duration) -> Result<HeaderValue> {
    if t <= Duration::from_secs(1) {
        return Err(Error::invalid_input(
            "start_timeout",
            format!("must be greater than 1 second (got {t:?})"),
        ));
    }
    let s = if t.subsec_nanos() == 0 {
        t.as_secs().to_string()
    } else {
        format!("{}", t.as_secs_f64())
    };
    HeaderValue::from_str(&s)
        .map_err(|_| Error::invalid_input("start_timeout", "not representable"))
}

/// Submit answer (PROTOCOL.md §3.1).
#[derive(Debug, Deserialize)]
struct SubmitResponse {
    request_id: String,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    status_url: Option<String>,
    #[serde(default)]
    cancel_url: Option<String>,
    #[serde(default)]
    queue_position: Option<u64>,
    #[serde(default)]
    gateway_request_id: Option<String>,
}

/// Outcome of a cancel (<https://fal.ai/docs/inference-api/queue/cancel>).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The request was queued (removed) or running (the runner was signalled).
    CancellationRequested,
    /// fal answered `OK`.
    Ok,
    /// The request had already completed; nothing was cancelled.
    AlreadyCompleted,
    /// fal does not know the request.
    NotFound,
    /// A status this crate does not know, kept as sent.
    Other(String),
}

impl CancelOutcome {
    fn from_status(s: &str) -> Self {
        match s {
            "CANCELLATION_REQUESTED" => CancelOutcome::CancellationRequested,
            "OK" => CancelOutcome::Ok,
            "ALREADY_COMPLETED" => CancelOutcome::AlreadyCompleted,
            "NOT_FOUND" => CancelOutcome::NotFound,
            other => CancelOutcome::Other(other.to_owned()),
        }
    }
}

/// A queued request: its id, its URLs, and the calls about it. `O` is the output type its
/// result decodes into (`serde_json::Value` for untyped endpoints).
///
/// Cheap to clone. Rebuild one after a restart with [`FalClient::resume`] from the stored
/// endpoint id and request id.
pub struct RequestHandle<O = serde_json::Value> {
    client: FalClient,
    endpoint: EndpointId,
    request_id: String,
    gateway_request_id: Option<String>,
    queue_position: Option<u64>,
    status_url: Url,
    response_url: Url,
    cancel_url: Url,
    retry: Option<std::sync::Arc<RetryPolicy>>,
    _output: PhantomData<fn() -> O>,
}

impl<O> Clone for RequestHandle<O> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            endpoint: self.endpoint.clone(),
            request_id: self.request_id.clone(),
            gateway_request_id: self.gateway_request_id.clone(),
            queue_position: self.queue_position,
            status_url: self.status_url.clone(),
            response_url: self.response_url.clone(),
            cancel_url: self.cancel_url.clone(),
            retry: self.retry.clone(),
            _output: PhantomData,
        }
    }
}

impl<O> fmt::Debug for RequestHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHandle")
            .field("endpoint", &self.endpoint.as_str())
            .field("request_id", &self.request_id)
            .field("status_url", &self.status_url.as_str())
            .finish_non_exhaustive()
    }
}

impl<O> RequestHandle<O> {
    /// fal's request id. Store it with the endpoint id to resume after a restart.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The gateway request id from the submit answer, when sent (equals the request id unless
    /// fal retried the request).
    pub fn gateway_request_id(&self) -> Option<&str> {
        self.gateway_request_id.as_deref()
    }

    /// The endpoint id the request was submitted to.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// The queue position at submit, when known.
    pub fn queue_position(&self) -> Option<u64> {
        self.queue_position
    }

    /// The status URL (`.../requests/{id}/status`).
    pub fn status_url(&self) -> &Url {
        &self.status_url
    }

    /// The result URL (`.../requests/{id}`).
    pub fn response_url(&self) -> &Url {
        &self.response_url
    }

    /// The cancel URL (`.../requests/{id}/cancel`).
    pub fn cancel_url(&self) -> &Url {
        &self.cancel_url
    }

    /// The client this handle uses.
    pub fn client(&self) -> &FalClient {
        &self.client
    }

    /// The same handle with its own retry policy for status, result, cancel and the status
    /// stream, instead of the client's (e.g. more patience for a long training's polls).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(std::sync::Arc::new(policy));
        self
    }

    /// The same request with another output type.
    pub fn with_output<O2>(self) -> RequestHandle<O2> {
        RequestHandle {
            client: self.client,
            endpoint: self.endpoint,
            request_id: self.request_id,
            gateway_request_id: self.gateway_request_id,
            queue_position: self.queue_position,
            status_url: self.status_url,
            response_url: self.response_url,
            cancel_url: self.cancel_url,
            retry: self.retry,
            _output: PhantomData,
        }
    }

    fn call(&self, method: Method, url: Url, op: &'static str) -> Call<'_> {
        let mut c = Call::new(method, url, op);
        c.request_id = Some(&self.request_id);
        c.endpoint = Some(self.endpoint.as_str());
        c.timeout = Some(self.client.inner.request_timeout);
        c.retry = self.retry.as_deref();
        c
    }

    /// The current status (`GET .../status?logs=0|1`).
    ///
    /// # Errors
    /// [`Error::Api`] (e.g. 404 for an unknown request), [`Error::Transport`] after retries,
    /// [`Error::Decode`] for an unreadable body.
    pub async fn status(&self, logs: bool) -> Result<QueueStatus> {
        let mut url = self.status_url.clone();
        url.query_pairs_mut()
            .append_pair("logs", if logs { "1" } else { "0" });
        let span = tracing::debug_span!("fal.status", endpoint = %self.endpoint, request_id = %self.request_id);
        // Decoded once, straight from the answer's bytes (a poll is the hot path of a wait).
        self.client
            .execute_json_then(
                self.call(Method::GET, url, "status"),
                "queue status",
                |raw: status::RawStatus, body| {
                    raw.into_status(|| crate::error::excerpt(body))
                        .map_err(|e| e.with_request_id(&self.request_id))
                },
            )
            .instrument(span)
            .await
    }

    /// Cancel the request (`PUT .../cancel`). Queued requests are removed; running ones get a
    /// cancellation signal (the app decides whether to stop).
    ///
    /// `ALREADY_COMPLETED` and `NOT_FOUND` answers are outcomes, not errors, whatever their
    /// HTTP status.
    ///
    /// # Errors
    /// Other non-success answers ([`Error::Api`]) and transport failures.
    pub async fn cancel(&self) -> Result<CancelOutcome> {
        #[derive(Deserialize)]
        struct Body {
            status: Option<String>,
        }
        let call = self.call(Method::PUT, self.cancel_url.clone(), "cancel");
        let span = tracing::info_span!("fal.cancel", endpoint = %self.endpoint, request_id = %self.request_id);
        match self.client.execute_bytes(call).instrument(span).await {
            Ok((_, body)) => Ok(serde_json::from_slice::<Body>(&body)
                .ok()
                .and_then(|b| b.status)
                .map(|s| CancelOutcome::from_status(&s))
                .unwrap_or(CancelOutcome::CancellationRequested)),
            Err(Error::Api(e)) => {
                let known = serde_json::from_str::<Body>(&e.body_excerpt)
                    .ok()
                    .and_then(|b| b.status)
                    .map(|s| CancelOutcome::from_status(&s));
                match known {
                    Some(o @ (CancelOutcome::AlreadyCompleted | CancelOutcome::NotFound)) => Ok(o),
                    _ => Err(Error::Api(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The raw result body (`GET .../requests/{id}`), undecoded.
    ///
    /// # Errors
    /// [`Error::Api`] with the model's error (e.g. 422 with field details) when the request
    /// failed; transport failures.
    pub async fn result_bytes(&self) -> Result<Bytes> {
        self.result_bytes_with(None).await
    }

    /// The result body with a retry policy other than the client's.
    pub(crate) async fn result_bytes_with(&self, retry: Option<&RetryPolicy>) -> Result<Bytes> {
        let span = tracing::debug_span!("fal.result", endpoint = %self.endpoint, request_id = %self.request_id);
        let mut call = self
            .call(Method::GET, self.response_url.clone(), "result")
            .expect_json();
        call.retry = retry.or(self.retry.as_deref());
        let (_, body) = self.client.execute_bytes(call).instrument(span).await?;
        Ok(body)
    }
}

impl<O: DeserializeOwned> RequestHandle<O> {
    /// The result, decoded once from the response bytes. Call it after the request completed
    /// (or use [`wait`](Self::wait)).
    ///
    /// # Errors
    /// As [`result_bytes`](Self::result_bytes), plus [`Error::Decode`] naming the JSON path.
    pub async fn result(&self) -> Result<O> {
        let span = tracing::debug_span!("fal.result", endpoint = %self.endpoint, request_id = %self.request_id);
        let call = self.call(Method::GET, self.response_url.clone(), "result");
        let what = format!("{} output", self.endpoint);
        self.client.execute_json(call, &what).instrument(span).await
    }
}

impl FalClient {
    /// Submit a typed request to the queue (`POST {queue}/{endpoint id}`), after checking the
    /// input with [`Endpoint::validate`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] before anything is sent; [`Error::Api`] (e.g. 401, 422, 429
    /// after retries); [`Error::AmbiguousSubmit`] when the connection failed after the request
    /// may have reached fal (never retried); [`Error::Decode`] for a malformed answer.
    pub async fn submit<E: Endpoint>(
        &self,
        input: &E::Input,
        options: SubmitOptions,
    ) -> Result<RequestHandle<E::Output>> {
        E::validate(input)?;
        let endpoint = EndpointId::parse(E::ID)?;
        self.submit_body(endpoint, to_body(input)?, &options).await
    }

    /// Submit any JSON-serializable input to any endpoint id; the result is untyped JSON
    /// (turn it into a type with [`RequestHandle::with_output`]).
    ///
    /// # Errors
    /// [`Error::InvalidEndpointId`], then as [`submit`](Self::submit).
    pub async fn submit_json<I: Serialize + ?Sized>(
        &self,
        endpoint_id: &str,
        input: &I,
        options: SubmitOptions,
    ) -> Result<RequestHandle<serde_json::Value>> {
        let endpoint = EndpointId::parse(endpoint_id)?;
        self.submit_body(endpoint, to_body(input)?, &options).await
    }

    async fn submit_body<O>(
        &self,
        endpoint: EndpointId,
        body: Bytes,
        options: &SubmitOptions,
    ) -> Result<RequestHandle<O>> {
        let mut url = join(&self.inner.queue_url, endpoint.as_str())?;
        if let Some(hook) = &options.webhook {
            url.query_pairs_mut()
                .append_pair("fal_webhook", hook.as_str());
        }
        let mut call = Call::new(Method::POST, url, "submit").json_body(body);
        for (k, v) in &options.build_headers()? {
            call.headers.insert(k, v.clone());
        }
        call.kind = CallKind::Submit;
        call.endpoint = Some(endpoint.as_str());
        call.timeout = Some(self.inner.request_timeout);
        call.retry = options.retry.as_ref();
        let span = tracing::info_span!("fal.submit", endpoint = %endpoint, request_id = tracing::field::Empty);
        warn_if_deprecated(&endpoint);
        let (headers, body) = self
            .execute_bytes(call)
            .instrument(span.clone())
            .await
            .map_err(|e| endpoint_not_found(e, &endpoint, false))?;
        let rid = header_str(&headers, "x-fal-request-id");
        let sub: SubmitResponse = decode_json("submit answer", &body, rid).map_err(|e| {
            // fal took the job: whatever else is wrong with the answer, keep its request id.
            #[derive(Deserialize)]
            struct IdOnly {
                request_id: String,
            }
            match serde_json::from_slice::<IdOnly>(&body) {
                Ok(only) if rid.is_none() => e.with_request_id(&only.request_id),
                _ => e,
            }
        })?;
        if let Err(e) = check_request_id(&sub.request_id) {
            // Unusable in a URL, but it is fal's id for a job that exists: report it as such.
            return Err(Error::Decode {
                what: "submit answer".into(),
                path: "request_id".into(),
                message: e.to_string(),
                body_excerpt: crate::error::excerpt(&body),
                request_id: Some(sub.request_id),
            });
        }
        span.record("request_id", sub.request_id.as_str());
        span.in_scope(|| tracing::info!(queue_position = sub.queue_position, "submitted"));
        // Prefer fal's own URLs (the docs say not to build them), but only on a trusted host:
        // the key is never sent elsewhere, so a foreign URL could not be used anyway. URLs are
        // built from the endpoint id only when fal's are missing or foreign.
        let trusted = |given: &str| {
            let u = Url::parse(given).ok()?;
            if self.is_fal_url(&u) {
                Some(u)
            } else {
                tracing::warn!(url = %crate::http::redact_url(&u), "ignoring a queue URL on an unconfigured host");
                None
            }
        };
        let response_url = sub.response_url.as_deref().and_then(trusted);
        // fal's status and cancel URLs are the result URL plus one segment: build those from the
        // parsed result URL instead of parsing them again (a URL parse is a large part of a
        // call's CPU cost, see BENCHMARKS.md); anything else is parsed and checked as given.
        let sibling = |given: Option<&str>, segment: &str| {
            let given = given?;
            if let (Some(raw), Some(base)) = (sub.response_url.as_deref(), &response_url) {
                let same =
                    given.strip_prefix(raw).and_then(|r| r.strip_prefix('/')) == Some(segment);
                if same && base.query().is_none() && base.fragment().is_none() {
                    let mut u = base.clone();
                    let pushed = u
                        .path_segments_mut()
                        .map(|mut path| {
                            path.push(segment);
                        })
                        .is_ok();
                    if pushed {
                        return Some(u);
                    }
                }
            }
            trusted(given)
        };
        let status_url = sibling(sub.status_url.as_deref(), "status");
        let cancel_url = sibling(sub.cancel_url.as_deref(), "cancel");
        let given = (status_url, response_url, cancel_url);
        let mut handle = match given {
            // (The request id was checked above.)
            (Some(status_url), Some(response_url), Some(cancel_url)) => RequestHandle {
                client: self.clone(),
                endpoint,
                request_id: sub.request_id,
                gateway_request_id: None,
                queue_position: None,
                status_url,
                response_url,
                cancel_url,
                retry: None,
                _output: PhantomData,
            },
            (status_url, response_url, cancel_url) => {
                let mut handle = self.build_handle(endpoint, sub.request_id)?;
                for (given, slot) in [
                    (status_url, &mut handle.status_url),
                    (response_url, &mut handle.response_url),
                    (cancel_url, &mut handle.cancel_url),
                ] {
                    if let Some(u) = given {
                        *slot = u;
                    }
                }
                handle
            }
        };
        handle.gateway_request_id = sub.gateway_request_id;
        handle.queue_position = sub.queue_position;
        Ok(handle)
    }

    fn build_handle<O>(
        &self,
        endpoint: EndpointId,
        request_id: String,
    ) -> Result<RequestHandle<O>> {
        check_request_id(&request_id)?;
        let base = join(
            &self.inner.queue_url,
            &format!("{}/requests/{}", endpoint.app_id(), request_id),
        )?;
        let sub = |s: &str| {
            join(
                &self.inner.queue_url,
                &format!("{}/requests/{}/{s}", endpoint.app_id(), request_id),
            )
        };
        Ok(RequestHandle {
            client: self.clone(),
            status_url: sub("status")?,
            cancel_url: sub("cancel")?,
            response_url: base,
            endpoint,
            request_id,
            gateway_request_id: None,
            queue_position: None,
            retry: None,
            _output: PhantomData,
        })
    }

    /// Rebuild the handle of a request submitted earlier, from the stored endpoint id and
    /// request id (status, result and cancel URLs follow fal's owner/alias rule). Use it to
    /// resume a paid training job after a restart.
    ///
    /// ```
    /// # fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
    /// use fal_client::models::LoraTrainingOutput;
    /// use fal_client::queue::RequestHandle;
    /// let job: RequestHandle<LoraTrainingOutput> =
    ///     fal.resume("fal-ai/flux-lora-portrait-trainer", "764cabcf-b745-4b3e-ae38-1200304cf45b")?;
    /// assert!(job.status_url().as_str().ends_with("/requests/764cabcf-b745-4b3e-ae38-1200304cf45b/status"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidEndpointId`], or [`Error::InvalidInput`] for an empty request id.
    pub fn resume<O>(
        &self,
        endpoint_id: &str,
        request_id: impl Into<String>,
    ) -> Result<RequestHandle<O>> {
        self.build_handle(EndpointId::parse(endpoint_id)?, request_id.into())
    }

    /// [`resume`](Self::resume) for a typed endpoint.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub fn resume_endpoint<E: Endpoint>(
        &self,
        request_id: impl Into<String>,
    ) -> Result<RequestHandle<E::Output>> {
        self.resume(E::ID, request_id)
    }

    /// Run a typed request synchronously (`POST {run}/{endpoint id}`) and decode the output.
    /// Fine for fast generators; use the queue for training (sync runs are not retried by fal
    /// and hold a connection open for the whole run).
    ///
    /// # Errors
    /// As [`submit`](Self::submit), plus [`Error::Decode`] for the output.
    pub async fn run<E: Endpoint>(
        &self,
        input: &E::Input,
        options: RunOptions,
    ) -> Result<E::Output> {
        E::validate(input)?;
        let endpoint = EndpointId::parse(E::ID)?;
        self.run_body(endpoint, to_body(input)?, &options).await
    }

    /// [`run`](Self::run) for any endpoint id and JSON input, with an untyped output.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_json<I: Serialize + ?Sized>(
        &self,
        endpoint_id: &str,
        input: &I,
        options: RunOptions,
    ) -> Result<serde_json::Value> {
        let endpoint = EndpointId::parse(endpoint_id)?;
        self.run_body(endpoint, to_body(input)?, &options).await
    }

    async fn run_body<O: DeserializeOwned>(
        &self,
        endpoint: EndpointId,
        body: Bytes,
        options: &RunOptions,
    ) -> Result<O> {
        let url = join(&self.inner.run_url, endpoint.as_str())?;
        let mut call = Call::new(Method::POST, url, "run").json_body(body);
        let mut headers = options.headers.clone();
        common_headers(
            &mut headers,
            options.runner_hint.as_deref(),
            options.start_timeout,
        )?;
        for (k, v) in &headers {
            call.headers.insert(k, v.clone());
        }
        call.kind = CallKind::Submit;
        call.endpoint = Some(endpoint.as_str());
        call.timeout = options.timeout;
        let span = tracing::info_span!("fal.run", endpoint = %endpoint);
        warn_if_deprecated(&endpoint);
        let (headers, body) = self
            .execute_bytes(call)
            .instrument(span)
            .await
            .map_err(|e| endpoint_not_found(e, &endpoint, true))?;
        decode_json(
            &format!("{endpoint} output"),
            &body,
            header_str(&headers, "x-fal-request-id"),
        )
    }
}

/// A `tracing` warning for a submit or run to an endpoint fal deprecated.
fn warn_if_deprecated(endpoint: &EndpointId) {
    if let Some(d) = crate::models::deprecation(endpoint.as_str()) {
        tracing::warn!(
            endpoint = %endpoint,
            replacement = d.replacement,
            "{} is deprecated on fal ({}); use {}",
            d.endpoint_id,
            d.note,
            d.replacement
        );
    }
}

/// A 404 to a submit or sync run means fal serves no app at the endpoint id:
/// [`Error::EndpointNotFound`]. A sync run passes the model's own answer through, so there a 404
/// that carries a model error (`error_type`, or field details) stays [`Error::Api`].
fn endpoint_not_found(error: Error, endpoint: &EndpointId, sync_run: bool) -> Error {
    match error {
        Error::Api(api)
            if api.status == 404
                && !(sync_run
                    && (api.error_type.is_some()
                        || matches!(api.detail, crate::error::ErrorDetail::Validation(_)))) =>
        {
            Error::EndpointNotFound {
                endpoint: endpoint.as_str().to_owned(),
                deprecation: crate::models::deprecation(endpoint.as_str()),
                api,
            }
        }
        other => other,
    }
}

fn check_request_id(request_id: &str) -> Result<()> {
    if request_id.is_empty()
        || request_id == "."
        || request_id == ".."
        || request_id.contains(['/', '\\', '?', '#', '%'])
        || request_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid_input(
            "request_id",
            format!("{request_id:?} is not a request id"),
        ));
    }
    Ok(())
}

fn to_body<I: Serialize + ?Sized>(input: &I) -> Result<Bytes> {
    serde_json::to_vec(input)
        .map(Bytes::from)
        .map_err(|e| Error::invalid_input("body", format!("cannot be serialized as JSON: {e}")))
}

/// `base` joined with a relative path (the base always ends in `/`).
pub(crate) fn join(base: &Url, path: &str) -> Result<Url> {
    base.join(path.trim_start_matches('/'))
        .map_err(|e| Error::Config(format!("cannot join {base} and {path:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_formats_like_fal_js() {
        assert_eq!(timeout_header(Duration::from_secs(30)).unwrap(), "30");
        assert_eq!(timeout_header(Duration::from_secs(5)).unwrap(), "5");
        assert_eq!(timeout_header(Duration::from_millis(2500)).unwrap(), "2.5");
        assert_eq!(timeout_header(Duration::from_millis(1010)).unwrap(), "1.01");
    }

    #[test]
    fn timeout_of_one_second_or_less_is_rejected() {
        for t in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_secs(1),
        ] {
            let err = timeout_header(t).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { ref field, ref message } if field == "start_timeout" && message.contains("greater than 1 second"))
            );
        }
    }

    #[test]
    fn typed_options_override_user_headers() {
        let opts = SubmitOptions::default()
            .header(
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("1"),
            )
            .header(
                HeaderName::from_static("x-fal-queue-priority"),
                HeaderValue::from_static("normal"),
            )
            .header(
                HeaderName::from_static("x-fal-runner-hint"),
                HeaderValue::from_static("old"),
            )
            .header(
                HeaderName::from_static("x-fal-request-timeout"),
                HeaderValue::from_static("10"),
            )
            .priority(Priority::Low)
            .runner_hint("new-hint")
            .start_timeout(Duration::from_secs(60));
        let h = opts.build_headers().unwrap();
        assert_eq!(h["x-custom"], "1");
        assert_eq!(h["x-fal-queue-priority"], "low");
        assert_eq!(h["x-fal-runner-hint"], "new-hint");
        assert_eq!(h["x-fal-request-timeout"], "60");
    }

    #[test]
    fn default_options_send_no_fal_headers() {
        let h = SubmitOptions::default().build_headers().unwrap();
        assert!(h.is_empty());
    }

    #[test]
    fn rebuilt_handles_follow_the_owner_alias_rule() {
        let fal = FalClient::builder().key("k").build().unwrap();
        let h: RequestHandle = fal
            .resume("fal-ai/flux-pro/v1.1-ultra-finetuned", "abc")
            .unwrap();
        assert_eq!(
            h.status_url().as_str(),
            "https://queue.fal.run/fal-ai/flux-pro/requests/abc/status"
        );
        assert_eq!(
            h.response_url().as_str(),
            "https://queue.fal.run/fal-ai/flux-pro/requests/abc"
        );
        assert_eq!(
            h.cancel_url().as_str(),
            "https://queue.fal.run/fal-ai/flux-pro/requests/abc/cancel"
        );
        let h: RequestHandle = fal.resume("110602490-lora", "r").unwrap();
        assert_eq!(
            h.status_url().as_str(),
            "https://queue.fal.run/110602490/lora/requests/r/status"
        );
        let h: RequestHandle = fal.resume("workflows/fal-ai/my-wf", "r").unwrap();
        assert_eq!(
            h.status_url().as_str(),
            "https://queue.fal.run/workflows/fal-ai/my-wf/requests/r/status"
        );
        assert!(fal.resume::<()>("fal-ai/x", "").is_err());
        assert!(fal.resume::<()>("fal-ai/x", "a/b").is_err());
        for bad in ["..", ".", "a b", "a%2f", "a\\b"] {
            assert!(fal.resume::<()>("fal-ai/x", bad).is_err(), "{bad:?}");
        }
        assert!(fal.resume::<()>("nope", "a").is_err());
    }

    #[test]
    fn base_url_paths_are_kept() {
        let fal = FalClient::builder()
            .queue_url("http://127.0.0.1:1/queue")
            .build()
            .unwrap();
        let h: RequestHandle = fal.resume("fal-ai/flux-lora", "r").unwrap();
        assert_eq!(
            h.status_url().as_str(),
            "http://127.0.0.1:1/queue/fal-ai/flux-lora/requests/r/status"
        );
    }
}
