//! `fal-ai/z-image-trainer`: trains a Z-Image Turbo (6B) LoRA from a ZIP of captioned photos.
//!
//! Generate with the result through [`ZImageTurboLora`](crate::models::ZImageTurboLora).
//! API page: <https://fal.ai/models/fal-ai/z-image-trainer/api>.
//!
//! Same traps as the FLUX.2 trainer: the archive field is `image_data_url` (**singular**), there
//! is **no trigger field** (put the trigger phrase in the captions or in `default_caption`), and
//! an image without a caption file fails the training unless `default_caption` is set.

use serde::{Deserialize, Serialize};

use super::common::{
    check_opt_learning_rate, check_opt_steps, require_file, require_non_empty, LoraTrainingOutput,
};
use crate::error::Result;
use crate::file_input::FileInput;

/// The Z-Image trainer, endpoint id `fal-ai/z-image-trainer`
/// (<https://fal.ai/models/fal-ai/z-image-trainer/api>).
///
/// Input [`ZImageTrainerInput`], output [`LoraTrainingOutput`].
///
/// ```
/// use fal_client::models::{ZImageTrainer, ZImageTrainerInput, ZImageTrainingType};
/// use fal_client::Endpoint;
///
/// let input = ZImageTrainerInput {
///     training_type: Some(ZImageTrainingType::Content),
///     default_caption: Some("a photo of TOK_anna".into()),
///     ..ZImageTrainerInput::new("https://example.com/photos.zip")
/// };
/// <ZImageTrainer as Endpoint>::validate(&input)?;
/// assert_eq!(serde_json::to_value(&input)?["training_type"], "content");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ZImageTrainer;

endpoint!(
    ZImageTrainer,
    "fal-ai/z-image-trainer",
    ZImageTrainerInput,
    LoraTrainingOutput,
    archive: image_data_url
);

/// Input of [`ZImageTrainer`] (fal schema `ZImageTrainerInput`); only `image_data_url` is
/// required.
///
/// Unset (`None`) fields are not sent, so the server default applies.
/// See <https://fal.ai/models/fal-ai/z-image-trainer/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ZImageTrainerInput {
    /// `image_data_url` (required; **singular**): URL or data URI of a ZIP of images, 10 or
    /// more recommended, each with an optional caption file `ROOT.txt`; images without one use
    /// `default_caption`, and without that the training fails. Must not be empty.
    pub image_data_url: FileInput,
    /// `steps`: total training steps. Server default `1000`; range 100..=10000, a multiple of
    /// 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// `training_type`: what the LoRA should learn. Server default `balanced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_type: Option<ZImageTrainingType>,
    /// `learning_rate`: server default `0.0001` (1e-4); fal states no range, the crate requires a
    /// finite number above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `default_caption`: the caption of images without a caption file. Server default: none,
    /// and then a missing caption fails the training. Put the trigger phrase in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_caption: Option<String>,
}

impl ZImageTrainerInput {
    /// An input with only the required `image_data_url` set; every other field is left to the
    /// server default.
    pub fn new(image_data_url: impl Into<FileInput>) -> Self {
        Self {
            image_data_url: image_data_url.into(),
            ..Self::default()
        }
    }

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (1000 steps, `balanced`, learning rate 1e-4). `default_caption` stays unset.
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            steps: self.steps.or(Some(1000)),
            training_type: self.training_type.or(Some(ZImageTrainingType::Balanced)),
            learning_rate: self.learning_rate.or(Some(0.0001)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) naming the wire field when
    /// `image_data_url` is empty, `steps` is outside 100..=10000 or not a multiple of 100,
    /// `learning_rate` is not a finite number above 0, or `default_caption` is blank.
    pub fn validate(&self) -> Result<()> {
        require_file("image_data_url", &self.image_data_url)?;
        check_opt_steps("steps", self.steps, 100, 10_000, 100)?;
        check_opt_learning_rate("learning_rate", self.learning_rate)?;
        if let Some(caption) = &self.default_caption {
            require_non_empty("default_caption", caption)?;
        }
        Ok(())
    }
}

/// `training_type` of [`ZImageTrainerInput`]. Server default `balanced`.
/// See <https://fal.ai/models/fal-ai/z-image-trainer/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ZImageTrainingType {
    /// `"content"`: what the images show (a person, a product).
    Content,
    /// `"style"`: how the images look.
    Style,
    /// `"balanced"` (server default): both.
    Balanced,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_types_and_steps() {
        assert_eq!(
            serde_json::to_value(ZImageTrainingType::Balanced).unwrap(),
            "balanced"
        );
        let bad = ZImageTrainerInput {
            steps: Some(250),
            ..ZImageTrainerInput::new("https://x/y.zip")
        };
        assert!(bad.validate().is_err());
        let ok = ZImageTrainerInput::new("https://x/y.zip").with_fal_defaults();
        ok.validate().unwrap();
        assert_eq!(ok.steps, Some(1000));
    }
}
