//! `fal-ai/flux-lora`: FLUX.1 \[dev\] text-to-image with LoRAs, the generator for LoRAs trained by
//! [`PortraitTrainer`](crate::models::PortraitTrainer) and
//! [`FluxLoraFastTraining`](crate::models::FluxLoraFastTraining).
//!
//! API page: <https://fal.ai/models/fal-ai/flux-lora/api>.

use serde::{Deserialize, Serialize};

use super::common::{
    check_image_size, check_loras, check_one_of, check_opt_f64, check_opt_u32, require_non_empty,
    Acceleration, GenerationOutput, ImageSize, LoraWeight, OutputFormat,
};
use crate::error::Result;

/// FLUX.1 \[dev\] with LoRAs, endpoint id `fal-ai/flux-lora`
/// (<https://fal.ai/models/fal-ai/flux-lora/api>).
///
/// Input [`FluxLoraInput`] (only `prompt` is required), output [`GenerationOutput`]. To generate
/// with a trained avatar, pass the trainer's `diffusers_lora_file.url` as a LoRA path.
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

endpoint!(
    FluxLora,
    "fal-ai/flux-lora",
    FluxLoraInput,
    GenerationOutput
);

/// `fal-ai/flux-lora/stream`: each event has the output's shape (fal's `FluxLoraStreamOutput`;
/// partial events carry the images made so far, possibly none).
impl crate::stream::StreamingEndpoint for FluxLora {
    type Event = GenerationOutput;
}

/// Input of [`FluxLora`]; only `prompt` is required.
///
/// Build it with [`FluxLoraInput::new`], add LoRAs with [`with_lora`](Self::with_lora), and set
/// optional fields with struct update syntax. Unset (`None`) fields and an empty `loras` list are
/// not sent, so the server default applies ([`with_fal_defaults`](Self::with_fal_defaults) shows
/// them). See <https://fal.ai/models/fal-ai/flux-lora/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FluxLoraInput {
    /// `prompt` (required): the text prompt; include the LoRA's trigger phrase. Must not be
    /// empty.
    pub prompt: String,
    /// `loras`: LoRA weights to apply, any number (fal merges them). Server default `[]`; not
    /// sent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraWeight>,
    /// `image_size`: a preset or a custom size (each side 1..=14142 pixels). Server default
    /// `landscape_4_3`.
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
    /// `output_format`: `jpeg` or `png` (not `webp`). Server default `jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
    /// `acceleration`: `none` or `regular` ("balances speed and quality"; not `high`). Server
    /// default `none`. Added on fal between January and April 2026 (fal's JS client types of
    /// 2026-04-07 have it, fal's model schema of 2026-01-28 does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<Acceleration>,
}

impl FluxLoraInput {
    /// Output formats this endpoint takes.
    pub const OUTPUT_FORMATS: [OutputFormat; 2] = [OutputFormat::Jpeg, OutputFormat::Png];
    /// Acceleration levels this endpoint takes.
    pub const ACCELERATIONS: [Acceleration; 2] = [Acceleration::Off, Acceleration::Regular];

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

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (`image_size` `landscape_4_3`, 28 steps, guidance 3.5, one image, no sync mode, the
    /// safety checker on, `jpeg`, acceleration `none`). `seed` stays unset (random).
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            image_size: self.image_size.or(Some(ImageSize::Landscape4_3)),
            num_inference_steps: self.num_inference_steps.or(Some(28)),
            guidance_scale: self.guidance_scale.or(Some(3.5)),
            num_images: self.num_images.or(Some(1)),
            sync_mode: self.sync_mode.or(Some(false)),
            enable_safety_checker: self.enable_safety_checker.or(Some(true)),
            output_format: self.output_format.or(Some(OutputFormat::Jpeg)),
            acceleration: self.acceleration.or(Some(Acceleration::Off)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when `prompt` is
    /// empty, a LoRA has an empty path (`loras[i].path`) or a scale that is not a finite number in
    /// 0..=4 (`loras[i].scale`), a custom `image_size` has a width or height outside 1..=14142
    /// (`image_size.width` / `image_size.height`), `num_inference_steps` is outside 1..=50,
    /// `guidance_scale` is not a finite number in 0..=35, `num_images` is outside 1..=4,
    /// `output_format` is `webp`, or `acceleration` is `high`.
    pub fn validate(&self) -> Result<()> {
        require_non_empty("prompt", &self.prompt)?;
        check_loras(&self.loras, None)?;
        check_image_size(self.image_size, 1, ImageSize::MAX_SIDE)?;
        check_opt_u32("num_inference_steps", self.num_inference_steps, 1, 50)?;
        check_opt_f64("guidance_scale", self.guidance_scale, 0.0, 35.0, "0..=35")?;
        check_opt_u32("num_images", self.num_images, 1, 4)?;
        check_one_of(
            "output_format",
            self.output_format,
            &Self::OUTPUT_FORMATS,
            OutputFormat::as_str,
        )?;
        check_one_of(
            "acceleration",
            self.acceleration,
            &Self::ACCELERATIONS,
            Acceleration::as_str,
        )?;
        Ok(())
    }
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

    #[test]
    fn webp_and_high_acceleration_are_refused() {
        let webp = FluxLoraInput {
            output_format: Some(OutputFormat::Webp),
            ..FluxLoraInput::new("p")
        };
        let err = webp.validate().unwrap_err();
        assert!(err.to_string().contains("jpeg, png"), "{err}");
        let high = FluxLoraInput {
            acceleration: Some(Acceleration::High),
            ..FluxLoraInput::new("p")
        };
        assert!(
            matches!(high.validate(), Err(Error::InvalidInput { ref field, .. }) if field == "acceleration")
        );
        let regular = FluxLoraInput {
            acceleration: Some(Acceleration::Regular),
            ..FluxLoraInput::new("p")
        };
        regular.validate().unwrap();
        assert_eq!(
            serde_json::to_value(&regular).unwrap()["acceleration"],
            "regular"
        );
    }
}
