//! `fal-ai/flux-pro-trainer`: FLUX.1 Finetune \[pro\] (wraps the Black Forest Labs finetune API).
//!
//! <div class="warning">
//!
//! **Deprecated on fal.** The model page (<https://fal.ai/models/fal-ai/flux-pro-trainer/api>)
//! says "This endpoint is deprecated" / "This model is no longer supported". Its types left fal's
//! JavaScript client on 2025-12-15 (fal-js `edd6d93`; still present on 2025-10-17 at `5677122`),
//! and it is missing from fal's list of active models of 2026-01-28. Submits may fail with
//! [`Error::EndpointNotFound`](crate::Error::EndpointNotFound). The types stay so that existing
//! finetunes and stored requests can still be handled, and the avatar adapter reaches it only as
//! an explicit legacy choice ([`Trainer::FluxPro`](crate::avatar::Trainer::FluxPro)). For new
//! avatars use a LoRA trainer: [`FluxLoraFastTraining`](crate::models::FluxLoraFastTraining),
//! [`PortraitTrainer`](crate::models::PortraitTrainer), [`Flux2Trainer`](crate::models::Flux2Trainer)
//! or [`ZImageTrainer`](crate::models::ZImageTrainer).
//!
//! </div>
//!
//! The `finetune_id` it returns is used by
//! [`UltraFinetuned`](crate::models::UltraFinetuned).

use serde::{Deserialize, Serialize};

use super::common::{check_opt_f64, check_opt_u32, require_file, require_non_empty};
use crate::error::{Error, Result};
use crate::file_input::FileInput;

/// The FLUX Pro finetune trainer, endpoint id `fal-ai/flux-pro-trainer`
/// (<https://fal.ai/models/fal-ai/flux-pro-trainer/api>).
///
/// <div class="warning">
///
/// **Deprecated on fal: "no longer supported"** (see [`crate::models::deprecation`] for the dates and
/// sources). Submitting to this endpoint may fail with
/// [`Error::EndpointNotFound`](crate::Error::EndpointNotFound), and every submit logs a
/// `tracing` warning. It is kept for existing finetunes and stored requests; it is documented
/// rather than marked `#[deprecated]` so that code handling old finetunes builds without
/// warnings.
///
/// </div>
///
/// Input [`ProTrainerInput`] (`data_url` and `finetune_comment` are required), output
/// [`ProTrainerOutput`] (a `finetune_id` for
/// [`UltraFinetuned`](crate::models::UltraFinetuned)).
///
/// ```
/// use fal_client::models::{FinetuneType, ProTrainer, ProTrainerInput, ProTrainerMode};
/// use fal_client::Endpoint;
///
/// let input = ProTrainerInput {
///     mode: Some(ProTrainerMode::Character),
///     finetune_type: Some(FinetuneType::Lora),
///     lora_rank: Some(16),
///     ..ProTrainerInput::new("https://example.com/photos.zip", "anna-v1")
/// };
/// <ProTrainer as Endpoint>::validate(&input)?;
///
/// let bad = ProTrainerInput { iterations: Some(50), ..input };
/// assert!(bad.validate().is_err()); // upstream range is 100..=1000
/// # Ok::<(), fal_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProTrainer;

endpoint!(
    ProTrainer,
    "fal-ai/flux-pro-trainer",
    ProTrainerInput,
    ProTrainerOutput,
    archive: data_url
);

/// Input of [`ProTrainer`] (fal-js `FluxProTrainerInput`); `data_url` and `finetune_comment` are
/// required.
///
/// Note the wire names: `data_url` (not `images_data_url`), `captioning` (not
/// `auto_captioning`), `trigger_word` (not `trigger_phrase`); there is no `create_masks`.
/// fal's own min/max for this endpoint were never published; the ranges checked by
/// [`validate`](Self::validate) are the **upstream** Black Forest Labs bounds
/// (<https://docs.bfl.ml/>). See <https://fal.ai/models/fal-ai/flux-pro-trainer/api>.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProTrainerInput {
    /// `data_url` (required): URL or data URI of the training ZIP (images plus optional
    /// same-name `.txt` captions). Must not be empty.
    pub data_url: FileInput,
    /// `finetune_comment` (required): free-text label of the finetune, shown in its details
    /// (the id itself is opaque). Must not be empty.
    pub finetune_comment: String,
    /// `mode`: what kind of concept is trained; steers auto-captioning. Server default
    /// `character`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProTrainerMode>,
    /// `iterations`: training length. Server default `300`; range 100..=1000 (upstream BFL
    /// bound; fal's own bound is unpublished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// `learning_rate`: server default none (the service uses 1e-5 for `full` and 1e-4 for
    /// `lora`); range 1e-6..=5e-3 (upstream BFL bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `priority`: speed/quality trade-off. Server default `quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<ProTrainerPriority>,
    /// `captioning`: automatic image captioning on/off. Server default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captioning: Option<bool>,
    /// `trigger_word`: token used in captions for the new concept. Server default `"TOK"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_word: Option<String>,
    /// `lora_rank`: rank of the (extracted) LoRA: `16` (faster) or `32` (more capacity).
    /// Server default `32`; only 16 and 32 are accepted (upstream BFL; fal types it as a
    /// plain integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_rank: Option<u32>,
    /// `finetune_type`: full finetune (then LoRA extraction) or plain LoRA. Server default
    /// `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune_type: Option<FinetuneType>,
}

impl ProTrainerInput {
    /// An input with only the required `data_url` and `finetune_comment` set; every other field
    /// is left to the server default.
    pub fn new(data_url: impl Into<FileInput>, finetune_comment: impl Into<String>) -> Self {
        Self {
            data_url: data_url.into(),
            finetune_comment: finetune_comment.into(),
            ..Self::default()
        }
    }

    /// The same input with every unset field set to the value fal used when it was not sent
    /// (mode `character`, 300 iterations, priority `quality`, captioning on, trigger word `TOK`,
    /// LoRA rank 32, finetune type `full`). `learning_rate` stays unset: fal has no default (the
    /// service picks 1e-5 for `full` and 1e-4 for `lora`).
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            mode: self.mode.or(Some(ProTrainerMode::Character)),
            iterations: self.iterations.or(Some(300)),
            priority: self.priority.or(Some(ProTrainerPriority::Quality)),
            captioning: self.captioning.or(Some(true)),
            trigger_word: self.trigger_word.or(Some("TOK".to_owned())),
            lora_rank: self.lora_rank.or(Some(32)),
            finetune_type: self.finetune_type.or(Some(FinetuneType::Full)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the wire field when `data_url` or `finetune_comment` is
    /// empty, `iterations` is outside 100..=1000, `learning_rate` is not a finite number in
    /// 1e-6..=5e-3, or `lora_rank` is not 16 or 32. The numeric bounds are upstream BFL bounds.
    pub fn validate(&self) -> Result<()> {
        require_file("data_url", &self.data_url)?;
        require_non_empty("finetune_comment", &self.finetune_comment)?;
        check_opt_u32("iterations", self.iterations, 100, 1000)?;
        check_opt_f64(
            "learning_rate",
            self.learning_rate,
            1e-6,
            5e-3,
            "1e-6..=5e-3",
        )?;
        if let Some(rank) = self.lora_rank {
            if rank != 16 && rank != 32 {
                return Err(Error::invalid_input(
                    "lora_rank",
                    format!("must be 16 or 32 (got {rank})"),
                ));
            }
        }
        Ok(())
    }
}

/// `mode` of [`ProTrainerInput`]: the kind of concept being trained. Server default
/// `character`. See <https://fal.ai/models/fal-ai/flux-pro-trainer/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProTrainerMode {
    /// `"character"` (server default): a person or character.
    Character,
    /// `"product"`: an object or product.
    Product,
    /// `"style"`: a visual style.
    Style,
    /// `"general"`: captions the whole image with no subject focus.
    General,
}

/// `priority` of [`ProTrainerInput`]. Server default `quality`.
/// See <https://fal.ai/models/fal-ai/flux-pro-trainer/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProTrainerPriority {
    /// `"speed"`: faster training and inference, lower quality.
    Speed,
    /// `"quality"` (server default).
    Quality,
    /// `"high_res_only"`: train at high resolution only.
    HighResOnly,
}

/// `finetune_type` of [`ProTrainerInput`]. Server default `full`.
/// See <https://fal.ai/models/fal-ai/flux-pro-trainer/api>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinetuneType {
    /// `"full"` (server default): full finetune, then LoRA extraction.
    Full,
    /// `"lora"`: plain LoRA training.
    Lora,
}

/// Output of [`ProTrainer`]. See <https://fal.ai/models/fal-ai/flux-pro-trainer/api>.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProTrainerOutput {
    /// `finetune_id` (always present): opaque id of the trained finetune (BFL describes it as a
    /// UUID; do not parse it). Pass it to
    /// [`UltraFinetunedInput::new`](crate::models::UltraFinetunedInput::new).
    pub finetune_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(input: &ProTrainerInput) -> Option<String> {
        match input.validate() {
            Ok(()) => None,
            Err(Error::InvalidInput { field, .. }) => Some(field),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn enums_use_snake_case() {
        assert_eq!(
            serde_json::to_value(ProTrainerPriority::HighResOnly).unwrap(),
            "high_res_only"
        );
        assert_eq!(
            serde_json::to_value(ProTrainerMode::General).unwrap(),
            "general"
        );
        assert_eq!(serde_json::to_value(FinetuneType::Lora).unwrap(), "lora");
    }

    #[test]
    fn lora_rank_is_16_or_32() {
        let base = ProTrainerInput::new("https://x/d.zip", "c");
        for (rank, ok) in [(16, true), (32, true), (8, false), (24, false), (64, false)] {
            let input = ProTrainerInput {
                lora_rank: Some(rank),
                ..base.clone()
            };
            assert_eq!(field(&input).is_none(), ok, "rank {rank}");
        }
    }
}
