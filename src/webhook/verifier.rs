//! [`WebhookVerifier`]: the one way to verify a webhook delivery.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::cache::KeyCache;
use super::keys::{Ed25519Key, Jwks};
use super::verify::{
    check_keys, log_accepted, log_rejection, prepare, VerifiedDelivery, WebhookHeaders,
};
use super::{WebhookError, DEFAULT_JWKS_TTL, DEFAULT_LEEWAY, DEFAULT_MIN_REFRESH_INTERVAL};

/// Verifies webhook deliveries: their four `X-Fal-Webhook-*` headers and raw body, against fal's
/// keys. Cheap to clone.
///
/// Two key sources, one [`verify`](Self::verify):
///
/// - [`FalClient::webhooks`](crate::FalClient::webhooks): fal's key set (or the client's
///   [`jwks_url`](crate::FalClientBuilder::jwks_url), `FAL_JWKS_URL`), fetched through the
///   client's connection pool when first needed (no credentials are sent), kept for
///   [`ttl`](Self::ttl) (24 h), fetched again **once** when no cached key verifies a delivery
///   (fal may have rotated its key), at most once per
///   [`min_refresh_interval`](Self::min_refresh_interval) (10 s), so forged deliveries cannot
///   make it hammer the key server. Concurrent verifications share a fetch; when a refresh
///   fails the cached keys stay in use. Every clone made from one client shares the keys.
/// - [`from_jwks`](Self::from_jwks): a fixed key set (pinned keys, tests).
///
/// A delivery is genuine when its signature verifies (strict Ed25519) with a key of the set and
/// its timestamp is within [`leeway`](Self::leeway) (300 s) of the current time. Header,
/// timestamp and signature-format checks run before any key is fetched.
///
/// ```no_run
/// # async fn handler(fal: fal_client::FalClient, headers: http::HeaderMap, body: bytes::Bytes) -> http::StatusCode {
/// let delivery = match fal.webhooks().verify(&headers, &body).await {
///     Ok(d) => d,
///     Err(e) => return e.status_code(), // 401 forged, 5xx no keys
/// };
/// match delivery.parse::<serde_json::Value>() {
///     Ok(payload) => println!("{} finished: {}", payload.request_id(), payload.is_success()),
///     Err(e) => return e.status_code(), // 400: genuine but undecodable
/// }
/// http::StatusCode::OK
/// # }
/// ```
#[derive(Clone)]
pub struct WebhookVerifier {
    keys: Keys,
    leeway: Duration,
    ttl: Duration,
    min_refresh: Duration,
    /// The current time for the timestamp check; fixed in the crate's own tests.
    now: fn() -> SystemTime,
}

#[derive(Clone)]
enum Keys {
    Fixed(Arc<Vec<Ed25519Key>>),
    Fetched(Arc<KeyCache>),
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WebhookVerifier");
        match &self.keys {
            Keys::Fixed(keys) => d.field("keys", &keys.len()),
            Keys::Fetched(cache) => d.field("jwks_url", &cache.url()),
        };
        d.field("leeway", &self.leeway)
            .field("ttl", &self.ttl)
            .field("min_refresh_interval", &self.min_refresh)
            .finish()
    }
}

impl WebhookVerifier {
    /// A verifier for the usable Ed25519 keys of `jwks` (others are skipped), never fetched.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        Self::with_keys(Keys::Fixed(Arc::new(jwks.ed25519_keys())))
    }

    /// A verifier fetching its keys through `cache` (see
    /// [`FalClient::webhooks`](crate::FalClient::webhooks)).
    pub(crate) fn fetching(cache: Arc<KeyCache>) -> Self {
        Self::with_keys(Keys::Fetched(cache))
    }

    fn with_keys(keys: Keys) -> Self {
        Self {
            keys,
            leeway: DEFAULT_LEEWAY,
            ttl: DEFAULT_JWKS_TTL,
            min_refresh: DEFAULT_MIN_REFRESH_INTERVAL,
            now: SystemTime::now,
        }
    }

    /// How far a delivery's timestamp may be from the current time, either way. Default
    /// [`DEFAULT_LEEWAY`] (300 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long fetched keys are used before they are fetched again. Default
    /// [`DEFAULT_JWKS_TTL`] (24 h). No effect on a fixed key set.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The shortest time between two key fetches caused by a delivery no cached key verifies,
    /// and between a failed fetch and the next one. Default [`DEFAULT_MIN_REFRESH_INTERVAL`]
    /// (10 s). No effect on a fixed key set.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    /// Check the timestamps against `now` instead of the system clock (the crate's own tests).
    #[cfg(test)]
    pub(crate) fn clock(mut self, now: fn() -> SystemTime) -> Self {
        self.now = now;
        self
    }

    /// Fetch the keys now (e.g. at startup, so that the first delivery does not wait), sharing
    /// a fetch in flight. A fixed key set has nothing to fetch.
    ///
    /// # Errors
    /// [`WebhookError::JwksFetch`] when the fetch fails (the cached keys, if any, stay in use);
    /// [`WebhookError::NoKeys`] when the set holds no usable key.
    pub async fn refresh(&self) -> Result<(), WebhookError> {
        match &self.keys {
            Keys::Fixed(keys) if keys.is_empty() => Err(WebhookError::NoKeys),
            Keys::Fixed(_) => Ok(()),
            Keys::Fetched(cache) => cache.refresh().await,
        }
    }

    /// Verify a delivery from its headers (names are case-insensitive) and its **raw body**, as
    /// received: never re-serialize the JSON first. Nothing is parsed; decode the verified body
    /// with [`VerifiedDelivery::parse`].
    ///
    /// The checks, in order:
    /// 1. the four headers are present, non-empty and given once, else
    ///    [`WebhookError::MissingHeader`] / [`WebhookError::InvalidHeader`];
    /// 2. the timestamp is decimal digits, else [`WebhookError::InvalidTimestamp`];
    /// 3. the signature is hex of 64 bytes, else [`WebhookError::InvalidSignatureEncoding`];
    /// 4. the timestamp is within the leeway of now, else [`WebhookError::StaleTimestamp`] /
    ///    [`WebhookError::FutureTimestamp`];
    /// 5. there are keys, else [`WebhookError::NoKeys`] or [`WebhookError::JwksFetch`];
    /// 6. the signature of `request_id \n user_id \n timestamp \n hex(sha256(body))` verifies
    ///    with one of them, else [`WebhookError::SignatureMismatch`].
    ///
    /// # Errors
    /// As listed; [`WebhookError::status_code`] says what to answer.
    pub async fn verify<'a>(
        &self,
        headers: &HeaderMap,
        body: &'a [u8],
    ) -> Result<VerifiedDelivery<'a>, WebhookError> {
        let headers = WebhookHeaders::from_header_map(headers)?;
        let prepared = prepare(&headers, body, (self.now)(), self.leeway)
            .inspect_err(|e| log_rejection(&headers, e))?;
        let kid = match &self.keys {
            Keys::Fixed(keys) => check_keys(&prepared, keys),
            Keys::Fetched(cache) => {
                let snap = cache
                    .current(self.ttl, self.min_refresh)
                    .await
                    .inspect_err(|e| log_rejection(&headers, e))?;
                match check_keys(&prepared, &snap.keys) {
                    Err(WebhookError::SignatureMismatch { keys_tried }) => {
                        // Maybe fal rotated its key: refresh once (coalesced, rate-limited) and
                        // try again only when the key set actually changed.
                        let fresh = cache.rotate(&snap, self.min_refresh).await;
                        if fresh.keys == snap.keys || fresh.keys.is_empty() {
                            Err(WebhookError::SignatureMismatch { keys_tried })
                        } else {
                            check_keys(&prepared, &fresh.keys)
                        }
                    }
                    other => other,
                }
            }
        }
        .inspect_err(|e| log_rejection(&headers, e))?;
        log_accepted(&headers, kid.as_deref());
        Ok(prepared.into_delivery(body, kid))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::UNIX_EPOCH;

    use super::*;

    /// The signing time of every committed delivery in `tests/fixtures/webhook/`.
    const FIXTURE_NOW: u64 = 1_752_019_770;

    fn fixture_clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(FIXTURE_NOW)
    }

    #[derive(serde::Deserialize)]
    struct Fixture {
        description: String,
        now: u64,
        leeway_secs: u64,
        jwks: Jwks,
        headers: BTreeMap<String, String>,
        body: String,
        expected: String,
    }

    /// The variant name of an error (`SignatureMismatch`), or `accepted`.
    fn verdict<T>(r: &Result<T, WebhookError>) -> String {
        match r {
            Ok(_) => "accepted".to_owned(),
            Err(e) => format!("{e:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The committed vectors (made by `tests/webhooks/verify.rs` from a fixed key) give their verdict:
    /// the check that needs a fixed clock, which is not public API.
    #[tokio::test]
    async fn committed_fixtures_give_their_expected_verdict() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        assert!(names.len() >= 11, "found {} fixtures", names.len());
        for path in names {
            let f: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(f.now, FIXTURE_NOW, "{}", path.display());
            let mut headers = HeaderMap::new();
            for (k, v) in &f.headers {
                headers.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            let verifier = WebhookVerifier::from_jwks(&f.jwks)
                .leeway(Duration::from_secs(f.leeway_secs))
                .clock(fixture_clock);
            let got = match verifier.verify(&headers, f.body.as_bytes()).await {
                Ok(d) => d.parse::<serde_json::Value>().map(drop),
                Err(e) => Err(e),
            };
            assert_eq!(
                verdict(&got),
                f.expected,
                "{}: {}: {got:?}",
                path.display(),
                f.description
            );
        }
    }

    #[tokio::test]
    async fn the_leeway_edge_is_inclusive_both_ways() {
        let jwks: Jwks = serde_json::from_str(
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        )
        .unwrap();
        // Headers with a bad signature: the window check runs first and decides the error.
        let mut h = HeaderMap::new();
        h.insert(super::super::HEADER_REQUEST_ID, "r".parse().unwrap());
        h.insert(super::super::HEADER_USER_ID, "u".parse().unwrap());
        h.insert(
            super::super::HEADER_SIGNATURE,
            "ab".repeat(64).parse().unwrap(),
        );
        let v = WebhookVerifier::from_jwks(&jwks).clock(fixture_clock);
        for (offset, expected) in [
            (0i64, "SignatureMismatch"),
            (-300, "SignatureMismatch"),
            (300, "SignatureMismatch"),
            (-301, "StaleTimestamp"),
            (301, "FutureTimestamp"),
        ] {
            let ts = (FIXTURE_NOW as i64 + offset).to_string();
            h.insert(super::super::HEADER_TIMESTAMP, ts.parse().unwrap());
            assert_eq!(verdict(&v.verify(&h, b"{}").await), expected, "{offset}");
        }
    }
}
