//! `fal-ai/flux-pro/v1.1-ultra-finetuned`: FLUX1.1 \[pro\] ultra with a finetune made by the
//! (deprecated) [`ProTrainer`](crate::models::ProTrainer).
//!
//! Note the id: `v1.1-ultra-finetuned` with a hyphen (`fal-ai/flux-pro/v1.1-ultra/finetuned` does
//! not exist). Submit goes to the full id; status, result and cancel use the app id
//! `fal-ai/flux-pro`. API page: <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api>.
//!
//! The endpoint still runs on fal, but its trainer is deprecated, so **no new `finetune_id` can
//! be made**: use it for finetunes you already have. New avatars train a LoRA
//! (see [`crate::avatar`]). Its input lost `enable_safety_checker` on fal between January and
//! April 2026 (with the whole FLUX1.1 \[pro\] family; fal's JS client types of 2026-04-07 no
//! longer have it), so the crate no longer sends it; moderation is `safety_tolerance`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::common::{
    check_f64, check_one_of, check_opt_f64, check_opt_u32, require_non_empty, GenerationOutput,
    OutputFormat,
};
use crate::error::{Error, Result};
use crate::file_input::FileInput;

/// FLUX1.1 \[pro\] ultra fine-tuned text-to-image, endpoint id
/// `fal-ai/flux-pro/v1.1-ultra-finetuned`
/// (<https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api>).
///
/// Input [`UltraFinetunedInput`] (`prompt`, `finetune_id` and `finetune_strength` are
/// required), output [`GenerationOutput`]. The `finetune_id` comes from
/// [`ProTrainerOutput`](crate::models::ProTrainerOutput); the pro trainer is deprecated on fal,
/// so this generator serves finetunes made before, and no new ones.
///
/// ```
/// use fal_client::models::{AspectRatio, SafetyTolerance, UltraFinetuned, UltraFinetunedInput};
/// use fal_client::{Endpoint, EndpointId};
///
/// let input = UltraFinetunedInput {
///     aspect_ratio: Some(AspectRatio::Ratio3_4),
///     safety_tolerance: Some(SafetyTolerance::Level2),
///     num_images: Some(2),
///     ..UltraFinetunedInput::new("TOK_anna, studio headshot", "3f6c2a1e-9b4d", 1.1)
/// };
/// <UltraFinetuned as Endpoint>::validate(&input)?;
///
/// let json = serde_json::to_value(&input)?;
/// assert_eq!(json["safety_tolerance"], "2"); // a JSON string, not a number
///
/// // Status and result URLs use only owner/alias.
/// assert_eq!(EndpointId::parse(UltraFinetuned::ID)?.app_id(), "fal-ai/flux-pro");
///
/// let bad = UltraFinetunedInput { finetune_strength: 2.5, ..input };
/// assert!(bad.validate().is_err()); // range 0..=2
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct UltraFinetuned;

endpoint!(
    UltraFinetuned,
    "fal-ai/flux-pro/v1.1-ultra-finetuned",
    UltraFinetunedInput,
    GenerationOutput,
    files: [],
    optional: [image_url]
);

/// Input of [`UltraFinetuned`] (fal schema `FluxProV11UltraFinetunedInput`).
///
/// `prompt`, `finetune_id` and `finetune_strength` are required: build it with
/// [`UltraFinetunedInput::new`] (there is deliberately no `Default`: fal has no default for
/// `finetune_strength`, and a silent `0.0` would mean "finetune not applied"). Unset (`None`)
/// fields are not sent, so the server default applies; several of them (`enhance_prompt`,
/// `image_url`, `image_prompt_strength`) are newer than some deployments.
/// See <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api>.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UltraFinetunedInput {
    /// `prompt` (required): the text prompt; include the trigger word used at training time.
    /// Must not be empty.
    pub prompt: String,
    /// `finetune_id` (required): the id returned by the pro trainer. Must not be empty.
    pub finetune_id: String,
    /// `finetune_strength` (required): how strongly the finetune is applied; raise it if the
    /// concept comes out weak. Range 0..=2. No server default on fal (BFL's upstream default is
    /// 1.2).
    pub finetune_strength: f64,
    /// `seed`: fixed seed for reproducible output. Server default: random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `sync_mode`: return images as data URIs instead of CDN URLs (the output is then not kept
    /// in the request history). Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_mode: Option<bool>,
    /// `num_images`: how many images to generate. Server default `1`; range 1..=4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_images: Option<u32>,
    /// `output_format`: `jpeg` or `png` (not `webp`). Server default `jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
    /// `safety_tolerance`: moderation level `"1"` (strictest) to `"6"` (most permissive), sent
    /// as a JSON string. Server default `"2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_tolerance: Option<SafetyTolerance>,
    /// `enhance_prompt`: let the service rewrite/expand the prompt. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhance_prompt: Option<bool>,
    /// `image_url`: URL or data URI of an image prompt (remix-style guidance). Server default:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<FileInput>,
    /// `image_prompt_strength`: blend weight of `image_url` against the text prompt. Server
    /// default `0.1`; range 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_prompt_strength: Option<f64>,
    /// `aspect_ratio`: output aspect ratio. Server default `"16:9"`; one of the nine
    /// [`AspectRatio`] presets or a custom ratio string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<AspectRatio>,
    /// `raw`: less processed, more natural-looking output. Server default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<bool>,
}

impl UltraFinetunedInput {
    /// Output formats this endpoint takes.
    pub const OUTPUT_FORMATS: [OutputFormat; 2] = [OutputFormat::Jpeg, OutputFormat::Png];

    /// An input with the three required fields set; every other field is left to the server
    /// default. `finetune_strength` must be in 0..=2 (BFL suggests 1.2 as a starting point).
    pub fn new(
        prompt: impl Into<String>,
        finetune_id: impl Into<String>,
        finetune_strength: f64,
    ) -> Self {
        Self {
            prompt: prompt.into(),
            finetune_id: finetune_id.into(),
            finetune_strength,
            seed: None,
            sync_mode: None,
            num_images: None,
            output_format: None,
            safety_tolerance: None,
            enhance_prompt: None,
            image_url: None,
            image_prompt_strength: None,
            aspect_ratio: None,
            raw: None,
        }
    }

    /// The same input with every unset field set to the value fal uses when it is not sent
    /// (no sync mode, one image, `jpeg`, safety tolerance `"2"`, no prompt enhancement, image
    /// prompt strength 0.1, `16:9`, not raw). `seed` and `image_url` stay unset.
    #[must_use]
    pub fn with_fal_defaults(self) -> Self {
        Self {
            sync_mode: self.sync_mode.or(Some(false)),
            num_images: self.num_images.or(Some(1)),
            output_format: self.output_format.or(Some(OutputFormat::Jpeg)),
            safety_tolerance: self.safety_tolerance.or(Some(SafetyTolerance::Level2)),
            enhance_prompt: self.enhance_prompt.or(Some(false)),
            image_prompt_strength: self.image_prompt_strength.or(Some(0.1)),
            aspect_ratio: self.aspect_ratio.or(Some(AspectRatio::Ratio16_9)),
            raw: self.raw.or(Some(false)),
            ..self
        }
    }

    /// Check the input before it is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the wire field when `prompt` or `finetune_id` is empty,
    /// `finetune_strength` is not a finite number in 0..=2, `num_images` is outside 1..=4,
    /// `image_prompt_strength` is not a finite number in 0..=1, a custom `aspect_ratio` is
    /// empty, or `output_format` is `webp`.
    pub fn validate(&self) -> Result<()> {
        require_non_empty("prompt", &self.prompt)?;
        require_non_empty("finetune_id", &self.finetune_id)?;
        check_f64(
            "finetune_strength",
            self.finetune_strength,
            0.0,
            2.0,
            "0..=2",
        )?;
        check_opt_u32("num_images", self.num_images, 1, 4)?;
        check_opt_f64(
            "image_prompt_strength",
            self.image_prompt_strength,
            0.0,
            1.0,
            "0..=1",
        )?;
        if let Some(AspectRatio::Custom(s)) = &self.aspect_ratio {
            require_non_empty("aspect_ratio", s)?;
        }
        check_one_of(
            "output_format",
            self.output_format,
            &Self::OUTPUT_FORMATS,
            OutputFormat::as_str,
        )
    }
}

/// `safety_tolerance`: the moderation level, `"1"` (strictest) to `"6"` (most permissive).
///
/// fal's schema is a **string** enum, so it is always serialized as a JSON string (`"2"`, not
/// `2`); deserializing also accepts the integers 1 to 6. Server default `"2"`. fal's description
/// calls 5 the most permissive but the enum goes to 6.
/// See <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api>.
///
/// ```
/// use fal_client::models::SafetyTolerance;
///
/// assert_eq!(SafetyTolerance::try_from(5)?, SafetyTolerance::Level5);
/// assert!(SafetyTolerance::try_from(7).is_err());
/// assert_eq!(serde_json::to_string(&SafetyTolerance::Level5)?, "\"5\"");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum SafetyTolerance {
    /// `"1"`: strictest.
    Level1,
    /// `"2"` (server default).
    #[default]
    Level2,
    /// `"3"`.
    Level3,
    /// `"4"`.
    Level4,
    /// `"5"`.
    Level5,
    /// `"6"`: most permissive.
    Level6,
}

impl SafetyTolerance {
    /// The level as a number, 1 to 6.
    pub fn level(self) -> u8 {
        match self {
            Self::Level1 => 1,
            Self::Level2 => 2,
            Self::Level3 => 3,
            Self::Level4 => 4,
            Self::Level5 => 5,
            Self::Level6 => 6,
        }
    }

    /// The wire value, `"1"` to `"6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Level1 => "1",
            Self::Level2 => "2",
            Self::Level3 => "3",
            Self::Level4 => "4",
            Self::Level5 => "5",
            Self::Level6 => "6",
        }
    }

    /// The level for `1..=6`, else `None`.
    pub fn from_level(level: u8) -> Option<Self> {
        Some(match level {
            1 => Self::Level1,
            2 => Self::Level2,
            3 => Self::Level3,
            4 => Self::Level4,
            5 => Self::Level5,
            6 => Self::Level6,
            _ => return None,
        })
    }
}

impl TryFrom<u8> for SafetyTolerance {
    type Error = Error;

    fn try_from(level: u8) -> Result<Self> {
        Self::from_level(level).ok_or_else(|| {
            Error::invalid_input(
                "safety_tolerance",
                format!("must be in 1..=6 (got {level})"),
            )
        })
    }
}

impl FromStr for SafetyTolerance {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(Self::from_level)
            .ok_or_else(|| {
                Error::invalid_input(
                    "safety_tolerance",
                    format!("must be one of \"1\"..\"6\" (got {s:?})"),
                )
            })
    }
}

impl fmt::Display for SafetyTolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SafetyTolerance {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SafetyTolerance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(u64),
        }
        let unknown = |what: String| {
            serde::de::Error::custom(format!(
                "invalid safety_tolerance {what}: expected \"1\" to \"6\""
            ))
        };
        match Raw::deserialize(deserializer)? {
            Raw::Str(s) => s.parse().map_err(|_| unknown(format!("{s:?}"))),
            Raw::Int(n) => u8::try_from(n)
                .ok()
                .and_then(Self::from_level)
                .ok_or_else(|| unknown(n.to_string())),
        }
    }
}

/// `aspect_ratio`: the output aspect ratio, serialized as the ratio string (`"16:9"`).
///
/// fal's schema is `anyOf(enum, string)`: the nine presets below, or any other string. Unknown
/// strings deserialize into [`AspectRatio::Custom`] (whether the server accepts a given custom
/// ratio is untested). Server default `"16:9"`.
/// See <https://fal.ai/models/fal-ai/flux-pro/v1.1-ultra-finetuned/api>.
///
/// ```
/// use fal_client::models::AspectRatio;
///
/// assert_eq!(AspectRatio::from("3:4"), AspectRatio::Ratio3_4);
/// assert_eq!(AspectRatio::from("5:4"), AspectRatio::Custom("5:4".into()));
/// assert_eq!(serde_json::to_string(&AspectRatio::Ratio21_9)?, "\"21:9\"");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AspectRatio {
    /// `"21:9"`.
    Ratio21_9,
    /// `"16:9"` (server default).
    #[default]
    Ratio16_9,
    /// `"4:3"`.
    Ratio4_3,
    /// `"3:2"` (newer; absent from the January 2025 schema).
    Ratio3_2,
    /// `"1:1"`.
    Ratio1_1,
    /// `"2:3"` (newer; absent from the January 2025 schema).
    Ratio2_3,
    /// `"3:4"`.
    Ratio3_4,
    /// `"9:16"`.
    Ratio9_16,
    /// `"9:21"`.
    Ratio9_21,
    /// Any other ratio string, sent as is (fal's schema allows any string).
    Custom(String),
}

impl AspectRatio {
    /// The nine preset ratios, widest first.
    pub const PRESETS: [AspectRatio; 9] = [
        Self::Ratio21_9,
        Self::Ratio16_9,
        Self::Ratio4_3,
        Self::Ratio3_2,
        Self::Ratio1_1,
        Self::Ratio2_3,
        Self::Ratio3_4,
        Self::Ratio9_16,
        Self::Ratio9_21,
    ];

    /// The wire value, e.g. `"16:9"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ratio21_9 => "21:9",
            Self::Ratio16_9 => "16:9",
            Self::Ratio4_3 => "4:3",
            Self::Ratio3_2 => "3:2",
            Self::Ratio1_1 => "1:1",
            Self::Ratio2_3 => "2:3",
            Self::Ratio3_4 => "3:4",
            Self::Ratio9_16 => "9:16",
            Self::Ratio9_21 => "9:21",
            Self::Custom(s) => s,
        }
    }
}

impl From<&str> for AspectRatio {
    /// A preset when the string is one of the nine ratios, else [`AspectRatio::Custom`].
    fn from(s: &str) -> Self {
        Self::PRESETS
            .iter()
            .find(|p| p.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Self::Custom(s.to_owned()))
    }
}

impl From<String> for AspectRatio {
    /// A preset when the string is one of the nine ratios, else [`AspectRatio::Custom`].
    fn from(s: String) -> Self {
        match Self::from(s.as_str()) {
            Self::Custom(_) => Self::Custom(s),
            preset => preset,
        }
    }
}

impl FromStr for AspectRatio {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AspectRatio {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AspectRatio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_tolerance_is_a_string_on_the_wire() {
        assert_eq!(serde_json::to_value(SafetyTolerance::Level6).unwrap(), "6");
        let t: SafetyTolerance = serde_json::from_str("\"3\"").unwrap();
        assert_eq!(t, SafetyTolerance::Level3);
        let t: SafetyTolerance = serde_json::from_str("4").unwrap();
        assert_eq!(t, SafetyTolerance::Level4);
        for bad in ["\"0\"", "\"7\"", "7", "-1", "\"high\"", "2.5"] {
            assert!(
                serde_json::from_str::<SafetyTolerance>(bad).is_err(),
                "{bad}"
            );
        }
        for l in 1..=6u8 {
            let t = SafetyTolerance::try_from(l).unwrap();
            assert_eq!(t.level(), l);
            assert_eq!(t.as_str().parse::<SafetyTolerance>().unwrap(), t);
        }
    }

    #[test]
    fn aspect_ratio_presets_round_trip() {
        for p in AspectRatio::PRESETS {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<AspectRatio>(&json).unwrap(), p);
            assert_eq!(AspectRatio::from(p.to_string()), p);
        }
        let c: AspectRatio = serde_json::from_str("\"7:5\"").unwrap();
        assert_eq!(c, AspectRatio::Custom("7:5".into()));
    }
}
