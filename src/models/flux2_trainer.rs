//! `fal-ai/flux-2-trainer` and `fal-ai/flux-2-trainer-v2`: train a FLUX.2 \[dev\] LoRA from a ZIP
//! of captioned photos.
//!
//! The two ids take the same input field for field (fal's schemas of 2026-01-28 are identical;
//! what v2 changes is not documented), so they share [`Flux2TrainerInput`] and
//! [`LoraTrainingOutput`]. Generate with the result through
//! [`Flux2Lora`](crate::models::Flux2Lora).
//! API pages: <https://fal.ai/models/fal-ai/flux-2-trainer/api>,
//! <https://fal.ai/models/fal-ai/flux-2-trainer-v2/api>.
//!
//! Two traps: the archive field is `image_data_url` (**singular**), and there is **no trigger
//! field**: the trigger phrase has to be in the captions, or in `default_caption`. An image
//! without a caption file and without `default_caption` makes the training fail.

use serde::{Deserialize, Serialize};

use super::common::{
    check_opt_learning_rate, check_opt_steps, require_file, require_non_empty, LoraTrainingOutput,
};
use crate::error::Result;
use crate::file_input::FileInput;

/// The FLUX.2 \[dev\] LoRA trainer, endpoint id `fal-ai/flux-2-trainer`
/// (<https://fal.ai/models/fal-ai/flux-2-trainer/api>).
///
/// Input [`Flux2TrainerInput`], output [`LoraTrainingOutput`]; the same types as
/// [`Flux2TrainerV2`].
///
/// ```
/// use fal_client::models::{Flux2Trainer, Flux2TrainerInput};
/// use fal_client::Endpoint;
///
/// let input = Flux2TrainerInput {
///     default_caption: Some("a photo of TOK_anna".into()),
///     steps: Some(1000),
///     ..Flux2TrainerInput::new("https://example.com/photos.zip")
/// };
/// <Flux2Trainer as Endpoint>::validate(&input)?;
/// assert_eq!(serde_json::to_value(&input)?["image_data_url"], "https://example.com/photos.zip");
///
/// let bad = Flux2TrainerInput { steps: Some(1050), ..input };
/// assert!(bad.validate().is_err()); // steps: a multiple of 100
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flux2Trainer;

endpoint!(
    Flux2Trainer,
    "fal-ai/flux-2-trainer",
    Flux2TrainerInput,
    LoraTrainingOutput,
    archive: image_data_url
);

/// The FLUX.2 \[dev\] LoRA trainer v2, endpoint id `fal-ai/flux-2-trainer-v2`
/// (<https://fal.ai/models/fal-ai/flux-2-trainer-v2/api>), published 2026-01-10.
///
/// Same input and output as [`Flux2Trainer`]; fal does not document what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flux2TrainerV2;

endpoint!(
    Flux2TrainerV2,
    "fal-ai/flux-2-trainer-v2",
    Flux2TrainerInput,
    LoraTrainingOutput,
    archive: image_data_url
);

/// Input of [`Flux2Trainer`] and [`Flux2TrainerV2`] (fal schemas `Flux2TrainerInput`,
/// `Flux2TrainerV2Input`); only `image_data_url` is required.
///
/// Unset (`None`) fields are not sent, so the server default applies.
/// See <https://fal.ai/models/fal-ai/flux-2-trainer/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Flux2TrainerInput {
    /// `image_data_url` (required; **singular**): URL or data URI of a ZIP of images, 10 or
    /// more recommended. Each image may have a caption file `ROOT.txt` (`photo.txt` for
    /// `photo.jpg`); images without one use `default_caption`, and without that the training
    /// fails. Must not be empty.
    pub image_data_url: FileInput,
    /// `steps`: total training steps. Server default `1000`; range 100..=10000, a multiple of
    /// 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// `learning_rate`: learning rate of the trainable parameters. Server default `0.00005`
    /// (5e-5); fal states no range, the crate requires a finite number above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `default_caption`: the caption of images without a caption file. Server default: none,
    /// and then a missing caption fails the training. Put the trigger phrase in it: the trainer
    /// has no trigger field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_caption: Option<String>,
    /// `output_lora_format`: the naming scheme of the output weights. Server default `fal`;
    /// keep `fal` for [`Flux2Lora`](crate::models::Flux2Lora).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_lora_format: Option<OutputLoraFormat>,
}

impl Flux2TrainerInput {
    /// An input with only the required `image_data_url` set; every other field is left to the
    /// server default.
    pub fn new(image_data_url: impl Into<FileInput>) -> Self {
        Self {
            image_data_url: image_data_url.into(),
            ..Self::default()
        }
    }

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (1000 steps, learning rate 5e-5, `fal` weights). `default_caption` stays unset.
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            steps: self.steps.or(Some(1000)),
            learning_rate: self.learning_rate.or(Some(0.00005)),
            output_lora_format: self.output_lora_format.or(Some(OutputLoraFormat::Fal)),
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

/// `output_lora_format` of [`Flux2TrainerInput`]: the naming scheme of the output weights.
/// Server default `fal`. See <https://fal.ai/models/fal-ai/flux-2-trainer/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutputLoraFormat {
    /// `"fal"` (server default): what fal's generators load.
    Fal,
    /// `"comfy"`: ComfyUI's naming.
    Comfy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn field(input: &Flux2TrainerInput) -> Option<String> {
        match input.validate() {
            Ok(()) => None,
            Err(Error::InvalidInput { field, .. }) => Some(field),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn steps_are_multiples_of_100() {
        let base = Flux2TrainerInput::new("https://x/y.zip");
        for (steps, ok) in [
            (100, true),
            (10_000, true),
            (0, false),
            (150, false),
            (10_100, false),
        ] {
            let i = Flux2TrainerInput {
                steps: Some(steps),
                ..base.clone()
            };
            assert_eq!(field(&i).is_none(), ok, "{steps}");
        }
    }

    #[test]
    fn learning_rate_and_caption() {
        let base = Flux2TrainerInput::new("https://x/y.zip");
        for lr in [0.0, -1e-5, f64::NAN] {
            let i = Flux2TrainerInput {
                learning_rate: Some(lr),
                ..base.clone()
            };
            assert_eq!(field(&i).as_deref(), Some("learning_rate"));
        }
        let blank = Flux2TrainerInput {
            default_caption: Some(" ".into()),
            ..base.clone()
        };
        assert_eq!(field(&blank).as_deref(), Some("default_caption"));
        assert_eq!(
            serde_json::to_value(OutputLoraFormat::Comfy).unwrap(),
            "comfy"
        );
    }
}
