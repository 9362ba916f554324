//! `fal-ai/z-image/turbo/lora`: Z-Image Turbo text-to-image with LoRAs, the generator for LoRAs
//! trained by [`ZImageTrainer`](crate::models::ZImageTrainer).
//!
//! Submit goes to the full id; status, result and cancel use the app id `fal-ai/z-image`.
//! API page: <https://fal.ai/models/fal-ai/z-image/turbo/lora/api>.

use serde::{Deserialize, Serialize};

use super::common::{
    check_image_size, check_loras, check_opt_u32, require_non_empty, Acceleration,
    GenerationOutput, ImageSize, LoraWeight, OutputFormat,
};
use crate::error::Result;

/// Z-Image Turbo with LoRAs, endpoint id `fal-ai/z-image/turbo/lora`
/// (<https://fal.ai/models/fal-ai/z-image/turbo/lora/api>).
///
/// Input [`ZImageTurboLoraInput`] (only `prompt` is required), output [`GenerationOutput`].
/// There is no `guidance_scale`, and at most 8 inference steps.
///
/// ```
/// use fal_client::models::{ZImageTurboLora, ZImageTurboLoraInput};
/// use fal_client::Endpoint;
///
/// let input = ZImageTurboLoraInput::new("a photo of TOK_anna, film grain")
///     .with_lora("https://v3.fal.media/files/koala/lora.safetensors", 1.0);
/// <ZImageTurboLora as Endpoint>::validate(&input)?;
/// let bad = ZImageTurboLoraInput { num_inference_steps: Some(12), ..input };
/// assert!(bad.validate().is_err()); // 1..=8
/// # Ok::<(), fal_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ZImageTurboLora;

endpoint!(
    ZImageTurboLora,
    "fal-ai/z-image/turbo/lora",
    ZImageTurboLoraInput,
    GenerationOutput
);

/// Input of [`ZImageTurboLora`] (fal schema `ZImageTurboLoraInput`); only `prompt` is required.
///
/// Unset (`None`) fields and an empty `loras` list are not sent, so the server default applies.
/// See <https://fal.ai/models/fal-ai/z-image/turbo/lora/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ZImageTurboLoraInput {
    /// `prompt` (required): the text prompt. Must not be empty.
    pub prompt: String,
    /// `loras`: LoRA weights to apply, **at most 3**. Server default `[]`; not sent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraWeight>,
    /// `image_size`: a preset or a custom size (each side 1..=14142 pixels). Server default
    /// `landscape_4_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,
    /// `acceleration`: `none`, `regular` or `high`. Server default `regular`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<Acceleration>,
    /// `num_inference_steps`: denoising steps. Server default `8`; range 1..=8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<u32>,
    /// `num_images`: how many images to generate. Server default `1`; range 1..=4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images: Option<u32>,
    /// `seed`: fixed seed for reproducible output. Server default: random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `sync_mode`: return images as data URIs instead of CDN URLs. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_mode: Option<bool>,
    /// `enable_prompt_expansion`: let the service expand the prompt; fal says it adds 0.0025
    /// credits to the price of the request. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prompt_expansion: Option<bool>,
    /// `enable_safety_checker`: run fal's NSFW checker on the outputs. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_safety_checker: Option<bool>,
    /// `output_format`: `jpeg`, `png` or `webp`. Server default `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

impl ZImageTurboLoraInput {
    /// Most LoRAs one request takes.
    pub const MAX_LORAS: usize = 3;

    /// An input with only the required `prompt` set; every other field is left to the server
    /// default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Append a LoRA (`path` = URL of the `.safetensors` file, `scale` in 0..=4; at most 3).
    #[must_use]
    pub fn with_lora(mut self, path: impl Into<String>, scale: f64) -> Self {
        self.loras.push(LoraWeight::new(path).with_scale(scale));
        self
    }

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (`landscape_4_3`, acceleration `regular`, 8 steps, one image, no sync mode, no prompt
    /// expansion, the safety checker on, `png`). `seed` stays unset (random).
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            image_size: self.image_size.or(Some(ImageSize::Landscape4_3)),
            acceleration: self.acceleration.or(Some(Acceleration::Regular)),
            num_inference_steps: self.num_inference_steps.or(Some(8)),
            num_images: self.num_images.or(Some(1)),
            sync_mode: self.sync_mode.or(Some(false)),
            enable_prompt_expansion: self.enable_prompt_expansion.or(Some(false)),
            enable_safety_checker: self.enable_safety_checker.or(Some(true)),
            output_format: self.output_format.or(Some(OutputFormat::Png)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when `prompt` is
    /// empty, there are more than 3 LoRAs, a LoRA has an empty path or a scale outside 0..=4, a
    /// custom `image_size` side is outside 1..=14142, `num_inference_steps` is outside 1..=8, or
    /// `num_images` is outside 1..=4.
    pub fn validate(&self) -> Result<()> {
        require_non_empty("prompt", &self.prompt)?;
        check_loras(&self.loras, Some(Self::MAX_LORAS))?;
        check_image_size(self.image_size, 1, ImageSize::MAX_SIDE)?;
        check_opt_u32("num_inference_steps", self.num_inference_steps, 1, 8)?;
        check_opt_u32("num_images", self.num_images, 1, 4)?;
        Ok(())
    }
}
