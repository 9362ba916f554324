//! fal's webhook keys: the JWKS document and parsed Ed25519 verification keys.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::WebhookError;

/// A JSON Web Key Set, as served at [`DEFAULT_JWKS_URL`](crate::config::DEFAULT_JWKS_URL):
/// `{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "<base64url>", "kid": "…"}]}`.
///
/// Keys of other types are kept (and ignored by verification).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in the server's order.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// A key set holding `keys`.
    pub fn new(keys: impl IntoIterator<Item = Jwk>) -> Self {
        Jwks {
            keys: keys.into_iter().collect(),
        }
    }

    /// Parse a JWKS document.
    ///
    /// # Errors
    /// [`WebhookError::Json`] naming the path of the failure.
    pub fn from_slice(json: &[u8]) -> Result<Self, WebhookError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        serde_path_to_error::deserialize(de).map_err(|e| WebhookError::Json {
            path: e.path().to_string(),
            message: e.inner().to_string(),
            request_id: None,
        })
    }

    /// The usable Ed25519 keys of the set, in order. Keys of other types are skipped silently;
    /// Ed25519 keys whose `x` is not 32 base64url bytes of a valid point are skipped with a
    /// `tracing` event.
    pub fn ed25519_keys(&self) -> Vec<Ed25519Key> {
        self.keys
            .iter()
            .filter(|k| k.is_ed25519())
            .filter_map(|k| match k.to_ed25519() {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::debug!(kid = ?k.kid, error = %e, "skipping unusable webhook key");
                    None
                }
            })
            .collect()
    }
}

/// One JSON Web Key. Only `kty: "OKP"`, `crv: "Ed25519"` keys are used; other members
/// (`alg`, `use`, RSA parameters, …) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwk {
    /// Key type: `OKP` for Ed25519.
    #[serde(default)]
    pub kty: String,
    /// Curve: `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The public key: 32 bytes, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id. fal's verification does not match on it; it is kept for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl Jwk {
    /// An Ed25519 JWK for a 32-byte public key.
    pub fn ed25519(public_key: &[u8; 32]) -> Self {
        Jwk {
            kty: "OKP".to_owned(),
            crv: Some("Ed25519".to_owned()),
            x: Some(URL_SAFE_NO_PAD.encode(public_key)),
            kid: None,
        }
    }

    /// The same key with a key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// `true` for `kty: "OKP"`, `crv: "Ed25519"`.
    pub fn is_ed25519(&self) -> bool {
        self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519")
    }

    /// The Ed25519 verification key.
    ///
    /// # Errors
    /// [`WebhookError::InvalidKey`] when the key is not `OKP`/`Ed25519`, or `x` is absent, not
    /// base64url, not 32 bytes, or not a valid curve point.
    pub fn to_ed25519(&self) -> Result<Ed25519Key, WebhookError> {
        let invalid = |reason: String| WebhookError::InvalidKey {
            kid: self.kid.clone(),
            reason,
        };
        if !self.is_ed25519() {
            return Err(invalid(format!(
                "kty {:?} / crv {:?} is not OKP / Ed25519",
                self.kty, self.crv
            )));
        }
        let x = self
            .x
            .as_deref()
            .ok_or_else(|| invalid("no `x`".to_owned()))?;
        // Tolerate padding: some servers emit it although RFC 8037 says not to.
        let bytes = URL_SAFE_NO_PAD
            .decode(x.trim_end_matches('='))
            .map_err(|e| invalid(format!("`x` is not base64url: {e}")))?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("`x` is {} bytes, expected 32", bytes.len())))?;
        let key = Ed25519Key::from_bytes(&bytes)
            .map_err(|_| invalid("`x` is not a valid Ed25519 point".to_owned()))?;
        Ok(match &self.kid {
            Some(kid) => key.with_kid(kid.clone()),
            None => key,
        })
    }
}

/// A parsed Ed25519 public key that verifies webhook signatures (strict verification: no
/// malleable signatures, no weak keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Key {
    kid: Option<String>,
    key: VerifyingKey,
}

impl Ed25519Key {
    /// A key from its 32 public bytes.
    ///
    /// # Errors
    /// [`WebhookError::InvalidKey`] when the bytes are not a valid curve point.
    pub fn from_bytes(public_key: &[u8; 32]) -> Result<Self, WebhookError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|e| WebhookError::InvalidKey {
            kid: None,
            reason: e.to_string(),
        })?;
        Ok(Ed25519Key { kid: None, key })
    }

    /// The same key with a key id (for logs).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, when the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The 32 public bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key as a JWK.
    pub fn to_jwk(&self) -> Jwk {
        let jwk = Jwk::ed25519(&self.key.to_bytes());
        match &self.kid {
            Some(kid) => jwk.with_kid(kid.clone()),
            None => jwk,
        }
    }

    /// Strict Ed25519 verification of `message` against `signature`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        self.key.verify_strict(message, signature).is_ok()
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("kid", &self.kid)
            .field("public_key", &URL_SAFE_NO_PAD.encode(self.key.as_bytes()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 appendix A.2 public key.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn rfc8037_key_parses_and_round_trips() {
        let jwks = Jwks::from_slice(
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","kid":"k1","use":"sig"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        let keys = jwks.ed25519_keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("k1"));
        assert_eq!(keys[0].to_jwk(), jwks.keys[0]);
    }

    #[test]
    fn other_and_broken_keys_are_skipped() {
        let jwks = Jwks::from_slice(
            format!(
                r#"{{"keys":[
                {{"kty":"RSA","n":"abc","e":"AQAB","kid":"rsa"}},
                {{"kty":"OKP","crv":"X25519","x":"{RFC8037_X}"}},
                {{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"}},
                {{"kty":"OKP","crv":"Ed25519","kid":"no-x"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","kid":"good"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let keys = jwks.ed25519_keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("good"));
        let err = jwks.keys[2].to_ed25519().unwrap_err();
        assert!(err.to_string().contains("3 bytes, expected 32"), "{err}");
    }
}
