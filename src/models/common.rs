//! Types shared by several endpoints ([`File`], [`Image`], [`OutputFormat`], [`Acceleration`],
//! [`LoraWeight`], [`ImageSize`], [`LoraTrainingOutput`], [`GenerationOutput`]), plus the checks
//! the `validate()` methods use.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// `output_format`: the encoding of generated images.
///
/// Wire values `"jpeg"`, `"png"` and `"webp"`. Which ones an endpoint takes, and its server
/// default, differ: `fal-ai/flux-lora` and `fal-ai/flux-pro/v1.1-ultra-finetuned` take `jpeg`
/// and `png` (default `jpeg`); `fal-ai/flux-2/lora` and `fal-ai/z-image/turbo/lora` also take
/// `webp` (default `png`). Each input's `validate()` refuses a format its endpoint does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutputFormat {
    /// `"jpeg"`.
    Jpeg,
    /// `"png"`.
    Png,
    /// `"webp"` (FLUX.2 and Z-Image generators only).
    Webp,
}

impl OutputFormat {
    /// Every format, in wire order.
    pub const ALL: [OutputFormat; 3] = [Self::Jpeg, Self::Png, Self::Webp];

    /// The wire value: `jpeg`, `png` or `webp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }
}

/// `acceleration`: how much speed the generator may trade for quality.
///
/// Wire values `"none"`, `"regular"` and `"high"`. `fal-ai/flux-lora` takes `none` and
/// `regular` (server default `none`; added on fal in early 2026); `fal-ai/flux-2/lora` and
/// `fal-ai/z-image/turbo/lora` take all three (server default `regular`). Each input's
/// `validate()` refuses a level its endpoint does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Acceleration {
    /// `"none"`: full quality. (Named `Off` so that it cannot be mistaken for `Option::None`.)
    #[serde(rename = "none")]
    Off,
    /// `"regular"`: balances speed and quality.
    Regular,
    /// `"high"`: fastest (FLUX.2 and Z-Image generators only).
    High,
}

impl Acceleration {
    /// Every level, in wire order.
    pub const ALL: [Acceleration; 3] = [Self::Off, Self::Regular, Self::High];

    /// The wire value: `none`, `regular` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "none",
            Self::Regular => "regular",
            Self::High => "high",
        }
    }
}

/// One entry of a generator's `loras`: a LoRA file and how strongly to apply it.
///
/// fal's `LoraWeight` (`fal-ai/flux-lora`) and `LoRAInput` (`fal-ai/flux-2/lora`,
/// `fal-ai/z-image/turbo/lora`) have the same two fields. See
/// <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraWeight {
    /// `path` (required): URL (or path) of the LoRA weights, e.g. a trainer's
    /// `diffusers_lora_file.url`. Must not be empty.
    pub path: String,
    /// `scale`: LoRA strength. Server default `1`; range 0..=4. Always sent.
    #[serde(default = "default_scale")]
    pub scale: f64,
}

fn default_scale() -> f64 {
    1.0
}

impl LoraWeight {
    /// A LoRA at the default scale `1.0`.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            scale: default_scale(),
        }
    }

    /// The same LoRA at another scale (range 0..=4).
    #[must_use]
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }
}

impl Default for LoraWeight {
    /// An empty path at scale `1.0` (the server default scale).
    fn default() -> Self {
        Self::new(String::new())
    }
}

/// `image_size`: a preset name or a custom `{"width", "height"}` object.
///
/// Presets serialize as their snake_case names (`"portrait_4_3"`), [`ImageSize::Custom`] as
/// `{"width": 1024, "height": 1536}`. Server default `landscape_4_3` on every generator that takes
/// it. Custom sides: 1..=14142 pixels on `fal-ai/flux-lora` and `fal-ai/z-image/turbo/lora`,
/// 512..=2048 on `fal-ai/flux-2/lora` (its field description); a missing side defaults to 512 on
/// the server and when deserializing. See <https://fal.ai/models/fal-ai/flux-lora/api>.
///
/// ```
/// use fal_client::models::ImageSize;
///
/// assert_eq!(serde_json::to_string(&ImageSize::SquareHd)?, "\"square_hd\"");
/// assert_eq!(
///     serde_json::to_string(&ImageSize::custom(1024, 1536))?,
///     r#"{"width":1024,"height":1536}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ImageSize {
    /// `"square_hd"`.
    SquareHd,
    /// `"square"`.
    Square,
    /// `"portrait_4_3"`.
    Portrait4_3,
    /// `"portrait_16_9"`.
    Portrait16_9,
    /// `"landscape_4_3"` (server default).
    #[default]
    Landscape4_3,
    /// `"landscape_16_9"`.
    Landscape16_9,
    /// `{"width": .., "height": ..}`: a custom size in pixels.
    Custom {
        /// `width` in pixels (server default 512).
        width: u32,
        /// `height` in pixels (server default 512).
        height: u32,
    },
}

impl ImageSize {
    /// The largest custom width or height fal's `ImageSize` schema accepts, in pixels.
    pub const MAX_SIDE: u32 = 14_142;

    /// The six presets.
    pub const PRESETS: [ImageSize; 6] = [
        Self::SquareHd,
        Self::Square,
        Self::Portrait4_3,
        Self::Portrait16_9,
        Self::Landscape4_3,
        Self::Landscape16_9,
    ];

    /// A custom size in pixels (the sides each generator accepts are checked by its input's
    /// `validate()`).
    pub fn custom(width: u32, height: u32) -> Self {
        Self::Custom { width, height }
    }

    /// Width and height in pixels: fal's preset sizes (`square_hd` 1024×1024, `square`
    /// 512×512, `portrait_4_3` 768×1024, `portrait_16_9` 576×1024, `landscape_4_3` 1024×768,
    /// `landscape_16_9` 1024×576), or the custom size.
    pub fn dimensions(&self) -> (u32, u32) {
        match *self {
            Self::SquareHd => (1024, 1024),
            Self::Square => (512, 512),
            Self::Portrait4_3 => (768, 1024),
            Self::Portrait16_9 => (576, 1024),
            Self::Landscape4_3 => (1024, 768),
            Self::Landscape16_9 => (1024, 576),
            Self::Custom { width, height } => (width, height),
        }
    }

    /// Megapixels of one image of this size (width × height / 1,000,000).
    pub fn megapixels(&self) -> f64 {
        let (w, h) = self.dimensions();
        f64::from(w) * f64::from(h) / 1_000_000.0
    }

    /// The preset's wire name, or `None` for [`ImageSize::Custom`].
    pub fn preset_name(&self) -> Option<&'static str> {
        Some(match self {
            Self::SquareHd => "square_hd",
            Self::Square => "square",
            Self::Portrait4_3 => "portrait_4_3",
            Self::Portrait16_9 => "portrait_16_9",
            Self::Landscape4_3 => "landscape_4_3",
            Self::Landscape16_9 => "landscape_16_9",
            Self::Custom { .. } => return None,
        })
    }
}

fn default_side() -> u32 {
    512
}

#[derive(Serialize, Deserialize)]
struct CustomSize {
    #[serde(default = "default_side")]
    width: u32,
    #[serde(default = "default_side")]
    height: u32,
}

impl Serialize for ImageSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match (*self, self.preset_name()) {
            (Self::Custom { width, height }, _) => {
                CustomSize { width, height }.serialize(serializer)
            }
            (_, Some(name)) => serializer.serialize_str(name),
            (_, None) => Err(serde::ser::Error::custom(
                "image_size preset without a wire name",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ImageSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Preset(String),
            Custom(CustomSize),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Preset(name) => Self::PRESETS
                .into_iter()
                .find(|p| p.preset_name() == Some(name.as_str()))
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown image_size preset {name:?}; expected one of square_hd, square, \
                         portrait_4_3, portrait_16_9, landscape_4_3, landscape_16_9 or \
                         {{\"width\", \"height\"}}"
                    ))
                }),
            Raw::Custom(CustomSize { width, height }) => Ok(Self::Custom { width, height }),
        }
    }
}

/// Output of every LoRA trainer the crate types: `fal-ai/flux-lora-portrait-trainer`,
/// `fal-ai/flux-lora-fast-training`, `fal-ai/flux-2-trainer[-v2]` and `fal-ai/z-image-trainer`.
///
/// Pass `diffusers_lora_file.url` as a [`LoraWeight`] path to the trainer's generator
/// (`fal-ai/flux-lora`, `fal-ai/flux-2/lora`, `fal-ai/z-image/turbo/lora`).
/// See <https://fal.ai/models/fal-ai/flux-2-trainer/api>.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoraTrainingOutput {
    /// `diffusers_lora_file` (always present): the trained LoRA weights (diffusers
    /// `.safetensors`).
    pub diffusers_lora_file: File,
    /// `config_file` (always present): the training configuration (JSON).
    pub config_file: File,
    /// `debug_preprocessed_output`: the images as the trainer preprocessed them (crops, masks,
    /// captions). Only `fal-ai/flux-lora-fast-training` returns it, and not always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_preprocessed_output: Option<File>,
}

/// Output of every image generator the crate types: `fal-ai/flux-lora`, `fal-ai/flux-2/lora`,
/// `fal-ai/z-image/turbo/lora` and `fal-ai/flux-pro/v1.1-ultra-finetuned`.
///
/// Only `images` is required when decoding: fal's schemas also require `seed`,
/// `has_nsfw_concepts`, `timings` and `prompt`, but a paid generation's images are not thrown away
/// over a missing informational field (they default to `0`, empty, empty and empty).
/// See <https://fal.ai/models/fal-ai/flux-2/lora/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenerationOutput {
    /// `images`: the generated images ([`Image`] reads both of fal's image shapes).
    pub images: Vec<Image>,
    /// `timings`: opaque timing map (seconds per stage). Empty when fal omits it.
    #[serde(default)]
    pub timings: HashMap<String, f64>,
    /// `seed`: the seed actually used.
    #[serde(default)]
    pub seed: u64,
    /// `has_nsfw_concepts`: per-image NSFW flag, in the order of `images`.
    #[serde(default)]
    pub has_nsfw_concepts: Vec<bool>,
    /// `prompt`: the prompt actually used (it differs from the input when the endpoint expanded
    /// or enhanced it).
    #[serde(default)]
    pub prompt: String,
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

/// Reject an empty file input (a blank URL or data URI, an empty path).
pub(crate) fn require_file(field: &str, value: &crate::file_input::FileInput) -> Result<()> {
    if value.is_empty() {
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

/// [`check_opt_u32`] plus a step: the value must also be a multiple of `multiple_of`.
pub(crate) fn check_opt_steps(
    field: &str,
    value: Option<u32>,
    min: u32,
    max: u32,
    multiple_of: u32,
) -> Result<()> {
    check_opt_u32(field, value, min, max)?;
    match value {
        Some(v) if multiple_of > 1 && v % multiple_of != 0 => Err(Error::invalid_input(
            field,
            format!("must be a multiple of {multiple_of} (got {v})"),
        )),
        _ => Ok(()),
    }
}

/// A learning rate fal's schema leaves unbounded: it must still be a finite number above 0 (a
/// zero or negative rate trains nothing, and training is billed).
pub(crate) fn check_opt_learning_rate(field: &str, value: Option<f64>) -> Result<()> {
    match value {
        Some(v) if !v.is_finite() || v <= 0.0 => Err(Error::invalid_input(
            field,
            format!("must be a finite number above 0 (got {v})"),
        )),
        _ => Ok(()),
    }
}

/// Reject an enum value the endpoint does not take (`allowed` in wire order).
pub(crate) fn check_one_of<T: Copy + PartialEq>(
    field: &str,
    value: Option<T>,
    allowed: &[T],
    wire: fn(T) -> &'static str,
) -> Result<()> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            let list: Vec<&str> = allowed.iter().map(|a| wire(*a)).collect();
            Err(Error::invalid_input(
                field,
                format!(
                    "must be one of {} on this endpoint (got {})",
                    list.join(", "),
                    wire(v)
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Check `loras`: at most `max` entries (when the endpoint has a limit), each with a path and a
/// finite scale in 0..=4.
pub(crate) fn check_loras(loras: &[LoraWeight], max: Option<usize>) -> Result<()> {
    if let Some(max) = max {
        if loras.len() > max {
            return Err(Error::invalid_input(
                "loras",
                format!(
                    "takes at most {max} LoRAs on this endpoint (got {})",
                    loras.len()
                ),
            ));
        }
    }
    for (i, lora) in loras.iter().enumerate() {
        require_non_empty(&format!("loras[{i}].path"), &lora.path)?;
        check_f64(&format!("loras[{i}].scale"), lora.scale, 0.0, 4.0, "0..=4")?;
    }
    Ok(())
}

/// Check a custom `image_size`: each side in `min..=max` pixels. Presets are always accepted.
pub(crate) fn check_image_size(size: Option<ImageSize>, min: u32, max: u32) -> Result<()> {
    if let Some(ImageSize::Custom { width, height }) = size {
        check_opt_u32("image_size.width", Some(width), min, max)?;
        check_opt_u32("image_size.height", Some(height), min, max)?;
    }
    Ok(())
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
