//! [`FalClient`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Default queue base URL (`FAL_QUEUE_URL`).
pub const DEFAULT_QUEUE_URL: &str = "https://queue.fal.run";
/// Default sync-run base URL (`FAL_RUN_URL`).
pub const DEFAULT_RUN_URL: &str = "https://fal.run";
/// Default REST (storage, tokens) base URL (`FAL_REST_URL`).
pub const DEFAULT_REST_URL: &str = "https://rest.fal.ai";

/// A fal client: cheap to clone (an `Arc` inside), `Send + Sync`, one connection pool shared by
/// every clone.
///
/// ```no_run
/// # async fn demo() -> fal_client::Result<()> {
/// use fal_client::FalClient;
/// let fal = FalClient::from_env()?; // FAL_KEY, or FAL_KEY_ID + FAL_KEY_SECRET
/// let same_pool = fal.clone();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FalClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    /// `Key {key}`, built once and marked sensitive (never logged, not indexed by HTTP/2).
    pub(crate) auth: Option<http::HeaderValue>,
    pub(crate) queue_url: Url,
    pub(crate) run_url: Url,
    pub(crate) rest_url: Url,
    pub(crate) retry: RetryPolicy,
    pub(crate) request_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) sse_idle_timeout: Duration,
    /// Longest silence between two chunks of an answer body (the builder's `read_timeout`).
    pub(crate) read_idle_timeout: Duration,
    pub(crate) max_response_bytes: u64,
}

impl fmt::Debug for FalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("FalClient")
            .field("key", &i.auth.as_ref().map(|_| "[REDACTED]"))
            .field("queue_url", &i.queue_url.as_str())
            .field("run_url", &i.run_url.as_str())
            .field("rest_url", &i.rest_url.as_str())
            .field("retry", &i.retry)
            .field("request_timeout", &i.request_timeout)
            .field("poll_interval", &i.poll_interval)
            .field("max_response_bytes", &i.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl FalClient {
    /// A builder with fal's default base URLs and no key.
    pub fn builder() -> FalClientBuilder {
        FalClientBuilder::default()
    }

    /// A client configured from the environment:
    ///
    /// - the key from `FAL_KEY`, else `FAL_KEY_ID` + `FAL_KEY_SECRET` (sent as `id:secret`);
    /// - base URLs from `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL` (full URLs with scheme;
    ///   defaults `https://queue.fal.run`, `https://fal.run`, `https://rest.fal.ai`).
    ///
    /// # Errors
    /// [`Error::Config`] when no key is set or a base URL is not an `http(s)` URL.
    pub fn from_env() -> Result<Self> {
        Self::builder_from_lookup(|name| std::env::var(name).ok())?.build()
    }

    /// A builder pre-filled from the environment as [`from_env`](Self::from_env) describes,
    /// for adding options before building.
    ///
    /// # Errors
    /// [`Error::Config`] when no key is set.
    pub fn builder_from_env() -> Result<FalClientBuilder> {
        Self::builder_from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn builder_from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<FalClientBuilder> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let key = match (
            non_empty("FAL_KEY"),
            non_empty("FAL_KEY_ID"),
            non_empty("FAL_KEY_SECRET"),
        ) {
            (Some(key), _, _) => key,
            (None, Some(id), Some(secret)) => format!("{id}:{secret}"),
            _ => {
                return Err(Error::Config(
                    "no fal credentials: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)".into(),
                ))
            }
        };
        let mut b = FalClientBuilder::default().key(key);
        if let Some(u) = non_empty("FAL_QUEUE_URL") {
            b = b.queue_url(u);
        }
        if let Some(u) = non_empty("FAL_RUN_URL") {
            b = b.run_url(u);
        }
        if let Some(u) = non_empty("FAL_REST_URL") {
            b = b.rest_url(u);
        }
        Ok(b)
    }

    /// The queue base URL.
    pub fn queue_url(&self) -> &Url {
        &self.inner.queue_url
    }

    /// The sync-run base URL.
    pub fn run_url(&self) -> &Url {
        &self.inner.run_url
    }

    /// The REST (storage) base URL.
    pub fn rest_url(&self) -> &Url {
        &self.inner.rest_url
    }

    /// The client-wide retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// Whether a key is configured.
    pub fn has_key(&self) -> bool {
        self.inner.auth.is_some()
    }

    /// Whether `url` is on one of the configured fal base URLs (same scheme, host and port).
    pub(crate) fn is_fal_url(&self, url: &Url) -> bool {
        let i = &self.inner;
        [&i.queue_url, &i.run_url, &i.rest_url].iter().any(|base| {
            base.scheme() == url.scheme()
                && base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        })
    }

    /// The `Authorization` value for `url`, only when `url` is on one of the configured fal
    /// base URLs. The key never goes anywhere else.
    pub(crate) fn auth_for(&self, url: &Url) -> Option<http::HeaderValue> {
        let auth = self.inner.auth.as_ref()?;
        self.is_fal_url(url).then(|| auth.clone())
    }
}

/// Builds a [`FalClient`]. Nothing here panics; [`build`](Self::build) reports bad settings.
#[derive(Default)]
pub struct FalClientBuilder {
    key: Option<SecretString>,
    queue_url: Option<String>,
    run_url: Option<String>,
    rest_url: Option<String>,
    retry: Option<RetryPolicy>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    poll_interval: Option<Duration>,
    sse_idle_timeout: Option<Duration>,
    max_response_bytes: Option<u64>,
    user_agent: Option<String>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for FalClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FalClientBuilder")
            .field("key", &self.key.as_ref().map(|_| "[REDACTED]"))
            .field("queue_url", &self.queue_url)
            .field("run_url", &self.run_url)
            .field("rest_url", &self.rest_url)
            .finish_non_exhaustive()
    }
}

impl FalClientBuilder {
    /// The fal API key (`FAL_KEY`, or `key_id:key_secret`). Kept as a secret: redacted in
    /// `Debug`, never logged, sent only to the configured base URLs.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(SecretString::from(key.into()));
        self
    }

    /// Queue base URL, a full URL with scheme. Default `https://queue.fal.run`.
    pub fn queue_url(mut self, url: impl Into<String>) -> Self {
        self.queue_url = Some(url.into());
        self
    }

    /// Sync-run base URL. Default `https://fal.run`.
    pub fn run_url(mut self, url: impl Into<String>) -> Self {
        self.run_url = Some(url.into());
        self
    }

    /// REST base URL (storage upload initiation). Default `https://rest.fal.ai`.
    pub fn rest_url(mut self, url: impl Into<String>) -> Self {
        self.rest_url = Some(url.into());
        self
    }

    /// Retry policy for every call. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// TCP/TLS connect timeout. Default 10 s.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// Longest silence while reading an answer's body (between two chunks) before the call
    /// fails with [`Error::Stalled`] (retried on idempotent calls). Default 120 s.
    ///
    /// It is measured by the crate, per chunk, and never limits how long an upload takes to
    /// send or how long a sync run takes to answer (reqwest's own `read_timeout` starts one
    /// timer per request and would cut a slow but healthy upload; it is not used). Dead
    /// connections are found by TCP keep-alive (30 s) and the per-call limits.
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.read_timeout = Some(t);
        self
    }

    /// Overall time limit of one queue control call (submit, status, result, cancel, upload
    /// initiation). Not applied to sync runs, status streams, uploads or downloads, which can
    /// legitimately take long (they are bounded by the read timeout). Default 60 s.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = Some(t);
        self
    }

    /// Interval between status polls when waiting without (or after losing) the status stream.
    /// Default 500 ms (as fal-js).
    pub fn poll_interval(mut self, t: Duration) -> Self {
        self.poll_interval = Some(t);
        self
    }

    /// Longest silence on the SSE status stream (also: longest wait for the stream to open)
    /// before the wait falls back to polling. Default 15 s (fal-js `EVENT_STREAM_TIMEOUT`).
    pub fn sse_idle_timeout(mut self, t: Duration) -> Self {
        self.sse_idle_timeout = Some(t);
        self
    }

    /// Largest answer read into memory, in bytes: results, sync-run outputs and
    /// [`Storage::download`](crate::storage::Storage::download). Default 256 MiB.
    ///
    /// Control answers (submit, status, cancel, upload initiation) have their own, lower limit
    /// of 8 MiB (or this one, when smaller). A larger answer is not read further and fails with
    /// [`Error::ResponseTooLarge`]; a server cannot make the client buffer an unbounded body.
    /// [`Storage::download_to_file`](crate::storage::Storage::download_to_file) streams to disk
    /// and has no limit.
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// `User-Agent` header. Default `fal-client-rs/{version}`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Use this `reqwest::Client` (proxies, custom TLS). Its own timeouts then apply instead of
    /// [`connect_timeout`](Self::connect_timeout) and [`read_timeout`](Self::read_timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Build the client.
    ///
    /// # Errors
    /// [`Error::Config`] for a base URL that is not an absolute `http`/`https` URL, or when the
    /// HTTP client cannot be created (e.g. no TLS backend).
    pub fn build(self) -> Result<FalClient> {
        let queue_url = base_url(
            "queue",
            self.queue_url.as_deref().unwrap_or(DEFAULT_QUEUE_URL),
        )?;
        let run_url = base_url("run", self.run_url.as_deref().unwrap_or(DEFAULT_RUN_URL))?;
        let rest_url = base_url("rest", self.rest_url.as_deref().unwrap_or(DEFAULT_REST_URL))?;
        let http =
            match self.http {
                Some(c) => c,
                None => reqwest::Client::builder()
                    .user_agent(self.user_agent.unwrap_or_else(|| {
                        concat!("fal-client-rs/", env!("CARGO_PKG_VERSION")).into()
                    }))
                    .connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(10)))
                    // No reqwest `read_timeout`: see `read_timeout` above.
                    .tcp_keepalive(Duration::from_secs(30))
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build()
                    .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?,
            };
        let auth = match &self.key {
            None => None,
            Some(key) => {
                // A key read from a file often ends in a newline: trim it rather than fail later.
                let key = key.expose_secret().trim();
                if key.is_empty() {
                    return Err(Error::Config("the fal key is empty".into()));
                }
                let mut value =
                    http::HeaderValue::from_str(&format!("Key {key}")).map_err(|_| {
                        Error::Config(
                            "the fal key has characters an HTTP header cannot carry".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(FalClient {
            inner: Arc::new(Inner {
                http,
                auth,
                queue_url,
                run_url,
                rest_url,
                retry: self.retry.unwrap_or_default(),
                request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(60)),
                poll_interval: self.poll_interval.unwrap_or(Duration::from_millis(500)),
                sse_idle_timeout: self.sse_idle_timeout.unwrap_or(Duration::from_secs(15)),
                read_idle_timeout: self.read_timeout.unwrap_or(Duration::from_secs(120)),
                max_response_bytes: self
                    .max_response_bytes
                    .unwrap_or(crate::http::DEFAULT_MAX_RESPONSE_BYTES),
            }),
        })
    }
}

/// Parse a base URL: absolute, `http` or `https`, no query or fragment; the path gets a
/// trailing `/` so that joining keeps it.
fn base_url(which: &str, raw: &str) -> Result<Url> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| Error::Config(format!("{which} base URL {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "{which} base URL {raw:?} must be an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{which} base URL {raw:?} must not have a query or fragment"
        )));
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_prefers_fal_key() {
        let c = FalClient::builder_from_lookup(lookup(&[
            ("FAL_KEY", "k1"),
            ("FAL_KEY_ID", "id"),
            ("FAL_KEY_SECRET", "s"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        let url = Url::parse("https://queue.fal.run/fal-ai/x").unwrap();
        assert_eq!(c.auth_for(&url).unwrap(), "Key k1");
    }

    #[test]
    fn env_falls_back_to_id_and_secret() {
        let c = FalClient::builder_from_lookup(lookup(&[
            ("FAL_KEY_ID", "id"),
            ("FAL_KEY_SECRET", "s"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        let url = Url::parse("https://rest.fal.ai/storage").unwrap();
        assert_eq!(c.auth_for(&url).unwrap(), "Key id:s");
    }

    #[test]
    fn env_without_key_is_a_config_error() {
        let err = FalClient::builder_from_lookup(lookup(&[("FAL_KEY_ID", "id")])).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("FAL_KEY")),
            "{err}"
        );
    }

    #[test]
    fn env_base_urls_are_used() {
        let c = FalClient::builder_from_lookup(lookup(&[
            ("FAL_KEY", "k"),
            ("FAL_QUEUE_URL", "http://127.0.0.1:9000"),
            ("FAL_RUN_URL", "http://127.0.0.1:9001/run"),
            ("FAL_REST_URL", "http://127.0.0.1:9002/"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(c.queue_url().as_str(), "http://127.0.0.1:9000/");
        assert_eq!(c.run_url().as_str(), "http://127.0.0.1:9001/run/");
        assert_eq!(c.rest_url().as_str(), "http://127.0.0.1:9002/");
    }

    #[test]
    fn defaults_are_fal() {
        let c = FalClient::builder().build().unwrap();
        assert_eq!(c.queue_url().as_str(), "https://queue.fal.run/");
        assert_eq!(c.run_url().as_str(), "https://fal.run/");
        assert_eq!(c.rest_url().as_str(), "https://rest.fal.ai/");
        assert!(!c.has_key());
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        for bad in ["queue.fal.run", "ftp://x", "http://x/?a=1", "not a url"] {
            let r = FalClient::builder().queue_url(bad).build();
            assert!(matches!(r, Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn keys_are_trimmed_and_checked_at_build() {
        let c = FalClient::builder().key("  k-1\n").build().unwrap();
        let url = Url::parse("https://queue.fal.run/x").unwrap();
        let auth = c.auth_for(&url).unwrap();
        assert_eq!(auth, "Key k-1");
        assert!(auth.is_sensitive());
        for bad in ["", "  \n", "a\nb", "k\u{7f}"] {
            let r = FalClient::builder().key(bad).build();
            assert!(matches!(r, Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn key_is_redacted_in_debug() {
        let c = FalClient::builder()
            .key("super-secret-key")
            .build()
            .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("super-secret-key"), "{d}");
        assert!(d.contains("REDACTED"));
        let b = FalClient::builder().key("super-secret-key");
        assert!(!format!("{b:?}").contains("super-secret-key"));
    }

    #[test]
    fn key_goes_only_to_configured_hosts() {
        let c = FalClient::builder()
            .key("k")
            .queue_url("http://127.0.0.1:9000")
            .build()
            .unwrap();
        let ok = Url::parse("http://127.0.0.1:9000/fal-ai/x/requests/1").unwrap();
        assert!(c.auth_for(&ok).is_some());
        for other in [
            "http://127.0.0.1:9001/fal-ai/x",
            "https://127.0.0.1:9000/x",
            "http://localhost:9000/x",
            "https://v3.fal.media/files/upload",
            "https://storage.googleapis.com/bucket/x",
        ] {
            assert!(c.auth_for(&Url::parse(other).unwrap()).is_none(), "{other}");
        }
        // fal's own run and rest hosts stay trusted by default.
        assert!(c
            .auth_for(&Url::parse("https://fal.run/fal-ai/x").unwrap())
            .is_some());
    }
}
