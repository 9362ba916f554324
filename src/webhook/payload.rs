//! The body of a webhook delivery.

use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{join_path, WebhookError};
use crate::detail::{parse_error_value, ErrorDetail, ValidationDetail};

/// A webhook delivery's body, with the endpoint output typed as `T`.
///
/// On the wire (fal docs and fal-js `WebHookResponse`):
///
/// ```json
/// {"request_id": "…", "gateway_request_id": "…", "status": "OK", "payload": {…}, "error": null}
/// {"request_id": "…", "gateway_request_id": "…", "status": "ERROR",
///  "payload": {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]},
///  "error": "Invalid status code: 422"}
/// {"request_id": "…", "gateway_request_id": "…", "status": "OK", "payload": null, "error": null,
///  "payload_error": "…"}
/// ```
///
/// Get it from a verified delivery ([`VerifiedDelivery::parse`](super::VerifiedDelivery::parse));
/// parse bytes with [`from_slice`](Self::from_slice) only after verifying them. `T` is any
/// `DeserializeOwned` type: an endpoint's output struct, or [`serde_json::Value`] (the default)
/// to take any endpoint's output as is.
///
/// It serializes back to the same wire shape (for tests and fakes).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookPayload<T = Value> {
    /// The queue request id (what `submit` returned). Deduplicate on it.
    pub request_id: String,
    /// The id of the last gateway attempt; equal to `request_id` unless fal retried the request
    /// internally.
    pub gateway_request_id: Option<String>,
    /// How the request ended.
    pub outcome: WebhookOutcome<T>,
}

/// How the request a webhook reports on ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookOutcome<T = Value> {
    /// `status: "OK"`: the endpoint's output.
    Success(T),
    /// `status: "ERROR"`: the request failed. fal's `payload` carries the details.
    Error {
        /// fal's `error` message, e.g. `Invalid status code: 422` (falls back to
        /// `payload_error`, then to `unknown error`).
        message: String,
        /// `payload.detail` parsed: field errors (an array of [`ValidationDetail`]), a message
        /// (a string), or nothing.
        detail: ErrorDetail,
        /// `payload.error_type`, when the payload has one (e.g. `request_timeout`).
        error_type: Option<String>,
        /// The raw `payload` (`null` when absent).
        payload: Value,
    },
    /// `status: "OK"` with `payload: null` and `payload_error` set: the request succeeded but fal
    /// could not serialize its output as JSON. Fetch the result from the queue by request id.
    PayloadError {
        /// fal's `payload_error`.
        message: String,
    },
}

impl<T> WebhookPayload<T> {
    /// The queue request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The last gateway attempt's id, when fal sent one.
    pub fn gateway_request_id(&self) -> Option<&str> {
        self.gateway_request_id.as_deref()
    }

    /// `true` when the request succeeded and its output is here ([`WebhookOutcome::Success`]).
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, WebhookOutcome::Success(_))
    }

    /// The endpoint output, on success.
    pub fn output(&self) -> Option<&T> {
        match &self.outcome {
            WebhookOutcome::Success(t) => Some(t),
            _ => None,
        }
    }

    /// The endpoint output, on success, by value.
    pub fn into_output(self) -> Option<T> {
        match self.outcome {
            WebhookOutcome::Success(t) => Some(t),
            _ => None,
        }
    }

    /// The failure message: fal's `error` for [`WebhookOutcome::Error`], `payload_error` for
    /// [`WebhookOutcome::PayloadError`]; `None` on success.
    pub fn error_message(&self) -> Option<&str> {
        match &self.outcome {
            WebhookOutcome::Success(_) => None,
            WebhookOutcome::Error { message, .. } | WebhookOutcome::PayloadError { message } => {
                Some(message)
            }
        }
    }

    /// The field errors of a failed request (a 422 `detail` list); empty otherwise.
    pub fn field_errors(&self) -> &[ValidationDetail] {
        match &self.outcome {
            WebhookOutcome::Error {
                detail: ErrorDetail::Validation(v),
                ..
            } => v,
            _ => &[],
        }
    }
}

impl<T: DeserializeOwned> WebhookPayload<T> {
    /// Parse a delivery body (the raw bytes). This does **not** verify anything: use it after
    /// verification, e.g. through [`VerifiedDelivery::parse`](super::VerifiedDelivery::parse).
    ///
    /// # Errors
    /// - [`WebhookError::Json`] when the body is not JSON, lacks `request_id` or `status`, or the
    ///   output does not decode as `T`; its `path` is relative to the body, e.g.
    ///   `payload.images[0].url`, and its request id is filled in when the body names one.
    /// - [`WebhookError::UnknownStatus`] when `status` is neither `OK` nor `ERROR`.
    pub fn from_slice(body: &[u8]) -> Result<Self, WebhookError> {
        Self::parse(body, None)
    }

    /// [`from_slice`](Self::from_slice), with the (verified) header request id as the fallback
    /// request id of a decode error.
    pub(crate) fn parse(body: &[u8], known_id: Option<&str>) -> Result<Self, WebhookError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let env: Envelope = serde_path_to_error::deserialize(de).map_err(|e| {
            let request_id = sniff_request_id(body).or_else(|| known_id.map(str::to_owned));
            WebhookError::Json {
                path: e.path().to_string(),
                message: e.inner().to_string(),
                request_id,
            }
        })?;
        let outcome = match env.status.as_str() {
            "OK" => match (env.payload, text(env.payload_error)) {
                (None, Some(message)) => WebhookOutcome::PayloadError { message },
                (payload, _) => {
                    let value = payload.unwrap_or(Value::Null);
                    let output = serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
                        WebhookError::Json {
                            path: join_path("payload", &e.path().to_string()),
                            message: e.inner().to_string(),
                            request_id: Some(env.request_id.clone()),
                        }
                    })?;
                    WebhookOutcome::Success(output)
                }
            },
            "ERROR" => {
                let payload = env.payload.unwrap_or(Value::Null);
                let (detail, error_type) = parse_error_value(&payload);
                let message = text(env.error)
                    .or_else(|| text(env.payload_error))
                    .unwrap_or_else(|| "unknown error".to_owned());
                WebhookOutcome::Error {
                    message,
                    detail,
                    error_type,
                    payload,
                }
            }
            _ => {
                return Err(WebhookError::UnknownStatus {
                    status: env.status,
                    request_id: env.request_id,
                })
            }
        };
        Ok(WebhookPayload {
            request_id: env.request_id,
            gateway_request_id: env.gateway_request_id,
            outcome,
        })
    }
}

/// The wire envelope; the output stays a `Value` until `status` is known.
#[derive(Deserialize)]
struct Envelope {
    request_id: String,
    #[serde(default)]
    gateway_request_id: Option<String>,
    status: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    payload_error: Option<Value>,
}

/// A message field as text: strings as they are, other non-null JSON as JSON text.
fn text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// The body's `request_id`, when the body is a JSON object with a string `request_id`.
fn sniff_request_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        request_id: String,
    }
    serde_json::from_slice::<Id>(body)
        .ok()
        .map(|id| id.request_id)
}

impl<T: Serialize> Serialize for WebhookPayload<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload_error = matches!(self.outcome, WebhookOutcome::PayloadError { .. });
        let mut s =
            serializer.serialize_struct("WebhookPayload", if payload_error { 6 } else { 5 })?;
        s.serialize_field("request_id", &self.request_id)?;
        s.serialize_field("gateway_request_id", &self.gateway_request_id)?;
        match &self.outcome {
            WebhookOutcome::Success(output) => {
                s.serialize_field("status", "OK")?;
                s.serialize_field("payload", output)?;
                s.serialize_field("error", &None::<String>)?;
            }
            WebhookOutcome::Error {
                message, payload, ..
            } => {
                s.serialize_field("status", "ERROR")?;
                s.serialize_field("payload", payload)?;
                s.serialize_field("error", message)?;
            }
            WebhookOutcome::PayloadError { message } => {
                s.serialize_field("status", "OK")?;
                s.serialize_field("payload", &Value::Null)?;
                s.serialize_field("error", &None::<String>)?;
                s.serialize_field("payload_error", message)?;
            }
        }
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_output_paths_join_without_a_dot() {
        let body = br#"{"request_id":"r","status":"OK","payload":[1,"x"]}"#;
        let err = WebhookPayload::<Vec<u32>>::from_slice(body).unwrap_err();
        match err {
            WebhookError::Json {
                path, request_id, ..
            } => {
                assert_eq!(path, "payload[1]");
                assert_eq!(request_id.as_deref(), Some("r"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn envelope_errors_name_the_envelope_field_and_sniff_no_id() {
        let err =
            WebhookPayload::<Value>::from_slice(br#"{"request_id":7,"status":"OK"}"#).unwrap_err();
        assert!(
            matches!(&err, WebhookError::Json { path, request_id: None, .. } if path == "request_id"),
            "{err:?}"
        );
        let err = WebhookPayload::<Value>::parse(b"not json", Some("hdr")).unwrap_err();
        assert!(
            matches!(&err, WebhookError::Json { path, request_id: Some(id), .. } if path == "." && id == "hdr"),
            "{err:?}"
        );
    }

    #[test]
    fn ok_with_null_payload_and_no_payload_error_decodes_null() {
        let body = br#"{"request_id":"r","status":"OK","payload":null,"error":null}"#;
        let p = WebhookPayload::<Option<u32>>::from_slice(body).unwrap();
        assert_eq!(p.output(), Some(&None));
        let err = WebhookPayload::<u32>::from_slice(body).unwrap_err();
        assert!(matches!(err, WebhookError::Json { path, .. } if path == "payload"));
    }

    #[test]
    fn error_without_message_falls_back() {
        let body = br#"{"request_id":"r","status":"ERROR","payload":{"detail":"boom","error_type":"runner_disconnected"}}"#;
        let p = WebhookPayload::<Value>::from_slice(body).unwrap();
        match p.outcome {
            WebhookOutcome::Error {
                message,
                detail,
                error_type,
                ..
            } => {
                assert_eq!(message, "unknown error");
                assert_eq!(detail, ErrorDetail::Message("boom".into()));
                assert_eq!(error_type.as_deref(), Some("runner_disconnected"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
