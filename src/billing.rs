//! What requests cost: usage tags sent with a request (`X-Fal-Tags`), the units fal bills for
//! it (`x-fal-billable-units`), and the queue's retry budget header. Prices, estimates and usage
//! reports are in [`crate::platform`].
//! (<https://docs.fal.ai/model-apis/common-parameters>, "Platform Headers").

use std::fmt;

use http::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::error::{Error, Result};

/// The header carrying usage tags.
pub const TAGS_HEADER: &str = "x-fal-tags";
/// The answer header with the units billed for a request.
pub const BILLABLE_UNITS_HEADER: &str = "x-fal-billable-units";

/// Most pairs in one request's tags.
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY: usize = 64;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE: usize = 256;
/// Most bytes of keys and values summed over all pairs.
pub const MAX_TAG_BYTES: usize = 1024;

/// Usage tags: `key=value` pairs fal attaches to a request's usage and billing records, so usage
/// splits by customer, avatar or feature. Sent as `X-Fal-Tags: key=value,key=value` with
/// [`Submit::tags`](crate::queue::Submit::tags), [`Run::tags`](crate::queue::Run::tags) or
/// [`StreamRequest::tags`](crate::stream::StreamRequest::tags).
///
/// fal's gateway silently drops pairs it rejects, so they are checked before anything is sent,
/// with fal's clients' rules: keys are trimmed and lower-cased and must match `[a-z0-9._-]+`, at
/// most 64 characters, not starting with `fal.`; values are trimmed printable ASCII without `,`,
/// at most 256 characters; at most 10 pairs and 1024 bytes of keys and values in all (counted
/// before duplicates collapse, as the gateway counts). A repeated key keeps its last value, in
/// its first position.
///
/// ```
/// use fal_client::billing::UsageTags;
/// let tags = UsageTags::new().tag("avatar", "a-123").tag("Customer", " acme ");
/// assert_eq!(tags.header_value()?.unwrap(), "avatar=a-123,customer=acme");
/// assert!(UsageTags::new().tag("fal.internal", "x").header_value().is_err());
/// # Ok::<(), fal_client::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTags {
    /// As given (checked when sent).
    pairs: Vec<(String, String)>,
}

impl UsageTags {
    /// No tags (no header is sent).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a pair (checked when the request is sent, or by [`header_value`](Self::header_value)).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// Whether no pair was added.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The checked pairs, keys lower-cased, in order, a repeated key once with its last value.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `tags`) naming the rule a pair breaks.
    pub fn pairs(&self) -> Result<Vec<(String, String)>> {
        let invalid = |message: String| Error::invalid_input("tags", message);
        if self.pairs.len() > MAX_TAGS {
            return Err(invalid(format!(
                "must contain at most {MAX_TAGS} pairs, got {}",
                self.pairs.len()
            )));
        }
        let mut out: Vec<(String, String)> = Vec::with_capacity(self.pairs.len());
        let mut bytes = 0;
        for (key, value) in &self.pairs {
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            let key_ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !key_ok {
                return Err(invalid(format!(
                    "key {key:?} must match [a-z0-9._-]+ once lower-cased"
                )));
            }
            if key.len() > MAX_TAG_KEY {
                return Err(invalid(format!(
                    "key {key:?} is longer than {MAX_TAG_KEY} characters"
                )));
            }
            if key.starts_with("fal.") {
                return Err(invalid(format!(
                    "key {key:?} uses the reserved \"fal.\" prefix"
                )));
            }
            if !value
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',')
            {
                return Err(invalid(format!(
                    "value for {key:?} must be printable ASCII without commas"
                )));
            }
            if value.len() > MAX_TAG_VALUE {
                return Err(invalid(format!(
                    "value for {key:?} is longer than {MAX_TAG_VALUE} characters"
                )));
            }
            bytes += key.len() + value.len();
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(pair) => pair.1 = value.to_owned(),
                None => out.push((key, value.to_owned())),
            }
        }
        if bytes > MAX_TAG_BYTES {
            return Err(invalid(format!(
                "must be at most {MAX_TAG_BYTES} bytes, got {bytes}"
            )));
        }
        Ok(out)
    }

    /// The `X-Fal-Tags` value (`None` when there are no tags).
    ///
    /// # Errors
    /// As [`pairs`](Self::pairs).
    pub fn header_value(&self) -> Result<Option<HeaderValue>> {
        let pairs = self.pairs()?;
        if pairs.is_empty() {
            return Ok(None);
        }
        let joined = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        // Printable ASCII throughout: always a valid header value.
        HeaderValue::from_str(&joined)
            .map(Some)
            .map_err(|_| Error::invalid_input("tags", "cannot be a header value"))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for UsageTags {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self {
            pairs: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// The units fal billed for a request (`x-fal-billable-units`): a decimal in the endpoint's
/// billing unit (see [`Price::unit`](crate::platform::Price::unit)); cost ≈ units × unit price.
/// fal sends it on a queue result and a sync run's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BillableUnits {
    /// The header as sent.
    pub raw: String,
    /// Its value, when it is a number.
    pub value: Option<f64>,
}

impl BillableUnits {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let raw = headers.get(BILLABLE_UNITS_HEADER)?.to_str().ok()?.trim();
        Some(Self {
            raw: raw.to_owned(),
            value: raw.parse::<f64>().ok().filter(|v| v.is_finite()),
        })
    }
}

impl fmt::Display for BillableUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// An output with the units fal billed for it: from
/// [`RequestHandle::billed_result`](crate::queue::RequestHandle::billed_result) and
/// [`Run::billed`](crate::queue::Run::billed).
#[derive(Debug, Clone, PartialEq)]
pub struct Billed<O> {
    /// The output.
    pub output: O,
    /// `x-fal-billable-units`, when fal sent it.
    pub billable_units: Option<BillableUnits>,
    /// `x-fal-request-id`, when fal sent it (a sync run's request id).
    pub request_id: Option<String>,
}

/// The queue's automatic retries of a request (`X-Fal-Retry-Config`): how many **more** attempts
/// each kind of failure gets (`retries: 3` allows 4 in all). fal applies it **only to your own
/// apps**; shared model APIs ignore it (turn their retries off with
/// [`Submit::no_retry`](crate::queue::Submit::no_retry)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServerRetries {
    /// Retries after a server error (5xx).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error: Option<Retries>,
    /// Retries after a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Retries>,
    /// Retries after a connection error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_error: Option<Retries>,
}

/// One condition's budget in [`ServerRetries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retries {
    /// Additional attempts.
    pub retries: u32,
}

impl ServerRetries {
    /// The same budget for every condition.
    pub fn all(retries: u32) -> Self {
        let r = Some(Retries { retries });
        Self {
            server_error: r,
            timeout: r,
            connection_error: r,
        }
    }

    pub(crate) fn header_value(&self) -> Result<HeaderValue> {
        let json = serde_json::to_string(self)
            .map_err(|e| Error::invalid_input("retry_config", e.to_string()))?;
        HeaderValue::from_str(&json)
            .map_err(|_| Error::invalid_input("retry_config", "cannot be a header value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(tags: UsageTags) -> String {
        tags.pairs().unwrap_err().to_string()
    }

    #[test]
    fn tags_follow_fal_s_rules() {
        let t = UsageTags::new()
            .tag(" Avatar ", " a-1 ")
            .tag("plan.tier", "pro")
            .tag("avatar", "a-2");
        assert_eq!(
            t.header_value().unwrap().unwrap(),
            "avatar=a-2,plan.tier=pro"
        );
        assert!(UsageTags::new().header_value().unwrap().is_none());
        assert!(err(UsageTags::new().tag("a b", "x")).contains("[a-z0-9._-]+"));
        assert!(err(UsageTags::new().tag("", "x")).contains("[a-z0-9._-]+"));
        assert!(err(UsageTags::new().tag("FAL.x", "x")).contains("reserved"));
        assert!(err(UsageTags::new().tag("k", "a,b")).contains("without commas"));
        assert!(err(UsageTags::new().tag("k", "é")).contains("printable ASCII"));
        assert!(err(UsageTags::new().tag("k".repeat(65), "x")).contains("64"));
        assert!(err(UsageTags::new().tag("k", "v".repeat(257))).contains("256"));
        let eleven: UsageTags = (0..11).map(|i| (format!("k{i}"), "v")).collect();
        assert!(err(eleven).contains("at most 10 pairs, got 11"));
        // 1024 bytes in all, counted before duplicates collapse.
        let heavy: UsageTags = (0..5).map(|_| ("key", "v".repeat(250))).collect();
        assert!(err(heavy).contains("1024 bytes, got 1265"));
        let ok: UsageTags = (0..4).map(|i| (format!("k{i}"), "v".repeat(250))).collect();
        assert_eq!(ok.pairs().unwrap().len(), 4);
    }

    #[test]
    fn billable_units_keep_the_raw_header() {
        let mut h = HeaderMap::new();
        assert!(BillableUnits::from_headers(&h).is_none());
        h.insert(BILLABLE_UNITS_HEADER, HeaderValue::from_static("3.008"));
        let u = BillableUnits::from_headers(&h).unwrap();
        assert_eq!((u.raw.as_str(), u.value), ("3.008", Some(3.008)));
        h.insert(BILLABLE_UNITS_HEADER, HeaderValue::from_static("n/a"));
        assert_eq!(BillableUnits::from_headers(&h).unwrap().value, None);
    }

    #[test]
    fn retry_config_counts_additional_attempts() {
        let cfg = ServerRetries {
            timeout: Some(Retries { retries: 3 }),
            ..ServerRetries::default()
        };
        assert_eq!(cfg.header_value().unwrap(), r#"{"timeout":{"retries":3}}"#);
        assert_eq!(
            ServerRetries::all(0).header_value().unwrap(),
            r#"{"server_error":{"retries":0},"timeout":{"retries":0},"connection_error":{"retries":0}}"#
        );
    }
}
