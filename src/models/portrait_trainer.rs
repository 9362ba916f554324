//! `fal-ai/flux-lora-portrait-trainer`: trains a FLUX LoRA from a ZIP of portrait photos.
//!
//! The result is a diffusers LoRA file; generate with it through
//! [`FluxLora`](crate::models::FluxLora) (pass `diffusers_lora_file.url` as a LoRA path).
//! API page: <https://fal.ai/models/fal-ai/flux-lora-portrait-trainer/api>.

use serde::{Deserialize, Serialize};

use super::common::{check_opt_f64, check_opt_u32, require_file, LoraTrainingOutput};
use crate::error::Result;
use crate::file_input::FileInput;

/// The FLUX LoRA portrait trainer, endpoint id `fal-ai/flux-lora-portrait-trainer`
/// (<https://fal.ai/models/fal-ai/flux-lora-portrait-trainer/api>).
///
/// Input [`PortraitTrainerInput`], output [`LoraTrainingOutput`]. Training runs on fal's queue
/// and can take many minutes; it is billed, so inputs are validated before they are sent.
///
/// ```
/// use fal_client::models::{PortraitTrainer, PortraitTrainerInput};
/// use fal_client::Endpoint;
///
/// let input = PortraitTrainerInput {
///     trigger_phrase: Some("TOK_anna".into()),
///     steps: Some(1000),
///     ..PortraitTrainerInput::new("https://example.com/photos.zip")
/// };
/// input.validate()?;
/// assert_eq!(PortraitTrainer::ID, "fal-ai/flux-lora-portrait-trainer");
///
/// // Out-of-range values fail before any request (and any money) is spent.
/// let bad = PortraitTrainerInput { steps: Some(0), ..input };
/// assert!(<PortraitTrainer as Endpoint>::validate(&bad).is_err());
/// # Ok::<(), fal_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortraitTrainer;

endpoint!(
    PortraitTrainer,
    "fal-ai/flux-lora-portrait-trainer",
    PortraitTrainerInput,
    LoraTrainingOutput,
    archive: images_data_url
);

/// Input of [`PortraitTrainer`] (fal schema `PublicInput`); only `images_data_url` is required.
///
/// Build it with [`PortraitTrainerInput::new`] and set optional fields with struct update
/// syntax. Unset (`None`) fields are not sent, so the server default applies.
/// See <https://fal.ai/models/fal-ai/flux-lora-portrait-trainer/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PortraitTrainerInput {
    /// `images_data_url` (required): URL or data URI of a ZIP of training images (10 or more
    /// recommended). Each image may have a same-name `.txt` caption, which may contain the
    /// literal placeholder `[trigger]`. Must not be empty.
    pub images_data_url: FileInput,
    /// `trigger_phrase`: replaces `[trigger]` in captions, and is used as the caption of images
    /// without a caption file. Server default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_phrase: Option<String>,
    /// `learning_rate`: optimizer learning rate. Server default `0.00009` (9e-5);
    /// range 1e-6..=1e-3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `steps`: number of training steps. Server default `2500`; range 1..=10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// `multiresolution_training`: train at several resolutions. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiresolution_training: Option<bool>,
    /// `subject_crop`: automatically crop the subject out of each image. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_crop: Option<bool>,
    /// `data_archive_format`: archive format override (free string, e.g. `zip`). Server
    /// default: none, the format is inferred from the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_archive_format: Option<String>,
    /// `resume_from_checkpoint`: URL of a checkpoint to continue training from. Server default
    /// `""` (a fresh run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from_checkpoint: Option<String>,
    /// `create_masks`: generate subject masks for training. Server default `false`
    /// (a newer field; older deployments may ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_masks: Option<bool>,
}

impl PortraitTrainerInput {
    /// An input with only the required `images_data_url` set; every other field is left to the
    /// server default.
    pub fn new(images_data_url: impl Into<FileInput>) -> Self {
        Self {
            images_data_url: images_data_url.into(),
            ..Self::default()
        }
    }

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (learning rate 9e-5, 2500 steps, multiresolution training and subject crop on, masks
    /// off, no checkpoint). `trigger_phrase` and `data_archive_format` stay unset (fal has no
    /// default for them).
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            learning_rate: self.learning_rate.or(Some(0.00009)),
            steps: self.steps.or(Some(2500)),
            multiresolution_training: self.multiresolution_training.or(Some(true)),
            subject_crop: self.subject_crop.or(Some(true)),
            resume_from_checkpoint: self.resume_from_checkpoint.or(Some(String::new())),
            create_masks: self.create_masks.or(Some(false)),
            ..self
        }
    }

    /// Check the input against the documented ranges before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when
    /// `images_data_url` is empty, `learning_rate` is not a finite number in 1e-6..=1e-3, or
    /// `steps` is outside 1..=10000.
    pub fn validate(&self) -> Result<()> {
        require_file("images_data_url", &self.images_data_url)?;
        check_opt_f64(
            "learning_rate",
            self.learning_rate,
            1e-6,
            1e-3,
            "1e-6..=1e-3",
        )?;
        check_opt_u32("steps", self.steps, 1, 10_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn field(input: &PortraitTrainerInput) -> Option<String> {
        match input.validate() {
            Ok(()) => None,
            Err(Error::InvalidInput { field, .. }) => Some(field),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn new_input_is_valid_and_minimal() {
        let input = PortraitTrainerInput::new("https://x/y.zip");
        assert_eq!(field(&input), None);
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            serde_json::json!({"images_data_url": "https://x/y.zip"})
        );
    }

    #[test]
    fn ranges_are_enforced() {
        let base = PortraitTrainerInput::new("https://x/y.zip");
        let lr = |v| PortraitTrainerInput {
            learning_rate: Some(v),
            ..base.clone()
        };
        assert_eq!(field(&lr(1e-6)), None);
        assert_eq!(field(&lr(1e-3)), None);
        assert_eq!(field(&lr(1.1e-3)).as_deref(), Some("learning_rate"));
        assert_eq!(field(&lr(f64::NAN)).as_deref(), Some("learning_rate"));
        let steps = |v| PortraitTrainerInput {
            steps: Some(v),
            ..base.clone()
        };
        assert_eq!(field(&steps(10_000)), None);
        assert_eq!(field(&steps(10_001)).as_deref(), Some("steps"));
        assert_eq!(
            field(&PortraitTrainerInput::new(" ")).as_deref(),
            Some("images_data_url")
        );
    }
}
