//! `fal-ai/flux-lora-fast-training`: trains a FLUX.1 \[dev\] LoRA from a ZIP of photos, for
//! general subjects, products or styles.
//!
//! The result is a diffusers LoRA file; generate with it through
//! [`FluxLora`](crate::models::FluxLora) (pass `diffusers_lora_file.url` as a LoRA path).
//! API page: <https://fal.ai/models/fal-ai/flux-lora-fast-training/api>.

use serde::{Deserialize, Serialize};

use super::common::{check_opt_u32, require_file, LoraTrainingOutput};
use crate::error::Result;
use crate::file_input::FileInput;

/// FLUX LoRA fast training, endpoint id `fal-ai/flux-lora-fast-training`
/// (<https://fal.ai/models/fal-ai/flux-lora-fast-training/api>).
///
/// Input [`FluxLoraFastTrainingInput`], output [`LoraTrainingOutput`] (with
/// `debug_preprocessed_output` when fal returns it). Unlike the FLUX.2 and Z-Image trainers it
/// has a trigger field (`trigger_word`) and captions are optional.
///
/// ```
/// use fal_client::models::{FluxLoraFastTraining, FluxLoraFastTrainingInput};
/// use fal_client::Endpoint;
///
/// let input = FluxLoraFastTrainingInput {
///     trigger_word: Some("TOK_mug".into()),
///     steps: Some(1000),
///     ..FluxLoraFastTrainingInput::new("https://example.com/photos.zip")
/// };
/// <FluxLoraFastTraining as Endpoint>::validate(&input)?;
/// assert_eq!(serde_json::to_value(&input)?["trigger_word"], "TOK_mug");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FluxLoraFastTraining;

endpoint!(
    FluxLoraFastTraining,
    "fal-ai/flux-lora-fast-training",
    FluxLoraFastTrainingInput,
    LoraTrainingOutput,
    archive: images_data_url
);

/// Input of [`FluxLoraFastTraining`] (fal schema `FluxLoraFastTrainingInput`); only
/// `images_data_url` is required.
///
/// Note the wire names: `images_data_url` (plural, as on the portrait trainer) and
/// `trigger_word` (not `trigger_phrase`). Unset (`None`) fields are not sent, so the server
/// default applies. See <https://fal.ai/models/fal-ai/flux-lora-fast-training/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FluxLoraFastTrainingInput {
    /// `images_data_url` (required): URL or data URI of a ZIP of training images, at least 4
    /// (more is better). Each image may have a caption file of the same base name
    /// (`photo.jpg` + `photo.txt`). Must not be empty.
    pub images_data_url: FileInput,
    /// `trigger_word`: the token that names the concept. When the archive has no captions it is
    /// used as the caption; when it has captions it is **not** used (put it in the captions).
    /// Server default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_word: Option<String>,
    /// `steps`: number of training steps; range 1..=10000. fal's schema gives **no server
    /// default** (its example is 1000), so set it: the avatar presets always do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// `create_masks`: segmentation masks weight the loss toward the subject (for people, a
    /// face mask where possible). Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_masks: Option<bool>,
    /// `is_style`: style mode: turns off segmentation and captioning and relies on the trigger
    /// word. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_style: Option<bool>,
    /// `is_input_format_already_preprocessed`: `false` means raw images with same-named caption
    /// files; `true` means the archive is already in the trainer's preprocessed format. Server
    /// default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_input_format_already_preprocessed: Option<bool>,
    /// `data_archive_format`: archive format override (free string, e.g. `zip`). Server
    /// default: none, the format is inferred from the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_archive_format: Option<String>,
}

impl FluxLoraFastTrainingInput {
    /// An input with only the required `images_data_url` set; every other field is left to the
    /// server default (set `steps`: fal documents no default for it).
    pub fn new(images_data_url: impl Into<FileInput>) -> Self {
        Self {
            images_data_url: images_data_url.into(),
            ..Self::default()
        }
    }

    /// The same input with every unset field that has a server default set to it (masks on,
    /// style mode off, raw input format). `trigger_word`, `steps` and `data_archive_format`
    /// stay unset: fal's schema gives them no default.
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            create_masks: self.create_masks.or(Some(true)),
            is_style: self.is_style.or(Some(false)),
            is_input_format_already_preprocessed: self
                .is_input_format_already_preprocessed
                .or(Some(false)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when
    /// `images_data_url` is empty or `steps` is outside 1..=10000.
    pub fn validate(&self) -> Result<()> {
        require_file("images_data_url", &self.images_data_url)?;
        check_opt_u32("steps", self.steps, 1, 10_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn minimal_input_and_ranges() {
        let input = FluxLoraFastTrainingInput::new("https://x/y.zip");
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            serde_json::json!({"images_data_url": "https://x/y.zip"})
        );
        input.validate().unwrap();
        for (steps, ok) in [(1, true), (10_000, true), (0, false), (10_001, false)] {
            let i = FluxLoraFastTrainingInput {
                steps: Some(steps),
                ..input.clone()
            };
            match i.validate() {
                Ok(()) => assert!(ok, "{steps}"),
                Err(Error::InvalidInput { field, .. }) => {
                    assert!(!ok, "{steps}");
                    assert_eq!(field, "steps");
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}
