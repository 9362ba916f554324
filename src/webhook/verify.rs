//! The verification core: headers, signed message, timestamp window, signature check.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::Signature;
use http::HeaderMap;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::keys::Ed25519Key;
use super::payload::WebhookPayload;
use super::{WebhookError, HEADER_REQUEST_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_USER_ID};

/// The four signature headers of a delivery, as plain strings: what fal sends with a delivery
/// (and what a signer of test deliveries produces).
///
/// `Debug` does not print the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `X-Fal-Webhook-Request-Id`.
    pub request_id: String,
    /// `X-Fal-Webhook-User-Id`.
    pub user_id: String,
    /// `X-Fal-Webhook-Timestamp`: Unix seconds as a decimal string, used exactly as sent.
    pub timestamp: String,
    /// `X-Fal-Webhook-Signature`: the hex-encoded 64-byte Ed25519 signature.
    pub signature: String,
}

impl WebhookHeaders {
    /// Read the four headers (names are case-insensitive).
    ///
    /// # Errors
    /// [`WebhookError::MissingHeader`] for an absent or empty header (the first one in the
    /// order request id, user id, timestamp, signature); [`WebhookError::InvalidHeader`] for a
    /// header that is not visible ASCII or is given more than once.
    pub fn from_header_map(headers: &HeaderMap) -> Result<Self, WebhookError> {
        Ok(WebhookHeaders {
            request_id: header(headers, HEADER_REQUEST_ID)?,
            user_id: header(headers, HEADER_USER_ID)?,
            timestamp: header(headers, HEADER_TIMESTAMP)?,
            signature: header(headers, HEADER_SIGNATURE)?,
        })
    }

    /// The headers as an [`http::HeaderMap`] (lowercase names).
    ///
    /// # Errors
    /// [`WebhookError::InvalidHeader`] when a value cannot be a header value (control
    /// characters).
    pub fn to_header_map(&self) -> Result<HeaderMap, WebhookError> {
        let mut map = HeaderMap::with_capacity(4);
        for (name, value) in [
            (HEADER_REQUEST_ID, &self.request_id),
            (HEADER_USER_ID, &self.user_id),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ] {
            let value =
                http::HeaderValue::from_str(value).map_err(|_| WebhookError::InvalidHeader {
                    name,
                    reason: "not a valid header value",
                })?;
            map.insert(http::HeaderName::from_static(name), value);
        }
        Ok(map)
    }

    /// The message fal signs for these headers and `body`:
    /// `request_id + "\n" + user_id + "\n" + timestamp + "\n" + lowercase_hex(sha256(body))`,
    /// UTF-8, no trailing newline.
    pub fn signed_message(&self, body: &[u8]) -> String {
        signed_message(&self.request_id, &self.user_id, &self.timestamp, body)
    }
}

impl fmt::Debug for WebhookHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookHeaders")
            .field("request_id", &self.request_id)
            .field("user_id", &self.user_id)
            .field("timestamp", &self.timestamp)
            .field(
                "signature",
                &format_args!("[{} chars]", self.signature.len()),
            )
            .finish()
    }
}

/// One header as a string: absent or empty is missing; repeated or non-ASCII is invalid.
fn header(headers: &HeaderMap, name: &'static str) -> Result<String, WebhookError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Err(WebhookError::MissingHeader(name));
    };
    if values.next().is_some() {
        return Err(WebhookError::InvalidHeader {
            name,
            reason: "given more than once",
        });
    }
    let value = value.to_str().map_err(|_| WebhookError::InvalidHeader {
        name,
        reason: "not visible ASCII",
    })?;
    if value.is_empty() {
        return Err(WebhookError::MissingHeader(name));
    }
    Ok(value.to_owned())
}

pub(crate) fn signed_message(
    request_id: &str,
    user_id: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("{request_id}\n{user_id}\n{timestamp}\n{body_hash}")
}

/// A delivery whose signature and timestamp checked out. It borrows the verified body, so
/// [`parse`](Self::parse) can only decode the bytes that were verified.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedDelivery<'a> {
    request_id: String,
    user_id: String,
    timestamp: u64,
    key_id: Option<String>,
    body: &'a [u8],
}

impl<'a> VerifiedDelivery<'a> {
    /// The signed `X-Fal-Webhook-Request-Id`.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The signed `X-Fal-Webhook-User-Id`: the fal account the delivery is for.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The signed timestamp, Unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The signing time.
    pub fn signed_at(&self) -> SystemTime {
        // A verified timestamp is within the leeway of now; only an absurd leeway could make it
        // unrepresentable, and then the epoch stands in rather than a panic.
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.timestamp))
            .unwrap_or(UNIX_EPOCH)
    }

    /// The `kid` of the key that verified the signature, when it had one.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The verified raw body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Decode the verified body as a [`WebhookPayload<T>`].
    ///
    /// The body's `request_id` must equal the signed header request id, or its
    /// `gateway_request_id` must (in case fal's header carries the gateway attempt's id).
    ///
    /// # Errors
    /// [`WebhookError::Json`] / [`WebhookError::UnknownStatus`] as
    /// [`WebhookPayload::from_slice`] (a decode error carries the verified request id), and
    /// [`WebhookError::RequestIdMismatch`] when the ids disagree.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<WebhookPayload<T>, WebhookError> {
        let payload = WebhookPayload::<T>::parse(self.body, Some(&self.request_id))?;
        if payload.request_id != self.request_id
            && payload.gateway_request_id.as_deref() != Some(self.request_id.as_str())
        {
            tracing::warn!(
                header_request_id = %self.request_id,
                body_request_id = %payload.request_id,
                "signed webhook delivery names another request in its body; rejected"
            );
            return Err(WebhookError::RequestIdMismatch {
                header: self.request_id.clone(),
                body: payload.request_id,
            });
        }
        Ok(payload)
    }
}

impl fmt::Debug for VerifiedDelivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedDelivery")
            .field("request_id", &self.request_id)
            .field("user_id", &self.user_id)
            .field("timestamp", &self.timestamp)
            .field("key_id", &self.key_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the key-independent checks produced: the signed message and the decoded signature.
pub(crate) struct Prepared<'h> {
    headers: &'h WebhookHeaders,
    timestamp: u64,
    message: String,
    signature: Signature,
}

/// Every check that needs no key (the headers, read by [`WebhookHeaders::from_header_map`], are
/// present and non-empty): timestamp format, signature encoding, timestamp window. Cheap, so a
/// server runs it before fetching keys.
pub(crate) fn prepare<'h>(
    headers: &'h WebhookHeaders,
    body: &[u8],
    now: SystemTime,
    leeway: Duration,
) -> Result<Prepared<'h>, WebhookError> {
    let timestamp = parse_timestamp(&headers.timestamp)?;
    let signature = decode_signature(&headers.signature)?;
    check_window(timestamp, now, leeway)?;
    Ok(Prepared {
        headers,
        timestamp,
        message: headers.signed_message(body),
        signature,
    })
}

/// Try every key; `Ok` with the verifying key's `kid`.
pub(crate) fn check_keys(
    prepared: &Prepared<'_>,
    keys: &[Ed25519Key],
) -> Result<Option<String>, WebhookError> {
    if keys.is_empty() {
        return Err(WebhookError::NoKeys);
    }
    let message = prepared.message.as_bytes();
    match keys
        .iter()
        .find(|k| k.verifies(message, &prepared.signature))
    {
        Some(key) => Ok(key.kid().map(str::to_owned)),
        None => Err(WebhookError::SignatureMismatch {
            keys_tried: keys.len(),
        }),
    }
}

impl<'h> Prepared<'h> {
    pub(crate) fn into_delivery<'a>(
        self,
        body: &'a [u8],
        key_id: Option<String>,
    ) -> VerifiedDelivery<'a> {
        VerifiedDelivery {
            request_id: self.headers.request_id.clone(),
            user_id: self.headers.user_id.clone(),
            timestamp: self.timestamp,
            key_id,
            body,
        }
    }
}

/// Decimal digits only (no sign, no spaces), fitting in a `u64`.
fn parse_timestamp(s: &str) -> Result<u64, WebhookError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::InvalidTimestamp(s.to_owned()));
    }
    s.parse::<u64>()
        .map_err(|_| WebhookError::InvalidTimestamp(s.to_owned()))
}

fn decode_signature(s: &str) -> Result<Signature, WebhookError> {
    let bytes = hex::decode(s).map_err(|e| WebhookError::InvalidSignatureEncoding {
        reason: format!("not hex ({e})"),
    })?;
    let bytes: [u8; 64] =
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| WebhookError::InvalidSignatureEncoding {
                reason: format!("{} bytes, expected 64", bytes.len()),
            })?;
    Ok(Signature::from_bytes(&bytes))
}

/// `|now - timestamp| <= leeway`, in whole seconds.
fn check_window(timestamp: u64, now: SystemTime, leeway: Duration) -> Result<(), WebhookError> {
    let now_secs: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    };
    let delta = now_secs - i128::from(timestamp);
    let secs = |d: i128| Duration::from_secs(u64::try_from(d.unsigned_abs()).unwrap_or(u64::MAX));
    let leeway_secs = i128::from(leeway.as_secs());
    if delta > leeway_secs {
        Err(WebhookError::StaleTimestamp {
            age: secs(delta),
            leeway,
        })
    } else if -delta > leeway_secs {
        Err(WebhookError::FutureTimestamp {
            ahead: secs(delta),
            leeway,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn log_rejection(headers: &WebhookHeaders, error: &WebhookError) {
    tracing::debug!(
        request_id = %headers.request_id,
        error = %error,
        "webhook delivery rejected"
    );
}

pub(crate) fn log_accepted(headers: &WebhookHeaders, kid: Option<&str>) {
    tracing::debug!(
        request_id = %headers.request_id,
        kid = kid.unwrap_or(""),
        "webhook signature verified"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn message_is_four_lines_without_trailing_newline() {
        let m = signed_message("req", "user", "0017", b"{}");
        // sha256("{}")
        assert_eq!(
            m,
            "req\nuser\n0017\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn timestamps_must_be_plain_digits() {
        assert_eq!(parse_timestamp("0017").unwrap(), 17);
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1.0",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_timestamp(bad), Err(WebhookError::InvalidTimestamp(s)) if s == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn window_is_inclusive() {
        let l = Duration::from_secs(300);
        assert!(check_window(1000, at(1300), l).is_ok());
        assert!(check_window(1300, at(1000), l).is_ok());
        assert_eq!(
            check_window(1000, at(1301), l),
            Err(WebhookError::StaleTimestamp {
                age: Duration::from_secs(301),
                leeway: l
            })
        );
        assert_eq!(
            check_window(1301, at(1000), l),
            Err(WebhookError::FutureTimestamp {
                ahead: Duration::from_secs(301),
                leeway: l
            })
        );
        // A clock before the epoch does not overflow.
        assert!(matches!(
            check_window(u64::MAX, UNIX_EPOCH - Duration::from_secs(5), l),
            Err(WebhookError::FutureTimestamp { .. })
        ));
    }

    #[test]
    fn signature_encoding_is_checked() {
        assert!(matches!(
            decode_signature("zz"),
            Err(WebhookError::InvalidSignatureEncoding { .. })
        ));
        let err = decode_signature(&"ab".repeat(63)).unwrap_err();
        assert!(err.to_string().contains("63 bytes"), "{err}");
        assert!(decode_signature(&"AB".repeat(64)).is_ok());
    }

    #[test]
    fn debug_hides_the_signature() {
        let h = WebhookHeaders {
            request_id: "r".into(),
            user_id: "u".into(),
            timestamp: "1".into(),
            signature: "deadbeef".into(),
        };
        let s = format!("{h:?}");
        assert!(!s.contains("deadbeef") && s.contains("[8 chars]"), "{s}");
    }
}
