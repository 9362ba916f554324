//! [`WebhookSigner`]: signs deliveries like fal does, for tests and the mock.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer as _, SigningKey};
use http::HeaderMap;

use fal_client::webhook::{Ed25519Key, Jwk, Jwks, WebhookError, WebhookHeaders};

/// Signs webhook deliveries exactly as fal does, with a test key: the counterpart of
/// [`WebhookVerifier`](fal_client::webhook::WebhookVerifier), for tests, fakes and
/// [`FalMock`](crate::FalMock). Serve
/// [`jwks`](Self::jwks) as the key set and send [`headers`](Self::headers) with the body.
///
/// This is the test header generator for your own webhook handler: sign a body, `POST` it with
/// the headers, and check the handler accepts it, and answers 401 once a byte is changed.
/// `FalMock` signs its deliveries with one (`FalMock::webhook_signer`), and
/// `fal_mock::sign_webhook` signs at the current time.
///
/// ```
/// # futures::executor::block_on(async {
/// use fal_client::webhook::WebhookVerifier;
/// use fal_mock::WebhookSigner;
///
/// let signer = WebhookSigner::from_seed([7; 32]);
/// let body = br#"{"request_id":"req-1","status":"OK","payload":{"ok":true},"error":null}"#;
/// let headers = signer.sign_now("req-1", body).to_header_map()?;
/// let verifier = WebhookVerifier::from_jwks(&signer.jwks());
/// let delivery = verifier.verify(&headers, body).await?.parse::<serde_json::Value>()?;
/// assert_eq!(delivery.output().map(|o| o["ok"] == true), Some(true));
///
/// // Signed an hour ago: outside the verifier's leeway.
/// let old = signer.headers("req-1", delivery_time() - 3600, body)?;
/// assert!(verifier.verify(&old, body).await.is_err());
/// # Ok::<(), fal_client::webhook::WebhookError>(())
/// # }).unwrap();
/// # fn delivery_time() -> u64 {
/// #     std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
/// # }
/// ```
#[derive(Clone)]
pub struct WebhookSigner {
    key: SigningKey,
    user_id: String,
    kid: Option<String>,
}

impl fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSigner")
            .field("public_key", &self.verifying_key())
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl WebhookSigner {
    /// A signer whose key derives from a fixed 32-byte seed (reproducible signatures), user id
    /// `test-user`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        WebhookSigner {
            key: SigningKey::from_bytes(&seed),
            user_id: "test-user".to_owned(),
            kid: None,
        }
    }

    /// A signer with a random key. The seed comes from `fastrand`, which is **not** a
    /// cryptographic generator: fine for tests, never for real signing.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        fastrand::fill(&mut seed);
        Self::from_seed(seed)
    }

    /// The same signer with another user id (`X-Fal-Webhook-User-Id`).
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = user_id.into();
        self
    }

    /// The same signer with a key id in its JWK.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The user id it signs for.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Sign `body` for `request_id` at `timestamp` (Unix seconds): the four header values, the
    /// signature in lowercase hex.
    pub fn sign(&self, request_id: &str, timestamp: u64, body: &[u8]) -> WebhookHeaders {
        self.sign_raw(request_id, &self.user_id, &timestamp.to_string(), body)
    }

    /// Sign with every part given verbatim (a timestamp string with leading zeros, an empty
    /// part, another user id): for tests of the verifier.
    pub fn sign_raw(
        &self,
        request_id: &str,
        user_id: &str,
        timestamp: &str,
        body: &[u8],
    ) -> WebhookHeaders {
        let mut headers = WebhookHeaders {
            request_id: request_id.to_owned(),
            user_id: user_id.to_owned(),
            timestamp: timestamp.to_owned(),
            signature: String::new(),
        };
        let signature = self.key.sign(headers.signed_message(body).as_bytes());
        headers.signature = hex::encode(signature.to_bytes());
        headers
    }

    /// [`sign`](Self::sign) at the current time.
    pub fn sign_now(&self, request_id: &str, body: &[u8]) -> WebhookHeaders {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign(request_id, now, body)
    }

    /// [`sign`](Self::sign) as an [`http::HeaderMap`].
    ///
    /// # Errors
    /// [`WebhookError::InvalidHeader`] when `request_id` or the user id cannot be a header value.
    pub fn headers(
        &self,
        request_id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> Result<HeaderMap, WebhookError> {
        self.sign(request_id, timestamp, body).to_header_map()
    }

    /// The public key.
    pub fn verifying_key(&self) -> Ed25519Key {
        let key = match Ed25519Key::from_bytes(&self.key.verifying_key().to_bytes()) {
            Ok(key) => key,
            // A signing key's own public key is always a valid point.
            Err(_) => unreachable!("the public key of a signing key is valid"),
        };
        match &self.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => key,
        }
    }

    /// The public key as a JWK (`kty: OKP`, `crv: Ed25519`).
    pub fn jwk(&self) -> Jwk {
        self.verifying_key().to_jwk()
    }

    /// A key set holding only this signer's public key.
    pub fn jwks(&self) -> Jwks {
        Jwks::new([self.jwk()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fal_client::webhook::WebhookVerifier;

    #[test]
    fn signatures_are_deterministic_and_verify() {
        let s = WebhookSigner::from_seed([1; 32]).with_kid("k");
        let a = s.sign("req", 100, b"{}");
        assert_eq!(a, s.sign("req", 100, b"{}"));
        assert_eq!(a.signature.len(), 128);
        let now = s.sign_now("req", b"{}");
        let verifier = WebhookVerifier::from_jwks(&s.jwks());
        let map = now.to_header_map().unwrap();
        let d = futures::executor::block_on(verifier.verify(&map, b"{}")).unwrap();
        assert_eq!((d.user_id(), d.key_id()), ("test-user", Some("k")));
    }

    #[test]
    fn debug_shows_no_private_key() {
        let s = WebhookSigner::from_seed([9; 32]);
        let d = format!("{s:?}");
        assert!(d.contains("public_key") && !d.contains("SigningKey"), "{d}");
        assert!(!d.contains(&hex::encode([9u8; 32])), "{d}");
    }
}
