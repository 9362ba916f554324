//! What the mock bills: its price table ([`PRICES`]), the units a request bills (the
//! `x-fal-billable-units` answer header), and the platform headers recorded per request
//! ([`PlatformHeaders`]: `X-Fal-Tags`, `X-Fal-Store-IO`, `X-Fal-No-Retry`, `X-Fal-Retry-Config`,
//! the fallback switches).

use axum::http::HeaderMap;
use serde_json::Value;

use super::state;
use super::validate::{self, ModelKind};

/// The unit of a trainer's price: one training run.
pub const UNIT_TRAINING: &str = "training";
/// The unit of most generators' prices: megapixels of output images.
pub const UNIT_MEGAPIXELS: &str = "megapixels";
/// The unit of a price per output image.
pub const UNIT_IMAGES: &str = "images";

/// The currency of every price.
pub const CURRENCY: &str = "USD";

/// One row of the mock's price table ([`PRICES`]): what `GET /v1/models/pricing` answers for
/// an endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Price {
    /// The full endpoint id, e.g. `fal-ai/flux-lora`.
    pub endpoint_id: &'static str,
    /// The billing unit: [`UNIT_TRAINING`], [`UNIT_MEGAPIXELS`] or [`UNIT_IMAGES`].
    pub unit: &'static str,
    /// The price of one unit, in US dollars.
    pub unit_price: f64,
}

const fn price(endpoint_id: &'static str, unit: &'static str, unit_price: f64) -> Price {
    Price {
        endpoint_id,
        unit,
        unit_price,
    }
}

/// The mock's price table, a fixed one (not fal's current prices, which vary per account):
///
/// | endpoint | unit | unit price (USD) |
/// |---|---|---|
/// | `fal-ai/flux-lora-portrait-trainer` | `training` | 2.4 |
/// | `fal-ai/flux-lora-fast-training` | `training` | 2.0 |
/// | `fal-ai/flux-2-trainer` | `training` | 2.2 |
/// | `fal-ai/flux-2-trainer-v2` | `training` | 2.2 |
/// | `fal-ai/z-image-trainer` | `training` | 2.0 |
/// | `fal-ai/z-image-turbo-trainer-v2` | `training` | 2.0 |
/// | `fal-ai/qwen-image-2512-trainer` | `training` | 2.4 |
/// | `fal-ai/flux-pro-trainer` (deprecated) | `training` | 2.4 |
/// | `fal-ai/flux-lora` | `megapixels` | 0.035 |
/// | `fal-ai/flux-2/lora` | `megapixels` | 0.021 |
/// | `fal-ai/z-image/turbo/lora` | `megapixels` | 0.0085 |
/// | `fal-ai/qwen-image-2512/lora` | `megapixels` | 0.02 |
/// | `fal-ai/flux-pro/v1.1-ultra-finetuned` | `images` | 0.06 |
///
/// Other endpoints (the realtime apps, any other id) have no price: they bill nothing and are
/// absent from pricing answers.
pub const PRICES: &[Price] = &[
    price("fal-ai/flux-lora-portrait-trainer", UNIT_TRAINING, 2.4),
    price("fal-ai/flux-lora-fast-training", UNIT_TRAINING, 2.0),
    price("fal-ai/flux-2-trainer", UNIT_TRAINING, 2.2),
    price("fal-ai/flux-2-trainer-v2", UNIT_TRAINING, 2.2),
    price("fal-ai/z-image-trainer", UNIT_TRAINING, 2.0),
    price("fal-ai/z-image-turbo-trainer-v2", UNIT_TRAINING, 2.0),
    price("fal-ai/qwen-image-2512-trainer", UNIT_TRAINING, 2.4),
    price("fal-ai/flux-pro-trainer", UNIT_TRAINING, 2.4),
    price("fal-ai/flux-lora", UNIT_MEGAPIXELS, 0.035),
    price("fal-ai/flux-2/lora", UNIT_MEGAPIXELS, 0.021),
    price("fal-ai/z-image/turbo/lora", UNIT_MEGAPIXELS, 0.0085),
    price("fal-ai/qwen-image-2512/lora", UNIT_MEGAPIXELS, 0.02),
    price("fal-ai/flux-pro/v1.1-ultra-finetuned", UNIT_IMAGES, 0.06),
];

/// The price of `endpoint_id` in [`PRICES`], if it has one.
pub fn price_of(endpoint_id: &str) -> Option<&'static Price> {
    PRICES.iter().find(|p| p.endpoint_id == endpoint_id)
}

/// `x` rounded to `decimals` decimal places.
pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// The units a successful request of `endpoint_id` with this `output` bills: 1 for a trainer,
/// the megapixels of the output images (sum of `width × height / 1e6`, rounded to 3 decimals)
/// or their number, per the endpoint's [`Price::unit`]; `None` for an endpoint without a price.
pub(crate) fn billable_units(endpoint_id: &str, output: &Value) -> Option<f64> {
    let price = price_of(endpoint_id)?;
    let images = output
        .get("images")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Some(match price.unit {
        UNIT_MEGAPIXELS => {
            let px: f64 = images
                .iter()
                .map(|i| {
                    let side = |k: &str| i.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                    side("width") * side("height")
                })
                .sum();
            round_to(px / 1e6, 3)
        }
        UNIT_IMAGES => images.len() as f64,
        _ => 1.0,
    })
}

/// The units a call of `endpoint_id` with its default input bills on the mock (what the
/// `historical_api_price` estimate multiplies by): 1 training run, 1 image, or the megapixels of
/// one image of the endpoint's default size as the mock renders it.
pub(crate) fn default_call_units(endpoint_id: &str) -> Option<f64> {
    let price = price_of(endpoint_id)?;
    Some(match price.unit {
        UNIT_MEGAPIXELS => {
            let image_size = match validate::model(endpoint_id).map(|m| &m.kind) {
                Some(ModelKind::Generator { image_size, .. }) => *image_size,
                _ => true,
            };
            let (w, h) = state::default_size(image_size);
            round_to(f64::from(w) * f64::from(h) / 1e6, 3)
        }
        _ => 1.0,
    })
}

/// `units` as the `x-fal-billable-units` header shows them: a decimal string without trailing
/// zeros (`1`, `0.197`, `2`).
pub(crate) fn format_units(units: f64) -> String {
    let s = format!("{units:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Most tag pairs the gateway keeps.
const MAX_TAGS: usize = 10;
/// Longest tag key, in characters.
const MAX_TAG_KEY: usize = 64;
/// Longest tag value, in characters.
const MAX_TAG_VALUE: usize = 256;
/// Most bytes of keys and values summed over the pairs kept.
const MAX_TAG_BYTES: usize = 1024;

/// The platform headers of one request (a queue submit, a sync run or a streaming run), as the
/// mock's gateway read them: [`FalMock::platform_headers`](super::FalMock::platform_headers).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlatformHeaders {
    /// The `X-Fal-Tags` pairs the gateway kept, in order (keys trimmed and lower-cased, values
    /// trimmed; a repeated key keeps its last value in its first position). Pairs fal's rules
    /// reject are dropped, as fal's gateway "fails open and drops pairs it rejects": no `=`, a
    /// key not matching `[a-z0-9._-]+` or longer than 64 characters or starting with `fal.`, a
    /// value longer than 256 characters or not printable ASCII, a pair past the 10th kept one,
    /// or one that would take keys and values past 1024 bytes.
    pub tags: Vec<(String, String)>,
    /// `false` when `X-Fal-Store-IO: 0` was sent: the request's input and output are not
    /// stored (`GET /v1/models/requests/by-endpoint?expand=payloads` shows them as `null`).
    pub store_io: bool,
    /// `X-Fal-No-Retry` was `1`, `true` or `yes`.
    pub no_retry: bool,
    /// `X-Fal-Retry-Config` parsed as JSON (`None` when absent or not JSON).
    pub retry_config: Option<Value>,
    /// `x-app-fal-disable-fallback: true` (or `1`) was sent, or `x-fal-disable-fallbacks` (any
    /// value).
    pub fallbacks_disabled: bool,
}

impl Default for PlatformHeaders {
    /// No platform header sent: no tags, I/O stored, retries and fallbacks on.
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            store_io: true,
            no_retry: false,
            retry_config: None,
            fallbacks_disabled: false,
        }
    }
}

impl PlatformHeaders {
    /// Read the platform headers of a request.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let flag = |name: &str, yes: &[&str]| {
            get(name).is_some_and(|v| yes.iter().any(|y| v.eq_ignore_ascii_case(y)))
        };
        Self {
            tags: get("x-fal-tags").map(parse_tags).unwrap_or_default(),
            store_io: !flag("x-fal-store-io", &["0", "false"]),
            no_retry: flag("x-fal-no-retry", &["1", "true", "yes"]),
            retry_config: get("x-fal-retry-config")
                .and_then(|v| serde_json::from_str::<Value>(v).ok()),
            fallbacks_disabled: flag("x-app-fal-disable-fallback", &["true", "1"])
                || headers.contains_key("x-fal-disable-fallbacks"),
        }
    }
}

/// Whether the gateway accepts a tag key (already trimmed and lower-cased).
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars().count() <= MAX_TAG_KEY
        && !k.starts_with("fal.")
        && k.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Whether the gateway accepts a tag value (already trimmed).
fn valid_value(v: &str) -> bool {
    v.len() <= MAX_TAG_VALUE && v.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',')
}

/// The pairs of an `X-Fal-Tags` value the gateway keeps (see [`PlatformHeaders::tags`]).
pub(crate) fn parse_tags(raw: &str) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = Vec::new();
    let (mut pairs, mut bytes) = (0usize, 0usize);
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if !valid_key(&k) || !valid_value(v) || pairs >= MAX_TAGS {
            continue;
        }
        if bytes + k.len() + v.len() > MAX_TAG_BYTES {
            continue;
        }
        pairs += 1;
        bytes += k.len() + v.len();
        match kept.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => kept.push((k, v.to_owned())),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tags_drop_what_the_gateway_rejects() {
        assert_eq!(
            parse_tags(" Customer = acme ,avatar=a-1"),
            pairs(&[("customer", "acme"), ("avatar", "a-1")])
        );
        assert_eq!(
            parse_tags("a=1,noequals,fal.x=2,bad key=3,ok=caf\u{e9},b=2,a=3"),
            pairs(&[("a", "3"), ("b", "2")])
        );
        let long_key = format!("{}=v", "k".repeat(65));
        let long_value = format!("k={}", "v".repeat(257));
        assert!(parse_tags(&long_key).is_empty());
        assert!(parse_tags(&long_value).is_empty());
        let many: Vec<String> = (0..12).map(|i| format!("k{i}=v")).collect();
        let kept = parse_tags(&many.join(","));
        assert_eq!(kept.len(), 10);
        assert_eq!(kept[9].0, "k9");
        // 4 pairs of 2 + 255 bytes = 1028 > 1024: the fourth is dropped.
        let big: Vec<String> = (0..4)
            .map(|i| format!("k{i}={}", "v".repeat(255)))
            .collect();
        assert_eq!(parse_tags(&big.join(",")).len(), 3);
        assert_eq!(parse_tags("empty="), pairs(&[("empty", "")]));
    }

    #[test]
    fn headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert("x-fal-store-io", "0".parse().unwrap());
        h.insert("x-fal-no-retry", "Yes".parse().unwrap());
        h.insert(
            "x-fal-retry-config",
            r#"{"timeout": {"retries": 2}}"#.parse().unwrap(),
        );
        h.insert("x-fal-disable-fallbacks", "".parse().unwrap());
        let p = PlatformHeaders::from_headers(&h);
        assert!(!p.store_io && p.no_retry && p.fallbacks_disabled);
        assert_eq!(p.retry_config, Some(json!({"timeout": {"retries": 2}})));
        assert_eq!(
            PlatformHeaders::from_headers(&HeaderMap::new()),
            PlatformHeaders::default()
        );
    }

    #[test]
    fn units() {
        let out = json!({"images": [{"width": 512, "height": 384}, {"width": 512, "height": 384}]});
        assert_eq!(billable_units("fal-ai/flux-lora", &out), Some(0.393));
        assert_eq!(
            billable_units("fal-ai/flux-pro/v1.1-ultra-finetuned", &out),
            Some(2.0)
        );
        assert_eq!(
            billable_units("fal-ai/flux-lora-fast-training", &json!({})),
            Some(1.0)
        );
        assert_eq!(billable_units("someone/echo", &out), None);
        assert_eq!(default_call_units("fal-ai/flux-lora"), Some(0.197));
        assert_eq!(format_units(1.0), "1");
        assert_eq!(format_units(0.197), "0.197");
        assert_eq!(format_units(0.39), "0.39");
        assert!(PRICES.iter().all(|p| p.unit_price > 0.0));
        assert!(PRICES
            .iter()
            .all(|p| validate::model(p.endpoint_id).is_some()));
    }
}
