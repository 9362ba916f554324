//! The avatar adapter: pick the trainer from the kind of avatar, apply a preset, train, and
//! generate with the trained model.
//!
//! | [`AvatarKind`] | trainer | generator |
//! |---|---|---|
//! | `Portrait` | `fal-ai/flux-lora-portrait-trainer` → a LoRA file | `fal-ai/flux-lora` with that LoRA |
//! | `Style`, `Product`, `General` | `fal-ai/flux-pro-trainer` (`mode` = the kind) → a finetune id | `fal-ai/flux-pro/v1.1-ultra-finetuned` |
//!
//! The flow is explicit so that a service can store every step: a [`TrainingPlan`] (inspect
//! or adjust the trainer input before paying), a [`TrainingJob`] (store its request id; rebuild
//! it with [`TrainingJob::resume`] after a restart), a [`TrainedAvatar`] (serializable: store it
//! and generate later).
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! use fal_client::avatar::{AvatarKind, Preset, TriggerPhrase};
//! use fal_client::queue::{SubmitOptions, WaitOptions};
//!
//! let fal = fal_client::FalClient::from_env()?;
//! let zip_url = fal.storage().upload_file("anna.zip").await?;
//! let plan = AvatarKind::Portrait.plan(Preset::Balanced, zip_url, TriggerPhrase::new("TOK_anna")?);
//! let job = plan.submit(&fal, SubmitOptions::default()).await?;
//! // store job.request_id() and job.endpoint_id() now
//! let avatar = job.wait(WaitOptions::default()).await?;
//! let images = avatar.generate(&fal, "TOK_anna as an astronaut, studio light", 2).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::client::FalClient;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::models::{
    FinetuneType, FluxLora, FluxLoraInput, Image, LoraWeight, PortraitTrainer,
    PortraitTrainerInput, PortraitTrainerOutput, ProTrainer, ProTrainerInput, ProTrainerMode,
    ProTrainerOutput, ProTrainerPriority, UltraFinetuned, UltraFinetunedInput,
};
use crate::queue::{RequestHandle, SubmitOptions, WaitEvent, WaitOptions};

/// What an avatar is of; decides the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AvatarKind {
    /// A person. Portrait trainer (LoRA), generation with FLUX LoRA.
    Portrait,
    /// An artistic style. Pro trainer with `mode: style`, generation with the ultra fine-tuned
    /// generator.
    Style,
    /// A product. Pro trainer with `mode: product`.
    Product,
    /// Anything else. Pro trainer with `mode: general`.
    General,
}

/// The trainer an [`AvatarKind`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trainer {
    /// `fal-ai/flux-lora-portrait-trainer`.
    Portrait,
    /// `fal-ai/flux-pro-trainer` (deprecated on fal).
    Pro,
}

impl Trainer {
    /// The trainer's endpoint id.
    pub fn endpoint_id(self) -> &'static str {
        match self {
            Trainer::Portrait => PortraitTrainer::ID,
            Trainer::Pro => ProTrainer::ID,
        }
    }
}

impl AvatarKind {
    /// All kinds.
    pub const ALL: [AvatarKind; 4] = [
        AvatarKind::Portrait,
        AvatarKind::Style,
        AvatarKind::Product,
        AvatarKind::General,
    ];

    /// The trainer for this kind: portrait → portrait trainer, the others → pro trainer.
    pub fn trainer(self) -> Trainer {
        match self {
            AvatarKind::Portrait => Trainer::Portrait,
            _ => Trainer::Pro,
        }
    }

    /// The pro trainer's `mode` for this kind (`None` for portraits).
    pub fn pro_mode(self) -> Option<ProTrainerMode> {
        match self {
            AvatarKind::Portrait => None,
            AvatarKind::Style => Some(ProTrainerMode::Style),
            AvatarKind::Product => Some(ProTrainerMode::Product),
            AvatarKind::General => Some(ProTrainerMode::General),
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

    /// Build the training plan for this kind: the trainer input with the preset's values,
    /// the archive URL and the trigger phrase. Adjust it through [`TrainingPlan::request_mut`]
    /// before submitting.
    pub fn plan(
        self,
        preset: Preset,
        archive_url: impl Into<String>,
        trigger: TriggerPhrase,
    ) -> TrainingPlan {
        let archive_url = archive_url.into();
        let request = match self.pro_mode() {
            None => {
                let p = preset.portrait();
                TrainingRequest::Portrait(PortraitTrainerInput {
                    trigger_phrase: Some(trigger.0.clone()),
                    steps: Some(p.steps),
                    learning_rate: Some(p.learning_rate),
                    multiresolution_training: Some(true),
                    subject_crop: Some(true),
                    create_masks: Some(true),
                    ..PortraitTrainerInput::new(archive_url)
                })
            }
            Some(mode) => {
                let p = preset.pro();
                TrainingRequest::Pro(ProTrainerInput {
                    mode: Some(mode),
                    iterations: Some(p.iterations),
                    learning_rate: Some(p.learning_rate),
                    priority: Some(p.priority),
                    captioning: Some(true),
                    trigger_word: Some(trigger.0.clone()),
                    finetune_type: Some(FinetuneType::Lora),
                    ..ProTrainerInput::new(
                        archive_url,
                        format!(
                            "avatar {} ({}, {})",
                            trigger.0,
                            self.as_str(),
                            preset.as_str()
                        ),
                    )
                })
            }
        };
        TrainingPlan {
            kind: self,
            preset,
            trigger,
            request,
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

/// Training presets (fast / balanced / quality), with the values of the product notes.
///
/// | preset | portrait `steps` | portrait `learning_rate` | pro `iterations` | pro `learning_rate` | pro `priority` |
/// |---|---|---|---|---|---|
/// | `Fast` | 500 | 3e-4 | 200 | 2e-4 | `speed` |
/// | `Balanced` | 1000 | 2e-4 | 500 | 1e-4 | `quality` |
/// | `Quality` | 2500 | 1e-4 | 1000 | 5e-5 | `quality` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// Quick prototypes (portrait ≈ 3-5 min).
    Fast,
    /// The production default (portrait ≈ 5-15 min).
    #[default]
    Balanced,
    /// Best results (portrait ≈ 15-30 min).
    Quality,
}

/// Portrait-trainer values of a [`Preset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortraitPreset {
    /// `steps`.
    pub steps: u32,
    /// `learning_rate`.
    pub learning_rate: f64,
}

/// Pro-trainer values of a [`Preset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProPreset {
    /// `iterations`.
    pub iterations: u32,
    /// `learning_rate`.
    pub learning_rate: f64,
    /// `priority`.
    pub priority: ProTrainerPriority,
}

impl Preset {
    /// All presets.
    pub const ALL: [Preset; 3] = [Preset::Fast, Preset::Balanced, Preset::Quality];

    /// The portrait-trainer values.
    pub fn portrait(self) -> PortraitPreset {
        let (steps, learning_rate) = match self {
            Preset::Fast => (500, 3e-4),
            Preset::Balanced => (1000, 2e-4),
            Preset::Quality => (2500, 1e-4),
        };
        PortraitPreset {
            steps,
            learning_rate,
        }
    }

    /// The pro-trainer values.
    pub fn pro(self) -> ProPreset {
        let (iterations, learning_rate, priority) = match self {
            Preset::Fast => (200, 2e-4, ProTrainerPriority::Speed),
            Preset::Balanced => (500, 1e-4, ProTrainerPriority::Quality),
            Preset::Quality => (1000, 5e-5, ProTrainerPriority::Quality),
        };
        ProPreset {
            iterations,
            learning_rate,
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

/// The word or phrase that names the avatar in captions and prompts (`TOK_anna`). Sent as
/// `trigger_phrase` to the portrait trainer and `trigger_word` to the pro trainer; it replaces
/// `[trigger]` in captions.
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

/// The trainer input of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trainer", content = "input", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrainingRequest {
    /// Input of `fal-ai/flux-lora-portrait-trainer`.
    Portrait(PortraitTrainerInput),
    /// Input of `fal-ai/flux-pro-trainer`.
    Pro(ProTrainerInput),
}

/// What will be trained, before anything is paid: inspect it, adjust it, then
/// [`submit`](Self::submit) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPlan {
    kind: AvatarKind,
    preset: Preset,
    trigger: TriggerPhrase,
    request: TrainingRequest,
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
        match self.request {
            TrainingRequest::Portrait(_) => Trainer::Portrait,
            TrainingRequest::Pro(_) => Trainer::Pro,
        }
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
        match &self.request {
            TrainingRequest::Portrait(i) => i.validate(),
            TrainingRequest::Pro(i) => i.validate(),
        }
    }

    /// Validate and submit to the trainer's queue.
    ///
    /// # Errors
    /// As [`FalClient::submit`].
    pub async fn submit(&self, fal: &FalClient, options: SubmitOptions) -> Result<TrainingJob> {
        let handle = match &self.request {
            TrainingRequest::Portrait(i) => {
                TrainingHandle::Portrait(fal.submit::<PortraitTrainer>(i, options).await?)
            }
            TrainingRequest::Pro(i) => {
                TrainingHandle::Pro(fal.submit::<ProTrainer>(i, options).await?)
            }
        };
        Ok(TrainingJob {
            kind: self.kind,
            trigger: self.trigger.clone(),
            handle,
        })
    }
}

#[derive(Debug, Clone)]
enum TrainingHandle {
    Portrait(RequestHandle<PortraitTrainerOutput>),
    Pro(RequestHandle<ProTrainerOutput>),
}

/// A submitted training. Store [`request_id`](Self::request_id) (with the kind and trigger)
/// right away: it is the only way back to a paid job after a restart.
#[derive(Debug, Clone)]
pub struct TrainingJob {
    kind: AvatarKind,
    trigger: TriggerPhrase,
    handle: TrainingHandle,
}

impl TrainingJob {
    /// Rebuild a job from what was stored at submit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty request id.
    pub fn resume(
        fal: &FalClient,
        kind: AvatarKind,
        trigger: TriggerPhrase,
        request_id: &str,
    ) -> Result<Self> {
        let handle = match kind.trainer() {
            Trainer::Portrait => {
                TrainingHandle::Portrait(fal.resume_endpoint::<PortraitTrainer>(request_id)?)
            }
            Trainer::Pro => TrainingHandle::Pro(fal.resume_endpoint::<ProTrainer>(request_id)?),
        };
        Ok(Self {
            kind,
            trigger,
            handle,
        })
    }

    /// fal's request id.
    pub fn request_id(&self) -> &str {
        match &self.handle {
            TrainingHandle::Portrait(h) => h.request_id(),
            TrainingHandle::Pro(h) => h.request_id(),
        }
    }

    /// The trainer's endpoint id.
    pub fn endpoint_id(&self) -> &'static str {
        self.kind.trainer().endpoint_id()
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
            TrainingHandle::Portrait(h) => h.queue_position(),
            TrainingHandle::Pro(h) => h.queue_position(),
        }
    }

    /// Cancel the training on fal.
    ///
    /// # Errors
    /// As [`RequestHandle::cancel`].
    pub async fn cancel(&self) -> Result<crate::queue::CancelOutcome> {
        match &self.handle {
            TrainingHandle::Portrait(h) => h.cancel().await,
            TrainingHandle::Pro(h) => h.cancel().await,
        }
    }

    /// Wait for the training to finish.
    ///
    /// # Errors
    /// As [`RequestHandle::wait`].
    pub async fn wait(&self, options: WaitOptions) -> Result<TrainedAvatar> {
        self.wait_with(options, |_| {}).await
    }

    /// Wait, reporting progress (queue position, log lines).
    ///
    /// # Errors
    /// As [`RequestHandle::wait`].
    pub async fn wait_with<F>(&self, options: WaitOptions, on_event: F) -> Result<TrainedAvatar>
    where
        F: FnMut(WaitEvent<'_>) + Send,
    {
        let model = match &self.handle {
            TrainingHandle::Portrait(h) => {
                let out = h.wait_with(options, on_event).await?;
                AvatarModel::Lora {
                    url: out.diffusers_lora_file.url,
                    config_url: Some(out.config_file.url),
                }
            }
            TrainingHandle::Pro(h) => AvatarModel::Finetune {
                id: h.wait_with(options, on_event).await?.finetune_id,
            },
        };
        Ok(TrainedAvatar {
            kind: self.kind,
            trigger: self.trigger.clone(),
            training_request_id: Some(self.request_id().to_owned()),
            model,
        })
    }
}

/// What a training produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AvatarModel {
    /// A diffusers LoRA file (portrait trainer's `diffusers_lora_file`), used with FLUX LoRA.
    Lora {
        /// URL of the `.safetensors` file.
        url: String,
        /// URL of the training config, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_url: Option<String>,
    },
    /// A FLUX Pro finetune (pro trainer's `finetune_id`), used with the ultra fine-tuned
    /// generator.
    Finetune {
        /// The finetune id.
        id: String,
    },
}

/// A trained avatar. Serializable: store it, generate later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainedAvatar {
    /// The avatar kind.
    pub kind: AvatarKind,
    /// The trigger phrase used in training; prompts should contain it.
    pub trigger: TriggerPhrase,
    /// The training's request id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_request_id: Option<String>,
    /// The trained model.
    pub model: AvatarModel,
}

/// A generation request for a trained avatar: inspect or adjust it before submitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "generator", content = "input", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GenerationRequest {
    /// `fal-ai/flux-lora` with the avatar's LoRA.
    FluxLora(FluxLoraInput),
    /// `fal-ai/flux-pro/v1.1-ultra-finetuned` with the avatar's finetune id.
    UltraFinetuned(UltraFinetunedInput),
}

impl GenerationRequest {
    /// The generator's endpoint id.
    pub fn endpoint_id(&self) -> &'static str {
        match self {
            GenerationRequest::FluxLora(_) => FluxLora::ID,
            GenerationRequest::UltraFinetuned(_) => UltraFinetuned::ID,
        }
    }

    /// Submit, wait and return the images.
    ///
    /// # Errors
    /// As [`FalClient::submit`] and [`RequestHandle::wait`].
    pub async fn run(&self, fal: &FalClient, options: WaitOptions) -> Result<Vec<Image>> {
        Ok(match self {
            GenerationRequest::FluxLora(i) => {
                fal.submit::<FluxLora>(i, SubmitOptions::default())
                    .await?
                    .wait(options)
                    .await?
                    .images
            }
            GenerationRequest::UltraFinetuned(i) => {
                fal.submit::<UltraFinetuned>(i, SubmitOptions::default())
                    .await?
                    .wait(options)
                    .await?
                    .images
            }
        })
    }
}

impl TrainedAvatar {
    /// `finetune_strength` used for finetunes: 1.2, the upstream (BFL) default; fal has none.
    pub const DEFAULT_FINETUNE_STRENGTH: f64 = 1.2;

    /// The generation request for `n` images (1..=4) of `prompt`. The trigger phrase is put in
    /// front of the prompt when the prompt does not contain it. A LoRA avatar uses
    /// `fal-ai/flux-lora` (LoRA scale 1.0); a finetune uses the ultra fine-tuned generator
    /// (strength [`DEFAULT_FINETUNE_STRENGTH`](Self::DEFAULT_FINETUNE_STRENGTH)).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty prompt or `n` outside 1..=4.
    pub fn generation(&self, prompt: &str, n: u32) -> Result<GenerationRequest> {
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(Error::invalid_input("prompt", "must not be empty"));
        }
        if !(1..=4).contains(&n) {
            return Err(Error::invalid_input(
                "num_images",
                format!("must be between 1 and 4 (got {n})"),
            ));
        }
        let prompt = if prompt.contains(self.trigger.as_str()) {
            prompt.to_owned()
        } else {
            format!("{}, {prompt}", self.trigger)
        };
        let request = match &self.model {
            AvatarModel::Lora { url, .. } => GenerationRequest::FluxLora(FluxLoraInput {
                loras: vec![LoraWeight::new(url.clone())],
                num_images: Some(n),
                ..FluxLoraInput::new(prompt)
            }),
            AvatarModel::Finetune { id } => {
                GenerationRequest::UltraFinetuned(UltraFinetunedInput {
                    num_images: Some(n),
                    ..UltraFinetunedInput::new(prompt, id.clone(), Self::DEFAULT_FINETUNE_STRENGTH)
                })
            }
        };
        match &request {
            GenerationRequest::FluxLora(i) => i.validate()?,
            GenerationRequest::UltraFinetuned(i) => i.validate()?,
        }
        Ok(request)
    }

    /// How long [`generate`](Self::generate) waits for the images: 10 minutes (then the request
    /// is cancelled on fal and [`Error::Timeout`] carries its id).
    pub const DEFAULT_GENERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

    /// Generate `n` images (1..=4) of `prompt` with the avatar and wait for them, at most
    /// [`DEFAULT_GENERATION_TIMEOUT`](Self::DEFAULT_GENERATION_TIMEOUT).
    ///
    /// # Errors
    /// As [`generation`](Self::generation) and [`GenerationRequest::run`].
    pub async fn generate(&self, fal: &FalClient, prompt: &str, n: u32) -> Result<Vec<Image>> {
        let wait = WaitOptions::default().timeout(Self::DEFAULT_GENERATION_TIMEOUT);
        self.generate_with(fal, prompt, n, wait).await
    }

    /// [`generate`](Self::generate) with your own wait options (deadline, progress, polling).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub async fn generate_with(
        &self,
        fal: &FalClient,
        prompt: &str,
        n: u32,
        wait: WaitOptions,
    ) -> Result<Vec<Image>> {
        self.generation(prompt, n)?.run(fal, wait).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trig() -> TriggerPhrase {
        TriggerPhrase::new("TOK_anna").unwrap()
    }

    #[test]
    fn portrait_goes_to_the_portrait_trainer_with_preset_values() {
        for (preset, steps, lr) in [
            (Preset::Fast, 500, 3e-4),
            (Preset::Balanced, 1000, 2e-4),
            (Preset::Quality, 2500, 1e-4),
        ] {
            let plan = AvatarKind::Portrait.plan(preset, "https://x/a.zip", trig());
            assert_eq!(plan.endpoint_id(), "fal-ai/flux-lora-portrait-trainer");
            let TrainingRequest::Portrait(i) = plan.request() else {
                panic!("wrong trainer")
            };
            assert_eq!(i.images_data_url, "https://x/a.zip");
            assert_eq!(i.steps, Some(steps));
            assert_eq!(i.learning_rate, Some(lr));
            assert_eq!(i.trigger_phrase.as_deref(), Some("TOK_anna"));
            plan.validate().unwrap();
        }
    }

    #[test]
    fn other_kinds_go_to_the_pro_trainer_with_their_mode() {
        for (kind, mode) in [
            (AvatarKind::Style, ProTrainerMode::Style),
            (AvatarKind::Product, ProTrainerMode::Product),
            (AvatarKind::General, ProTrainerMode::General),
        ] {
            for (preset, it, lr, prio) in [
                (Preset::Fast, 200, 2e-4, ProTrainerPriority::Speed),
                (Preset::Balanced, 500, 1e-4, ProTrainerPriority::Quality),
                (Preset::Quality, 1000, 5e-5, ProTrainerPriority::Quality),
            ] {
                let plan = kind.plan(preset, "https://x/a.zip", trig());
                assert_eq!(plan.endpoint_id(), "fal-ai/flux-pro-trainer");
                let TrainingRequest::Pro(i) = plan.request() else {
                    panic!("wrong trainer")
                };
                assert_eq!(i.data_url, "https://x/a.zip");
                assert_eq!(i.mode, Some(mode));
                assert_eq!(i.iterations, Some(it));
                assert_eq!(i.learning_rate, Some(lr));
                assert_eq!(i.priority, Some(prio));
                assert_eq!(i.trigger_word.as_deref(), Some("TOK_anna"));
                assert!(!i.finetune_comment.is_empty());
                plan.validate().unwrap();
            }
        }
    }

    #[test]
    fn plans_can_be_adjusted_and_are_validated() {
        let mut plan = AvatarKind::Portrait.plan(Preset::Fast, "https://x/a.zip", trig());
        if let TrainingRequest::Portrait(i) = plan.request_mut() {
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

    #[test]
    fn generation_uses_the_right_generator() {
        let lora = TrainedAvatar {
            kind: AvatarKind::Portrait,
            trigger: trig(),
            training_request_id: None,
            model: AvatarModel::Lora {
                url: "https://x/l.safetensors".into(),
                config_url: None,
            },
        };
        let GenerationRequest::FluxLora(i) = lora.generation("in a spacesuit", 2).unwrap() else {
            panic!()
        };
        assert_eq!(i.prompt, "TOK_anna, in a spacesuit");
        assert_eq!(i.loras, vec![LoraWeight::new("https://x/l.safetensors")]);
        assert_eq!(i.num_images, Some(2));

        let ft = TrainedAvatar {
            kind: AvatarKind::Style,
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
    }

    #[test]
    fn trained_avatars_serialize_for_storage() {
        let a = TrainedAvatar {
            kind: AvatarKind::Product,
            trigger: trig(),
            training_request_id: Some("r1".into()),
            model: AvatarModel::Finetune { id: "ft".into() },
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["model"]["type"], "finetune");
        assert_eq!(json["kind"], "product");
        let back: TrainedAvatar = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }
}
