//! [`RequestHandle`]: a queued request and the calls about it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::Instrument;
use url::Url;

use super::{check_request_id, status, CancelOutcome, QueueStatus, Wait};
use crate::config::join;
use crate::endpoint::EndpointId;
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::transport::{Op, Request};

/// A queued request: its id, its URLs, and the calls about it. `O` is the output type its
/// result decodes into (`serde_json::Value` for untyped endpoints).
///
/// Cheap to clone. Rebuild one after a restart with [`FalClient::resume`](crate::FalClient::resume) from the stored
/// endpoint id and request id.
pub struct RequestHandle<O = serde_json::Value> {
    pub(super) inner: Arc<Handle>,
    _output: PhantomData<fn() -> O>,
}

/// What a [`RequestHandle`] knows, shared by its clones.
pub(super) struct Handle {
    pub(super) transport: Arc<Transport>,
    pub(super) endpoint: EndpointId,
    pub(super) request_id: String,
    gateway_request_id: Option<String>,
    queue_position: Option<u64>,
    pub(super) status_url: Url,
    response_url: Url,
    cancel_url: Url,
}

impl<O> Clone for RequestHandle<O> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _output: PhantomData,
        }
    }
}

impl<O> fmt::Debug for RequestHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHandle")
            .field("endpoint_id", &self.inner.endpoint.as_str())
            .field("request_id", &self.inner.request_id)
            .field("status_url", &self.inner.status_url.as_str())
            .finish_non_exhaustive()
    }
}

impl<O> RequestHandle<O> {
    /// A handle with the URLs built from the endpoint id (owner/alias rule).
    pub(crate) fn build(
        transport: Arc<Transport>,
        endpoint: EndpointId,
        request_id: String,
    ) -> Result<Self> {
        check_request_id(&request_id)?;
        Self::with_urls(
            transport,
            endpoint,
            request_id,
            [None, None, None],
            None,
            None,
        )
    }

    /// A handle with the given `[status, response, cancel]` URLs (those fal returned at submit),
    /// the missing ones built from the endpoint id. `request_id` must have passed
    /// [`check_request_id`]. The result URL is joined once and the status
    /// and cancel URLs derived from it: a URL parse is a large part of a call's CPU cost.
    pub(super) fn with_urls(
        transport: Arc<Transport>,
        endpoint: EndpointId,
        request_id: String,
        [status, response, cancel]: [Option<Url>; 3],
        gateway_request_id: Option<String>,
        queue_position: Option<u64>,
    ) -> Result<Self> {
        let (status_url, response_url, cancel_url) = match (status, response, cancel) {
            (Some(s), Some(r), Some(c)) => (s, r, c),
            (status, response, cancel) => {
                let built = join(
                    transport.config().queue_url(),
                    &format!("{}/requests/{}", endpoint.app_id(), request_id),
                )?;
                let child = |segment: &str| -> Result<Url> {
                    let mut u = built.clone();
                    u.path_segments_mut()
                        .map_err(|()| Error::Config("the queue base URL cannot have paths".into()))?
                        .push(segment);
                    Ok(u)
                };
                let status = match status {
                    Some(u) => u,
                    None => child("status")?,
                };
                let cancel = match cancel {
                    Some(u) => u,
                    None => child("cancel")?,
                };
                (status, response.unwrap_or(built), cancel)
            }
        };
        Ok(Self {
            inner: Arc::new(Handle {
                status_url,
                response_url,
                cancel_url,
                transport,
                endpoint,
                request_id,
                gateway_request_id,
                queue_position,
            }),
            _output: PhantomData,
        })
    }

    /// fal's request id. Store it with the endpoint id to resume after a restart.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The gateway request id from the submit answer, when sent (equals the request id unless
    /// fal retried the request).
    pub fn gateway_request_id(&self) -> Option<&str> {
        self.inner.gateway_request_id.as_deref()
    }

    /// The endpoint id the request was submitted to.
    pub fn endpoint_id(&self) -> &str {
        self.inner.endpoint.as_str()
    }

    /// The queue position at submit, when known.
    pub fn queue_position(&self) -> Option<u64> {
        self.inner.queue_position
    }

    /// The status URL (`.../requests/{id}/status`).
    pub fn status_url(&self) -> &Url {
        &self.inner.status_url
    }

    /// The result URL (`.../requests/{id}`).
    pub fn response_url(&self) -> &Url {
        &self.inner.response_url
    }

    /// The cancel URL (`.../requests/{id}/cancel`).
    pub fn cancel_url(&self) -> &Url {
        &self.inner.cancel_url
    }

    /// The same request with another output type.
    pub fn with_output<O2>(self) -> RequestHandle<O2> {
        RequestHandle {
            inner: self.inner,
            _output: PhantomData,
        }
    }

    pub(super) fn request(&self, op: Op, method: Method, url: Url) -> Request<'_> {
        let mut r = Request::new(op, method, url);
        r.request_id = Some(&self.inner.request_id);
        r.endpoint = Some(self.inner.endpoint.as_str());
        r
    }

    /// The current status (`GET .../status?logs=0|1`).
    ///
    /// # Errors
    /// [`Error::Api`] (e.g. 404 for an unknown request), [`Error::Transport`] after retries,
    /// [`Error::Decode`] for an unreadable body, [`Error::UnknownQueueStatus`].
    pub async fn status(&self, logs: bool) -> Result<QueueStatus> {
        let mut url = self.inner.status_url.clone();
        url.query_pairs_mut()
            .append_pair("logs", if logs { "1" } else { "0" });
        let span = tracing::debug_span!("fal.status", endpoint = %self.inner.endpoint, request_id = %self.inner.request_id);
        // Decoded once, straight from the answer's bytes (a poll is the hot path of a wait).
        self.inner
            .transport
            .json_then(
                &self.request(Op::Status, Method::GET, url),
                &"queue status",
                |raw: status::RawStatus, _| {
                    raw.into_status()
                        .map_err(|e| e.with_request_id(&self.inner.request_id))
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
        let req = self.request(Op::Cancel, Method::PUT, self.inner.cancel_url.clone());
        let span = tracing::info_span!("fal.cancel", endpoint = %self.inner.endpoint, request_id = %self.inner.request_id);
        match self.inner.transport.bytes(&req).instrument(span).await {
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

    /// The raw result body, asked once without retries (the model's own error after a failed
    /// `COMPLETED`: it is final).
    pub(super) async fn result_bytes_once(&self) -> Result<Bytes> {
        let span = tracing::debug_span!("fal.result", endpoint = %self.inner.endpoint, request_id = %self.inner.request_id);
        let mut req = self.request(Op::Result, Method::GET, self.inner.response_url.clone());
        req.once = true;
        let (_, body) = self.inner.transport.bytes(&req).instrument(span).await?;
        Ok(body)
    }
}

impl<O: DeserializeOwned> RequestHandle<O> {
    /// The result, decoded once from the response bytes. Call it after the request completed
    /// (or use [`wait`](Self::wait)).
    ///
    /// # Errors
    /// [`Error::Api`] with the model's error (e.g. 422 with field details) when the request
    /// failed; transport failures; [`Error::Decode`] naming the JSON path.
    pub async fn result(&self) -> Result<O> {
        self.fetch_result(|output, _| Ok(output)).await
    }

    /// [`result`](Self::result) with the units fal billed for the request
    /// (`x-fal-billable-units` on the result answer). After a [`wait`](Self::wait) it asks for
    /// the result once more (an idempotent `GET`, not billed again).
    ///
    /// # Errors
    /// As [`result`](Self::result).
    pub async fn billed_result(&self) -> Result<crate::billing::Billed<O>> {
        self.fetch_result(|output, headers| {
            Ok(crate::billing::Billed {
                output,
                billable_units: crate::billing::BillableUnits::from_headers(headers),
                request_id: Some(self.inner.request_id.clone()),
            })
        })
        .await
    }

    /// `GET` the result, decoded once, then `then(output, headers)`.
    async fn fetch_result<R>(&self, then: impl Fn(O, &http::HeaderMap) -> Result<R>) -> Result<R> {
        let span = tracing::debug_span!("fal.result", endpoint = %self.inner.endpoint, request_id = %self.inner.request_id);
        let req = self.request(Op::Result, Method::GET, self.inner.response_url.clone());
        let what = crate::error::OutputOf(self.inner.endpoint.as_str());
        self.inner
            .transport
            .json_then(&req, &what, then)
            .instrument(span)
            .await
    }
}

impl<O: DeserializeOwned + Send + 'static> RequestHandle<O> {
    /// Wait for the request to complete and return its typed output: a [`Wait`] builder
    /// (deadline, progress events, polling) that waits when awaited.
    pub fn wait(&self) -> Wait<'_, O> {
        Wait::new(move |options, on_event| Box::pin(self.wait_for(options, on_event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FalClient;

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
        assert_eq!(h.endpoint_id(), "fal-ai/flux-pro/v1.1-ultra-finetuned");
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
