//! Short-lived tokens for fal's realtime and streaming apps (`POST {rest}/tokens/`), as fal's
//! JavaScript (`auth.ts`) and Python (`_get_realtime_token`) clients fetch them.
//!
//! - `POST /rest/tokens/` (or `/rest/tokens`, API server, key required) with
//!   `{"allowed_apps": ["<alias>", ...], "token_expiration": <seconds>}` (`token_expiration`
//!   optional, default 120) answers `200` with the token in one of fal's three shapes
//!   ([`TokenShape`]): a bare JSON string (default), `{"detail": "<jwt>"}` or
//!   `{"token": "<jwt>"}`.
//! - A missing, empty or non-string `allowed_apps`, or a `token_expiration` that is not a whole
//!   number > 0, answers `422 {"detail": [...]}` in pydantic's style.
//! - The token looks like a JWT (`header.payload.signature`, base64url; the payload holds
//!   `allowed_apps`, `iat` and `exp` in unix seconds), but the mock only remembers it: it
//!   authorizes `?fal_jwt_token=<token>` on a realtime connection or a streaming run of an app
//!   whose alias (`fal-ai/fast-lcm-diffusion` → `fast-lcm-diffusion`) it lists, until it expires.

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::routes::json_response;
use super::state::{lock, Shared};
use super::validate::{self, Detail};
use super::{FalMock, FalMockBuilder};

/// `token_expiration` when the request has none (fal's clients send 120).
const DEFAULT_EXPIRATION_SECS: u64 = 120;

/// How `POST {rest}/tokens/` answers: fal has used three shapes, and fal's clients read all of
/// them. See [`FalMockBuilder::token_response_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TokenShape {
    /// A bare JSON string: `"<jwt>"` (fal's current answer).
    #[default]
    Bare,
    /// `{"detail": "<jwt>"}` (what old versions of fal's proxy answered).
    Detail,
    /// `{"token": "<jwt>"}`.
    Token,
}

impl TokenShape {
    /// The shape named `bare`, `detail` or `token` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bare" => Some(Self::Bare),
            "detail" => Some(Self::Detail),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

/// A token handed out by `/tokens/`.
struct Issued {
    allowed_apps: Vec<String>,
    /// `None`: an expiry past what the clock holds, i.e. never.
    expires_at: Option<Instant>,
}

/// Tokens handed out and how they are answered.
pub(crate) struct Tokens {
    shape: TokenShape,
    /// Signs the fake JWTs (so that two mocks never issue the same token).
    secret: [u8; 32],
    issued: Mutex<HashMap<String, Issued>>,
    created: AtomicUsize,
}

impl Tokens {
    pub(crate) fn new(shape: TokenShape) -> Self {
        let mut secret = [0u8; 32];
        secret.iter_mut().for_each(|b| *b = fastrand::u8(..));
        Self {
            shape,
            secret,
            issued: Mutex::new(HashMap::new()),
            created: AtomicUsize::new(0),
        }
    }

    /// Whether `token` was issued here, has not expired and lists `app` (an alias, or an
    /// `owner/alias` app id) among its allowed apps.
    pub(crate) fn allows(&self, token: &str, app: &str) -> bool {
        lock(&self.issued).get(token).is_some_and(|t| {
            t.expires_at.is_none_or(|at| Instant::now() < at)
                && t.allowed_apps.iter().any(|a| a == app)
        })
    }

    /// Whether `token` authorizes the app of `endpoint_id` (its alias, or its `owner/alias`).
    pub(crate) fn allows_endpoint(&self, token: &str, endpoint_id: &str) -> bool {
        let Ok(id) = fal_client::EndpointId::parse(endpoint_id) else {
            return false;
        };
        self.allows(token, id.alias()) || self.allows(token, &id.app_id())
    }

    /// A new token for `allowed_apps`, good for `secs` seconds.
    fn issue(&self, allowed_apps: Vec<String>, secs: u64) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64(json!({
            "allowed_apps": allowed_apps,
            "iat": now,
            "exp": now.saturating_add(secs),
            "jti": super::media::uuid(),
            "iss": "fal-mock",
        })
        .to_string()
        .as_bytes());
        let signing_input = format!("{header}.{payload}");
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(signing_input.as_bytes());
        let token = format!("{signing_input}.{}", b64(&h.finalize()));
        lock(&self.issued).insert(
            token.clone(),
            Issued {
                allowed_apps,
                expires_at: Instant::now().checked_add(Duration::from_secs(secs)),
            },
        );
        self.created.fetch_add(1, Ordering::SeqCst);
        token
    }
}

/// The allowed apps and expiration of a `/tokens/` body, or the 422 details.
fn token_request(body: &serde_json::Map<String, Value>) -> Result<(Vec<String>, u64), Vec<Detail>> {
    let loc = |k: &str| vec![json!("body"), json!(k)];
    let mut details = Vec::new();
    let apps = match body.get("allowed_apps") {
        None | Some(Value::Null) => {
            details.push(Detail::new(
                loc("allowed_apps"),
                "field required",
                "value_error.missing",
            ));
            Vec::new()
        }
        Some(Value::Array(items)) => {
            let mut apps = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(a) => apps.push(a.to_owned()),
                    None => details.push(Detail::new(
                        vec![json!("body"), json!("allowed_apps"), json!(i)],
                        "str type expected",
                        "type_error.str",
                    )),
                }
            }
            if items.is_empty() {
                let mut d = Detail::new(
                    loc("allowed_apps"),
                    "ensure this value has at least 1 items",
                    "value_error.list.min_items",
                );
                d.ctx = Some(json!({"limit_value": 1}));
                details.push(d);
            }
            apps
        }
        Some(_) => {
            details.push(Detail::new(
                loc("allowed_apps"),
                "value is not a valid list",
                "type_error.list",
            ));
            Vec::new()
        }
    };
    let secs = match body.get("token_expiration") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECS,
        Some(Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => {
            match n.as_u64().filter(|s| *s > 0) {
                Some(s) => s,
                None => {
                    let mut d = Detail::new(
                        loc("token_expiration"),
                        "ensure this value is greater than 0",
                        "value_error.number.not_gt",
                    );
                    d.ctx = Some(json!({"limit_value": 0}));
                    details.push(d);
                    0
                }
            }
        }
        Some(_) => {
            details.push(Detail::new(
                loc("token_expiration"),
                "value is not a valid integer",
                "type_error.integer",
            ));
            0
        }
    };
    if details.is_empty() {
        Ok((apps, secs))
    } else {
        Err(details)
    }
}

/// `POST /rest/tokens/`.
pub(crate) async fn create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let req = match super::routes::parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (apps, secs) = match token_request(&req) {
        Ok(t) => t,
        Err(details) => return json_response(422, &validate::detail_body(&details)),
    };
    let token = s.tokens.issue(apps, secs);
    tracing::debug!(secs, "mock: realtime token issued");
    let body = match s.tokens.shape {
        TokenShape::Bare => json!(token),
        TokenShape::Detail => json!({ "detail": token }),
        TokenShape::Token => json!({ "token": token }),
    };
    json_response(200, &body)
}

impl FalMockBuilder {
    /// The shape `POST {rest}/tokens/` answers the token in: a bare JSON string (default),
    /// `{"detail": ...}` or `{"token": ...}` (fal's three shapes).
    pub fn token_response_shape(mut self, shape: TokenShape) -> Self {
        self.token_shape = shape;
        self
    }
}

impl FalMock {
    /// How many tokens `POST {rest}/tokens/` handed out.
    pub fn tokens_created(&self) -> usize {
        self.shared.tokens.created.load(Ordering::SeqCst)
    }

    /// Make every token handed out so far expired (a test of a client's token refresh, without
    /// waiting for `token_expiration` seconds).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in lock(&self.shared.tokens.issued).values_mut() {
            t.expires_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_are_checked_like_pydantic() {
        let body = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            token_request(&body(json!({"allowed_apps": ["a"]}))).ok(),
            Some((vec!["a".to_owned()], 120))
        );
        assert_eq!(
            token_request(&body(
                json!({"allowed_apps": ["a", "b"], "token_expiration": 5})
            ))
            .ok(),
            Some((vec!["a".to_owned(), "b".to_owned()], 5))
        );
        for bad in [
            json!({}),
            json!({"allowed_apps": []}),
            json!({"allowed_apps": "a"}),
            json!({"allowed_apps": [1]}),
            json!({"allowed_apps": ["a"], "token_expiration": 0}),
            json!({"allowed_apps": ["a"], "token_expiration": -3}),
            json!({"allowed_apps": ["a"], "token_expiration": "10"}),
            json!({"allowed_apps": ["a"], "token_expiration": 1.5}),
        ] {
            assert!(token_request(&body(bad.clone())).is_err(), "{bad}");
        }
        let missing = token_request(&body(json!({}))).err().unwrap_or_default();
        assert_eq!(
            validate::detail_body(&missing),
            json!({"detail":[{"loc":["body","allowed_apps"],"msg":"field required","type":"value_error.missing"}]})
        );
    }

    #[test]
    fn tokens_look_like_jwts_and_authorize_their_apps() {
        let t = Tokens::new(TokenShape::Bare);
        let token = t.issue(vec!["fast-lcm-diffusion".into()], 60);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload["allowed_apps"], json!(["fast-lcm-diffusion"]));
        assert!(payload["exp"].as_u64().unwrap() > payload["iat"].as_u64().unwrap());
        assert!(t.allows_endpoint(&token, "fal-ai/fast-lcm-diffusion"));
        assert!(!t.allows_endpoint(&token, "fal-ai/flux-lora"));
        assert!(!t.allows_endpoint("x.y.z", "fal-ai/fast-lcm-diffusion"));
    }
}
