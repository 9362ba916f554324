//! Types shared by several endpoints: [`File`], [`Image`] and [`OutputFormat`], plus the range
//! checks the `validate()` methods use.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A file stored on fal's CDN, as returned by trainers (fal's `File` schema).
///
/// Only `url` is required on the wire; everything else is optional and may be absent or `null`.
/// Shape documented on <https://fal.ai/models/fal-ai/flux-lora-portrait-trainer/api>
/// (output `diffusers_lora_file` / `config_file`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct File {
    /// `url`: download URL of the file (fal CDN, or a data URI when `sync_mode` was set).
    /// Required.
    pub url: String,
    /// `content_type`: MIME type, e.g. `application/octet-stream`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `file_name`: file name; fal generates one when absent. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// `file_size`: size in bytes. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// `file_data`: inline file bytes. Declared in fal's schema but normally absent from JSON
    /// answers; kept only so nothing is lost when it does appear. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
}

/// A generated image.
///
/// One struct deserializes both image shapes fal uses:
/// - the legacy `fast_sdxl` image of the FLUX endpoints (`url`, `width`, `height` required,
///   `content_type` optional, server default `image/jpeg`);
/// - the current fal `Image` (only `url` required; `width`, `height`, `content_type`,
///   `file_name`, `file_size` optional/nullable).
///
/// Returned by <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api> and
/// <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Image {
    /// `url`: image URL (fal CDN, or a data URI when `sync_mode` was set). Required.
    pub url: String,
    /// `width`: width in pixels. Required in the legacy shape, optional in the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// `height`: height in pixels. Required in the legacy shape, optional in the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `content_type`: MIME type, e.g. `image/jpeg` (the legacy shape's server default) or
    /// `image/png`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `file_name`: file name (current shape only). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// `file_size`: size in bytes (current shape only). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// `output_format`: the encoding of generated images. Server default `jpeg`.
///
/// Wire values `"jpeg"` and `"png"`; used by
/// <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api> and
/// <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutputFormat {
    /// `"jpeg"` (server default).
    #[default]
    Jpeg,
    /// `"png"`.
    Png,
}

/// Reject an empty (or whitespace-only) required string.
pub(crate) fn require_non_empty(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid_input(
            field,
            "is required and must not be empty",
        ));
    }
    Ok(())
}

/// Reject a float outside `min..=max` (NaN and infinities are always rejected).
/// `range` is the human-readable range used in the message.
pub(crate) fn check_f64(field: &str, value: f64, min: f64, max: f64, range: &str) -> Result<()> {
    if !value.is_finite() || value < min || value > max {
        return Err(Error::invalid_input(
            field,
            format!("must be a finite number in {range} (got {value})"),
        ));
    }
    Ok(())
}

/// [`check_f64`] for an optional field: `None` is accepted.
pub(crate) fn check_opt_f64(
    field: &str,
    value: Option<f64>,
    min: f64,
    max: f64,
    range: &str,
) -> Result<()> {
    match value {
        Some(v) => check_f64(field, v, min, max, range),
        None => Ok(()),
    }
}

/// Reject an integer outside `min..=max`; `None` is accepted.
pub(crate) fn check_opt_u32(field: &str, value: Option<u32>, min: u32, max: u32) -> Result<()> {
    match value {
        Some(v) if v < min || v > max => Err(Error::invalid_input(
            field,
            format!("must be in {min}..={max} (got {v})"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn float_checks_reject_non_finite_and_out_of_range() {
        assert!(check_f64("x", 0.5, 0.0, 1.0, "0..=1").is_ok());
        assert!(check_f64("x", 0.0, 0.0, 1.0, "0..=1").is_ok());
        assert!(check_f64("x", 1.0, 0.0, 1.0, "0..=1").is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.001, 1.001] {
            assert_eq!(field_of(check_f64("x", bad, 0.0, 1.0, "0..=1")), "x");
        }
        assert!(check_opt_f64("x", None, 0.0, 1.0, "0..=1").is_ok());
    }

    #[test]
    fn messages_state_range_and_value() {
        let err = check_opt_u32("steps", Some(0), 1, 10_000).unwrap_err();
        let s = err.to_string();
        assert!(
            s.contains("steps") && s.contains("1..=10000") && s.contains("got 0"),
            "{s}"
        );
        let err = check_f64("learning_rate", f64::NAN, 0.0, 1.0, "0..=1").unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
    }

    #[test]
    fn blank_strings_are_rejected() {
        assert_eq!(field_of(require_non_empty("prompt", "  \n")), "prompt");
        assert!(require_non_empty("prompt", "a").is_ok());
    }

    #[test]
    fn image_decodes_both_shapes() {
        let legacy: Image = serde_json::from_str(
            r#"{"url":"u","width":1024,"height":768,"content_type":"image/jpeg"}"#,
        )
        .unwrap();
        assert_eq!((legacy.width, legacy.height), (Some(1024), Some(768)));
        let current: Image = serde_json::from_str(
            r#"{"url":"u","width":null,"height":null,"file_name":"a.png","file_size":12}"#,
        )
        .unwrap();
        assert_eq!(current.width, None);
        assert_eq!(current.file_size, Some(12));
    }
}
