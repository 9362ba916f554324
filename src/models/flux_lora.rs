//! `fal-ai/flux-lora`: FLUX.1 \[dev\] text-to-image with LoRAs, the generator for portrait
//! avatars trained by [`PortraitTrainer`](crate::models::PortraitTrainer).
//!
//! API page: <https://fal.ai/models/fal-ai/flux-lora/api>.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::{
    check_f64, check_opt_f64, check_opt_u32, require_non_empty, Image, OutputFormat,
};
use crate::endpoint::Endpoint;
use crate::error::Result;

/// FLUX.1 \[dev\] with LoRAs, endpoint id `fal-ai/flux-lora`
/// (<https://fal.ai/models/fal-ai/flux-lora/api>).
///
/// Input [`FluxLoraInput`] (only `prompt` is required), output [`FluxLoraOutput`]. To generate
/// with a portrait avatar, pass the trainer's `diffusers_lora_file.url` as a LoRA path.
///
/// ```
/// use fal_client::models::{FluxLora, FluxLoraInput, ImageSize, OutputFormat};
/// use fal_client::Endpoint;
///
/// let input = FluxLoraInput {
///     image_size: Some(ImageSize::Portrait4_3),
///     output_format: Some(OutputFormat::Png),
///     ..FluxLoraInput::new("TOK_anna, portrait photo, golden hour")
/// }
/// .with_lora("https://v3.fal.media/files/lion/lora.safetensors", 1.0);
/// <FluxLora as Endpoint>::validate(&input)?;
///
/// let json = serde_json::to_value(&input)?;
/// assert_eq!(json["image_size"], "portrait_4_3");
/// assert_eq!(json["loras"][0]["scale"], 1.0);
///
/// let bad = input.with_lora("https://example.com/other.safetensors", 4.5);
/// assert!(bad.validate().is_err()); // loras[1].scale: range 0..=4
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FluxLora;

impl Endpoint for FluxLora {
    const ID: &'static str = "fal-ai/flux-lora";
    type Input = FluxLoraInput;
    type Output = FluxLoraOutput;

    fn validate(input: &Self::Input) -> Result<()> {
        input.validate()
    }
}

/// Input of [`FluxLora`]; only `prompt` is required.
///
/// Build it with [`FluxLoraInput::new`], add LoRAs with [`with_lora`](Self::with_lora), and set
/// optional fields with struct update syntax. Unset (`None`) fields and an empty `loras` list are
/// not sent, so the server default applies. See <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FluxLoraInput {
    /// `prompt` (required): the text prompt; include the LoRA's trigger phrase. Must not be
    /// empty.
    pub prompt: String,
    /// `loras`: LoRA weights to apply. Server default `[]`; not sent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraWeight>,
    /// `image_size`: a preset or a custom size. Server default `landscape_4_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,
    /// `num_inference_steps`: denoising steps. Server default `28`; range 1..=50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<u32>,
    /// `guidance_scale`: classifier-free guidance (how closely to follow the prompt). Server
    /// default `3.5`; range 0..=35.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    /// `num_images`: how many images to generate. Server default `1`; range 1..=4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images: Option<u32>,
    /// `seed`: fixed seed for reproducible output. Server default: random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `sync_mode`: return images as data URIs instead of CDN URLs (the output is then not kept
    /// in the request history). Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_mode: Option<bool>,
    /// `enable_safety_checker`: run fal's NSFW checker on the outputs. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_safety_checker: Option<bool>,
    /// `output_format`: `jpeg` or `png`. Server default `jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

impl FluxLoraInput {
    /// An input with only the required `prompt` set; every other field is left to the server
    /// default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Append a LoRA (`path` = URL of the `.safetensors` file, `scale` in 0..=4).
    #[must_use]
    pub fn with_lora(mut self, path: impl Into<String>, scale: f64) -> Self {
        self.loras.push(LoraWeight {
            path: path.into(),
            scale,
        });
        self
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when `prompt` is empty, a LoRA has an empty
    /// path (`loras[i].path`) or a scale that is not a finite number in 0..=4
    /// (`loras[i].scale`), a custom `image_size` has a width or height outside 1..=14142
    /// (`image_size.width` / `image_size.height`), `num_inference_steps` is outside 1..=50,
    /// `guidance_scale` is not a finite number in 0..=35, or `num_images` is outside 1..=4.
    pub fn validate(&self) -> Result<()> {
        require_non_empty("prompt", &self.prompt)?;
        for (i, lora) in self.loras.iter().enumerate() {
            require_non_empty(&format!("loras[{i}].path"), &lora.path)?;
            check_f64(&format!("loras[{i}].scale"), lora.scale, 0.0, 4.0, "0..=4")?;
        }
        if let Some(ImageSize::Custom { width, height }) = self.image_size {
            check_opt_u32("image_size.width", Some(width), 1, ImageSize::MAX_SIDE)?;
            check_opt_u32("image_size.height", Some(height), 1, ImageSize::MAX_SIDE)?;
        }
        check_opt_u32("num_inference_steps", self.num_inference_steps, 1, 50)?;
        check_opt_f64("guidance_scale", self.guidance_scale, 0.0, 35.0, "0..=35")?;
        check_opt_u32("num_images", self.num_images, 1, 4)?;
        Ok(())
    }
}

fn default_scale() -> f64 {
    1.0
}

/// One entry of `loras`: a LoRA file and how strongly to apply it.
/// See <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraWeight {
    /// `path` (required): URL (or path) of the LoRA weights, e.g. a portrait trainer's
    /// `diffusers_lora_file.url`. Must not be empty.
    pub path: String,
    /// `scale`: LoRA strength. Server default `1`; range 0..=4. Always sent.
    #[serde(default = "default_scale")]
    pub scale: f64,
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
/// `{"width": 1024, "height": 1536}`. Server default `landscape_4_3`; custom sides are limited
/// to 1..=14142 pixels (a missing side defaults to 512 on the server and when deserializing).
/// See <https://fal.ai/models/fal-ai/flux-lora/api>.
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
    /// `{"width": .., "height": ..}`: a custom size in pixels, each side 1..=14142.
    Custom {
        /// `width` in pixels, 1..=14142 (server default 512).
        width: u32,
        /// `height` in pixels, 1..=14142 (server default 512).
        height: u32,
    },
}

impl ImageSize {
    /// The largest accepted custom width or height, in pixels.
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

    /// A custom size in pixels (each side 1..=14142, checked by
    /// [`FluxLoraInput::validate`]).
    pub fn custom(width: u32, height: u32) -> Self {
        Self::Custom { width, height }
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

/// Output of [`FluxLora`]. See <https://fal.ai/models/fal-ai/flux-lora/api>.
///
/// Only `images` is required when decoding: fal's schema also requires `seed`,
/// `has_nsfw_concepts` and `prompt`, but a paid generation's images are not thrown away over a
/// missing informational field (they default to `0`, empty and empty).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FluxLoraOutput {
    /// `images`: the generated images (legacy shape `url`/`width`/`height`/`content_type`, or
    /// the current shape with only `url` guaranteed; [`Image`] reads both).
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
    /// `prompt`: the prompt actually used.
    #[serde(default)]
    pub prompt: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn image_size_presets_round_trip() {
        for p in ImageSize::PRESETS {
            let json = serde_json::to_value(p).unwrap();
            assert!(json.is_string());
            assert_eq!(serde_json::from_value::<ImageSize>(json).unwrap(), p);
        }
        let c: ImageSize = serde_json::from_str(r#"{"width":640}"#).unwrap();
        assert_eq!(c, ImageSize::custom(640, 512));
        assert!(serde_json::from_str::<ImageSize>("\"huge\"").is_err());
    }

    #[test]
    fn lora_scale_defaults_to_one() {
        let l: LoraWeight = serde_json::from_str(r#"{"path":"p"}"#).unwrap();
        assert_eq!(l, LoraWeight::new("p"));
        assert_eq!(LoraWeight::default().scale, 1.0);
    }

    #[test]
    fn lora_errors_name_the_index() {
        let input = FluxLoraInput::new("p")
            .with_lora("a", 1.0)
            .with_lora("", 1.0);
        match input.validate() {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "loras[1].path"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
