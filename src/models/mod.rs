//! Typed fal endpoints: inputs, outputs and validation.
//!
//! Each endpoint is a unit struct implementing [`Endpoint`](crate::Endpoint), with its own
//! input and output types:
//!
//! | Endpoint | Id | Input → Output | Use |
//! |---|---|---|---|
//! | [`PortraitTrainer`] | `fal-ai/flux-lora-portrait-trainer` | [`PortraitTrainerInput`] → [`PortraitTrainerOutput`] | train a portrait LoRA |
//! | [`FluxLora`] | `fal-ai/flux-lora` | [`FluxLoraInput`] → [`FluxLoraOutput`] | generate with that LoRA |
//! | [`ProTrainer`] | `fal-ai/flux-pro-trainer` | [`ProTrainerInput`] → [`ProTrainerOutput`] | FLUX Pro finetune (**deprecated on fal**) |
//! | [`UltraFinetuned`] | `fal-ai/flux-pro/v1.1-ultra-finetuned` | [`UltraFinetunedInput`] → [`UltraFinetunedOutput`] | generate with a Pro finetune |
//!
//! Conventions shared by all inputs:
//! - fields are `pub` and named exactly as on the wire;
//! - required fields are plain values set by `new(..)`; everything optional is an `Option` that
//!   is not sent when `None`, so fal's server default applies (each field's doc gives the
//!   default and the accepted range);
//! - `validate()` checks every documented range before a request is sent (training is billed),
//!   returning [`Error::InvalidInput`](crate::Error::InvalidInput) with the wire field name.
//!   The same check is reachable as `<E as Endpoint>::validate(&input)`.
//!
//! ```
//! use fal_client::models::{FluxLoraInput, PortraitTrainerInput, PortraitTrainerOutput};
//!
//! let train = PortraitTrainerInput {
//!     trigger_phrase: Some("TOK_anna".into()),
//!     ..PortraitTrainerInput::new("https://example.com/photos.zip")
//! };
//! train.validate()?;
//!
//! // Later, with the trainer's output:
//! let out: PortraitTrainerOutput = serde_json::from_str(
//!     r#"{"diffusers_lora_file": {"url": "https://v3.fal.media/files/l.safetensors"},
//!         "config_file": {"url": "https://v3.fal.media/files/c.json"}}"#,
//! )?;
//! let generate = FluxLoraInput::new("TOK_anna, portrait photo")
//!     .with_lora(out.diffusers_lora_file.url, 1.0);
//! generate.validate()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod common;
mod flux_lora;
mod portrait_trainer;
mod pro_trainer;
mod ultra_finetuned;

pub use common::{File, Image, OutputFormat};
pub use flux_lora::{FluxLora, FluxLoraInput, FluxLoraOutput, ImageSize, LoraWeight};
pub use portrait_trainer::{PortraitTrainer, PortraitTrainerInput, PortraitTrainerOutput};
pub use pro_trainer::{
    FinetuneType, ProTrainer, ProTrainerInput, ProTrainerMode, ProTrainerOutput, ProTrainerPriority,
};
pub use ultra_finetuned::{
    AspectRatio, SafetyTolerance, UltraFinetuned, UltraFinetunedInput, UltraFinetunedOutput,
};
