//! The webhook key cache: fal's keys, fetched through the client's transport when first needed,
//! kept for a TTL, refreshed (once, coalesced, rate-limited) when no cached key verifies.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::{HeaderValue, Method};
use tokio::time::Instant;
use url::Url;

use super::keys::{Ed25519Key, Jwks};
use super::WebhookError;
use crate::transport::{Op, Request, Transport};

/// Limit of one fetch of the key set (connect, answer and body). A delivery waits for it, and
/// fal delivers again when it fails, so it is short and not retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys of one JWKS URL, shared by every clone of a [`WebhookVerifier`](super::WebhookVerifier)
/// made from one client.
pub(crate) struct KeyCache {
    transport: Arc<Transport>,
    url: Url,
    shared: Shared,
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

impl KeyState {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            keys: Arc::clone(&self.keys),
            attempts: self.attempts,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reason {
    /// No keys yet.
    Empty,
    /// Keys older than the TTL.
    Stale,
    /// No cached key verified a delivery.
    Rotation,
    /// [`KeyCache::refresh`].
    Manual,
}

/// The keys as of some moment, with the attempt count they belong to.
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<Vec<Ed25519Key>>,
    attempts: u64,
}

impl KeyCache {
    pub(crate) fn new(transport: Arc<Transport>, url: Url) -> Self {
        Self {
            transport,
            url,
            shared: Shared::default(),
        }
    }

    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The current keys (fetching them when none are cached or they are older than `ttl`; stale
    /// keys when that fetch fails), with the attempt count they belong to.
    ///
    /// # Errors
    /// [`WebhookError::JwksFetch`] when there are no keys and the fetch failed (or a fetch failed
    /// less than `min_refresh` ago).
    pub(crate) async fn current(
        &self,
        ttl: Duration,
        min_refresh: Duration,
    ) -> Result<Snapshot, WebhookError> {
        let (snap, stale) = {
            let st = self.read();
            let stale = st.fetched_at.is_none_or(|t| t.elapsed() >= ttl);
            (st.snapshot(), stale)
        };
        if !snap.keys.is_empty() && !stale {
            return Ok(snap);
        }
        let reason = if snap.keys.is_empty() {
            Reason::Empty
        } else {
            Reason::Stale
        };
        let (snap, _) = self.refresh_from(snap.attempts, reason, min_refresh).await;
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

    /// Fetch again because no cached key verified a delivery (fal may have rotated its key):
    /// coalesced with fetches in flight, at most once per `min_refresh`.
    pub(crate) async fn rotate(&self, seen: &Snapshot, min_refresh: Duration) -> Snapshot {
        self.refresh_from(seen.attempts, Reason::Rotation, min_refresh)
            .await
            .0
    }

    /// Fetch now, sharing a fetch in flight; not rate-limited.
    pub(crate) async fn refresh(&self) -> Result<(), WebhookError> {
        let seen = self.read().attempts;
        let (snap, failure) = self
            .refresh_from(seen, Reason::Manual, Duration::ZERO)
            .await;
        match failure {
            Some(message) => Err(self.fetch_error(message)),
            None if snap.keys.is_empty() => Err(WebhookError::NoKeys),
            None => Ok(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fetch_error(&self, message: String) -> WebhookError {
        WebhookError::JwksFetch {
            url: self.url().to_owned(),
            message,
        }
    }

    /// Fetch unless someone else fetched since `seen_attempts` or the rate limit forbids it.
    /// Returns the keys afterwards, and this call's own fetch failure, if it fetched and failed.
    async fn refresh_from(
        &self,
        seen_attempts: u64,
        reason: Reason,
        min_refresh: Duration,
    ) -> (Snapshot, Option<String>) {
        let _fetching = self.shared.fetch.lock().await;
        let started = Instant::now();
        {
            let st = self.read();
            if st.attempts != seen_attempts {
                // Another task fetched while this one waited: use its result.
                return (st.snapshot(), None);
            }
            let recent =
                |t: Option<Instant>| t.is_some_and(|t| started.duration_since(t) < min_refresh);
            let limited = reason != Reason::Manual
                && (recent(st.last_failure.as_ref().map(|(t, _)| *t))
                    || (reason == Reason::Rotation && recent(st.last_rotation_attempt)));
            if limited {
                tracing::debug!(
                    ?reason,
                    url = self.url(),
                    "webhook key refresh skipped (rate limit)"
                );
                return (st.snapshot(), None);
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
        (st.snapshot(), failure)
    }

    /// One `GET` of the JWKS through the client's transport (no credentials: the key only goes
    /// to the configured fal hosts, and never with this op), bounded in time and size, not
    /// retried. A set without usable Ed25519 keys is a failure (so it never replaces working
    /// keys).
    async fn fetch(&self) -> Result<Vec<Ed25519Key>, String> {
        let mut req = Request::new(Op::Jwks, Method::GET, self.url.clone());
        req.headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        req.timeout = Some(FETCH_TIMEOUT.min(self.transport.config().request_timeout()));
        req.once = true;
        let jwks: Jwks = self
            .transport
            .json(&req, &"webhook key set")
            .await
            .map_err(|e| e.to_string())?;
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
