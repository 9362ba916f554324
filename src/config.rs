//! [`Config`]: every setting of a [`FalClient`](crate::FalClient) (made by
//! [`FalClientBuilder`](crate::FalClientBuilder)), and the defaults.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::lifecycle::{ObjectLifecycle, UploadFlow};
use crate::retry::RetryPolicy;

/// Default queue base URL (`FAL_QUEUE_URL`).
pub const DEFAULT_QUEUE_URL: &str = "https://queue.fal.run";
/// Default sync-run base URL (`FAL_RUN_URL`).
pub const DEFAULT_RUN_URL: &str = "https://fal.run";
/// Default REST (storage, tokens) base URL (`FAL_REST_URL`).
pub const DEFAULT_REST_URL: &str = "https://rest.fal.ai";
/// Default Platform API base URL, version path included (`FAL_API_URL`).
pub const DEFAULT_API_URL: &str = "https://api.fal.ai/v1";
/// Default URL of fal's webhook key set (`FAL_JWKS_URL`).
pub const DEFAULT_JWKS_URL: &str = "https://rest.alpha.fal.ai/.well-known/jwks.json";

/// Default largest answer read into memory: 256 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Every setting of a [`FalClient`](crate::FalClient): base URLs, retry policy, time limits and
/// size limits. Made by [`FalClientBuilder`](crate::FalClientBuilder); read it with
/// [`FalClient::config`](crate::FalClient::config).
///
/// | setting | default | builder |
/// |---|---|---|
/// | queue / run / REST base URL | `https://queue.fal.run`, `https://fal.run`, `https://rest.fal.ai` | [`queue_url`](crate::FalClientBuilder::queue_url), [`run_url`](crate::FalClientBuilder::run_url), [`rest_url`](crate::FalClientBuilder::rest_url) (`FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`) |
/// | Platform API (prices, usage, request listing, payload deletion) | `https://api.fal.ai/v1` | [`api_url`](crate::FalClientBuilder::api_url) (`FAL_API_URL`, version path included) |
/// | CDN (v3 uploads) | the CDN token's `base_url` (`https://v3.fal.media` on fal) | [`cdn_url`](crate::FalClientBuilder::cdn_url) (`FAL_CDN_URL`) |
/// | upload flows, in order | CDN v3, then initiate | [`upload_flows`](crate::FalClientBuilder::upload_flows) |
/// | lifecycle of uploads / of requests' output files | none (fal's account settings) | [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle), [`output_lifecycle`](crate::FalClientBuilder::output_lifecycle) |
/// | webhook key set | `https://rest.alpha.fal.ai/.well-known/jwks.json` | [`jwks_url`](crate::FalClientBuilder::jwks_url) (`FAL_JWKS_URL`) |
/// | retries | 5 retries, 500 ms … 30 s, ±25% jitter | [`retry`](crate::FalClientBuilder::retry) |
/// | connect timeout | 10 s | [`connect_timeout`](crate::FalClientBuilder::connect_timeout) |
/// | read timeout (silence between two chunks of an answer) | 120 s | [`read_timeout`](crate::FalClientBuilder::read_timeout) |
/// | control-call timeout (submit, status, result, cancel, upload initiation and completion; at most 10 s for the key set); an upload's or download's wait for its answer head | 60 s | [`request_timeout`](crate::FalClientBuilder::request_timeout) |
/// | status-stream idle timeout (then polling) | 15 s | [`sse_idle_timeout`](crate::FalClientBuilder::sse_idle_timeout) |
/// | largest answer read into memory | 256 MiB | [`max_response_bytes`](crate::FalClientBuilder::max_response_bytes) |
#[derive(Clone)]
pub struct Config {
    pub(crate) queue_url: Url,
    pub(crate) run_url: Url,
    pub(crate) rest_url: Url,
    pub(crate) api_url: Url,
    pub(crate) jwks_url: Url,
    pub(crate) cdn_url: Option<Url>,
    pub(crate) upload_flows: Vec<UploadFlow>,
    pub(crate) upload_lifecycle: Option<ObjectLifecycle>,
    pub(crate) output_lifecycle: Option<ObjectLifecycle>,
    pub(crate) retry: RetryPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) sse_idle_timeout: Duration,
    pub(crate) max_response_bytes: u64,
    pub(crate) user_agent: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("queue_url", &self.queue_url.as_str())
            .field("run_url", &self.run_url.as_str())
            .field("rest_url", &self.rest_url.as_str())
            .field("api_url", &self.api_url.as_str())
            .field("jwks_url", &self.jwks_url.as_str())
            .field("cdn_url", &self.cdn_url.as_ref().map(Url::as_str))
            .field("upload_flows", &self.upload_flows)
            .field("upload_lifecycle", &self.upload_lifecycle)
            .field("output_lifecycle", &self.output_lifecycle)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("sse_idle_timeout", &self.sse_idle_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl Config {
    /// The queue base URL (always ends in `/`).
    pub fn queue_url(&self) -> &Url {
        &self.queue_url
    }

    /// The sync-run base URL (always ends in `/`).
    pub fn run_url(&self) -> &Url {
        &self.run_url
    }

    /// The REST (storage) base URL (always ends in `/`).
    pub fn rest_url(&self) -> &Url {
        &self.rest_url
    }

    /// The Platform API base URL, version path included (always ends in `/`).
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// The URL of fal's webhook key set.
    pub fn jwks_url(&self) -> &Url {
        &self.jwks_url
    }

    /// The CDN base URL of the v3 upload flow (always ends in `/`), when set; otherwise small
    /// files go to the CDN token's `base_url`.
    pub fn cdn_url(&self) -> Option<&Url> {
        self.cdn_url.as_ref()
    }

    /// The upload flows, in the order they are tried.
    pub fn upload_flows(&self) -> &[UploadFlow] {
        &self.upload_flows
    }

    /// The lifecycle of uploads, unless an upload sets its own.
    pub fn upload_lifecycle(&self) -> Option<&ObjectLifecycle> {
        self.upload_lifecycle.as_ref()
    }

    /// The lifecycle of the files a request creates, unless the request sets its own.
    pub fn output_lifecycle(&self) -> Option<&ObjectLifecycle> {
        self.output_lifecycle.as_ref()
    }

    /// The retry policy of every call.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The TCP/TLS connect timeout (not applied when the client was given its own
    /// [`http_client`](crate::FalClientBuilder::http_client): that client's applies).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The longest silence between two chunks of an answer body.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The time limit of one control call.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The longest silence on the status stream before a wait falls back to polling.
    pub fn sse_idle_timeout(&self) -> Duration {
        self.sse_idle_timeout
    }

    /// The largest answer read into memory, in bytes.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }

    /// The `User-Agent` header (not applied when the client was given its own
    /// [`http_client`](crate::FalClientBuilder::http_client): that client's applies).
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Whether `url` is on one of the configured fal base URLs (same scheme, host and port):
    /// the only URLs the key is sent to.
    pub(crate) fn is_fal_url(&self, url: &Url) -> bool {
        [
            &self.queue_url,
            &self.run_url,
            &self.rest_url,
            &self.api_url,
        ]
        .iter()
        .any(|base| {
            base.scheme() == url.scheme()
                && base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        })
    }
}

/// `raw` (trimmed) as an absolute `http` or `https` URL, or `None`. (The URL standard gives
/// both schemes a host always, so there is no host to check.)
pub(crate) fn http_url(raw: &str) -> Option<Url> {
    Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// Gives `url`'s path a trailing `/`, so that joining a relative path keeps the last segment.
pub(crate) fn with_trailing_slash(url: &mut Url) {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
}

/// `base` joined with a relative path (the base always ends in `/`).
pub(crate) fn join(base: &Url, path: &str) -> Result<Url> {
    base.join(path.trim_start_matches('/'))
        .map_err(|e| Error::Config(format!("cannot join {base} and {path:?}: {e}")))
}
