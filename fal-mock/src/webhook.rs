//! Signed webhook deliveries from the mock, and the key set it serves.
//!
//! When a job submitted with `fal_webhook` completes, the mock `POST`s the completion body
//! to that URL, signed like fal (<https://docs.fal.ai/model-apis/model-endpoints/webhooks>) with
//! the mock's own Ed25519 key, from a
//! background task; it re-delivers on a non-2xx answer or a connection failure. The public key is
//! served as a JWKS at `GET {api}/.well-known/jwks.json`, without auth.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::watch;

use super::state::Shared;
use crate::signer::WebhookSigner;

/// Where the mock's API server serves its webhook key set (like fal's
/// `https://rest.alpha.fal.ai/.well-known/jwks.json`).
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The `kid` of the mock's webhook key.
const KEY_ID: &str = "fal-mock-webhook";

/// One webhook delivery attempt the mock made (see [`FalMock::webhook_deliveries`]).
///
/// [`FalMock::webhook_deliveries`]: super::FalMock::webhook_deliveries
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The `fal_webhook` URL it was sent to.
    pub url: String,
    /// The queue request id it reports on.
    pub request_id: String,
    /// The receiver's HTTP status, or `None` when no answer came (connection refused, timeout).
    pub status_code: Option<u16>,
    /// 1 for the first delivery, 2 for the first re-delivery, and so on.
    pub attempt: u32,
}

impl WebhookDelivery {
    /// Whether the receiver accepted it (a 2xx answer).
    pub fn is_success(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// How the mock delivers webhooks, set on the builder.
#[derive(Debug, Clone)]
pub(crate) struct WebhookConfig {
    /// Seed of the signing key; `None`: a random key per mock.
    pub(crate) seed: Option<[u8; 32]>,
    /// Re-deliveries after the first attempt.
    pub(crate) retries: u32,
    /// Wait before the first re-delivery; doubled for each further one.
    pub(crate) backoff: Duration,
    /// Limit of one delivery attempt (connect, answer).
    pub(crate) timeout: Duration,
    /// Deliver to hosts other than loopback ones.
    pub(crate) allow_remote: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            seed: None,
            retries: 3,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(10),
            allow_remote: false,
        }
    }
}

/// Signs and sends deliveries; shared by the mock's handlers and its completion hook.
pub(crate) struct Webhooks {
    signer: WebhookSigner,
    /// The one HTTP client for every delivery: no default headers, so no key, and no redirects.
    http: reqwest::Client,
    config: WebhookConfig,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
    /// Every attempt so far; a watch channel so tests can wait for a count.
    deliveries: watch::Sender<Vec<WebhookDelivery>>,
}

impl Webhooks {
    /// Build the signer and the HTTP client. Must run inside a tokio runtime (deliveries are
    /// spawned on it).
    pub(crate) fn new(
        config: WebhookConfig,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            std::io::Error::other(format!("the mock must start inside a tokio runtime: {e}"))
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("fal-client-mock/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                std::io::Error::other(format!("cannot build the mock's webhook client: {e}"))
            })?;
        let signer = match config.seed {
            Some(seed) => WebhookSigner::from_seed(seed),
            None => WebhookSigner::generate(),
        }
        .with_user_id("mock-user")
        .with_kid(KEY_ID);
        Ok(Self {
            signer,
            http,
            config,
            runtime,
            shutdown,
            deliveries: watch::channel(Vec::new()).0,
        })
    }

    pub(crate) fn signer(&self) -> &WebhookSigner {
        &self.signer
    }

    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.deliveries.borrow().clone()
    }

    /// Wait until at least `count` attempts are recorded or `timeout` passes; returns them all.
    pub(crate) async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<WebhookDelivery> {
        let mut rx = self.deliveries.subscribe();
        // `wait_for` only fails when the sender is gone, and `self` holds it.
        let _ = tokio::time::timeout(timeout, rx.wait_for(|d| d.len() >= count)).await;
        self.deliveries()
    }

    /// Deliver `body` (the completion of `request_id`) to `url` in the background, retrying.
    pub(crate) fn deliver(self: &Arc<Self>, url: &str, request_id: &str, body: Bytes) {
        let Ok(target) = url::Url::parse(url) else {
            tracing::warn!(
                request_id,
                webhook = url,
                "mock: invalid webhook URL, not delivered"
            );
            return;
        };
        if !self.config.allow_remote && !is_loopback(&target) {
            tracing::info!(
                request_id,
                webhook = url,
                "mock: webhook to a non-loopback host not delivered (see FalMockBuilder::webhook_allow_remote)"
            );
            return;
        }
        let this = Arc::clone(self);
        let url = url.to_owned();
        let request_id = request_id.to_owned();
        let mut shutdown = self.shutdown.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                () = this.run(&url, &request_id, &body) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }

    /// Attempt a delivery up to `1 + retries` times, with doubling backoff, until a 2xx.
    async fn run(&self, url: &str, request_id: &str, body: &Bytes) {
        let mut backoff = self.config.backoff;
        for attempt in 1..=self.config.retries.saturating_add(1) {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let status_code = self.attempt(url, request_id, body, attempt).await;
            let delivery = WebhookDelivery {
                url: url.to_owned(),
                request_id: request_id.to_owned(),
                status_code,
                attempt,
            };
            let done = delivery.is_success();
            self.deliveries.send_modify(|d| d.push(delivery));
            if done {
                return;
            }
        }
        tracing::warn!(
            request_id,
            webhook = url,
            attempts = self.config.retries.saturating_add(1),
            "mock: webhook delivery gave up"
        );
    }

    /// One signed `POST`; the answer's status, or `None` when none came.
    async fn attempt(
        &self,
        url: &str,
        request_id: &str,
        body: &Bytes,
        attempt: u32,
    ) -> Option<u16> {
        // Signed per attempt, with the current time, so a late re-delivery is not stale.
        let headers = match self.signer.sign_now(request_id, body).to_header_map() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(request_id, error = %e, "mock: cannot sign the webhook delivery");
                return None;
            }
        };
        let sent = self
            .http
            .post(url)
            .headers(headers)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                tracing::debug!(
                    request_id,
                    webhook = url,
                    attempt,
                    status,
                    "mock: webhook delivered"
                );
                Some(status)
            }
            Err(e) => {
                tracing::debug!(request_id, webhook = url, attempt, error = %e.without_url(), "mock: webhook delivery failed");
                None
            }
        }
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `GET /.well-known/jwks.json`: the mock's public webhook key, no auth (like fal's).
pub(crate) async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_vec(&s.webhooks.signer().jwks()).unwrap_or_default();
    let mut r = body.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=86400"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_local() {
        for (u, local) in [
            ("http://127.0.0.1:8787/hook", true),
            ("http://127.5.0.1/hook", true),
            ("http://localhost:1/x", true),
            ("http://api.LOCALHOST/x", true),
            ("http://[::1]:80/x", true),
            ("https://example.com/hook", false),
            ("http://10.0.0.1/hook", false),
            ("http://localhost.example.com/x", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(u).unwrap()), local, "{u}");
        }
    }
}
