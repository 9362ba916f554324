//! `fal-ai/flux-2/lora`: FLUX.2 \[dev\] text-to-image with LoRAs, the generator for LoRAs trained by
//! [`Flux2Trainer`](crate::models::Flux2Trainer) and [`Flux2TrainerV2`](crate::models::Flux2TrainerV2).
//!
//! Submit goes to the full id; status, result and cancel use the app id `fal-ai/flux-2`.
//! API page: <https://fal.ai/models/fal-ai/flux-2/lora/api>.

use serde::{Deserialize, Serialize};

use super::common::{
    check_image_size, check_loras, check_opt_f64, check_opt_u32, require_non_empty, Acceleration,
    GenerationOutput, ImageSize, LoraWeight, OutputFormat,
};
use crate::error::Result;

/// FLUX.2 \[dev\] with LoRAs, endpoint id `fal-ai/flux-2/lora`
/// (<https://fal.ai/models/fal-ai/flux-2/lora/api>).
///
/// Input [`Flux2LoraInput`] (only `prompt` is required), output [`GenerationOutput`] (its images
/// are fal's current `ImageFile`: `width` and `height` may be missing).
///
/// ```
/// use fal_client::models::{Flux2Lora, Flux2LoraInput, ImageSize};
/// use fal_client::{Endpoint, EndpointId};
///
/// let input = Flux2LoraInput {
///     image_size: Some(ImageSize::custom(1024, 1536)),
///     ..Flux2LoraInput::new("a photo of TOK_anna on a mountain top")
/// }
/// .with_lora("https://v3.fal.media/files/tiger/lora.safetensors", 1.0);
/// <Flux2Lora as Endpoint>::validate(&input)?;
/// assert_eq!(EndpointId::parse(Flux2Lora::ID)?.app_id(), "fal-ai/flux-2");
///
/// let too_small = Flux2LoraInput { image_size: Some(ImageSize::custom(256, 256)), ..input };
/// assert!(too_small.validate().is_err()); // 512..=2048 per side
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flux2Lora;

endpoint!(
    Flux2Lora,
    "fal-ai/flux-2/lora",
    Flux2LoraInput,
    GenerationOutput
);

/// Input of [`Flux2Lora`] (fal schema `Flux2LoraInput`); only `prompt` is required.
///
/// Build it with [`Flux2LoraInput::new`], add LoRAs with [`with_lora`](Self::with_lora) (at most
/// 3), and set optional fields with struct update syntax. Unset (`None`) fields and an empty
/// `loras` list are not sent, so the server default applies.
/// See <https://fal.ai/models/fal-ai/flux-2/lora/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Flux2LoraInput {
    /// `prompt` (required): the text prompt; include the words the LoRA was captioned with.
    /// Must not be empty.
    pub prompt: String,
    /// `loras`: LoRA weights to apply, **at most 3**. Server default `[]`; not sent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraWeight>,
    /// `image_size`: a preset or a custom size; custom sides must be 512..=2048 pixels (fal's
    /// field description). Server default `landscape_4_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<ImageSize>,
    /// `acceleration`: `none`, `regular` or `high`. Server default `regular`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<Acceleration>,
    /// `num_inference_steps`: denoising steps. Server default `28`; range 4..=50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<u32>,
    /// `guidance_scale`: how closely to follow the prompt. Server default `2.5`; range 0..=20.
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
    /// `enable_prompt_expansion`: let the service expand the prompt. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prompt_expansion: Option<bool>,
    /// `enable_safety_checker`: run fal's NSFW checker on the outputs. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_safety_checker: Option<bool>,
    /// `output_format`: `jpeg`, `png` or `webp`. Server default `png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

impl Flux2LoraInput {
    /// Most LoRAs one request takes.
    pub const MAX_LORAS: usize = 3;
    /// Smallest custom `image_size` side, in pixels.
    pub const MIN_SIDE: u32 = 512;
    /// Largest custom `image_size` side, in pixels.
    pub const MAX_SIDE: u32 = 2048;

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
    /// (`landscape_4_3`, acceleration `regular`, 28 steps, guidance 2.5, one image, no sync
    /// mode, no prompt expansion, the safety checker on, `png`). `seed` stays unset (random).
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            image_size: self.image_size.or(Some(ImageSize::Landscape4_3)),
            acceleration: self.acceleration.or(Some(Acceleration::Regular)),
            num_inference_steps: self.num_inference_steps.or(Some(28)),
            guidance_scale: self.guidance_scale.or(Some(2.5)),
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
    /// empty, there are more than 3 LoRAs (`loras`), a LoRA has an empty path or a scale outside
    /// 0..=4 (`loras[i].path`, `loras[i].scale`), a custom `image_size` side is outside
    /// 512..=2048, `num_inference_steps` is outside 4..=50, `guidance_scale` is not a finite
    /// number in 0..=20, or `num_images` is outside 1..=4.
    pub fn validate(&self) -> Result<()> {
        require_non_empty("prompt", &self.prompt)?;
        check_loras(&self.loras, Some(Self::MAX_LORAS))?;
        check_image_size(self.image_size, Self::MIN_SIDE, Self::MAX_SIDE)?;
        check_opt_u32("num_inference_steps", self.num_inference_steps, 4, 50)?;
        check_opt_f64("guidance_scale", self.guidance_scale, 0.0, 20.0, "0..=20")?;
        check_opt_u32("num_images", self.num_images, 1, 4)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn at_most_three_loras() {
        let mut input = Flux2LoraInput::new("p");
        for i in 0..3 {
            input = input.with_lora(format!("https://x/{i}.safetensors"), 1.0);
        }
        input.validate().unwrap();
        let four = input.with_lora("https://x/3.safetensors", 1.0);
        assert!(
            matches!(four.validate(), Err(Error::InvalidInput { ref field, .. }) if field == "loras")
        );
    }

    #[test]
    fn webp_is_accepted_and_defaults_are_fal_s() {
        let input = Flux2LoraInput {
            output_format: Some(OutputFormat::Webp),
            acceleration: Some(Acceleration::High),
            ..Flux2LoraInput::new("p")
        };
        input.validate().unwrap();
        let d = Flux2LoraInput::new("p").with_fal_defaults();
        assert_eq!(d.output_format, Some(OutputFormat::Png));
        assert_eq!(d.guidance_scale, Some(2.5));
    }
}
