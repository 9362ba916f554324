//! Credentials resolved when a request needs them: rotating secrets, keys from a secret
//! manager, a `fal auth login` access token.
//!
//! A client holds either a fixed key ([`FalClientBuilder::key`](crate::FalClientBuilder::key),
//! `FAL_KEY`, `FAL_KEY_ID` + `FAL_KEY_SECRET`) or a [`CredentialResolver`]
//! ([`FalClientBuilder::credentials`](crate::FalClientBuilder::credentials)). The resolver is
//! asked for a [`Credential`] when a request to fal needs one: before each attempt, unless the
//! last credential it gave is still cached ([`Credential::cache_for`]). fal's JS client asks its
//! `credentials` function on every attempt the same way; its Python client reads the key once.
//!
//! ```
//! use std::time::Duration;
//! use fal_client::credentials::{BoxError, Credential};
//! use fal_client::FalClient;
//!
//! # fn demo() -> fal_client::Result<()> {
//! let fal = FalClient::builder()
//!     .credentials(|| async {
//!         // e.g. read the current key from a secret manager
//!         let key = std::env::var("FAL_KEY")?;
//!         Ok::<_, BoxError>(Credential::key(&key)?.cache_for(Duration::from_secs(300)))
//!     })
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! The credential goes only to the configured fal base URLs, as the key does. An answer `401`
//! drops a cached credential, so the next request asks the resolver again.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use http::HeaderValue;
use tokio::time::Instant;

use crate::error::{Error, Result};

pub use crate::error::BoxError;

/// The value of the `Authorization` header for fal's API (`Key …` or `Bearer …`), and how long
/// the client may keep it. Made by [`key`](Self::key) or [`bearer`](Self::bearer); never shown
/// by `Debug`.
#[derive(Clone)]
pub struct Credential {
    header: HeaderValue,
    cache_for: Option<Duration>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("header", &"[REDACTED]")
            .field("cache_for", &self.cache_for)
            .finish()
    }
}

impl Credential {
    /// An API key (`FAL_KEY`, or `key_id:key_secret`), sent as `Authorization: Key {key}`.
    /// Leading and trailing whitespace is trimmed.
    ///
    /// # Errors
    /// [`Error::Config`] when the key is empty or holds characters a header cannot carry.
    pub fn key(key: &str) -> Result<Self> {
        Self::scheme("Key", key, "fal key")
    }

    /// A user access token (what `fal auth login` stores), sent as `Authorization: Bearer
    /// {token}`.
    ///
    /// # Errors
    /// As [`key`](Self::key).
    pub fn bearer(token: &str) -> Result<Self> {
        Self::scheme("Bearer", token, "fal access token")
    }

    fn scheme(scheme: &str, secret: &str, what: &str) -> Result<Self> {
        // A secret read from a file often ends in a newline: trim it rather than fail later.
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(Error::Config(format!("the {what} is empty")));
        }
        let mut header = HeaderValue::from_str(&format!("{scheme} {secret}")).map_err(|_| {
            Error::Config(format!(
                "the {what} has characters an HTTP header cannot carry"
            ))
        })?;
        header.set_sensitive(true);
        Ok(Self {
            header,
            cache_for: None,
        })
    }

    /// Let the client reuse this credential for `ttl` before asking the resolver again (default:
    /// not cached, the resolver is asked before every attempt). `Duration::MAX` keeps it until
    /// fal answers `401`.
    pub fn cache_for(mut self, ttl: Duration) -> Self {
        self.cache_for = Some(ttl);
        self
    }

    /// How long the client may reuse it (`None`: not at all).
    pub fn cached_for(&self) -> Option<Duration> {
        self.cache_for
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }
}

/// Gives the client a [`Credential`] when a request needs one. Implemented for every
/// `Fn() -> impl Future<Output = Result<Credential, E>>` closure (`E` any error type), so a
/// closure is the usual resolver.
///
/// While the resolver's credentials may be cached, the client asks one resolution at a time
/// (concurrent requests wait for the one under way and share its answer); a resolver whose
/// credentials are not cached is asked by each request on its own, concurrently. A resolution
/// longer than the client's request timeout fails with [`Error::Credentials`].
pub trait CredentialResolver: Send + Sync + 'static {
    /// The credential to send now. An error fails the request with [`Error::Credentials`]
    /// before anything is sent.
    fn resolve(&self) -> BoxFuture<'_, std::result::Result<Credential, BoxError>>;
}

impl<F, Fut, E> CredentialResolver for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Credential, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn resolve(&self) -> BoxFuture<'_, std::result::Result<Credential, BoxError>> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// Where a client's `Authorization` header comes from.
#[derive(Clone)]
pub(crate) enum Auth {
    /// No credentials: nothing is sent.
    None,
    /// A fixed key, built once.
    Fixed(HeaderValue),
    /// A resolver and its cache.
    Resolver(Arc<ResolverCache>),
}

impl Auth {
    /// A resolver, each resolution bounded by `timeout`.
    pub(crate) fn resolver(resolver: Arc<dyn CredentialResolver>, timeout: Duration) -> Self {
        Auth::Resolver(Arc::new(ResolverCache {
            resolver,
            timeout,
            cached: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            caches: AtomicBool::new(true),
        }))
    }

    pub(crate) fn is_some(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// The header value to send now.
    ///
    /// # Errors
    /// [`Error::Credentials`] when the resolver fails.
    pub(crate) async fn header(&self) -> Result<Option<HeaderValue>> {
        match self {
            Auth::None => Ok(None),
            Auth::Fixed(h) => Ok(Some(h.clone())),
            Auth::Resolver(cache) => cache.get().await.map(Some),
        }
    }

    /// fal refused `sent` (`401`): the cached credential is dropped if it is still that one (a
    /// request refused with an old credential must not drop a newer one).
    pub(crate) fn refused(&self, sent: &HeaderValue) {
        if let Auth::Resolver(cache) = self {
            let mut cached = lock(&cache.cached);
            if cached.as_ref().is_some_and(|(h, _)| h == sent) {
                *cached = None;
            }
        }
    }
}

/// A resolver and the credential it last gave, while it may be reused.
pub(crate) struct ResolverCache {
    resolver: Arc<dyn CredentialResolver>,
    /// The longest a resolution may take (the client's request timeout).
    timeout: Duration,
    /// The header and until when it may be reused (`None` inside: no limit).
    cached: Mutex<Option<(HeaderValue, Option<Instant>)>>,
    /// Held while the resolver runs, when its credentials are cached: one resolution at a time,
    /// shared by the requests waiting for it.
    resolving: tokio::sync::Mutex<()>,
    /// Whether the last credential could be cached (at first: assumed). Uncached credentials
    /// are resolved by each request on its own, concurrently.
    caches: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ResolverCache {
    fn fresh(&self) -> Option<HeaderValue> {
        let cached = lock(&self.cached);
        let (header, until) = cached.as_ref()?;
        until
            .is_none_or(|u| Instant::now() < u)
            .then(|| header.clone())
    }

    async fn get(&self) -> Result<HeaderValue> {
        if let Some(h) = self.fresh() {
            return Ok(h);
        }
        if !self.caches.load(Ordering::Relaxed) {
            return self.resolve().await;
        }
        let _one_at_a_time = self.resolving.lock().await;
        // Another request may have resolved (and cached) while this one waited.
        if let Some(h) = self.fresh() {
            return Ok(h);
        }
        self.resolve().await
    }

    async fn resolve(&self) -> Result<HeaderValue> {
        let resolved = match Instant::now().checked_add(self.timeout) {
            Some(until) => tokio::time::timeout_at(until, self.resolver.resolve())
                .await
                .map_err(|_| {
                    Error::Credentials(
                        format!("the resolver gave no credential within {:?}", self.timeout).into(),
                    )
                })?,
            None => self.resolver.resolve().await,
        };
        let credential = resolved.map_err(Error::Credentials)?;
        self.caches
            .store(credential.cache_for.is_some(), Ordering::Relaxed);
        if let Some(ttl) = credential.cache_for {
            // A lifetime too large to add to the clock is no limit.
            let until = Instant::now().checked_add(ttl);
            *lock(&self.cached) = Some((credential.header.clone(), until));
        }
        Ok(credential.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const T: Duration = Duration::from_secs(60);

    #[test]
    fn credentials_are_trimmed_checked_and_redacted() {
        let c = Credential::key("  k-1\n").unwrap();
        assert_eq!(c.header(), "Key k-1");
        assert!(c.header().is_sensitive());
        assert_eq!(Credential::bearer("t").unwrap().header(), "Bearer t");
        assert!(!format!("{c:?}").contains("k-1"));
        for bad in ["", " \n", "a\nb"] {
            assert!(matches!(Credential::key(bad), Err(Error::Config(_))));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_resolver_is_asked_again_once_its_credential_expires_or_is_refused() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let auth = Auth::resolver(
            Arc::new(move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    Credential::key(&format!("k{n}")).map(|c| c.cache_for(Duration::from_secs(60)))
                }
            }),
            T,
        );
        assert_eq!(auth.header().await.unwrap().unwrap(), "Key k0");
        assert_eq!(auth.header().await.unwrap().unwrap(), "Key k0");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(auth.header().await.unwrap().unwrap(), "Key k1");
        // A refusal of an older credential leaves the newer one cached.
        auth.refused(&HeaderValue::from_static("Key k0"));
        assert_eq!(auth.header().await.unwrap().unwrap(), "Key k1");
        auth.refused(&HeaderValue::from_static("Key k1"));
        assert_eq!(auth.header().await.unwrap().unwrap(), "Key k2");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_resolver_fails_within_the_timeout() {
        let auth = Auth::resolver(
            Arc::new(|| async {
                std::future::pending::<()>().await;
                Credential::key("never")
            }),
            Duration::from_secs(5),
        );
        let err = auth.header().await.unwrap_err();
        assert!(err.to_string().contains("within 5s"), "{err}");
    }

    #[tokio::test]
    async fn an_uncached_credential_is_asked_for_every_time_and_errors_are_typed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let auth = Auth::resolver(
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async { Credential::key("k") }
            }),
            T,
        );
        for _ in 0..3 {
            auth.header().await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let failing = Auth::resolver(
            Arc::new(|| async { Err::<Credential, _>(std::io::Error::other("vault is down")) }),
            T,
        );
        let err = failing.header().await.unwrap_err();
        assert!(matches!(err, Error::Credentials(_)), "{err:?}");
        assert!(err.to_string().contains("vault is down"), "{err}");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_resolution() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let auth = Auth::resolver(
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Credential::key("k").map(|c| c.cache_for(Duration::MAX))
                }
            }),
            T,
        );
        let all = futures::future::join_all((0..8).map(|_| auth.header())).await;
        assert!(all
            .iter()
            .all(|h| h.as_ref().unwrap().as_ref().unwrap() == "Key k"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
