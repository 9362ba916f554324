//! Webhook deliveries: typed bodies, Ed25519/JWKS signature verification and duplicate
//! suppression.
//!
//! When a queue request is submitted with a webhook URL
//! ([`Submit::webhook`](crate::queue::Submit::webhook), the `fal_webhook` query parameter), fal
//! `POST`s the outcome there once the request finishes
//! (<https://docs.fal.ai/model-apis/model-endpoints/webhooks>). This module turns such a delivery
//! into a [`WebhookPayload<T>`], but only after checking that fal sent it.
//!
//! # Verifying a delivery
//!
//! fal signs every delivery with Ed25519 and publishes its public keys as a JWKS. Four headers
//! come with the body: `X-Fal-Webhook-Request-Id`, `X-Fal-Webhook-User-Id`,
//! `X-Fal-Webhook-Timestamp` (Unix seconds) and `X-Fal-Webhook-Signature` (hex). The signed
//! message is
//!
//! ```text
//! request_id + "\n" + user_id + "\n" + timestamp + "\n" + lowercase_hex(sha256(raw body))
//! ```
//!
//! and a delivery is genuine when the signature verifies (strict Ed25519) with any key of the
//! set and the timestamp is within a leeway of the current time ([`DEFAULT_LEEWAY`], 300 s).
//!
//! [`WebhookVerifier`] does it, with one method, [`verify`](WebhookVerifier::verify). Get the
//! one that fetches and caches fal's keys from [`FalClient::webhooks`](crate::FalClient::webhooks),
//! or one for a fixed key set from [`WebhookVerifier::from_jwks`].
//!
//! Always verify the **raw body bytes** as received: never re-serialize the JSON first. Parsing
//! happens only after verification ([`VerifiedDelivery::parse`]), so an answer can tell the two
//! apart: [`WebhookError::status_code`] gives 401 for a delivery that failed authentication, 400
//! for a genuine delivery whose body could not be decoded, and 5xx when the keys are unavailable
//! (fal then delivers again later).
//!
//! # Duplicates
//!
//! fal retries a delivery that did not get a 2xx answer, up to 10 times over 2 hours, and a
//! delivery may arrive twice even when you did answer. Act **once per `request_id`**: in
//! production, record processed request ids in your database under a unique constraint (insert
//! first, act only when the insert succeeded), or through a [`DeliveryDeduper`]:
//! [`MemoryDeduper`] for one process (it forgets everything on restart), [`RedisDeduper`]
//! (feature `redis`) for replicas behind a load balancer, which must share one record — fal may
//! deliver the same request to two of them.
//!
//! # An axum handler
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{body::Bytes, extract::State, http::{HeaderMap, StatusCode}, routing::post, Router};
//! use fal_client::webhook::{DeliveryDeduper, MemoryDeduper, WebhookOutcome, WebhookVerifier};
//!
//! #[derive(Clone)]
//! struct App { webhooks: WebhookVerifier, seen: Arc<dyn DeliveryDeduper> }
//!
//! async fn fal_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
//!     // Verify against the raw bytes, then parse (any `T: DeserializeOwned`).
//!     let delivery = match app.webhooks.verify(&headers, &body).await {
//!         Ok(delivery) => delivery,
//!         Err(e) => return e.status_code(), // 401 forged, 5xx no keys
//!     };
//!     let payload = match delivery.parse::<serde_json::Value>() {
//!         Ok(payload) => payload,
//!         Err(e) => return e.status_code(), // 400 genuine but undecodable
//!     };
//!     match app.seen.first_time(payload.request_id()).await {
//!         Ok(true) => {}
//!         Ok(false) => return StatusCode::OK, // a re-delivery: already handled
//!         Err(e) => return e.status_code(),   // 503: the record is unreachable, fal retries
//!     }
//!     match &payload.outcome {
//!         WebhookOutcome::Success(output) => tracing::info!(%output, "fal request done"),
//!         WebhookOutcome::Error { message, .. } => tracing::warn!(error = %message, "fal request failed"),
//!         other => tracing::warn!(?other, "fal could not serialize the output"),
//!     }
//!     StatusCode::OK // answer fast: hand slow work to a background task
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // No key needed to verify: FAL_JWKS_URL (optional) names the key set.
//!     let fal = fal_client::FalClientBuilder::from_env().build()?;
//!     let app = App { webhooks: fal.webhooks(), seen: Arc::new(MemoryDeduper::new(10_000)) };
//!     let router = Router::new().route("/webhook/fal/status", post(fal_webhook)).with_state(app);
//!     axum::serve(tokio::net::TcpListener::bind("0.0.0.0:3000").await?, router).await?;
//!     Ok(())
//! }
//! ```
//!
//! `examples/webhook_receiver.rs` is a complete receiver (background processing, one JSON line
//! per delivery): `cargo run --example webhook_receiver`.
//!
//! # Testing a handler
//!
//! The `fal-mock` crate delivers signed completions of jobs submitted with a webhook URL and
//! serves its key set at `FalMock::jwks_url()`; point the client at it with
//! [`FalClientBuilder::jwks_url`](crate::FalClientBuilder::jwks_url). Its `WebhookSigner` signs
//! bodies of your own, e.g. to check that a tampered one gets a 401.

use std::time::Duration;

mod cache;
mod dedup;
mod keys;
mod payload;
mod verifier;
mod verify;

pub(crate) use cache::KeyCache;
#[cfg(feature = "redis")]
pub use dedup::RedisDeduper;
pub use dedup::{DeliveryDeduper, MemoryDeduper};
pub use keys::{Ed25519Key, Jwk, Jwks};
pub use payload::{WebhookOutcome, WebhookPayload};
pub use verifier::WebhookVerifier;
pub use verify::{VerifiedDelivery, WebhookHeaders};

/// How far a delivery's timestamp may be from the current time, either way: 300 s (the value of
/// fal's documented example).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(300);

/// How long [`WebhookVerifier`] keeps fetched keys before fetching them again: 24 h.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest time between two key refreshes [`WebhookVerifier`] makes because no cached key
/// verified a delivery (or after a failed fetch): 10 s. Short enough that a key rotated right
/// after a forged delivery is picked up within seconds; long enough that forged deliveries
/// cannot turn the receiver into a JWKS-fetching loop (concurrent ones share one fetch).
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Header carrying the request id (lowercase; header names are case-insensitive).
pub const HEADER_REQUEST_ID: &str = "x-fal-webhook-request-id";
/// Header carrying the fal user id.
pub const HEADER_USER_ID: &str = "x-fal-webhook-user-id";
/// Header carrying the signing time in Unix seconds (a decimal string).
pub const HEADER_TIMESTAMP: &str = "x-fal-webhook-timestamp";
/// Header carrying the hex-encoded 64-byte Ed25519 signature.
pub const HEADER_SIGNATURE: &str = "x-fal-webhook-signature";

/// Why a webhook delivery was rejected or could not be decoded.
///
/// The variants fall into three groups, which a receiver answers differently
/// ([`status_code`](Self::status_code)):
///
/// - authentication failures ([`is_signature_error`](Self::is_signature_error), answer 401):
///   a header is missing or malformed, the timestamp is out of the leeway, or no key verifies;
/// - a genuine delivery with a body that does not decode (answer 400): [`WebhookError::Json`],
///   [`WebhookError::UnknownStatus`], [`WebhookError::RequestIdMismatch`];
/// - no usable keys on the receiver's side (answer 5xx so that fal delivers again later):
///   [`WebhookError::NoKeys`], [`WebhookError::InvalidKey`], [`WebhookError::JwksFetch`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent or empty. Holds its lowercase name, e.g.
    /// `x-fal-webhook-signature`.
    #[error("webhook header `{0}` is missing or empty")]
    MissingHeader(&'static str),

    /// A header is present but unusable: not visible ASCII, or given more than once.
    #[error("webhook header `{name}` is invalid: {reason}")]
    InvalidHeader {
        /// The lowercase header name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `X-Fal-Webhook-Timestamp` is not a decimal integer of Unix seconds.
    #[error("webhook timestamp {0:?} is not a decimal number of Unix seconds")]
    InvalidTimestamp(String),

    /// The delivery was signed longer ago than the leeway allows (a replay, or a receiver's
    /// clock running fast).
    #[error("webhook timestamp is {}s old, more than the allowed {}s", .age.as_secs(), .leeway.as_secs())]
    StaleTimestamp {
        /// How old the timestamp is.
        age: Duration,
        /// The leeway in force.
        leeway: Duration,
    },

    /// The delivery claims to be signed further in the future than the leeway allows.
    #[error("webhook timestamp is {}s in the future, more than the allowed {}s", .ahead.as_secs(), .leeway.as_secs())]
    FutureTimestamp {
        /// How far ahead of the current time the timestamp is.
        ahead: Duration,
        /// The leeway in force.
        leeway: Duration,
    },

    /// `X-Fal-Webhook-Signature` is not the hex encoding of 64 bytes.
    #[error("webhook signature is not 64 hex-encoded bytes: {reason}")]
    InvalidSignatureEncoding {
        /// What is wrong (not hex, or the decoded length).
        reason: String,
    },

    /// The signature verifies with none of the keys: a forged or altered delivery, a key
    /// rotation the receiver has not picked up yet, or a delivery meant for another account.
    #[error("webhook signature does not verify with any of the {keys_tried} Ed25519 key(s)")]
    SignatureMismatch {
        /// How many keys were tried.
        keys_tried: usize,
    },

    /// The key set is empty or holds no usable Ed25519 key, so nothing can be verified.
    #[error("no Ed25519 verification key is available (the key set is empty or has no usable Ed25519 key)")]
    NoKeys,

    /// A JWK could not be turned into an Ed25519 verification key.
    #[error("JWK {} is not a usable Ed25519 key: {reason}", .kid.as_deref().unwrap_or("(no kid)"))]
    InvalidKey {
        /// The key's `kid`, when it has one.
        kid: Option<String>,
        /// What is wrong with it.
        reason: String,
    },

    /// fal's keys could not be fetched and no earlier keys are cached.
    #[error("could not fetch webhook keys from {url}: {message}")]
    JwksFetch {
        /// The JWKS URL.
        url: String,
        /// What went wrong (HTTP status, transport error, undecodable JWKS).
        message: String,
    },

    /// The signed `X-Fal-Webhook-Request-Id` matches neither `request_id` nor
    /// `gateway_request_id` of the (equally signed) body. fal never sends that; the delivery is
    /// rejected rather than guessed at.
    #[error("webhook header request id {header:?} matches neither request_id nor gateway_request_id of the body (request_id {body:?})")]
    RequestIdMismatch {
        /// The request id from the header.
        header: String,
        /// The `request_id` from the body.
        body: String,
    },

    /// The body is not the expected JSON. `path` locates the failure relative to the body, e.g.
    /// `payload.images[0].url` (`.` for the body itself).
    #[error("could not decode webhook body at `{path}`: {message}")]
    Json {
        /// JSON path of the failure relative to the body.
        path: String,
        /// The decoder's message.
        message: String,
        /// The delivery's request id, when it could be read.
        request_id: Option<String>,
    },

    /// The record of handled deliveries ([`DeliveryDeduper`]) could not be reached, so the
    /// delivery was neither acted on nor recorded: answer 503 ([`status_code`](Self::status_code))
    /// and fal delivers it again later.
    #[error("the {store} record of webhook deliveries is unavailable: {message}")]
    DedupStore {
        /// Which store (`redis`, or your implementation's name).
        store: &'static str,
        /// What went wrong.
        message: String,
    },

    /// The body's `status` is neither `OK` nor `ERROR`.
    #[error("webhook delivery for request {request_id} has unknown status {status:?}")]
    UnknownStatus {
        /// The status as sent.
        status: String,
        /// The delivery's request id.
        request_id: String,
    },
}

impl WebhookError {
    /// The request id of a delivery that passed verification (or, for a body parsed without
    /// verification, the id the body names) but could not be decoded. `None` for authentication
    /// and key errors: an unverified header is not worth storing.
    ///
    /// With it, the result can still be fetched from the queue.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WebhookError::Json { request_id, .. } => request_id.as_deref(),
            WebhookError::UnknownStatus { request_id, .. } => Some(request_id),
            WebhookError::RequestIdMismatch { body, .. } => Some(body),
            _ => None,
        }
    }

    /// `true` when the delivery failed authentication (missing or malformed headers, timestamp
    /// out of the leeway, signature that does not verify): the request did not demonstrably come
    /// from fal. Answer it with 401 and do not act on the body.
    pub fn is_signature_error(&self) -> bool {
        matches!(
            self,
            WebhookError::MissingHeader(_)
                | WebhookError::InvalidHeader { .. }
                | WebhookError::InvalidTimestamp(_)
                | WebhookError::StaleTimestamp { .. }
                | WebhookError::FutureTimestamp { .. }
                | WebhookError::InvalidSignatureEncoding { .. }
                | WebhookError::SignatureMismatch { .. }
        )
    }

    /// The HTTP status a webhook receiver should answer with:
    ///
    /// - `401 Unauthorized` for [authentication failures](Self::is_signature_error);
    /// - `400 Bad Request` for a verified delivery whose body does not decode ([`Json`],
    ///   [`UnknownStatus`], [`RequestIdMismatch`]); fal may retry it, to no avail, so log it
    ///   and fetch the result from the queue by [`request_id`](Self::request_id);
    /// - `503 Service Unavailable` when fal's keys could not be fetched ([`JwksFetch`]) or the
    ///   record of handled deliveries is unreachable ([`DedupStore`]), and
    ///   `500 Internal Server Error` when the configured keys are unusable ([`NoKeys`],
    ///   [`InvalidKey`]): fal delivers again later.
    ///
    /// [`Json`]: WebhookError::Json
    /// [`UnknownStatus`]: WebhookError::UnknownStatus
    /// [`RequestIdMismatch`]: WebhookError::RequestIdMismatch
    /// [`JwksFetch`]: WebhookError::JwksFetch
    /// [`DedupStore`]: WebhookError::DedupStore
    /// [`NoKeys`]: WebhookError::NoKeys
    /// [`InvalidKey`]: WebhookError::InvalidKey
    pub fn status_code(&self) -> http::StatusCode {
        if self.is_signature_error() {
            return http::StatusCode::UNAUTHORIZED;
        }
        match self {
            WebhookError::Json { .. }
            | WebhookError::UnknownStatus { .. }
            | WebhookError::RequestIdMismatch { .. } => http::StatusCode::BAD_REQUEST,
            WebhookError::JwksFetch { .. } | WebhookError::DedupStore { .. } => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Join a `serde_path_to_error` path found inside `prefix` onto it: `payload` + `images[0].url`
/// gives `payload.images[0].url`; `payload` + `[1]` gives `payload[1]`; `payload` + `.` gives
/// `payload`.
pub(crate) fn join_path(prefix: &str, inner: &str) -> String {
    if inner.is_empty() || inner == "." {
        prefix.to_owned()
    } else if inner.starts_with('[') {
        format!("{prefix}{inner}")
    } else {
        format!("{prefix}.{inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_like_serde_path_to_error() {
        assert_eq!(join_path("payload", "."), "payload");
        assert_eq!(
            join_path("payload", "images[0].url"),
            "payload.images[0].url"
        );
        assert_eq!(join_path("payload", "[2]"), "payload[2]");
    }

    #[test]
    fn status_codes_follow_the_error_groups() {
        assert_eq!(
            WebhookError::MissingHeader(HEADER_SIGNATURE).status_code(),
            http::StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            WebhookError::SignatureMismatch { keys_tried: 2 }.status_code(),
            http::StatusCode::UNAUTHORIZED
        );
        let json = WebhookError::Json {
            path: "payload".into(),
            message: "m".into(),
            request_id: Some("r".into()),
        };
        assert!(!json.is_signature_error());
        assert_eq!(json.status_code(), http::StatusCode::BAD_REQUEST);
        assert_eq!(json.request_id(), Some("r"));
        assert_eq!(
            WebhookError::NoKeys.status_code(),
            http::StatusCode::INTERNAL_SERVER_ERROR
        );
        let fetch = WebhookError::JwksFetch {
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(fetch.status_code(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(fetch.request_id(), None);
    }
}
