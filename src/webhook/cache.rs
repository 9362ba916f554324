//! [`JwksCache`]: fal's webhook keys, fetched lazily, cached, refreshed on rotation.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::keys::{Ed25519Key, Jwks};
use super::payload::WebhookPayload;
use super::verify::{
    check_keys, log_accepted, log_rejection, prepare, VerifiedDelivery, WebhookHeaders,
};
use super::{
    WebhookError, DEFAULT_JWKS_TTL, DEFAULT_JWKS_URL, DEFAULT_LEEWAY, DEFAULT_MIN_REFRESH_INTERVAL,
};
use crate::error::Error;

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Default limit for one JWKS fetch (connect, answer and body).
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// fal's webhook keys, fetched from a JWKS URL when first needed and cached; the one object a
/// webhook server needs. Cheap to clone: clones share the keys and the in-flight fetch.
///
/// - The keys are fetched (a plain `GET`, **no credentials**) when first needed and kept for
///   [`DEFAULT_JWKS_TTL`](super::DEFAULT_JWKS_TTL) (24 h, [`with_ttl`](Self::with_ttl)).
/// - When no cached key verifies a delivery, the keys are fetched again **once** for that
///   delivery (fal may have rotated its key), at most once per
///   [`DEFAULT_MIN_REFRESH_INTERVAL`](super::DEFAULT_MIN_REFRESH_INTERVAL) (10 s,
///   [`with_min_refresh_interval`](Self::with_min_refresh_interval)), so forged deliveries cannot
///   make it hammer the key server. A failed fetch is not retried within that interval either.
/// - Concurrent verifications that need a fetch share one.
/// - When a refresh fails, the cached keys keep being used (the failure is logged with
///   `tracing`); a delivery fails with [`WebhookError::JwksFetch`] only when no key was ever
///   fetched.
/// - Header, timestamp and signature-format checks run before any fetch.
///
/// The `reqwest::Client` should carry no default `Authorization` header: the JWKS is public,
/// and a fal key must not be sent to it.
#[derive(Clone)]
pub struct JwksCache {
    http: reqwest::Client,
    /// `None`: [`DEFAULT_JWKS_URL`].
    url: Option<Url>,
    ttl: Duration,
    min_refresh_interval: Duration,
    fetch_timeout: Duration,
    leeway: Duration,
    clock: Option<Clock>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: RwLock<KeyState>,
    /// Held across a fetch: whoever holds it fetches, the others wait and reuse the result.
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    keys: Arc<Vec<Ed25519Key>>,
    fetched_at: Option<Instant>,
    /// Fetch attempts so far; a waiter that sees it change knows a fetch happened meanwhile.
    attempts: u64,
    last_failure: Option<(Instant, String)>,
    last_rotation_attempt: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reason {
    /// No keys yet.
    Empty,
    /// Keys older than the TTL.
    Stale,
    /// No cached key verified a delivery.
    Rotation,
    /// [`JwksCache::refresh`].
    Manual,
}

/// The keys as of some moment, with the attempt count they belong to.
struct Snapshot {
    keys: Arc<Vec<Ed25519Key>>,
    attempts: u64,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url())
            .field("ttl", &self.ttl)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("leeway", &self.leeway)
            .field("custom_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache for fal's keys at [`DEFAULT_JWKS_URL`](super::DEFAULT_JWKS_URL), fetched with
    /// `http`. Nothing is fetched until the first verification (or [`refresh`](Self::refresh)).
    pub fn new(http: reqwest::Client) -> Self {
        JwksCache {
            http,
            url: None,
            ttl: DEFAULT_JWKS_TTL,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            leeway: DEFAULT_LEEWAY,
            clock: None,
            shared: Arc::default(),
        }
    }

    /// [`new`](Self::new), with the URL from the environment variable `FAL_JWKS_URL` when it is
    /// set and non-empty (a full `http(s)` URL).
    ///
    /// # Errors
    /// [`Error::Config`] when `FAL_JWKS_URL` is not an `http(s)` URL.
    pub fn from_env(http: reqwest::Client) -> Result<Self, Error> {
        Self::from_lookup(http, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `lookup`.
    fn from_lookup(
        http: reqwest::Client,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        match lookup("FAL_JWKS_URL") {
            Some(s) if !s.trim().is_empty() => {
                let url = Url::parse(s.trim())
                    .map_err(|e| Error::Config(format!("FAL_JWKS_URL {s:?} is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(Error::Config(format!(
                        "FAL_JWKS_URL {s:?} must be an http(s) URL"
                    )));
                }
                Ok(Self::new(http).with_url(url))
            }
            _ => Ok(Self::new(http)),
        }
    }

    /// Fetch the keys from `url` instead (a proxy, a mock, a test server). Starts with an empty
    /// cache.
    pub fn with_url(mut self, url: Url) -> Self {
        self.url = Some(url);
        self.shared = Arc::default();
        self
    }

    /// How long fetched keys are used before they are fetched again (default 24 h).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The shortest time between two refreshes caused by a delivery no cached key verifies,
    /// and between a failed fetch and the next attempt (default 60 s).
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The limit for one fetch of the key set (default 10 s).
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// How far a delivery's timestamp may be from the current time (default 300 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Read the current time from `clock` instead of [`SystemTime::now`] when checking
    /// timestamps (tests, simulated time). Cache expiry and refresh limits use the monotonic
    /// clock regardless.
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        self.url.as_ref().map_or(DEFAULT_JWKS_URL, Url::as_str)
    }

    fn now(&self) -> SystemTime {
        match &self.clock {
            Some(clock) => clock(),
            None => SystemTime::now(),
        }
    }

    /// Verify a delivery (headers and raw body) and decode it as [`WebhookPayload<T>`].
    ///
    /// # Errors
    /// Everything [`verify_delivery`](Self::verify_delivery) returns, then the decode errors
    /// of [`VerifiedDelivery::parse`].
    pub async fn verify<T: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<WebhookPayload<T>, WebhookError> {
        self.verify_at(headers, body, self.now()).await
    }

    /// [`verify`](Self::verify) at an explicit current time.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub async fn verify_at<T: DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookPayload<T>, WebhookError> {
        let headers = WebhookHeaders::from_header_map(headers)?;
        self.verify_headers_at(&headers, body, now).await?.parse()
    }

    /// Verify a delivery without decoding it (decode later with [`VerifiedDelivery::parse`]).
    ///
    /// # Errors
    /// The errors of [`verify_headers`](super::verify_headers), and
    /// [`WebhookError::JwksFetch`] when no keys could ever be fetched.
    pub async fn verify_delivery<'a>(
        &self,
        headers: &HeaderMap,
        body: &'a [u8],
    ) -> Result<VerifiedDelivery<'a>, WebhookError> {
        let headers = WebhookHeaders::from_header_map(headers)?;
        self.verify_headers_at(&headers, body, self.now()).await
    }

    /// Verify a delivery given as plain header values at an explicit current time.
    ///
    /// # Errors
    /// As [`verify_delivery`](Self::verify_delivery).
    pub async fn verify_headers_at<'a>(
        &self,
        headers: &WebhookHeaders,
        body: &'a [u8],
        now: SystemTime,
    ) -> Result<VerifiedDelivery<'a>, WebhookError> {
        let prepared =
            prepare(headers, body, now, self.leeway).inspect_err(|e| log_rejection(headers, e))?;
        let snap = self.current().await?;
        let kid = match check_keys(&prepared, &snap.keys) {
            Ok(kid) => kid,
            Err(WebhookError::SignatureMismatch { keys_tried }) => {
                // Maybe fal rotated its key: refresh once (coalesced, rate-limited) and retry
                // only when the key set actually changed.
                let (fresh, _) = self.refresh_from(snap.attempts, Reason::Rotation).await;
                if Arc::ptr_eq(&fresh.keys, &snap.keys) || fresh.keys.is_empty() {
                    let e = WebhookError::SignatureMismatch { keys_tried };
                    log_rejection(headers, &e);
                    return Err(e);
                }
                check_keys(&prepared, &fresh.keys).inspect_err(|e| log_rejection(headers, e))?
            }
            Err(e) => {
                log_rejection(headers, &e);
                return Err(e);
            }
        };
        log_accepted(headers, kid.as_deref());
        Ok(prepared.into_delivery(body, kid))
    }

    /// The current keys, fetching them first when none are cached or they are older than the
    /// TTL. Stale keys are returned when that fetch fails.
    ///
    /// # Errors
    /// [`WebhookError::JwksFetch`] when there are no keys and the fetch failed (or a fetch
    /// failed less than the minimum refresh interval ago).
    pub async fn keys(&self) -> Result<Vec<Ed25519Key>, WebhookError> {
        Ok(self.current().await?.keys.as_ref().clone())
    }

    /// Fetch the keys now (e.g. at startup, so the first delivery does not wait), sharing a
    /// fetch already in flight. Not rate-limited.
    ///
    /// # Errors
    /// [`WebhookError::JwksFetch`] when the fetch fails (the cached keys, if any, stay in use).
    pub async fn refresh(&self) -> Result<Vec<Ed25519Key>, WebhookError> {
        let seen = self.snapshot().attempts;
        let (snap, failure) = self.refresh_from(seen, Reason::Manual).await;
        match failure {
            Some(message) => Err(self.fetch_error(message)),
            None if snap.keys.is_empty() => Err(WebhookError::NoKeys),
            None => Ok(snap.keys.as_ref().clone()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.read();
        Snapshot {
            keys: Arc::clone(&st.keys),
            attempts: st.attempts,
        }
    }

    /// Usable keys: cached and fresh, else fetched (stale keys when the fetch fails).
    async fn current(&self) -> Result<Snapshot, WebhookError> {
        let (snap, stale) = {
            let st = self.read();
            let stale = st.fetched_at.is_none_or(|t| t.elapsed() >= self.ttl);
            (
                Snapshot {
                    keys: Arc::clone(&st.keys),
                    attempts: st.attempts,
                },
                stale,
            )
        };
        if !snap.keys.is_empty() && !stale {
            return Ok(snap);
        }
        let reason = if snap.keys.is_empty() {
            Reason::Empty
        } else {
            Reason::Stale
        };
        let (snap, _) = self.refresh_from(snap.attempts, reason).await;
        if snap.keys.is_empty() {
            let message = self
                .read()
                .last_failure
                .as_ref()
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| "no keys fetched yet".to_owned());
            return Err(self.fetch_error(message));
        }
        Ok(snap)
    }

    fn fetch_error(&self, message: String) -> WebhookError {
        WebhookError::JwksFetch {
            url: self.url().to_owned(),
            message,
        }
    }

    /// Fetch unless someone else fetched since `seen_attempts` or the rate limit forbids it.
    /// Returns the keys afterwards, and this call's own fetch failure, if it fetched and failed.
    async fn refresh_from(&self, seen_attempts: u64, reason: Reason) -> (Snapshot, Option<String>) {
        let _fetching = self.shared.fetch.lock().await;
        let started = Instant::now();
        {
            let st = self.read();
            if st.attempts != seen_attempts {
                // Another task fetched while this one waited: use its result.
                return (
                    Snapshot {
                        keys: Arc::clone(&st.keys),
                        attempts: st.attempts,
                    },
                    None,
                );
            }
            let recent = |t: Option<Instant>| {
                t.is_some_and(|t| started.duration_since(t) < self.min_refresh_interval)
            };
            let limited = reason != Reason::Manual
                && (recent(st.last_failure.as_ref().map(|(t, _)| *t))
                    || (reason == Reason::Rotation && recent(st.last_rotation_attempt)));
            if limited {
                tracing::debug!(
                    ?reason,
                    url = self.url(),
                    "webhook key refresh skipped (rate limit)"
                );
                return (
                    Snapshot {
                        keys: Arc::clone(&st.keys),
                        attempts: st.attempts,
                    },
                    None,
                );
            }
        }
        tracing::debug!(?reason, url = self.url(), "fetching webhook keys");
        let outcome = self.fetch().await;
        let mut st = self
            .shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        st.attempts += 1;
        if reason == Reason::Rotation {
            st.last_rotation_attempt = Some(started);
        }
        let failure = match outcome {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), url = self.url(), "webhook keys fetched");
                st.keys = Arc::new(keys);
                st.fetched_at = Some(Instant::now());
                st.last_failure = None;
                None
            }
            Err(message) => {
                tracing::warn!(
                    url = self.url(),
                    error = %message,
                    cached_keys = st.keys.len(),
                    "could not fetch webhook keys; keeping the cached ones"
                );
                st.last_failure = Some((Instant::now(), message.clone()));
                Some(message)
            }
        };
        (
            Snapshot {
                keys: Arc::clone(&st.keys),
                attempts: st.attempts,
            },
            failure,
        )
    }

    /// One `GET` of the JWKS, bounded in time and size. A set without usable Ed25519 keys is a
    /// failure (so it never replaces working keys).
    async fn fetch(&self) -> Result<Vec<Ed25519Key>, String> {
        let request = async {
            let response = self
                .http
                .get(self.url())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
            {
                return Err(format!("key set larger than {MAX_JWKS_BYTES} bytes"));
            }
            // Read chunk by chunk: a body without a length is cut at the cap, never buffered whole.
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                let chunk = chunk.map_err(|e| e.without_url().to_string())?;
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err(format!("key set larger than {MAX_JWKS_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(bytes::Bytes::from(body))
        };
        let body = tokio::time::timeout(self.fetch_timeout, request)
            .await
            .map_err(|_| format!("timed out after {:?}", self.fetch_timeout))??;
        let jwks = Jwks::from_slice(&body).map_err(|e| format!("invalid JWKS: {e}"))?;
        let keys = jwks.ed25519_keys();
        if keys.is_empty() {
            return Err(format!(
                "the key set has no usable Ed25519 key ({} key(s) in total)",
                jwks.keys.len()
            ));
        }
        Ok(keys)
    }
}

impl crate::FalClient {
    /// A [`JwksCache`] for verifying webhook deliveries that fetches fal's keys through this
    /// client's connection pool (the JWKS request carries no credentials: the key is only
    /// added to requests to the configured fal hosts). The key set URL is fal's
    /// ([`DEFAULT_JWKS_URL`](super::DEFAULT_JWKS_URL)) unless the environment variable
    /// `FAL_JWKS_URL` names another one, as in [`JwksCache::from_env`]; change it with
    /// [`JwksCache::with_url`].
    ///
    /// Build it once and share it (clones share the keys): each call starts an empty cache.
    ///
    /// ```no_run
    /// # async fn demo(fal: fal_client::FalClient, headers: http::HeaderMap, body: bytes::Bytes) -> fal_client::Result<()> {
    /// let keys = fal.jwks_cache()?;
    /// let delivery = keys.verify::<serde_json::Value>(&headers, &body).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] when `FAL_JWKS_URL` is set but is not an `http(s)` URL.
    pub fn jwks_cache(&self) -> Result<JwksCache, Error> {
        JwksCache::from_env(self.inner.http.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            assert_eq!(name, "FAL_JWKS_URL");
            value.map(str::to_owned)
        }
    }

    #[test]
    fn jwks_url_comes_from_the_environment() {
        let http = reqwest::Client::new();
        let c = JwksCache::from_lookup(http.clone(), lookup(None)).unwrap();
        assert_eq!(c.url(), DEFAULT_JWKS_URL);
        let c = JwksCache::from_lookup(http.clone(), lookup(Some("  "))).unwrap();
        assert_eq!(c.url(), DEFAULT_JWKS_URL);
        let c = JwksCache::from_lookup(
            http.clone(),
            lookup(Some(" http://127.0.0.1:9/.well-known/jwks.json ")),
        )
        .unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:9/.well-known/jwks.json");
        for bad in ["ftp://x/keys", "not a url"] {
            let err = JwksCache::from_lookup(http.clone(), lookup(Some(bad))).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains("FAL_JWKS_URL")),
                "{err}"
            );
        }
    }

    #[test]
    fn jwks_cache_builds_from_a_client() {
        // fal's URL unless the test environment sets FAL_JWKS_URL.
        let fal = crate::FalClient::builder().key("k").build().unwrap();
        if std::env::var_os("FAL_JWKS_URL").is_none() {
            assert_eq!(fal.jwks_cache().unwrap().url(), DEFAULT_JWKS_URL);
        }
    }
}
