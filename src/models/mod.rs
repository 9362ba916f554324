//! Typed fal endpoints: inputs, outputs and validation.
//!
//! Each endpoint is a unit struct implementing [`Endpoint`](crate::Endpoint), with its input and
//! output types. Trainers take a ZIP of photos and return a LoRA file; each LoRA goes to the
//! generator of its family:
//!
//! | Endpoint | Id | Input → Output | Status on fal |
//! |---|---|---|---|
//! | [`PortraitTrainer`] | `fal-ai/flux-lora-portrait-trainer` | [`PortraitTrainerInput`] → [`LoraTrainingOutput`] | live; FLUX.1 \[dev\] LoRA for people |
//! | [`FluxLoraFastTraining`] | `fal-ai/flux-lora-fast-training` | [`FluxLoraFastTrainingInput`] → [`LoraTrainingOutput`] | live; FLUX.1 \[dev\] LoRA for subjects, products, styles |
//! | [`FluxLora`] | `fal-ai/flux-lora` | [`FluxLoraInput`] → [`GenerationOutput`] | live; generates with the two above |
//! | [`Flux2Trainer`], [`Flux2TrainerV2`] | `fal-ai/flux-2-trainer`, `fal-ai/flux-2-trainer-v2` | [`Flux2TrainerInput`] → [`LoraTrainingOutput`] | live; FLUX.2 \[dev\] LoRA |
//! | [`Flux2Lora`] | `fal-ai/flux-2/lora` | [`Flux2LoraInput`] → [`GenerationOutput`] | live; generates with FLUX.2 LoRAs |
//! | [`ZImageTrainer`] | `fal-ai/z-image-trainer` | [`ZImageTrainerInput`] → [`LoraTrainingOutput`] | live; Z-Image Turbo LoRA |
//! | [`ZImageTurboLora`] | `fal-ai/z-image/turbo/lora` | [`ZImageTurboLoraInput`] → [`GenerationOutput`] | live; generates with Z-Image LoRAs |
//! | [`ProTrainer`] | `fal-ai/flux-pro-trainer` | [`ProTrainerInput`] → [`ProTrainerOutput`] | **deprecated** ([`deprecation`]) |
//! | [`UltraFinetuned`] | `fal-ai/flux-pro/v1.1-ultra-finetuned` | [`UltraFinetunedInput`] → [`GenerationOutput`] | live, but no new finetunes can be made |
//!
//! Conventions shared by all inputs:
//! - fields are `pub` and named exactly as on the wire (the archive field is `images_data_url`
//!   on the FLUX.1 trainers but `image_data_url` on the FLUX.2 and Z-Image trainers);
//! - required fields are plain values set by `new(..)`; everything optional is an `Option` that
//!   is not sent when `None`, so fal's server default applies (each field's doc gives the
//!   default and the accepted range, and `with_fal_defaults()` fills them in);
//! - `validate()` checks every documented range before a request is sent (training is billed),
//!   returning [`Error::InvalidInput`](crate::Error::InvalidInput) with the wire field name.
//!   The same check is reachable as `<E as Endpoint>::validate(&input)`.
//!
//! The crate's tests compare every input above with fal's own OpenAPI document of its endpoint
//! (field names, required fields, types, enums, defaults, ranges), from fal's model API
//! (<https://fal.ai/docs/platform-apis/v1/models>, `expand=openapi-3.0`).
//!
//! ```
//! use fal_client::models::{FluxLoraInput, LoraTrainingOutput, PortraitTrainerInput};
//!
//! let train = PortraitTrainerInput {
//!     trigger_phrase: Some("TOK_anna".into()),
//!     ..PortraitTrainerInput::new("https://example.com/photos.zip")
//! };
//! train.validate()?;
//!
//! // Later, with the trainer's output:
//! let out: LoraTrainingOutput = serde_json::from_str(
//!     r#"{"diffusers_lora_file": {"url": "https://v3.fal.media/files/l.safetensors"},
//!         "config_file": {"url": "https://v3.fal.media/files/c.json"}}"#,
//! )?;
//! let generate = FluxLoraInput::new("TOK_anna, portrait photo")
//!     .with_lora(out.diffusers_lora_file.url, 1.0);
//! generate.validate()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// `impl Endpoint` for a typed model: its id, input and output, and the input's own
/// `validate()` as the check before sending.
macro_rules! endpoint {
    ($name:ident, $id:literal, $input:ty, $output:ty) => {
        endpoint!($name, $id, $input, $output, files: [], optional: []);
    };
    // A trainer: its archive (people's photos) expires after DEFAULT_ARCHIVE_EXPIRY.
    ($name:ident, $id:literal, $input:ty, $output:ty, archive: $file:ident) => {
        endpoint!($name, $id, $input, $output, files: [$file], optional: [], lifecycle: Some(
            $crate::lifecycle::ObjectLifecycle::expiring($crate::lifecycle::DEFAULT_ARCHIVE_EXPIRY)
        ));
    };
    ($name:ident, $id:literal, $input:ty, $output:ty, files: [$($file:ident),*], optional: [$($opt:ident),*]) => {
        endpoint!($name, $id, $input, $output, files: [$($file),*], optional: [$($opt),*], lifecycle: None);
    };
    ($name:ident, $id:literal, $input:ty, $output:ty, files: [$($file:ident),*], optional: [$($opt:ident),*], lifecycle: $lifecycle:expr) => {
        impl $crate::endpoint::Endpoint for $name {
            const ID: &'static str = $id;
            type Input = $input;
            type Output = $output;

            fn validate(input: &Self::Input) -> $crate::error::Result<()> {
                input.validate()
            }

            #[allow(unused_mut, unused_variables)]
            fn file_inputs(input: &Self::Input) -> Vec<&$crate::file_input::FileInput> {
                let mut files: Vec<&$crate::file_input::FileInput> = vec![$(&input.$file),*];
                $(files.extend(input.$opt.as_ref());)*
                files
            }

            #[allow(unused_mut, unused_variables)]
            fn file_inputs_mut(
                input: &mut Self::Input,
            ) -> Vec<&mut $crate::file_input::FileInput> {
                let mut files: Vec<&mut $crate::file_input::FileInput> = vec![$(&mut input.$file),*];
                $(files.extend(input.$opt.as_mut());)*
                files
            }

            fn file_lifecycle() -> Option<$crate::lifecycle::ObjectLifecycle> {
                $lifecycle
            }
        }
    };
}

mod common;
mod fast_training;
mod flux2_lora;
mod flux2_trainer;
mod flux_lora;
mod portrait_trainer;
mod pro_trainer;
mod ultra_finetuned;
mod z_image_lora;
mod z_image_trainer;

pub use common::{
    Acceleration, File, GenerationOutput, Image, ImageSize, LoraTrainingOutput, LoraWeight,
    OutputFormat,
};
pub use fast_training::{FluxLoraFastTraining, FluxLoraFastTrainingInput};
pub use flux2_lora::{Flux2Lora, Flux2LoraInput};
pub use flux2_trainer::{Flux2Trainer, Flux2TrainerInput, Flux2TrainerV2, OutputLoraFormat};
pub use flux_lora::{FluxLora, FluxLoraInput};
pub use portrait_trainer::{PortraitTrainer, PortraitTrainerInput};
pub use pro_trainer::{
    FinetuneType, ProTrainer, ProTrainerInput, ProTrainerMode, ProTrainerOutput, ProTrainerPriority,
};
pub use ultra_finetuned::{AspectRatio, SafetyTolerance, UltraFinetuned, UltraFinetunedInput};
pub use z_image_lora::{ZImageTurboLora, ZImageTurboLoraInput};
pub use z_image_trainer::{ZImageTrainer, ZImageTrainerInput, ZImageTrainingType};

pub use crate::deprecation::Deprecation;

/// The endpoints the crate knows fal has deprecated.
pub const DEPRECATED: &[Deprecation] = &[Deprecation {
    endpoint_id: "fal-ai/flux-pro-trainer",
    note: "fal's model page says \"This endpoint is deprecated\" / \"This model is no longer \
           supported\"; its types left fal's JavaScript client on 2025-12-15 and it is missing \
           from fal's list of active models of 2026-01-28",
    replacement: "fal-ai/flux-lora-fast-training",
    page: "https://fal.ai/models/fal-ai/flux-pro-trainer/api",
}];

/// The deprecation notice of `endpoint_id`, when the crate knows fal deprecated it.
///
/// ```
/// let d = fal_client::models::deprecation("fal-ai/flux-pro-trainer").unwrap();
/// assert_eq!(d.replacement, "fal-ai/flux-lora-fast-training");
/// assert!(fal_client::models::deprecation("fal-ai/flux-lora").is_none());
/// ```
pub fn deprecation(endpoint_id: &str) -> Option<&'static Deprecation> {
    DEPRECATED.iter().find(|d| d.endpoint_id == endpoint_id)
}

/// Output of the FLUX LoRA portrait trainer, renamed: every LoRA trainer returns a
/// [`LoraTrainingOutput`].
#[deprecated(
    since = "0.2.0",
    note = "renamed to LoraTrainingOutput (shared by every LoRA trainer)"
)]
pub type PortraitTrainerOutput = LoraTrainingOutput;

/// Output of `fal-ai/flux-lora`, renamed: every generator returns a [`GenerationOutput`].
#[deprecated(
    since = "0.2.0",
    note = "renamed to GenerationOutput (shared by every generator)"
)]
pub type FluxLoraOutput = GenerationOutput;

/// Output of `fal-ai/flux-pro/v1.1-ultra-finetuned`, renamed: every generator returns a
/// [`GenerationOutput`].
#[deprecated(
    since = "0.2.0",
    note = "renamed to GenerationOutput (shared by every generator)"
)]
pub type UltraFinetunedOutput = GenerationOutput;
