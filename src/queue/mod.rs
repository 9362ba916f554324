//! fal's queue: submit, status, status stream, result, cancel, waiting, and sync run
//! (<https://docs.fal.ai/model-endpoints/queue>).
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! use std::time::Duration;
//! use fal_client::models::{FluxLora, FluxLoraInput};
//! use fal_client::FalClient;
//!
//! let fal = FalClient::from_env()?;
//! let job = fal.submit::<FluxLora>(&FluxLoraInput::new("a red fox")).await?;
//! println!("queued as {}", job.request_id()); // store it: it resumes the job after a restart
//! let out = job.wait().timeout(Duration::from_secs(600)).await?;
//! println!("{}", out.images[0].url);
//! # Ok(()) }
//! ```
//!
//! Submit and sync run use the **full** endpoint id (`fal-ai/flux-2/lora`); status, result and
//! cancel use only `[namespace/]owner/alias` (`fal-ai/flux-2/requests/{id}`). The crate uses the
//! URLs fal returns at submit, and builds them from the endpoint id only to resume.

mod builders;
mod handle;
mod status;
mod stream;
mod wait;

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::Instrument;
use url::Url;

use crate::config::join;
use crate::endpoint::EndpointId;
use crate::error::{decode_json, Error, Result};
use crate::transport::Transport;
use crate::transport::{header_str, Op, Request};

pub use builders::{BilledRun, Run, Submit, Wait, DEFAULT_HEDGE_AFTER, DEFAULT_POLL_INTERVAL};
pub(crate) use builders::{Body, CallOptions, OnEvent, SubmitOptions, WaitOptions};
pub use handle::RequestHandle;
pub use status::{Metrics, QueueStatus, RequestLog};
pub use wait::WaitEvent;

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

/// Submit answer (<https://docs.fal.ai/model-endpoints/queue>).
///
/// The URLs are borrowed from the answer's bytes (no allocation when they hold no escapes): they
/// are parsed or compared, never kept as strings.
#[derive(Debug, Deserialize)]
struct SubmitResponse<'a> {
    request_id: String,
    #[serde(default, borrow)]
    response_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cancel_url: Option<Cow<'a, str>>,
    #[serde(default)]
    queue_position: Option<u64>,
    #[serde(default)]
    gateway_request_id: Option<String>,
}

/// Send a submit (its query: webhook, max queue length; its headers built from the same options
/// by the caller, before uploads) and build the handle of the queued request.
pub(crate) async fn submit<O>(
    transport: &Arc<Transport>,
    endpoint: EndpointId,
    body: Bytes,
    options: &SubmitOptions,
    headers: HeaderMap,
) -> Result<RequestHandle<O>> {
    let config = transport.config();
    let mut url = join(config.queue_url(), endpoint.as_str())?;
    if let Some(hook) = &options.webhook {
        url.query_pairs_mut()
            .append_pair("fal_webhook", hook.as_str());
    }
    if let Some(n) = options.max_queue_length {
        url.query_pairs_mut()
            .append_pair("fal_max_queue_length", &n.to_string());
    }
    let mut req = Request::new(Op::Submit, Method::POST, url).json_body(body);
    // Replaces same-named headers (a caller's content type wins, as before).
    req.headers.extend(headers);
    req.endpoint = Some(endpoint.as_str());
    let span =
        tracing::info_span!("fal.submit", endpoint = %endpoint, request_id = tracing::field::Empty);
    warn_if_deprecated(&endpoint);
    let (headers, body) = transport
        .bytes(&req)
        .instrument(span.clone())
        .await
        .map_err(|e| endpoint_not_found(e, &endpoint, false))?;
    let rid = header_str(&headers, "x-fal-request-id");
    let sub: SubmitResponse = decode_json(&"submit answer", &body, rid).map_err(|e| {
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
    // Prefer fal's own URLs (the docs say not to build them), but only on a trusted host: the
    // key is never sent elsewhere, so a foreign URL could not be used anyway. URLs are built
    // from the endpoint id only when fal's are missing or foreign.
    let trusted = |given: &str| {
        let u = Url::parse(given).ok()?;
        if config.is_fal_url(&u) {
            Some(u)
        } else {
            tracing::warn!(url = %crate::transport::redact_url(&u), "ignoring a queue URL on an unconfigured host");
            None
        }
    };
    let response_url = sub.response_url.as_deref().and_then(trusted);
    // fal's status and cancel URLs are the result URL plus one segment: build those from the
    // parsed result URL instead of parsing them again (a URL parse is a large part of a call's
    // CPU cost, see BENCHMARKS.md); anything else is parsed and checked as given.
    let sibling = |given: Option<&str>, segment: &str| {
        let given = given?;
        if let (Some(raw), Some(base)) = (sub.response_url.as_deref(), &response_url) {
            let same = given.strip_prefix(raw).and_then(|r| r.strip_prefix('/')) == Some(segment);
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
    RequestHandle::with_urls(
        Arc::clone(transport),
        endpoint,
        sub.request_id,
        [status_url, response_url, cancel_url],
        sub.gateway_request_id,
        sub.queue_position,
    )
}

/// Send a sync run and decode its output; the answer's headers come with it (billed units,
/// request id).
pub(crate) async fn run<O: DeserializeOwned>(
    transport: &Arc<Transport>,
    endpoint: EndpointId,
    body: Bytes,
    headers: HeaderMap,
    timeout: Option<Duration>,
) -> Result<(O, HeaderMap)> {
    let url = join(transport.config().run_url(), endpoint.as_str())?;
    let mut req = Request::new(Op::Run, Method::POST, url).json_body(body);
    req.headers.extend(headers);
    req.endpoint = Some(endpoint.as_str());
    req.timeout = timeout;
    let span = tracing::info_span!("fal.run", endpoint = %endpoint);
    warn_if_deprecated(&endpoint);
    let (headers, body) = transport
        .bytes(&req)
        .instrument(span)
        .await
        .map_err(|e| endpoint_not_found(e, &endpoint, true))?;
    let request_id = header_str(&headers, "x-fal-request-id");
    let output = decode_json(
        &crate::error::OutputOf(endpoint.as_str()),
        &body,
        request_id,
    )?;
    Ok((output, headers))
}

/// A `tracing` warning for a submit or run to an endpoint fal deprecated.
pub(crate) fn warn_if_deprecated(endpoint: &EndpointId) {
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
pub(crate) fn endpoint_not_found(error: Error, endpoint: &EndpointId, sync_run: bool) -> Error {
    match error {
        Error::Api(api)
            if api.status == http::StatusCode::NOT_FOUND
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

pub(crate) fn check_request_id(request_id: &str) -> Result<()> {
    let bad = request_id
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_whitespace() || c.is_control());
    if bad || request_id.is_empty() || request_id == "." || request_id == ".." {
        return Err(Error::invalid_input(
            "request_id",
            format!("{request_id:?} is not a request id"),
        ));
    }
    Ok(())
}
