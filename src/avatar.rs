//! The avatar adapter: pick a trainer for the kind of avatar, apply a preset, train, and generate
//! with the generator that matches the trainer.
//!
//! Every kind trains on a trainer fal serves today (fal's list of active models of 2026-01-28,
//! and fal's JavaScript client types of 2026-08-02):
//!
//! | [`AvatarKind`] | default [`Trainer`] | generator | why this trainer |
//! |---|---|---|---|
//! | `Portrait` | `fal-ai/flux-lora-portrait-trainer` (`create_masks: true`) | `fal-ai/flux-lora` | tuned for faces: subject crop, multiresolution training, `[trigger]` captions; masks (fal's default is off) keep the loss on the person |
//! | `Style` | `fal-ai/flux-lora-fast-training` (`is_style: true`) | `fal-ai/flux-lora` | the only live trainer with a style mode that keeps a trigger word; no captions needed |
//! | `Product` | `fal-ai/flux-lora-fast-training` (`create_masks: true`) | `fal-ai/flux-lora` | segmentation masks weight the loss toward the object, not the background; 4 photos suffice |
//! | `General` | `fal-ai/flux-lora-fast-training` | `fal-ai/flux-lora` | fal's trainer for "general subjects or styles"; auto-captioning, trigger word |
//!
//! Any kind can train on any supported trainer instead ([`Trainer::plan`]); each trainer brings
//! its own generator:
//!
//! | [`Trainer`] | generator | notes |
//! |---|---|---|
//! | `fal-ai/flux-lora-portrait-trainer` | `fal-ai/flux-lora` | |
//! | `fal-ai/flux-lora-fast-training` | `fal-ai/flux-lora` | |
//! | `fal-ai/flux-2-trainer`, `fal-ai/flux-2-trainer-v2` | `fal-ai/flux-2/lora` | FLUX.2 \[dev\]; no trigger field: the phrase goes into the captions |
//! | `fal-ai/z-image-trainer` | `fal-ai/z-image/turbo/lora` | Z-Image Turbo; no trigger field: the phrase goes into the captions |
//! | `fal-ai/flux-pro-trainer` | `fal-ai/flux-pro/v1.1-ultra-finetuned` | **legacy**: deprecated on fal; only when asked for, with a `tracing` warning at submit |
//!
//! Presets map onto each trainer's own parameters ([`Preset::values`]):
//!
//! | trainer | `Fast` | `Balanced` | `Quality` | why |
//! |---|---|---|---|---|
//! | portrait | 500 steps, lr 3e-4 | 1000 steps, lr 2e-4 | 2500 steps, lr 1e-4 | the product notes' values; 2500 steps is fal's default |
//! | fast training | 500 steps | 1000 steps | 2000 steps | fal gives no default, its example is 1000; the trainer has no learning-rate field |
//! | FLUX.2 (v1, v2) | 500 steps, lr 5e-5 | 1000 steps, lr 5e-5 | 2000 steps, lr 5e-5 | 1000 steps and 5e-5 are fal's defaults; steps must be multiples of 100 |
//! | Z-Image | 500 steps, lr 1e-4 | 1000 steps, lr 1e-4 | 2000 steps, lr 1e-4 | 1000 steps and 1e-4 are fal's defaults; steps must be multiples of 100 |
//! | pro (legacy) | 200 iterations, lr 2e-4, `speed` | 500, 1e-4, `quality` | 1000, 5e-5, `quality` | the product notes' values (LoRA finetunes) |
//!
//! The flow is explicit so that a service can store every step: a [`TrainingPlan`] (inspect
//! or adjust the trainer input before paying), a [`TrainingJob`] (store its request id; rebuild
//! it with [`TrainingJob::resume`] after a restart), a [`TrainedAvatar`] (serializable: store it
//! and generate later). The archive is built for the trainer ([`Trainer::archive_builder`]), so
//! its rules (image count, captions, where the trigger phrase goes) are checked before upload.
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! use fal_client::avatar::{AvatarKind, Preset, TriggerPhrase};
//!
//! let fal = fal_client::FalClient::from_env()?;
//! let kind = AvatarKind::Product;
//! let trigger = TriggerPhrase::new("TOK_mug")?;
//! let archive = kind
//!     .default_trainer()
//!     .archive_builder(kind, &trigger)
//!     .build_from_dir_async("photos/mug")
//!     .await?;
//! // The photos are personal: the archive expires on fal after a day unless told otherwise.
//! let zip_url = fal.storage().upload_archive(&archive).await?;
//! let plan = kind.plan(Preset::Balanced, zip_url, trigger);
//! let job = plan.submit(&fal).await?;
//! // store job.endpoint_id() and job.request_id() now
//! let avatar = job.wait().await?;
//! let images = avatar.generate(&fal, "TOK_mug on a marble counter, morning light", 2).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::archive::{ArchiveBuilder, ArchiveRules};
use crate::client::FalClient;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::file_input::FileInput;
use crate::models::GenerationOutput;
use crate::models::{
    FinetuneType, Flux2Lora, Flux2LoraInput, Flux2Trainer, Flux2TrainerInput, Flux2TrainerV2,
    FluxLora, FluxLoraFastTraining, FluxLoraFastTrainingInput, FluxLoraInput, Image,
    LoraTrainingOutput, LoraWeight, OutputLoraFormat, PortraitTrainer, PortraitTrainerInput,
    ProTrainer, ProTrainerInput, ProTrainerMode, ProTrainerOutput, ProTrainerPriority,
    UltraFinetuned, UltraFinetunedInput, ZImageTrainer, ZImageTrainerInput, ZImageTrainingType,
    ZImageTurboLora, ZImageTurboLoraInput,
};
use crate::platform::{CostEstimate, Estimate};
use crate::queue::{OnEvent, RequestHandle, Submit, SubmitOptions, Wait, WaitOptions};

/// The payload deletion of a training, keyed by its request id.
fn delete_training_payloads(fal: &FalClient, request_id: &str) -> crate::platform::DeletePayloads {
    fal.platform()
        .delete_payloads(request_id)
        .idempotency_key(format!("delete-training-payloads-{request_id}"))
}

/// What an avatar is of; decides the default trainer and how the trainer is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AvatarKind {
    /// A person. Default: the portrait trainer, generation with FLUX LoRA.
    Portrait,
    /// An artistic style. Default: FLUX LoRA fast training in style mode.
    Style,
    /// A product. Default: FLUX LoRA fast training with segmentation masks.
    Product,
    /// Anything else. Default: FLUX LoRA fast training.
    General,
}

impl AvatarKind {
    /// All kinds.
    pub const ALL: [AvatarKind; 4] = [
        AvatarKind::Portrait,
        AvatarKind::Style,
        AvatarKind::Product,
        AvatarKind::General,
    ];

    /// The trainer this kind uses unless another is picked (see the [module docs](self) for
    /// why): the portrait trainer for portraits, FLUX LoRA fast training for the others. Always
    /// a trainer fal serves today.
    pub fn default_trainer(self) -> Trainer {
        match self {
            AvatarKind::Portrait => Trainer::FluxLoraPortrait,
            AvatarKind::Style | AvatarKind::Product | AvatarKind::General => Trainer::FluxLoraFast,
        }
    }

    /// Build the training plan for this kind on its [default trainer](Self::default_trainer):
    /// the trainer input with the preset's values, the archive (its URL, or a local file or bytes
    /// the submit uploads first: [`FileInput`]) and the trigger phrase.
    /// Adjust it through [`TrainingPlan::request_mut`] before submitting. Same as
    /// `kind.default_trainer().plan(kind, preset, archive_url, trigger)`.
    pub fn plan(
        self,
        preset: Preset,
        archive: impl Into<FileInput>,
        trigger: TriggerPhrase,
    ) -> TrainingPlan {
        self.default_trainer().plan(self, preset, archive, trigger)
    }

    /// The caption given to images without one, on trainers that need a caption for every image
    /// (FLUX.2, Z-Image): `a photo of TOK` (portrait, general), `an image in the style of TOK`
    /// (style), `a product photo of TOK` (product).
    pub fn default_caption(self, trigger: &TriggerPhrase) -> String {
        match self {
            AvatarKind::Portrait | AvatarKind::General => format!("a photo of {trigger}"),
            AvatarKind::Style => format!("an image in the style of {trigger}"),
            AvatarKind::Product => format!("a product photo of {trigger}"),
        }
    }

    /// The wire name (`portrait`, `style`, `product`, `general`).
    pub fn as_str(self) -> &'static str {
        match self {
            AvatarKind::Portrait => "portrait",
            AvatarKind::Style => "style",
            AvatarKind::Product => "product",
            AvatarKind::General => "general",
        }
    }
}

impl fmt::Display for AvatarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AvatarKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portrait" => Ok(AvatarKind::Portrait),
            "style" => Ok(AvatarKind::Style),
            "product" => Ok(AvatarKind::Product),
            "general" => Ok(AvatarKind::General),
            _ => Err(Error::invalid_input(
                "kind",
                format!("{s:?} is not one of portrait, style, product, general"),
            )),
        }
    }
}

/// A trainer the adapter can train on. Serialized, parsed and displayed as its endpoint id.
///
/// See the [module docs](self) for the generator each pairs with and the preset values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trainer {
    /// `fal-ai/flux-lora-portrait-trainer`: FLUX.1 \[dev\] LoRA tuned for portraits.
    FluxLoraPortrait,
    /// `fal-ai/flux-lora-fast-training`: FLUX.1 \[dev\] LoRA for subjects, products and styles.
    FluxLoraFast,
    /// `fal-ai/flux-2-trainer`: FLUX.2 \[dev\] LoRA.
    Flux2,
    /// `fal-ai/flux-2-trainer-v2`: FLUX.2 \[dev\] LoRA, fal's newer version of the same trainer.
    Flux2V2,
    /// `fal-ai/z-image-trainer`: Z-Image Turbo LoRA.
    ZImage,
    /// `fal-ai/flux-pro-trainer`: a FLUX Pro finetune. **Deprecated on fal** ("no longer
    /// supported"; see [`ProTrainer`]): a legacy choice, never a default.
    FluxPro,
}

impl Trainer {
    /// Every trainer, the legacy one last.
    pub const ALL: [Trainer; 6] = [
        Trainer::FluxLoraPortrait,
        Trainer::FluxLoraFast,
        Trainer::Flux2,
        Trainer::Flux2V2,
        Trainer::ZImage,
        Trainer::FluxPro,
    ];

    /// The trainer's endpoint id.
    pub fn endpoint_id(self) -> &'static str {
        match self {
            Trainer::FluxLoraPortrait => PortraitTrainer::ID,
            Trainer::FluxLoraFast => FluxLoraFastTraining::ID,
            Trainer::Flux2 => Flux2Trainer::ID,
            Trainer::Flux2V2 => Flux2TrainerV2::ID,
            Trainer::ZImage => ZImageTrainer::ID,
            Trainer::FluxPro => ProTrainer::ID,
        }
    }

    /// The generator that uses what this trainer produces.
    pub fn generator(self) -> Generator {
        match self {
            Trainer::FluxLoraPortrait | Trainer::FluxLoraFast => Generator::FluxLora,
            Trainer::Flux2 | Trainer::Flux2V2 => Generator::Flux2Lora,
            Trainer::ZImage => Generator::ZImageTurboLora,
            Trainer::FluxPro => Generator::UltraFinetuned,
        }
    }

    /// Whether fal deprecated this trainer ([`crate::models::deprecation`]).
    pub fn is_deprecated(self) -> bool {
        crate::models::deprecation(self.endpoint_id()).is_some()
    }

    /// What this trainer requires of its archive.
    pub fn archive_rules(self) -> ArchiveRules {
        match self {
            Trainer::FluxLoraPortrait => ArchiveRules::PORTRAIT_TRAINER,
            Trainer::FluxLoraFast => ArchiveRules::FLUX_LORA_FAST_TRAINING,
            Trainer::Flux2 => ArchiveRules::FLUX_2_TRAINER,
            Trainer::Flux2V2 => ArchiveRules::FLUX_2_TRAINER_V2,
            Trainer::ZImage => ArchiveRules::Z_IMAGE_TRAINER,
            Trainer::FluxPro => ArchiveRules::PRO_TRAINER,
        }
    }

    /// An archive builder for this trainer and avatar: its [rules](Self::archive_rules), the
    /// trigger phrase (written into the captions where the trainer takes it from there) and,
    /// where the trainer needs a caption for every image, the kind's
    /// [default caption](AvatarKind::default_caption) for images without one (the same text
    /// [`plan`](Self::plan) sends as `default_caption`).
    pub fn archive_builder(self, kind: AvatarKind, trigger: &TriggerPhrase) -> ArchiveBuilder {
        let rules = self.archive_rules();
        let builder = ArchiveBuilder::new().rules(rules).trigger(trigger.as_str());
        if rules.captions_required {
            builder.default_caption(kind.default_caption(trigger))
        } else {
            builder
        }
    }

    /// Build a training plan for a `kind` of avatar on this trainer, with the preset's values
    /// ([`Preset::values`]), the archive (a URL, or a local [`FileInput`] uploaded at submit) and
    /// the trigger phrase (sent as the trainer's
    /// trigger field, or as its `default_caption` when it has none). Adjust it through
    /// [`TrainingPlan::request_mut`] before submitting.
    ///
    /// [`Trainer::FluxPro`] is deprecated on fal: submitting its plan logs a `tracing` warning
    /// and may fail with [`Error::EndpointNotFound`].
    pub fn plan(
        self,
        kind: AvatarKind,
        preset: Preset,
        archive: impl Into<FileInput>,
        trigger: TriggerPhrase,
    ) -> TrainingPlan {
        let url = archive.into();
        let v = preset.values(self);
        let t = trigger.as_str().to_owned();
        let request = match self {
            Trainer::FluxLoraPortrait => TrainingRequest::FluxLoraPortrait(PortraitTrainerInput {
                trigger_phrase: Some(t),
                steps: Some(v.steps),
                learning_rate: v.learning_rate,
                multiresolution_training: Some(true),
                subject_crop: Some(true),
                create_masks: Some(true),
                ..PortraitTrainerInput::new(url)
            }),
            Trainer::FluxLoraFast => {
                let style = kind == AvatarKind::Style;
                TrainingRequest::FluxLoraFast(FluxLoraFastTrainingInput {
                    trigger_word: Some(t),
                    steps: Some(v.steps),
                    is_style: Some(style),
                    create_masks: Some(!style),
                    ..FluxLoraFastTrainingInput::new(url)
                })
            }
            Trainer::Flux2 | Trainer::Flux2V2 => {
                let input = Flux2TrainerInput {
                    steps: Some(v.steps),
                    learning_rate: v.learning_rate,
                    default_caption: Some(kind.default_caption(&trigger)),
                    output_lora_format: Some(OutputLoraFormat::Fal),
                    ..Flux2TrainerInput::new(url)
                };
                if self == Trainer::Flux2 {
                    TrainingRequest::Flux2(input)
                } else {
                    TrainingRequest::Flux2V2(input)
                }
            }
            Trainer::ZImage => TrainingRequest::ZImage(ZImageTrainerInput {
                steps: Some(v.steps),
                learning_rate: v.learning_rate,
                training_type: Some(match kind {
                    AvatarKind::Style => ZImageTrainingType::Style,
                    AvatarKind::Portrait | AvatarKind::Product => ZImageTrainingType::Content,
                    AvatarKind::General => ZImageTrainingType::Balanced,
                }),
                default_caption: Some(kind.default_caption(&trigger)),
                ..ZImageTrainerInput::new(url)
            }),
            Trainer::FluxPro => TrainingRequest::FluxPro(ProTrainerInput {
                mode: Some(match kind {
                    AvatarKind::Portrait => ProTrainerMode::Character,
                    AvatarKind::Style => ProTrainerMode::Style,
                    AvatarKind::Product => ProTrainerMode::Product,
                    AvatarKind::General => ProTrainerMode::General,
                }),
                iterations: Some(v.steps),
                learning_rate: v.learning_rate,
                priority: v.priority,
                captioning: Some(true),
                trigger_word: Some(t),
                finetune_type: Some(FinetuneType::Lora),
                ..ProTrainerInput::new(
                    url,
                    format!("avatar {trigger} ({kind}, {})", preset.as_str()),
                )
            }),
        };
        TrainingPlan {
            kind,
            preset,
            trigger,
            request,
            budget: None,
        }
    }
}

impl fmt::Display for Trainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint_id())
    }
}

impl FromStr for Trainer {
    type Err = Error;
    /// A trainer from its endpoint id (`fal-ai/flux-2-trainer`). The names 0.1 stored,
    /// `portrait` and `pro`, still read (as [`Trainer::FluxLoraPortrait`] and
    /// [`Trainer::FluxPro`]).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "portrait" => return Ok(Trainer::FluxLoraPortrait),
            "pro" => return Ok(Trainer::FluxPro),
            _ => {}
        }
        Trainer::ALL
            .into_iter()
            .find(|t| t.endpoint_id() == s)
            .ok_or_else(|| {
                let ids: Vec<&str> = Trainer::ALL.iter().map(|t| t.endpoint_id()).collect();
                Error::invalid_input(
                    "trainer",
                    format!(
                        "{s:?} is not a supported trainer; one of {}",
                        ids.join(", ")
                    ),
                )
            })
    }
}

impl Serialize for Trainer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.endpoint_id())
    }
}

impl<'de> Deserialize<'de> for Trainer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A generator that uses what a [`Trainer`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Generator {
    /// `fal-ai/flux-lora`: FLUX.1 \[dev\] with LoRAs.
    FluxLora,
    /// `fal-ai/flux-2/lora`: FLUX.2 \[dev\] with LoRAs.
    Flux2Lora,
    /// `fal-ai/z-image/turbo/lora`: Z-Image Turbo with LoRAs.
    ZImageTurboLora,
    /// `fal-ai/flux-pro/v1.1-ultra-finetuned`: FLUX1.1 \[pro\] ultra with a finetune id.
    UltraFinetuned,
}

impl Generator {
    /// Every generator.
    pub const ALL: [Generator; 4] = [
        Generator::FluxLora,
        Generator::Flux2Lora,
        Generator::ZImageTurboLora,
        Generator::UltraFinetuned,
    ];

    /// The generator's endpoint id.
    pub fn endpoint_id(self) -> &'static str {
        match self {
            Generator::FluxLora => FluxLora::ID,
            Generator::Flux2Lora => Flux2Lora::ID,
            Generator::ZImageTurboLora => ZImageTurboLora::ID,
            Generator::UltraFinetuned => UltraFinetuned::ID,
        }
    }
}

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint_id())
    }
}

impl FromStr for Generator {
    type Err = Error;
    /// A generator from its endpoint id (`fal-ai/flux-2/lora`).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Generator::ALL
            .into_iter()
            .find(|g| g.endpoint_id() == s)
            .ok_or_else(|| {
                let ids: Vec<&str> = Generator::ALL.iter().map(|g| g.endpoint_id()).collect();
                Error::invalid_input(
                    "generator",
                    format!(
                        "{s:?} is not a supported generator; one of {}",
                        ids.join(", ")
                    ),
                )
            })
    }
}

impl Serialize for Generator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.endpoint_id())
    }
}

impl<'de> Deserialize<'de> for Generator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Training presets (fast / balanced / quality). Each maps onto the chosen trainer's own
/// parameters: see [`Preset::values`] and the table in the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// Quick prototypes: the shortest training (500 steps; 200 iterations on the legacy pro
    /// trainer).
    Fast,
    /// The production default (1000 steps, fal's own default on FLUX.2 and Z-Image; 500
    /// iterations on the legacy pro trainer).
    #[default]
    Balanced,
    /// Best results: the longest training (2000 steps; 2500, fal's default, on the portrait
    /// trainer; 1000 iterations on the legacy pro trainer), longer and dearer.
    Quality,
}

/// The trainer parameters of a [`Preset`] on one [`Trainer`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PresetValues {
    /// Training length: `steps`, or `iterations` on the legacy pro trainer.
    pub steps: u32,
    /// `learning_rate`, on trainers that have one (not FLUX LoRA fast training).
    pub learning_rate: Option<f64>,
    /// `priority`, on the legacy pro trainer only.
    pub priority: Option<ProTrainerPriority>,
}

impl Preset {
    /// All presets.
    pub const ALL: [Preset; 3] = [Preset::Fast, Preset::Balanced, Preset::Quality];

    /// The values this preset sets on `trainer` (the table in the [module docs](self)).
    pub fn values(self, trainer: Trainer) -> PresetValues {
        let i = match self {
            Preset::Fast => 0,
            Preset::Balanced => 1,
            Preset::Quality => 2,
        };
        let (steps, learning_rate, priority): ([u32; 3], Option<[f64; 3]>, _) = match trainer {
            Trainer::FluxLoraPortrait => ([500, 1000, 2500], Some([3e-4, 2e-4, 1e-4]), None),
            Trainer::FluxLoraFast => ([500, 1000, 2000], None, None),
            Trainer::Flux2 | Trainer::Flux2V2 => {
                ([500, 1000, 2000], Some([5e-5, 5e-5, 5e-5]), None)
            }
            Trainer::ZImage => ([500, 1000, 2000], Some([1e-4, 1e-4, 1e-4]), None),
            Trainer::FluxPro => (
                [200, 500, 1000],
                Some([2e-4, 1e-4, 5e-5]),
                Some(
                    [
                        ProTrainerPriority::Speed,
                        ProTrainerPriority::Quality,
                        ProTrainerPriority::Quality,
                    ][i],
                ),
            ),
        };
        PresetValues {
            steps: steps[i],
            learning_rate: learning_rate.map(|l| l[i]),
            priority,
        }
    }

    /// The name (`fast`, `balanced`, `quality`).
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Fast => "fast",
            Preset::Balanced => "balanced",
            Preset::Quality => "quality",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fast" => Ok(Preset::Fast),
            "balanced" => Ok(Preset::Balanced),
            "quality" => Ok(Preset::Quality),
            _ => Err(Error::invalid_input(
                "preset",
                format!("{s:?} is not one of fast, balanced, quality"),
            )),
        }
    }
}

/// The word or phrase that names the avatar in captions and prompts (`TOK_anna`).
///
/// Sent as `trigger_phrase` to the portrait trainer and `trigger_word` to FLUX LoRA fast training
/// (and the pro trainer); the FLUX.2 and Z-Image trainers have no trigger field, so it goes into
/// their captions and `default_caption` ([`Trainer::archive_builder`]). It replaces `[trigger]` in
/// captions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TriggerPhrase(String);

impl TriggerPhrase {
    /// Longest accepted phrase, in characters.
    pub const MAX_LEN: usize = 100;

    /// A trigger phrase.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`trigger_phrase`) when empty, longer than 100 characters, or
    /// containing control characters or `[`/`]` (which would clash with the `[trigger]`
    /// placeholder).
    pub fn new(phrase: impl Into<String>) -> Result<Self> {
        let p = phrase.into();
        let t = p.trim();
        let bad = |m: &str| Err(Error::invalid_input("trigger_phrase", m.to_owned()));
        if t.is_empty() {
            return bad("must not be empty");
        }
        if t.chars().count() > Self::MAX_LEN {
            return bad(&format!("must be at most {} characters", Self::MAX_LEN));
        }
        if t.chars().any(|c| c.is_control() || c == '[' || c == ']') {
            return bad("must not contain control characters, '[' or ']'");
        }
        Ok(Self(t.to_owned()))
    }

    /// `TOK_{avatar_id}`, the convention of the product notes.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn for_avatar(avatar_id: &str) -> Result<Self> {
        Self::new(format!("TOK_{avatar_id}"))
    }

    /// The phrase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TriggerPhrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TriggerPhrase {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<TriggerPhrase> for String {
    fn from(t: TriggerPhrase) -> String {
        t.0
    }
}

/// The trainer input of a plan, tagged with the trainer's endpoint id when serialized
/// (`{"trainer": "fal-ai/flux-2-trainer", "input": {...}}`; plans stored by 0.1 with the tags
/// `portrait` and `pro` still read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trainer", content = "input")]
#[non_exhaustive]
pub enum TrainingRequest {
    /// Input of `fal-ai/flux-lora-portrait-trainer`.
    #[serde(rename = "fal-ai/flux-lora-portrait-trainer", alias = "portrait")]
    FluxLoraPortrait(PortraitTrainerInput),
    /// Input of `fal-ai/flux-lora-fast-training`.
    #[serde(rename = "fal-ai/flux-lora-fast-training")]
    FluxLoraFast(FluxLoraFastTrainingInput),
    /// Input of `fal-ai/flux-2-trainer`.
    #[serde(rename = "fal-ai/flux-2-trainer")]
    Flux2(Flux2TrainerInput),
    /// Input of `fal-ai/flux-2-trainer-v2`.
    #[serde(rename = "fal-ai/flux-2-trainer-v2")]
    Flux2V2(Flux2TrainerInput),
    /// Input of `fal-ai/z-image-trainer`.
    #[serde(rename = "fal-ai/z-image-trainer")]
    ZImage(ZImageTrainerInput),
    /// Input of `fal-ai/flux-pro-trainer` (deprecated on fal).
    #[serde(rename = "fal-ai/flux-pro-trainer", alias = "pro")]
    FluxPro(ProTrainerInput),
}

impl TrainingRequest {
    /// The trainer this input is for.
    pub fn trainer(&self) -> Trainer {
        match self {
            TrainingRequest::FluxLoraPortrait(_) => Trainer::FluxLoraPortrait,
            TrainingRequest::FluxLoraFast(_) => Trainer::FluxLoraFast,
            TrainingRequest::Flux2(_) => Trainer::Flux2,
            TrainingRequest::Flux2V2(_) => Trainer::Flux2V2,
            TrainingRequest::ZImage(_) => Trainer::ZImage,
            TrainingRequest::FluxPro(_) => Trainer::FluxPro,
        }
    }

    /// The training length: `steps` (`iterations` on the pro trainer), when set.
    pub fn steps(&self) -> Option<u32> {
        match self {
            TrainingRequest::FluxLoraPortrait(i) => i.steps,
            TrainingRequest::FluxLoraFast(i) => i.steps,
            TrainingRequest::Flux2(i) | TrainingRequest::Flux2V2(i) => i.steps,
            TrainingRequest::ZImage(i) => i.steps,
            TrainingRequest::FluxPro(i) => i.iterations,
        }
    }

    /// Check the trainer input (ranges, required values).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            TrainingRequest::FluxLoraPortrait(i) => i.validate(),
            TrainingRequest::FluxLoraFast(i) => i.validate(),
            TrainingRequest::Flux2(i) | TrainingRequest::Flux2V2(i) => i.validate(),
            TrainingRequest::ZImage(i) => i.validate(),
            TrainingRequest::FluxPro(i) => i.validate(),
        }
    }
}

/// What will be trained, before anything is paid: inspect it, adjust it, then
/// [`submit`](Self::submit) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPlan {
    kind: AvatarKind,
    preset: Preset,
    trigger: TriggerPhrase,
    request: TrainingRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<Budget>,
}

/// The most a training may cost: [`TrainingPlan::submit`] refuses a plan whose
/// [`estimate`](TrainingPlan::estimate) is above it ([`Error::OverBudget`]), before anything is
/// uploaded or submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The cap, in `currency`.
    pub max: f64,
    /// Three-letter currency code, as fal's prices give it (`USD`).
    pub currency: String,
}

impl Budget {
    /// A cap in US dollars.
    pub fn usd(max: f64) -> Self {
        Self {
            max,
            currency: "USD".to_owned(),
        }
    }
}

/// The units a price's `unit` counts, for a request of `steps`, `images` images of `megapixels`
/// each; `None` when the unit is none of these (the estimate then uses fal's historical price
/// per call).
fn billed_quantity(
    unit: &str,
    steps: Option<u32>,
    images: u32,
    megapixels: Option<f64>,
) -> Option<f64> {
    let unit = unit.to_ascii_lowercase();
    let is = |words: &[&str]| words.iter().any(|w| unit == *w || unit == format!("{w}s"));
    if unit.contains("megapixel") {
        megapixels.map(|mp| mp * f64::from(images))
    } else if unit.contains("step") {
        steps.map(f64::from)
    } else if is(&["image"]) {
        Some(f64::from(images))
    } else if is(&["training", "run", "request", "call", "unit"]) {
        Some(1.0)
    } else {
        None
    }
}

/// fal's estimate for one request to `endpoint`: from its unit price when its billing unit is
/// one `quantity` knows, else from its historical price per call.
async fn estimate_request(
    fal: &FalClient,
    endpoint: &str,
    quantity: impl Fn(&str) -> Option<f64>,
) -> Result<CostEstimate> {
    let platform = fal.platform();
    let prices = platform.pricing([endpoint]).await?;
    let units = prices
        .iter()
        .find(|p| p.endpoint_id == endpoint)
        .and_then(|p| quantity(&p.unit))
        .filter(|q| *q > 0.0);
    let estimate = match units {
        Some(q) => Estimate::units([(endpoint, q)]),
        None => Estimate::calls([(endpoint, 1)]),
    };
    platform.estimate(&estimate).await
}

impl TrainingPlan {
    /// The avatar kind.
    pub fn kind(&self) -> AvatarKind {
        self.kind
    }

    /// The preset the plan started from.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The trigger phrase.
    pub fn trigger(&self) -> &TriggerPhrase {
        &self.trigger
    }

    /// The trainer.
    pub fn trainer(&self) -> Trainer {
        self.request.trainer()
    }

    /// The trainer's endpoint id.
    pub fn endpoint_id(&self) -> &'static str {
        self.trainer().endpoint_id()
    }

    /// The trainer input.
    pub fn request(&self) -> &TrainingRequest {
        &self.request
    }

    /// The trainer input, to adjust (e.g. `steps`, `create_masks`).
    pub fn request_mut(&mut self) -> &mut TrainingRequest {
        &mut self.request
    }

    /// Check the trainer input (ranges, required values).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn validate(&self) -> Result<()> {
        self.request.validate()
    }

    /// The spending cap checked at [`submit`](Self::submit), if any.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// Set (or clear) the spending cap checked at [`submit`](Self::submit).
    pub fn set_budget(&mut self, budget: Option<Budget>) {
        self.budget = budget;
    }

    /// What the training would cost, from fal's Platform API: the trainer's price
    /// ([`Platform::pricing`](crate::platform::Platform::pricing)), then fal's estimate for the
    /// plan's quantity of its billing unit (one training, or the plan's steps when priced per
    /// step); fal's historical price per call when the unit is another one.
    ///
    /// # Errors
    /// As [`Platform::estimate`](crate::platform::Platform::estimate).
    pub async fn estimate(&self, fal: &FalClient) -> Result<CostEstimate> {
        let steps = self.request.steps();
        estimate_request(fal, self.endpoint_id(), |unit| {
            billed_quantity(unit, steps, 0, None)
        })
        .await
    }

    /// [`Error::OverBudget`] when the estimate is above the budget.
    async fn check_budget(&self, fal: &FalClient, budget: &Budget) -> Result<()> {
        let estimate = self.estimate(fal).await?;
        if !estimate.currency.eq_ignore_ascii_case(&budget.currency) {
            return Err(Error::invalid_input(
                "budget",
                format!(
                    "is in {} but fal prices {} in {}",
                    budget.currency,
                    self.endpoint_id(),
                    estimate.currency
                ),
            ));
        }
        if estimate.total_cost > budget.max {
            return Err(Error::OverBudget {
                endpoint: self.endpoint_id().to_owned(),
                estimate: estimate.total_cost,
                budget: budget.max,
                currency: estimate.currency,
            });
        }
        Ok(())
    }

    /// Submit to the trainer's queue: a [`Submit`] builder (webhook, priority, runner hint,
    /// start timeout, headers) that validates the input and sends it when awaited, and returns
    /// the [`TrainingJob`].
    ///
    /// # Errors (when awaited)
    /// As [`FalClient::submit`]; [`Error::EndpointNotFound`] when fal no longer serves the
    /// trainer (the legacy pro trainer).
    pub fn submit(&self, fal: &FalClient) -> Submit<TrainingJob> {
        let (fal, plan) = (fal.clone(), self.clone());
        Submit::new(move |options| Box::pin(async move { plan.send(&fal, options).await }))
    }

    async fn send(&self, fal: &FalClient, options: SubmitOptions) -> Result<TrainingJob> {
        if let Some(budget) = &self.budget {
            // Before the archive is uploaded and anything is submitted.
            self.check_budget(fal, budget).await?;
        }
        let handle = match &self.request {
            TrainingRequest::FluxLoraPortrait(i) => TrainingHandle::Lora(
                fal.submit::<PortraitTrainer>(i)
                    .with_options(options)
                    .await?,
            ),
            TrainingRequest::FluxLoraFast(i) => TrainingHandle::Lora(
                fal.submit::<FluxLoraFastTraining>(i)
                    .with_options(options)
                    .await?,
            ),
            TrainingRequest::Flux2(i) => {
                TrainingHandle::Lora(fal.submit::<Flux2Trainer>(i).with_options(options).await?)
            }
            TrainingRequest::Flux2V2(i) => TrainingHandle::Lora(
                fal.submit::<Flux2TrainerV2>(i)
                    .with_options(options)
                    .await?,
            ),
            TrainingRequest::ZImage(i) => {
                TrainingHandle::Lora(fal.submit::<ZImageTrainer>(i).with_options(options).await?)
            }
            TrainingRequest::FluxPro(i) => {
                TrainingHandle::Finetune(fal.submit::<ProTrainer>(i).with_options(options).await?)
            }
        };
        Ok(TrainingJob {
            kind: self.kind,
            trainer: self.trainer(),
            trigger: self.trigger.clone(),
            handle,
        })
    }
}

#[derive(Debug, Clone)]
enum TrainingHandle {
    Lora(RequestHandle<LoraTrainingOutput>),
    Finetune(RequestHandle<ProTrainerOutput>),
}

/// A submitted training. Store [`endpoint_id`](Self::endpoint_id) and
/// [`request_id`](Self::request_id) (with the kind and trigger) right away: they are the only way
/// back to a paid job after a restart.
#[derive(Debug, Clone)]
pub struct TrainingJob {
    kind: AvatarKind,
    trainer: Trainer,
    trigger: TriggerPhrase,
    handle: TrainingHandle,
}

impl TrainingJob {
    /// Rebuild a job from what was stored at submit.
    ///
    /// Jobs submitted with 0.1 did not store the trainer: portraits trained on
    /// [`Trainer::FluxLoraPortrait`], the other kinds on [`Trainer::FluxPro`] (`"portrait"` and
    /// `"pro"` parse as those).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty request id.
    pub fn resume(
        fal: &FalClient,
        trainer: Trainer,
        kind: AvatarKind,
        trigger: TriggerPhrase,
        request_id: &str,
    ) -> Result<Self> {
        let handle = match trainer {
            Trainer::FluxPro => TrainingHandle::Finetune(fal.resume(ProTrainer::ID, request_id)?),
            lora => TrainingHandle::Lora(fal.resume(lora.endpoint_id(), request_id)?),
        };
        Ok(Self {
            kind,
            trainer,
            trigger,
            handle,
        })
    }

    /// fal's request id.
    pub fn request_id(&self) -> &str {
        match &self.handle {
            TrainingHandle::Lora(h) => h.request_id(),
            TrainingHandle::Finetune(h) => h.request_id(),
        }
    }

    /// The trainer.
    pub fn trainer(&self) -> Trainer {
        self.trainer
    }

    /// The trainer's endpoint id.
    pub fn endpoint_id(&self) -> &'static str {
        self.trainer.endpoint_id()
    }

    /// The avatar kind.
    pub fn kind(&self) -> AvatarKind {
        self.kind
    }

    /// The trigger phrase.
    pub fn trigger(&self) -> &TriggerPhrase {
        &self.trigger
    }

    /// The queue position at submit, when known.
    pub fn queue_position(&self) -> Option<u64> {
        match &self.handle {
            TrainingHandle::Lora(h) => h.queue_position(),
            TrainingHandle::Finetune(h) => h.queue_position(),
        }
    }

    /// Delete the training's stored payloads on fal (its input, which names the archive of
    /// photos, its output and the output's files): a
    /// [`DeletePayloads`](crate::platform::DeletePayloads) with an idempotency key made from the
    /// request id, so repeating it within 10 minutes deletes once. Needs an ADMIN key; it cannot
    /// be undone (download the LoRA first if you keep it elsewhere). The archive itself is an
    /// upload: it expires by its own lifecycle (a day, by default).
    pub fn delete_payloads(&self, fal: &FalClient) -> crate::platform::DeletePayloads {
        delete_training_payloads(fal, self.request_id())
    }

    /// The units fal billed for the finished training (`x-fal-billable-units` on its result),
    /// when fal sent them: asks for the result again (an idempotent `GET`, not billed).
    ///
    /// # Errors
    /// As [`RequestHandle::billed_result`] (the training's own error when it failed).
    pub async fn billable_units(&self) -> Result<Option<crate::billing::BillableUnits>> {
        Ok(match &self.handle {
            TrainingHandle::Lora(h) => h.billed_result().await?.billable_units,
            TrainingHandle::Finetune(h) => h.billed_result().await?.billable_units,
        })
    }

    /// Cancel the training on fal.
    ///
    /// # Errors
    /// As [`RequestHandle::cancel`].
    pub async fn cancel(&self) -> Result<crate::queue::CancelOutcome> {
        match &self.handle {
            TrainingHandle::Lora(h) => h.cancel().await,
            TrainingHandle::Finetune(h) => h.cancel().await,
        }
    }

    /// Wait for the training to finish: a [`Wait`] builder (deadline, progress events,
    /// polling) that returns the [`TrainedAvatar`] when awaited.
    ///
    /// # Errors (when awaited)
    /// As [`RequestHandle::wait`].
    pub fn wait(&self) -> Wait<'_, TrainedAvatar> {
        Wait::new(move |options, on_event| {
            Box::pin(async move {
                let model = match &self.handle {
                    TrainingHandle::Lora(h) => {
                        let out = h.wait_for(options, on_event).await?;
                        AvatarModel::Lora {
                            url: out.diffusers_lora_file.url,
                            config_url: Some(out.config_file.url),
                        }
                    }
                    TrainingHandle::Finetune(h) => AvatarModel::Finetune {
                        id: h.wait_for(options, on_event).await?.finetune_id,
                    },
                };
                Ok(TrainedAvatar {
                    kind: self.kind,
                    trainer: self.trainer,
                    trigger: self.trigger.clone(),
                    training_request_id: Some(self.request_id().to_owned()),
                    model,
                })
            })
        })
    }
}

/// What a training produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AvatarModel {
    /// A diffusers LoRA file (a LoRA trainer's `diffusers_lora_file`).
    Lora {
        /// URL of the `.safetensors` file.
        url: String,
        /// URL of the training config, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_url: Option<String>,
    },
    /// A FLUX Pro finetune (the legacy pro trainer's `finetune_id`), used with the ultra
    /// fine-tuned generator.
    Finetune {
        /// The finetune id.
        id: String,
    },
}

/// A trained avatar. Serializable: store it, generate later.
///
/// Avatars stored by 0.1 have no `trainer`: a LoRA is taken to come from the portrait trainer
/// and a finetune from the pro trainer, the only ones 0.1 used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredAvatar")]
pub struct TrainedAvatar {
    kind: AvatarKind,
    trainer: Trainer,
    trigger: TriggerPhrase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training_request_id: Option<String>,
    model: AvatarModel,
}

impl TrainedAvatar {
    /// An avatar from what a training produced (for avatars trained elsewhere, or rebuilt from
    /// your own storage); [`TrainingJob::wait`] makes one for you.
    pub fn new(
        kind: AvatarKind,
        trainer: Trainer,
        trigger: TriggerPhrase,
        model: AvatarModel,
        training_request_id: Option<String>,
    ) -> Self {
        Self {
            kind,
            trainer,
            trigger,
            training_request_id,
            model,
        }
    }

    /// The avatar kind.
    pub fn kind(&self) -> AvatarKind {
        self.kind
    }

    /// The trainer that made it; decides the generator ([`Trainer::generator`]).
    pub fn trainer(&self) -> Trainer {
        self.trainer
    }

    /// The trigger phrase used in training; prompts should contain it.
    pub fn trigger(&self) -> &TriggerPhrase {
        &self.trigger
    }

    /// The training's request id, when known.
    pub fn training_request_id(&self) -> Option<&str> {
        self.training_request_id.as_deref()
    }

    /// Delete the training's stored payloads on fal, as [`TrainingJob::delete_payloads`]: the
    /// one call for a finished training, since people's photos are in them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the avatar does not know its training's request id (built
    /// with [`TrainedAvatar::new`] without one).
    pub fn delete_training_payloads(
        &self,
        fal: &FalClient,
    ) -> Result<crate::platform::DeletePayloads> {
        let id = self.training_request_id().ok_or_else(|| {
            Error::invalid_input(
                "training_request_id",
                "is unknown: the avatar was made without its training's request id",
            )
        })?;
        Ok(delete_training_payloads(fal, id))
    }

    /// The trained model.
    pub fn model(&self) -> &AvatarModel {
        &self.model
    }
}

/// [`TrainedAvatar`] as stored, with `trainer` optional (0.1 did not store it).
#[derive(Deserialize)]
struct StoredAvatar {
    kind: AvatarKind,
    #[serde(default)]
    trainer: Option<Trainer>,
    trigger: TriggerPhrase,
    #[serde(default)]
    training_request_id: Option<String>,
    model: AvatarModel,
}

impl From<StoredAvatar> for TrainedAvatar {
    fn from(s: StoredAvatar) -> Self {
        let trainer = s.trainer.unwrap_or(match s.model {
            AvatarModel::Lora { .. } => Trainer::FluxLoraPortrait,
            AvatarModel::Finetune { .. } => Trainer::FluxPro,
        });
        Self {
            kind: s.kind,
            trainer,
            trigger: s.trigger,
            training_request_id: s.training_request_id,
            model: s.model,
        }
    }
}

/// A generation request for a trained avatar: inspect or adjust it before submitting. Tagged
/// with the generator's endpoint id when serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "generator", content = "input")]
#[non_exhaustive]
pub enum GenerationRequest {
    /// `fal-ai/flux-lora` with the avatar's LoRA.
    #[serde(rename = "fal-ai/flux-lora", alias = "flux_lora")]
    FluxLora(FluxLoraInput),
    /// `fal-ai/flux-2/lora` with the avatar's LoRA.
    #[serde(rename = "fal-ai/flux-2/lora")]
    Flux2Lora(Flux2LoraInput),
    /// `fal-ai/z-image/turbo/lora` with the avatar's LoRA.
    #[serde(rename = "fal-ai/z-image/turbo/lora")]
    ZImageTurboLora(ZImageTurboLoraInput),
    /// `fal-ai/flux-pro/v1.1-ultra-finetuned` with the avatar's finetune id.
    #[serde(
        rename = "fal-ai/flux-pro/v1.1-ultra-finetuned",
        alias = "ultra_finetuned"
    )]
    UltraFinetuned(UltraFinetunedInput),
}

impl GenerationRequest {
    /// The generator.
    pub fn generator(&self) -> Generator {
        match self {
            GenerationRequest::FluxLora(_) => Generator::FluxLora,
            GenerationRequest::Flux2Lora(_) => Generator::Flux2Lora,
            GenerationRequest::ZImageTurboLora(_) => Generator::ZImageTurboLora,
            GenerationRequest::UltraFinetuned(_) => Generator::UltraFinetuned,
        }
    }

    /// The generator's endpoint id.
    pub fn endpoint_id(&self) -> &'static str {
        self.generator().endpoint_id()
    }

    /// How many images it asks for (fal's default 1 when unset).
    pub fn num_images(&self) -> u32 {
        match self {
            GenerationRequest::FluxLora(i) => i.num_images,
            GenerationRequest::Flux2Lora(i) => i.num_images,
            GenerationRequest::ZImageTurboLora(i) => i.num_images,
            GenerationRequest::UltraFinetuned(i) => i.num_images,
        }
        .unwrap_or(1)
    }

    /// Megapixels of one image, when the generator takes an `image_size` (fal's default
    /// `landscape_4_3` when unset); `None` for the ultra generator (an aspect ratio).
    fn megapixels(&self) -> Option<f64> {
        let size = match self {
            GenerationRequest::FluxLora(i) => i.image_size,
            GenerationRequest::Flux2Lora(i) => i.image_size,
            GenerationRequest::ZImageTurboLora(i) => i.image_size,
            GenerationRequest::UltraFinetuned(_) => return None,
        };
        Some(
            size.unwrap_or(crate::models::ImageSize::Landscape4_3)
                .megapixels(),
        )
    }

    /// What the generation would cost, from fal's Platform API: the generator's price, then
    /// fal's estimate for the request's quantity of its billing unit (images, or megapixels of
    /// the images at their size); fal's historical price per call for any other unit.
    ///
    /// # Errors
    /// As [`Platform::estimate`](crate::platform::Platform::estimate).
    pub async fn estimate(&self, fal: &FalClient) -> Result<CostEstimate> {
        let (images, megapixels) = (self.num_images(), self.megapixels());
        estimate_request(fal, self.endpoint_id(), |unit| {
            billed_quantity(unit, None, images, megapixels)
        })
        .await
    }

    /// Check the generator input.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    pub fn validate(&self) -> Result<()> {
        match self {
            GenerationRequest::FluxLora(i) => i.validate(),
            GenerationRequest::Flux2Lora(i) => i.validate(),
            GenerationRequest::ZImageTurboLora(i) => i.validate(),
            GenerationRequest::UltraFinetuned(i) => i.validate(),
        }
    }

    /// Submit to the generator's queue and wait for the images: a [`Wait`] builder (deadline,
    /// progress events) that returns them when awaited. The deadline defaults to
    /// [`TrainedAvatar::DEFAULT_GENERATION_TIMEOUT`] (10 minutes; then the request is cancelled
    /// on fal and [`Error::Timeout`] carries its id).
    ///
    /// # Errors (when awaited)
    /// As [`FalClient::submit`] and [`RequestHandle::wait`].
    pub fn generate(&self, fal: &FalClient) -> Wait<'static, Vec<Image>> {
        let (fal, request) = (fal.clone(), self.clone());
        Wait::new(move |options, on_event| {
            Box::pin(async move { request.send_and_wait(&fal, options, on_event).await })
        })
        .timeout(TrainedAvatar::DEFAULT_GENERATION_TIMEOUT)
    }

    /// Submit to the generator's queue without waiting: a [`Submit`] builder (webhook,
    /// priority, usage tags, ...) that validates the input and sends it when awaited, and
    /// returns the request's handle (wait on it, or ask
    /// [`billed_result`](RequestHandle::billed_result) for the units fal billed).
    ///
    /// # Errors (when awaited)
    /// As [`FalClient::submit`].
    pub fn submit(&self, fal: &FalClient) -> Submit<RequestHandle<GenerationOutput>> {
        let (fal, request) = (fal.clone(), self.clone());
        Submit::new(move |options| Box::pin(async move { request.send(&fal, options).await }))
    }

    async fn send(
        &self,
        fal: &FalClient,
        options: SubmitOptions,
    ) -> Result<RequestHandle<GenerationOutput>> {
        match self {
            GenerationRequest::FluxLora(i) => fal.submit::<FluxLora>(i).with_options(options).await,
            GenerationRequest::Flux2Lora(i) => {
                fal.submit::<Flux2Lora>(i).with_options(options).await
            }
            GenerationRequest::ZImageTurboLora(i) => {
                fal.submit::<ZImageTurboLora>(i).with_options(options).await
            }
            GenerationRequest::UltraFinetuned(i) => {
                fal.submit::<UltraFinetuned>(i).with_options(options).await
            }
        }
    }

    async fn send_and_wait(
        &self,
        fal: &FalClient,
        options: WaitOptions,
        on_event: OnEvent<'_>,
    ) -> Result<Vec<Image>> {
        let handle = self.send(fal, SubmitOptions::default()).await?;
        Ok(handle.wait_for(options, on_event).await?.images)
    }
}

impl TrainedAvatar {
    /// `finetune_strength` used for finetunes: 1.2, the upstream (BFL) default; fal has none.
    pub const DEFAULT_FINETUNE_STRENGTH: f64 = 1.2;

    /// The generator this avatar's model is used with ([`Trainer::generator`]).
    pub fn generator(&self) -> Generator {
        self.trainer.generator()
    }

    /// The generation request for `n` images (1..=4) of `prompt`, on the generator that matches
    /// the trainer. The trigger phrase is put in front of the prompt when the prompt does not
    /// contain it. A LoRA is applied at scale 1.0; a finetune at strength
    /// [`DEFAULT_FINETUNE_STRENGTH`](Self::DEFAULT_FINETUNE_STRENGTH).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty prompt, `n` outside 1..=4, or a model that does not
    /// fit the trainer's generator (a finetune id from a LoRA trainer, or the reverse).
    pub fn generation(&self, prompt: &str, n: u32) -> Result<GenerationRequest> {
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(Error::invalid_input("prompt", "must not be empty"));
        }
        // `n` is checked with the rest of the request by its `validate` below.
        let prompt = if crate::archive::contains_phrase(prompt, self.trigger.as_str()) {
            prompt.to_owned()
        } else {
            format!("{}, {prompt}", self.trigger)
        };
        let request = match (&self.model, self.generator()) {
            (AvatarModel::Lora { url, .. }, Generator::FluxLora) => {
                GenerationRequest::FluxLora(FluxLoraInput {
                    loras: vec![LoraWeight::new(url.clone())],
                    num_images: Some(n),
                    ..FluxLoraInput::new(prompt)
                })
            }
            (AvatarModel::Lora { url, .. }, Generator::Flux2Lora) => {
                GenerationRequest::Flux2Lora(Flux2LoraInput {
                    loras: vec![LoraWeight::new(url.clone())],
                    num_images: Some(n),
                    ..Flux2LoraInput::new(prompt)
                })
            }
            (AvatarModel::Lora { url, .. }, Generator::ZImageTurboLora) => {
                GenerationRequest::ZImageTurboLora(ZImageTurboLoraInput {
                    loras: vec![LoraWeight::new(url.clone())],
                    num_images: Some(n),
                    ..ZImageTurboLoraInput::new(prompt)
                })
            }
            (AvatarModel::Finetune { id }, Generator::UltraFinetuned) => {
                GenerationRequest::UltraFinetuned(UltraFinetunedInput {
                    num_images: Some(n),
                    ..UltraFinetunedInput::new(prompt, id.clone(), Self::DEFAULT_FINETUNE_STRENGTH)
                })
            }
            (model, generator) => {
                return Err(Error::invalid_input(
                    "model",
                    format!(
                        "a {} cannot be used with {generator} (the generator of {})",
                        match model {
                            AvatarModel::Lora { .. } => "LoRA file",
                            AvatarModel::Finetune { .. } => "finetune id",
                        },
                        self.trainer
                    ),
                ))
            }
        };
        request.validate()?;
        Ok(request)
    }

    /// How long [`generate`](Self::generate) waits for the images by default: 10 minutes
    /// (then the request is cancelled on fal and [`Error::Timeout`] carries its id).
    pub const DEFAULT_GENERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

    /// Generate `n` images (1..=4) of `prompt` with the avatar: a [`Wait`] builder (deadline,
    /// default [`DEFAULT_GENERATION_TIMEOUT`](Self::DEFAULT_GENERATION_TIMEOUT); progress
    /// events) that returns the images when awaited. Same as
    /// `avatar.generation(prompt, n)?.generate(fal)`, with the prompt checked when awaited.
    ///
    /// # Errors (when awaited)
    /// As [`generation`](Self::generation) and [`GenerationRequest::generate`].
    pub fn generate(&self, fal: &FalClient, prompt: &str, n: u32) -> Wait<'static, Vec<Image>> {
        let fal = fal.clone();
        let request = self.generation(prompt, n);
        Wait::new(move |options, on_event| {
            Box::pin(async move { request?.send_and_wait(&fal, options, on_event).await })
        })
        .timeout(Self::DEFAULT_GENERATION_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trig() -> TriggerPhrase {
        TriggerPhrase::new("TOK_anna").unwrap()
    }

    #[test]
    fn every_kind_defaults_to_a_live_trainer() {
        for kind in AvatarKind::ALL {
            let trainer = kind.default_trainer();
            assert!(!trainer.is_deprecated(), "{kind}: {trainer}");
            for preset in Preset::ALL {
                let plan = kind.plan(preset, "https://x/a.zip", trig());
                assert_eq!(plan.trainer(), trainer);
                plan.validate().unwrap();
            }
        }
        assert_eq!(
            AvatarKind::Portrait.default_trainer().endpoint_id(),
            "fal-ai/flux-lora-portrait-trainer"
        );
        assert!(Trainer::FluxPro.is_deprecated());
    }

    #[test]
    fn portrait_goes_to_the_portrait_trainer_with_preset_values() {
        for (preset, steps, lr) in [
            (Preset::Fast, 500, 3e-4),
            (Preset::Balanced, 1000, 2e-4),
            (Preset::Quality, 2500, 1e-4),
        ] {
            let plan = AvatarKind::Portrait.plan(preset, "https://x/a.zip", trig());
            let TrainingRequest::FluxLoraPortrait(i) = plan.request() else {
                panic!("wrong trainer")
            };
            assert_eq!(i.images_data_url, "https://x/a.zip");
            assert_eq!(i.steps, Some(steps));
            assert_eq!(i.learning_rate, Some(lr));
            assert_eq!(i.trigger_phrase.as_deref(), Some("TOK_anna"));
        }
    }

    #[test]
    fn other_kinds_go_to_fast_training_set_up_for_the_kind() {
        for (kind, style, masks) in [
            (AvatarKind::Style, true, false),
            (AvatarKind::Product, false, true),
            (AvatarKind::General, false, true),
        ] {
            for (preset, steps) in [
                (Preset::Fast, 500),
                (Preset::Balanced, 1000),
                (Preset::Quality, 2000),
            ] {
                let plan = kind.plan(preset, "https://x/a.zip", trig());
                assert_eq!(plan.endpoint_id(), "fal-ai/flux-lora-fast-training");
                let TrainingRequest::FluxLoraFast(i) = plan.request() else {
                    panic!("wrong trainer")
                };
                assert_eq!(i.images_data_url, "https://x/a.zip");
                assert_eq!(i.steps, Some(steps));
                assert_eq!(i.is_style, Some(style));
                assert_eq!(i.create_masks, Some(masks));
                assert_eq!(i.trigger_word.as_deref(), Some("TOK_anna"));
            }
        }
    }

    #[test]
    fn every_trainer_plans_valid_inputs_for_every_kind_and_preset() {
        for trainer in Trainer::ALL {
            for kind in AvatarKind::ALL {
                for preset in Preset::ALL {
                    let plan = trainer.plan(kind, preset, "https://x/a.zip", trig());
                    assert_eq!(plan.trainer(), trainer);
                    plan.validate()
                        .unwrap_or_else(|e| panic!("{trainer} {kind} {preset}: {e}"));
                    let json = serde_json::to_value(&plan).unwrap();
                    assert_eq!(json["request"]["trainer"], trainer.endpoint_id());
                    let back: TrainingPlan = serde_json::from_value(json).unwrap();
                    assert_eq!(back, plan);
                }
            }
        }
    }

    #[test]
    fn flux2_plans_carry_the_trigger_in_the_default_caption() {
        let plan = Trainer::Flux2.plan(AvatarKind::Style, Preset::Fast, "https://x/a.zip", trig());
        let TrainingRequest::Flux2(i) = plan.request() else {
            panic!()
        };
        assert_eq!(
            i.default_caption.as_deref(),
            Some("an image in the style of TOK_anna")
        );
        assert_eq!((i.steps, i.learning_rate), (Some(500), Some(5e-5)));
        let z = Trainer::ZImage.plan(AvatarKind::Portrait, Preset::Balanced, "u", trig());
        let TrainingRequest::ZImage(i) = z.request() else {
            panic!()
        };
        assert_eq!(i.training_type, Some(ZImageTrainingType::Content));
    }

    #[test]
    fn trainers_parse_from_endpoint_ids() {
        for t in Trainer::ALL {
            assert_eq!(t.endpoint_id().parse::<Trainer>().unwrap(), t);
            assert_eq!(t.to_string(), t.endpoint_id());
        }
        let err = "fal-ai/flux-krea-trainer".parse::<Trainer>().unwrap_err();
        assert!(err.to_string().contains("fal-ai/flux-2-trainer"), "{err}");
    }

    #[test]
    fn plans_stored_by_0_1_still_read() {
        let old = serde_json::json!({
            "kind": "portrait", "preset": "fast", "trigger": "TOK_anna",
            "request": {"trainer": "portrait", "input": {"images_data_url": "u", "steps": 500}}
        });
        let plan: TrainingPlan = serde_json::from_value(old).unwrap();
        assert_eq!(plan.trainer(), Trainer::FluxLoraPortrait);
        let avatar: TrainedAvatar = serde_json::from_value(serde_json::json!({
            "kind": "style", "trigger": "TOK_anna",
            "model": {"type": "finetune", "id": "ft-1"}
        }))
        .unwrap();
        assert_eq!(avatar.trainer, Trainer::FluxPro);
        assert_eq!(avatar.generator(), Generator::UltraFinetuned);
    }

    #[test]
    fn plans_can_be_adjusted_and_are_validated() {
        let mut plan = AvatarKind::Portrait.plan(Preset::Fast, "https://x/a.zip", trig());
        if let TrainingRequest::FluxLoraPortrait(i) = plan.request_mut() {
            i.steps = Some(20_000);
        }
        let err = plan.validate().unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { ref field, .. } if field == "steps"),
            "{err}"
        );
    }

    #[test]
    fn kinds_and_presets_parse() {
        assert_eq!(
            "Portrait".parse::<AvatarKind>().unwrap(),
            AvatarKind::Portrait
        );
        assert_eq!("style".parse::<AvatarKind>().unwrap(), AvatarKind::Style);
        assert!("selfie".parse::<AvatarKind>().is_err());
        assert_eq!("quality".parse::<Preset>().unwrap(), Preset::Quality);
        assert!("ultra".parse::<Preset>().is_err());
        assert_eq!(Preset::default(), Preset::Balanced);
    }

    #[test]
    fn trigger_phrases_are_checked() {
        assert_eq!(
            TriggerPhrase::for_avatar("abc").unwrap().as_str(),
            "TOK_abc"
        );
        assert_eq!(TriggerPhrase::new("  TOK x ").unwrap().as_str(), "TOK x");
        for bad in ["", "   ", "a[trigger]", "a\nb"] {
            assert!(TriggerPhrase::new(bad).is_err(), "{bad:?}");
        }
        assert!(TriggerPhrase::new("x".repeat(101)).is_err());
        assert!(serde_json::from_str::<TriggerPhrase>("\"\"").is_err());
    }

    fn lora_avatar(trainer: Trainer) -> TrainedAvatar {
        TrainedAvatar {
            kind: AvatarKind::Portrait,
            trainer,
            trigger: trig(),
            training_request_id: None,
            model: AvatarModel::Lora {
                url: "https://x/l.safetensors".into(),
                config_url: None,
            },
        }
    }

    #[test]
    fn generation_uses_the_generator_of_the_trainer() {
        let GenerationRequest::FluxLora(i) = lora_avatar(Trainer::FluxLoraPortrait)
            .generation("in a spacesuit", 2)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(i.prompt, "TOK_anna, in a spacesuit");
        assert_eq!(i.loras, vec![LoraWeight::new("https://x/l.safetensors")]);
        assert_eq!(i.num_images, Some(2));

        for (trainer, generator) in [
            (Trainer::FluxLoraFast, "fal-ai/flux-lora"),
            (Trainer::Flux2, "fal-ai/flux-2/lora"),
            (Trainer::Flux2V2, "fal-ai/flux-2/lora"),
            (Trainer::ZImage, "fal-ai/z-image/turbo/lora"),
        ] {
            let req = lora_avatar(trainer).generation("x", 1).unwrap();
            assert_eq!(req.endpoint_id(), generator, "{trainer}");
        }

        let ft = TrainedAvatar {
            kind: AvatarKind::Style,
            trainer: Trainer::FluxPro,
            trigger: trig(),
            training_request_id: None,
            model: AvatarModel::Finetune { id: "ft-1".into() },
        };
        let req = ft.generation("TOK_anna poster", 1).unwrap();
        assert_eq!(req.endpoint_id(), "fal-ai/flux-pro/v1.1-ultra-finetuned");
        let GenerationRequest::UltraFinetuned(i) = req else {
            panic!()
        };
        assert_eq!(i.prompt, "TOK_anna poster");
        assert_eq!(i.finetune_id, "ft-1");
        assert_eq!(
            i.finetune_strength,
            TrainedAvatar::DEFAULT_FINETUNE_STRENGTH
        );

        for n in [0, 5] {
            assert!(
                matches!(ft.generation("x", n), Err(Error::InvalidInput { ref field, .. }) if field == "num_images")
            );
        }
        assert!(ft.generation("  ", 1).is_err());
        let mismatched = TrainedAvatar {
            trainer: Trainer::Flux2,
            ..ft
        };
        assert!(
            matches!(mismatched.generation("x", 1), Err(Error::InvalidInput { ref field, .. }) if field == "model")
        );
    }

    #[test]
    fn trained_avatars_serialize_for_storage() {
        let a = TrainedAvatar {
            training_request_id: Some("r1".into()),
            ..lora_avatar(Trainer::Flux2V2)
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["model"]["type"], "lora");
        assert_eq!(json["trainer"], "fal-ai/flux-2-trainer-v2");
        let back: TrainedAvatar = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }
}
