//! The `detail` of fal's error bodies (a validation answer's field errors, or a message), shared
//! by API errors and webhook error payloads. Public through [`crate::error`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `detail` of an error body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// Pydantic-style field errors (`detail` is an array).
    Validation(Vec<ValidationDetail>),
    /// A plain message (`detail` is a string).
    Message(String),
    /// The Platform API's error (`{"error": {"type", "message", "docs_url", "request_id"}}`,
    /// <https://docs.fal.ai/platform-apis>).
    Platform(PlatformError),
    /// No `detail` (or a body that is not JSON).
    None,
}

/// The error body of the Platform API (`api.fal.ai/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PlatformError {
    /// `authorization_error`, `validation_error`, `not_found`, `rate_limited`, `server_error`
    /// or `not_implemented` (also in [`ApiError::error_type`](crate::ApiError::error_type)).
    #[serde(rename = "type")]
    pub kind: String,
    /// The message.
    pub message: String,
    /// A documentation link, when given.
    #[serde(default)]
    pub docs_url: Option<String>,
    /// fal's id of the failed call, when given.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// One field error of a validation answer, e.g.
/// `{"loc": ["body", "steps"], "msg": "ensure this value is less than or equal to 10000",
/// "type": "value_error.number.not_le"}` (<https://docs.fal.ai/errors>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationDetail {
    /// Location of the field: `["body", "field", 0, ...]`.
    #[serde(default)]
    pub loc: Vec<LocItem>,
    /// Human-readable message (do not parse it).
    #[serde(default)]
    pub msg: String,
    /// Machine-readable type, e.g. `value_error.missing`, `image_too_large`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Link to fal's documentation of this error type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra context (limits and the like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Value>,
    /// The offending input value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

impl ValidationDetail {
    /// The field path without the leading `body`: `steps`, `loras.0.scale`.
    pub fn field_path(&self) -> String {
        let parts: Vec<String> = self
            .loc
            .iter()
            .skip_while(|l| matches!(l, LocItem::Name(n) if n == "body"))
            .map(|l| l.to_string())
            .collect();
        if parts.is_empty() {
            "body".to_owned()
        } else {
            parts.join(".")
        }
    }

    /// The last element of `loc` as a field name, when it is a name.
    pub fn field(&self) -> Option<&str> {
        match self.loc.last() {
            Some(LocItem::Name(n)) => Some(n),
            _ => None,
        }
    }
}

/// One element of a validation error's `loc`: a field name or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocItem {
    /// An array index.
    Index(u64),
    /// A field name.
    Name(String),
}

impl fmt::Display for LocItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocItem::Index(i) => write!(f, "{i}"),
            LocItem::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Deserialize)]
struct RawErrorBody {
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default)]
    error_type: Option<String>,
    /// The Platform API's error object (a model error's `error` is a string: not this).
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Parse an error body into its `detail` and `error_type`; never fails (a body that is not JSON
/// or has an unexpected shape gives [`ErrorDetail::None`]).
pub(crate) fn parse_error_body(body: &[u8]) -> (ErrorDetail, Option<String>) {
    match serde_json::from_slice::<RawErrorBody>(body) {
        Ok(raw) => from_raw(raw),
        Err(_) => (ErrorDetail::None, None),
    }
}

/// [`parse_error_body`] for a body already parsed (a webhook's `payload`).
pub(crate) fn parse_error_value(body: &serde_json::Value) -> (ErrorDetail, Option<String>) {
    match RawErrorBody::deserialize(body) {
        Ok(raw) => from_raw(raw),
        Err(_) => (ErrorDetail::None, None),
    }
}

fn from_raw(raw: RawErrorBody) -> (ErrorDetail, Option<String>) {
    if raw.detail.is_none() {
        if let Some(platform) = raw
            .error
            .as_ref()
            .filter(|e| e.is_object())
            .and_then(|e| PlatformError::deserialize(e).ok())
        {
            let kind = raw.error_type.unwrap_or_else(|| platform.kind.clone());
            return (ErrorDetail::Platform(platform), Some(kind));
        }
    }
    let detail = match raw.detail {
        Some(serde_json::Value::String(s)) => ErrorDetail::Message(s),
        Some(v @ serde_json::Value::Array(_)) => {
            // Read from the borrowed value: kept whole for the message if it is not a list of
            // field details.
            match Vec::<ValidationDetail>::deserialize(&v) {
                Ok(list) => ErrorDetail::Validation(list),
                Err(_) => ErrorDetail::Message(v.to_string()),
            }
        }
        Some(serde_json::Value::Null) | None => ErrorDetail::None,
        Some(other) => ErrorDetail::Message(other.to_string()),
    };
    (detail, raw.error_type)
}
