//! Training archives: the ZIP of photos (and optional captions) that fal's trainers take.
//!
//! Every fal trainer takes the URL of a ZIP of training images (`images_data_url` on the FLUX.1
//! trainers, `image_data_url` on the FLUX.2 and Z-Image trainers): at least 4 or 10 depending on
//! the trainer, each image with an optional caption file of the same base name
//! (`astronaut_01.jpg` + `astronaut_01.txt`). The portrait trainer replaces the literal
//! placeholder [`TRIGGER_PLACEHOLDER`] (`[trigger]`) in captions with its trigger phrase; the
//! FLUX.2 and Z-Image trainers have no trigger field and need a caption for every image unless
//! they get a `default_caption`. [`ArchiveRules`] holds each trainer's rules, and
//! [`ArchiveBuilder::rules`] applies them: the image count, a caption for every image where the
//! trainer needs one, and the trigger phrase written into the captions where the trainer will not
//! put it there itself (`Trainer::archive_builder` in [`crate::avatar`] sets all of it up).
//!
//! Training costs money and a bad archive fails late (or, worse, trains on the wrong data), so
//! [`ArchiveBuilder`] checks everything before anything is uploaded, and reports the first problem
//! with the name of the file at fault:
//!
//! - images are recognised by **content**, not by extension: JPEG, PNG and WebP are accepted (their
//!   dimensions are read with `imagesize`, and their structure is walked far enough to catch
//!   truncated files: PNG chunks up to `IEND`, JPEG segments up to the scan and its end-of-image
//!   marker, the WebP RIFF length); other image formats (HEIC, GIF, TIFF, ...) are refused with
//!   [`ArchiveError::UnsupportedImageFormat`], anything else with [`ArchiveError::NotAnImage`];
//! - a `.txt` file (any case) is a caption and must pair with an image of the same base name (the
//!   part before the last `.`); it must be UTF-8, not blank, and at most
//!   [`ArchiveBuilder::max_caption_bytes`] long;
//! - two images (or two captions) with the same base name are ambiguous and refused;
//! - the number of images must lie within [`ArchiveBuilder::min_images`] (or the trainer's
//!   [`ArchiveRules::min_images`]) and [`ArchiveBuilder::max_images`];
//! - with [`ArchiveRules`]: every image has a caption where the trainer needs one
//!   ([`ArchiveError::MissingCaption`], naming the image), and no caption keeps a `[trigger]`
//!   the trainer would not replace ([`ArchiveError::UnresolvedTrigger`]).
//!
//! The same checks run on an existing ZIP (for example one a user uploaded) with [`validate_zip`].
//!
//! # What the ZIP looks like
//!
//! Entries sit at the root of the ZIP, sorted by name, with a fixed timestamp (1980-01-01 00:00)
//! and fixed permissions (`0644`), so the same photos always give byte-identical archives (handy
//! for caching uploads by content hash). Images are stored uncompressed
//! ([`zip::CompressionMethod::Stored`]): JPEG, PNG and WebP are already compressed, so deflating
//! them would cost time and save nothing. Captions are deflated.
//!
//! An image keeps its file name, with its extension lower-cased (`IMG_1.JPG` becomes
//! `IMG_1.jpg`); if the extension does not match the content (a PNG named `photo.jpg`, or a name
//! without extension) it gets the right one (`photo.png`). A caption is written as `BASE.txt` next
//! to its image. Caption text is kept verbatim (`[trigger]` included) except that a leading UTF-8
//! byte-order mark and surrounding whitespace are removed.
//!
//! # Example
//!
//! ```no_run
//! use fal_client::archive::TrainingArchive;
//!
//! # fn main() -> Result<(), fal_client::archive::ArchiveError> {
//! // A folder of 10-50 photos, some with `NAME.txt` captions.
//! let archive = TrainingArchive::builder().build_from_dir("examples/data/portrait")?;
//! assert_eq!(archive.image_count(), 12);
//! assert_eq!(archive.captioned_count(), 8);
//! archive.write_to("portrait.zip")?;
//! # Ok(())
//! # }
//! ```
//!
//! Services that already hold the photos in memory add them one by one:
//!
//! ```
//! use fal_client::archive::{ArchiveBuilder, ImageFormat};
//!
//! # fn main() -> Result<(), fal_client::archive::ArchiveError> {
//! // A real 1x1 PNG (67 bytes); your service would use its users' photos.
//! const PNG: &[u8] = &[
//!     0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
//!     0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
//!     0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00,
//!     0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49,
//!     0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
//! ];
//!
//! let mut builder = ArchiveBuilder::new();
//! for i in 0..10 {
//!     builder = builder.image(format!("photo_{i:02}.png"), PNG);
//! }
//! let archive = builder
//!     .caption("photo_00.png", "a photo of [trigger] at the beach")
//!     .build()?;
//!
//! assert_eq!(archive.image_count(), 10);
//! assert_eq!(archive.captioned_count(), 1);
//! assert_eq!(archive.content_type(), "application/zip");
//! let first = &archive.entries()[0];
//! assert_eq!((first.name.as_str(), first.format), ("photo_00.png", ImageFormat::Png));
//! assert_eq!((first.width, first.height), (1, 1));
//! assert_eq!(first.caption.as_deref(), Some("a photo of [trigger] at the beach"));
//! // `archive.bytes()` is the ZIP, ready for upload.
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The number of images fal recommends at least (the default of [`ArchiveBuilder::min_images`]).
pub const DEFAULT_MIN_IMAGES: usize = 10;

/// Default longest caption, in bytes (the default of [`ArchiveBuilder::max_caption_bytes`]).
pub const DEFAULT_MAX_CAPTION_BYTES: usize = 1024;

/// Default largest image file, in bytes: 50 MiB (the default of
/// [`ArchiveBuilder::max_image_bytes`]).
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 50 * 1024 * 1024;

/// The placeholder fal replaces with the trigger phrase inside captions.
pub const TRIGGER_PLACEHOLDER: &str = "[trigger]";

/// MIME type of a training archive.
pub const ZIP_CONTENT_TYPE: &str = "application/zip";

/// Bytes read to identify a file that is too large to read whole.
const SNIFF_LEN: u64 = 64;

/// Compression level for captions (flate2's default), fixed so output never drifts.
const CAPTION_DEFLATE_LEVEL: i64 = 6;

/// Everything that can make a training archive unusable.
///
/// Every variant that concerns one file names it (`file`): the file name inside the folder, the
/// name given to [`ArchiveBuilder::image`] / [`ArchiveBuilder::caption`], or the entry path
/// inside a ZIP given to [`validate_zip`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The folder holds no usable file (hidden files and subdirectories are ignored).
    #[error("`{}` contains no files to train on (hidden files and subdirectories are ignored)", path.display())]
    #[non_exhaustive]
    EmptyDirectory {
        /// The folder.
        path: PathBuf,
    },

    /// Fewer images than [`ArchiveBuilder::min_images`] (or the trainer's
    /// [`ArchiveRules::min_images`]).
    #[error("too few training images{}: found {found}, need at least {min}", trainer.as_deref().map(|t| format!(" for {t}")).unwrap_or_default())]
    #[non_exhaustive]
    TooFewImages {
        /// Images found.
        found: usize,
        /// The minimum asked for.
        min: usize,
        /// The trainer whose rules set the minimum, when the builder has [`ArchiveRules`].
        trainer: Option<String>,
    },

    /// An image has no caption file, and the trainer fails the training for an image without a
    /// caption unless a default caption is given ([`ArchiveRules::captions_required`]). Add
    /// `NAME.txt`, or give [`ArchiveBuilder::default_caption`] (and the trainer's
    /// `default_caption`).
    #[error("`{file}` has no caption (`{caption}`), and {trainer} fails the training for an image without a caption unless a default caption is given")]
    #[non_exhaustive]
    MissingCaption {
        /// The image.
        file: String,
        /// The caption file it needs.
        caption: String,
        /// The trainer.
        trainer: String,
    },

    /// A caption lacks the trigger phrase, in a ZIP checked with [`ArchiveBuilder::validate_zip`]
    /// for a trainer that takes the phrase from the captions ([`TriggerPlacement::InCaptions`]):
    /// the LoRA would not be tied to the phrase. (When building, the builder writes it in.)
    #[error("caption `{file}` does not contain the trigger phrase {trigger:?}, and {trainer} takes the trigger phrase from the captions only")]
    #[non_exhaustive]
    MissingTrigger {
        /// The caption file.
        file: String,
        /// The trigger phrase.
        trigger: String,
        /// The trainer.
        trainer: String,
    },

    /// The trigger phrase given to [`ArchiveBuilder::trigger`] cannot be written into captions.
    #[error("the trigger phrase {trigger:?} cannot be used: {reason}")]
    #[non_exhaustive]
    InvalidTrigger {
        /// The phrase as given (trimmed).
        trigger: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A caption uses the [`TRIGGER_PLACEHOLDER`] (`[trigger]`), but the trainer does not replace
    /// it ([`TriggerPlacement::InCaptions`]), so it would train on the literal text. Give the
    /// builder the trigger phrase ([`ArchiveBuilder::trigger`]) and it writes the phrase in; a ZIP
    /// checked with [`ArchiveBuilder::validate_zip`] must already have it written.
    #[error("caption `{file}` uses the [trigger] placeholder, but {trainer} does not replace it: give the builder the trigger phrase so it writes it into the captions")]
    #[non_exhaustive]
    UnresolvedTrigger {
        /// The caption file.
        file: String,
        /// The trainer.
        trainer: String,
    },

    /// More images than [`ArchiveBuilder::max_images`].
    #[error("too many training images: found {found}, at most {max} allowed")]
    #[non_exhaustive]
    TooManyImages {
        /// Images found.
        found: usize,
        /// The maximum asked for.
        max: usize,
    },

    /// A file is neither a caption (`.txt`) nor an image by content. The extension does not
    /// matter: a `photo.jpg` that holds text is not an image.
    #[error("`{file}` is not a JPEG, PNG or WebP image (images are recognised by content, not by extension)")]
    #[non_exhaustive]
    NotAnImage {
        /// The file.
        file: String,
    },

    /// A file is an image in a format fal's trainers are not documented to take (HEIC/AVIF, GIF,
    /// TIFF, JPEG XL, PSD). Convert it to JPEG, PNG or WebP.
    #[error("`{file}` is a {format} image; training archives take JPEG, PNG or WebP, so convert it first")]
    #[non_exhaustive]
    UnsupportedImageFormat {
        /// The file.
        file: String,
        /// The format found (`HEIF/AVIF`, `GIF`, `TIFF`, `JPEG XL`, `PSD`).
        format: String,
    },

    /// A file starts like a JPEG, PNG or WebP but cannot be read: truncated (an interrupted
    /// download or copy), or damaged.
    #[error("`{file}` looks like an image but is corrupt: {reason}")]
    #[non_exhaustive]
    CorruptImage {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An image file is larger than [`ArchiveBuilder::max_image_bytes`].
    #[error("`{file}` is {bytes} bytes, more than the {max}-byte limit for one image")]
    #[non_exhaustive]
    ImageTooLarge {
        /// The file.
        file: String,
        /// Its size in bytes.
        bytes: u64,
        /// The limit in bytes.
        max: u64,
    },

    /// A caption has no image of the same base name (`a.txt` needs `a.jpg`, `a.png`, ...). Allow
    /// (and drop) such captions with [`ArchiveBuilder::allow_unpaired_captions`].
    #[error("caption `{file}` has no image with the same base name")]
    #[non_exhaustive]
    UnpairedCaption {
        /// The caption file.
        file: String,
    },

    /// A caption is not valid UTF-8 text.
    #[error("caption `{file}` is not valid UTF-8 text")]
    CaptionNotUtf8 {
        /// The caption file.
        file: String,
    },

    /// A caption is longer than [`ArchiveBuilder::max_caption_bytes`].
    #[error("caption `{file}` is {bytes} bytes, more than the {max}-byte limit")]
    #[non_exhaustive]
    CaptionTooLong {
        /// The caption file.
        file: String,
        /// Its size in bytes.
        bytes: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// A caption is empty or only whitespace (delete the file to train that image uncaptioned).
    #[error("caption `{file}` is empty")]
    #[non_exhaustive]
    EmptyCaption {
        /// The caption file.
        file: String,
    },

    /// Two images (or two captions) share a base name, so captions cannot be paired unambiguously
    /// (`a.jpg` and `a.png`). Rename one.
    #[error("`{first}` and `{second}` have the same base name; rename one of them")]
    #[non_exhaustive]
    DuplicateName {
        /// The first file, in name order.
        first: String,
        /// The second file.
        second: String,
    },

    /// A name cannot be used inside the archive: empty, a path (`/`, `\`, `..`), not UTF-8, or
    /// containing NUL.
    #[error("`{name}` cannot be used as a file name in a training archive: {reason}")]
    #[non_exhaustive]
    InvalidName {
        /// The name (lossily converted to UTF-8).
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading the folder or a file, or writing the archive, failed.
    #[error("I/O error on `{}`: {source}", path.display())]
    #[non_exhaustive]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A ZIP given to [`validate_zip`] cannot be read: not a ZIP, damaged, encrypted, or using a
    /// compression method this crate cannot decompress (it reads Stored and Deflate).
    #[error("not a usable ZIP archive: {reason}")]
    #[non_exhaustive]
    InvalidZip {
        /// What is wrong with it.
        reason: String,
    },

    /// Writing the ZIP failed (an internal error of the `zip` crate; should not happen).
    #[error("could not write the ZIP archive: {0}")]
    Zip(String),
}

/// What a trainer requires of its training archive. Give it to [`ArchiveBuilder::rules`] and the
/// builder checks it (and writes the trigger phrase where the trainer needs it) before anything is
/// uploaded.
///
/// | trainer | min images | captions | trigger phrase |
/// |---|---|---|---|
/// | `fal-ai/flux-lora-portrait-trainer` | 10 | optional | `trigger_phrase` field, replaces `[trigger]` |
/// | `fal-ai/flux-lora-fast-training` | 4 | optional | written into the captions (`trigger_word` is ignored when captions exist) |
/// | `fal-ai/flux-2-trainer`, `fal-ai/flux-2-trainer-v2` | 10 | every image, unless a default caption | written into the captions (no trigger field) |
/// | `fal-ai/z-image-trainer` | 10 | every image, unless a default caption | written into the captions (no trigger field) |
/// | `fal-ai/flux-pro-trainer` (deprecated) | 10 | optional | `trigger_word` field |
///
/// The minimums are fal's own words ("at least 4 images" for fast training, "try to use at least
/// 10" for the others), enforced as minimums. See the trainers' API pages, e.g.
/// <https://fal.ai/models/fal-ai/flux-2-trainer/api>.
///
/// ```
/// use fal_client::archive::{ArchiveRules, TriggerPlacement};
///
/// let rules = ArchiveRules::for_trainer("fal-ai/flux-2-trainer").unwrap();
/// assert_eq!(rules.min_images, 10);
/// assert!(rules.captions_required);
/// assert_eq!(rules.trigger, TriggerPlacement::InCaptions);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveRules {
    /// The trainer's endpoint id (named in errors).
    pub trainer: &'static str,
    /// Fewest images the trainer takes.
    pub min_images: usize,
    /// Whether the training fails for an image without a caption unless the trainer is given a
    /// default caption.
    pub captions_required: bool,
    /// Where the trigger phrase has to be.
    pub trigger: TriggerPlacement,
}

/// Where a trainer takes the trigger phrase from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TriggerPlacement {
    /// From its trigger field: the trainer replaces [`TRIGGER_PLACEHOLDER`] in captions itself,
    /// so captions are kept verbatim.
    TrainerField,
    /// From the captions: the trainer has no trigger field (or ignores it when there are
    /// captions), so the builder writes the phrase into every caption: `[trigger]` is replaced,
    /// and a caption without the phrase gets it in front (`TOK_anna, a photo at the beach`).
    InCaptions,
}

impl ArchiveRules {
    /// The rules of `fal-ai/flux-lora-portrait-trainer`.
    pub const PORTRAIT_TRAINER: Self = Self::new(
        "fal-ai/flux-lora-portrait-trainer",
        10,
        false,
        TriggerPlacement::TrainerField,
    );
    /// The rules of `fal-ai/flux-lora-fast-training`.
    pub const FLUX_LORA_FAST_TRAINING: Self = Self::new(
        "fal-ai/flux-lora-fast-training",
        4,
        false,
        TriggerPlacement::InCaptions,
    );
    /// The rules of `fal-ai/flux-2-trainer`.
    pub const FLUX_2_TRAINER: Self = Self::new(
        "fal-ai/flux-2-trainer",
        10,
        true,
        TriggerPlacement::InCaptions,
    );
    /// The rules of `fal-ai/flux-2-trainer-v2`.
    pub const FLUX_2_TRAINER_V2: Self = Self::new(
        "fal-ai/flux-2-trainer-v2",
        10,
        true,
        TriggerPlacement::InCaptions,
    );
    /// The rules of `fal-ai/z-image-trainer`.
    pub const Z_IMAGE_TRAINER: Self = Self::new(
        "fal-ai/z-image-trainer",
        10,
        true,
        TriggerPlacement::InCaptions,
    );
    /// The rules of `fal-ai/flux-pro-trainer` (deprecated on fal).
    pub const PRO_TRAINER: Self = Self::new(
        "fal-ai/flux-pro-trainer",
        10,
        false,
        TriggerPlacement::TrainerField,
    );

    /// Every trainer the crate knows the rules of.
    pub const ALL: [Self; 6] = [
        Self::PORTRAIT_TRAINER,
        Self::FLUX_LORA_FAST_TRAINING,
        Self::FLUX_2_TRAINER,
        Self::FLUX_2_TRAINER_V2,
        Self::Z_IMAGE_TRAINER,
        Self::PRO_TRAINER,
    ];

    /// Rules for a trainer the crate does not know (`trainer` is its endpoint id, named in
    /// errors): the fewest images it takes, whether every image needs a caption unless it gets a
    /// default caption, and where it takes the trigger phrase from.
    ///
    /// ```
    /// use fal_client::archive::{ArchiveRules, TriggerPlacement};
    ///
    /// // fal's Qwen-Image 2512 trainer: captions or a default caption, no trigger field.
    /// let qwen = ArchiveRules::new("fal-ai/qwen-image-2512-trainer", 10, true, TriggerPlacement::InCaptions);
    /// assert!(ArchiveRules::for_trainer(qwen.trainer).is_none());
    /// ```
    pub const fn new(
        trainer: &'static str,
        min_images: usize,
        captions_required: bool,
        trigger: TriggerPlacement,
    ) -> Self {
        Self {
            trainer,
            min_images,
            captions_required,
            trigger,
        }
    }

    /// The rules of the trainer at `endpoint_id`, when the crate knows it.
    pub fn for_trainer(endpoint_id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.trainer == endpoint_id)
    }
}

/// An image format accepted in a training archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (`image/jpeg`).
    Jpeg,
    /// PNG (`image/png`).
    Png,
    /// WebP (`image/webp`).
    WebP,
}

impl ImageFormat {
    /// The MIME type: `image/jpeg`, `image/png` or `image/webp`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }

    /// The extension given to entries whose own extension does not match: `jpg`, `png`, `webp`.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    /// Whether a lower-case extension names this format.
    fn accepts_extension(self, ext: &str) -> bool {
        match self {
            Self::Jpeg => matches!(ext, "jpg" | "jpeg" | "jpe" | "jfif"),
            Self::Png => ext == "png",
            Self::WebP => ext == "webp",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
        })
    }
}

/// One image of a [`TrainingArchive`], with its caption.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveImage {
    /// Entry name inside the ZIP (e.g. `astronaut_01.jpg`).
    pub name: String,
    /// Format, from the content.
    pub format: ImageFormat,
    /// Width in pixels, as stored (EXIF orientation is not applied).
    pub width: u32,
    /// Height in pixels, as stored (EXIF orientation is not applied).
    pub height: u32,
    /// The image file, byte for byte (a zero-copy slice of the archive).
    pub bytes: Bytes,
    /// The caption written as `BASE.txt`, if any (may contain [`TRIGGER_PLACEHOLDER`]).
    pub caption: Option<String>,
}

impl ArchiveImage {
    /// A summary without the bytes.
    pub fn summary(&self) -> ImageSummary {
        ImageSummary {
            name: self.name.clone(),
            format: self.format,
            width: self.width,
            height: self.height,
            size: self.bytes.len() as u64,
            caption: self.caption.clone(),
        }
    }
}

impl fmt::Debug for ArchiveImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveImage")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.bytes.len())
            .field("caption", &self.caption)
            .finish()
    }
}

/// What is in a training archive: one [`ImageSummary`] per image, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ArchiveReport {
    /// The images, sorted by entry name.
    pub images: Vec<ImageSummary>,
    /// Files that were left out on purpose: hidden files, subdirectories (with a trailing `/`),
    /// `__MACOSX/` entries and, when allowed, unpaired captions. Sorted.
    pub skipped: Vec<String>,
}

impl ArchiveReport {
    /// Number of images.
    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    /// Number of images that have a caption.
    pub fn captioned_count(&self) -> usize {
        self.images.iter().filter(|i| i.caption.is_some()).count()
    }
}

/// One image of an [`ArchiveReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImageSummary {
    /// Entry name inside the ZIP.
    pub name: String,
    /// Format, from the content.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the image file in bytes.
    pub size: u64,
    /// The caption, if any.
    pub caption: Option<String>,
}

/// A checked training ZIP, ready to upload (see the [module docs](self) for its layout).
#[derive(Clone)]
pub struct TrainingArchive {
    zip: Bytes,
    images: Vec<ArchiveImage>,
    skipped: Vec<String>,
}

impl TrainingArchive {
    /// A builder with fal's defaults; same as [`ArchiveBuilder::new`].
    pub fn builder() -> ArchiveBuilder {
        ArchiveBuilder::new()
    }

    /// The ZIP file. Cloning the [`Bytes`] is cheap.
    pub fn bytes(&self) -> &Bytes {
        &self.zip
    }

    /// The ZIP file, consuming the archive.
    pub fn into_bytes(self) -> Bytes {
        self.zip
    }

    /// Size of the ZIP file in bytes.
    pub fn len(&self) -> usize {
        self.zip.len()
    }

    /// Whether the ZIP is empty; never true for a built archive (it holds at least one image).
    pub fn is_empty(&self) -> bool {
        self.zip.is_empty()
    }

    /// The images, sorted by entry name, each with its caption.
    pub fn entries(&self) -> &[ArchiveImage] {
        &self.images
    }

    /// Number of images.
    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    /// Number of images that have a caption.
    pub fn captioned_count(&self) -> usize {
        self.images.iter().filter(|i| i.caption.is_some()).count()
    }

    /// Files left out on purpose (hidden files, subdirectories with a trailing `/`, and unpaired
    /// captions when allowed), sorted.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The MIME type to upload with: `application/zip`.
    pub fn content_type(&self) -> &'static str {
        ZIP_CONTENT_TYPE
    }

    /// A summary of the contents, without the bytes.
    pub fn report(&self) -> ArchiveReport {
        ArchiveReport {
            images: self.images.iter().map(ArchiveImage::summary).collect(),
            skipped: self.skipped.clone(),
        }
    }

    /// Writes the ZIP to `path` (created or truncated). Blocks; see [`Self::write_to_async`].
    ///
    /// # Errors
    ///
    /// [`ArchiveError::Io`] if the file cannot be written.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), ArchiveError> {
        let path = path.as_ref();
        std::fs::write(path, &self.zip).map_err(|source| io_error(path, source))
    }

    /// Writes the ZIP to `path` (created or truncated) with `tokio::fs`.
    ///
    /// # Errors
    ///
    /// [`ArchiveError::Io`] if the file cannot be written.
    pub async fn write_to_async(&self, path: impl AsRef<Path>) -> Result<(), ArchiveError> {
        let path = path.as_ref();
        tokio::fs::write(path, &self.zip)
            .await
            .map_err(|source| io_error(path, source))
    }
}

impl fmt::Debug for TrainingArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingArchive")
            .field("len", &self.zip.len())
            .field("images", &self.images)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Checks an existing training ZIP (for example one a user uploaded) with the default limits and
/// `min_images`. Use [`ArchiveBuilder::validate_zip`] to set the other options.
///
/// The checks are those of [`ArchiveBuilder`], with these differences: entries may sit in folders
/// inside the ZIP (a caption pairs with the image of the same base name in the same folder), names
/// are reported as they are, and `__MACOSX/` entries are skipped along with hidden files.
///
/// # Errors
///
/// [`ArchiveError::InvalidZip`] if the bytes are not a readable ZIP, and otherwise the first
/// problem found, in entry-name order (see [`ArchiveError`]). An archive without images gives
/// [`ArchiveError::TooFewImages`].
pub fn validate_zip(bytes: &[u8], min_images: usize) -> Result<ArchiveReport, ArchiveError> {
    ArchiveBuilder::new()
        .min_images(min_images)
        .validate_zip(bytes)
}

/// Builds a [`TrainingArchive`] from a folder or from images held in memory, checking it on the
/// way (see the [module docs](self)).
///
/// Every method takes and returns the builder (in a loop: `builder = builder.image(..)`).
/// Problems with added files are reported when building.
#[derive(Clone)]
pub struct ArchiveBuilder {
    min_images: usize,
    rules: Option<ArchiveRules>,
    trigger: Option<String>,
    default_caption: Option<String>,
    max_images: Option<usize>,
    max_caption_bytes: usize,
    max_image_bytes: u64,
    allow_unpaired_captions: bool,
    skip_hidden: bool,
    added: Vec<Input>,
}

impl Default for ArchiveBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ArchiveBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveBuilder")
            .field("min_images", &self.min_images)
            .field("rules", &self.rules)
            .field("trigger", &self.trigger)
            .field("default_caption", &self.default_caption)
            .field("max_images", &self.max_images)
            .field("max_caption_bytes", &self.max_caption_bytes)
            .field("max_image_bytes", &self.max_image_bytes)
            .field("allow_unpaired_captions", &self.allow_unpaired_captions)
            .field("skip_hidden", &self.skip_hidden)
            .field("added", &self.added.len())
            .finish()
    }
}

impl ArchiveBuilder {
    /// A builder with the defaults: at least [`DEFAULT_MIN_IMAGES`] images, no maximum, captions
    /// up to [`DEFAULT_MAX_CAPTION_BYTES`], images up to [`DEFAULT_MAX_IMAGE_BYTES`], unpaired
    /// captions refused, hidden files skipped.
    pub fn new() -> Self {
        Self {
            min_images: DEFAULT_MIN_IMAGES,
            rules: None,
            trigger: None,
            default_caption: None,
            max_images: None,
            max_caption_bytes: DEFAULT_MAX_CAPTION_BYTES,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            allow_unpaired_captions: false,
            skip_hidden: true,
            added: Vec::new(),
        }
    }

    /// Fewest images accepted (default 10, fal's recommendation). `0` is treated as `1`: an
    /// archive always holds at least one image.
    pub fn min_images(mut self, min: usize) -> Self {
        self.min_images = min;
        self
    }

    /// Check the archive against a trainer's rules (see [`ArchiveRules`]): its minimum image count
    /// (this replaces [`min_images`](Self::min_images); set that afterwards to change it), a
    /// caption for every image where the trainer needs one, and the trigger phrase written into
    /// the captions where the trainer takes it from there.
    pub fn rules(mut self, rules: ArchiveRules) -> Self {
        self.min_images = rules.min_images;
        self.rules = Some(rules);
        self
    }

    /// The trigger phrase (`TOK_anna`). With [`TriggerPlacement::InCaptions`] rules it is
    /// written into every caption (replacing `[trigger]`, or in front); otherwise captions are
    /// kept verbatim and the trainer's trigger field does the work.
    pub fn trigger(mut self, phrase: impl Into<String>) -> Self {
        self.trigger = Some(phrase.into().trim().to_owned());
        self
    }

    /// The caption written for images that have none (`BASE.txt`), so that every image is
    /// captioned. Give the trainer the same text as its `default_caption` where it has one.
    /// With [`TriggerPlacement::InCaptions`] rules the trigger phrase is written into it like
    /// into any caption.
    pub fn default_caption(mut self, caption: impl Into<String>) -> Self {
        self.default_caption = Some(caption.into().trim().to_owned());
        self
    }

    /// Most images accepted (default: no limit).
    pub fn max_images(mut self, max: Option<usize>) -> Self {
        self.max_images = max;
        self
    }

    /// Longest caption file, in bytes (default 1024).
    pub fn max_caption_bytes(mut self, max: usize) -> Self {
        self.max_caption_bytes = max;
        self
    }

    /// Largest image file, in bytes (default 50 MiB). Larger files are not read whole.
    pub fn max_image_bytes(mut self, max: u64) -> Self {
        self.max_image_bytes = max;
        self
    }

    /// Whether a caption without an image of the same base name is dropped (listed in
    /// [`TrainingArchive::skipped`]) instead of being an error (default `false`: an error).
    pub fn allow_unpaired_captions(mut self, allow: bool) -> Self {
        self.allow_unpaired_captions = allow;
        self
    }

    /// Whether hidden files are skipped (default `true`): names starting with `.` (`.DS_Store`,
    /// `._IMG_1.jpg`) and the Windows Explorer files `Thumbs.db` and `desktop.ini`. When `false`
    /// they are checked like any other file (and usually fail as [`ArchiveError::NotAnImage`]).
    pub fn skip_hidden(mut self, skip: bool) -> Self {
        self.skip_hidden = skip;
        self
    }

    /// Adds an image held in memory. `name` is its file name (`photo_01.jpg`); the extension is
    /// corrected from the content if needed, so `photo_01` works too. The content is checked when
    /// building.
    pub fn image(mut self, name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.added.push(Input {
            name: name.into(),
            source: Source::Image(bytes.into()),
        });
        self
    }

    /// Adds the caption of an image added with [`image`](Self::image) (or found in the
    /// folder). `name` is the caption's file name (`photo_01.txt`), the image's
    /// (`photo_01.jpg`) or its base name (`photo_01`): captions pair by the part before the last
    /// `.`. The text may contain [`TRIGGER_PLACEHOLDER`].
    pub fn caption(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        let name = name.into();
        let name = format!("{}.txt", split_name(&name).0);
        self.added.push(Input {
            name,
            source: Source::Caption(text.into()),
        });
        self
    }

    /// Builds the archive from the images and captions added in memory.
    ///
    /// # Errors
    ///
    /// The first problem found, in name order (see [`ArchiveError`]); no images gives
    /// [`ArchiveError::TooFewImages`].
    pub fn build(mut self) -> Result<TrainingArchive, ArchiveError> {
        let _span = tracing::debug_span!("build_training_archive", source = "memory").entered();
        let inputs = std::mem::take(&mut self.added);
        self.build_inputs(inputs, Vec::new())
    }

    /// Builds the archive from the files directly inside `dir`, plus anything added in memory.
    ///
    /// Subdirectories are **not** descended into: they are skipped and listed (with a trailing
    /// `/`) in [`TrainingArchive::skipped`], as are hidden files (see
    /// [`skip_hidden`](Self::skip_hidden)). Symbolic links are followed.
    ///
    /// This reads every file with blocking I/O and holds the archive in memory (about the total
    /// size of the photos); in async code use [`build_from_dir_async`](Self::build_from_dir_async).
    ///
    /// # Errors
    ///
    /// [`ArchiveError::EmptyDirectory`] if there is nothing to read, [`ArchiveError::Io`] if the
    /// folder or a file cannot be read, and otherwise the first problem found, in file-name order
    /// (see [`ArchiveError`]).
    pub fn build_from_dir(
        mut self,
        dir: impl AsRef<Path>,
    ) -> Result<TrainingArchive, ArchiveError> {
        let dir = dir.as_ref();
        let _span = tracing::debug_span!("build_training_archive", dir = %dir.display()).entered();
        let mut inputs = Vec::new();
        let mut skipped = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
        for entry in listing {
            let entry = entry.map_err(|source| io_error(dir, source))?;
            let path = entry.path();
            let name = match entry.file_name().into_string() {
                Ok(name) => name,
                Err(raw) => {
                    return Err(ArchiveError::InvalidName {
                        name: raw.to_string_lossy().into_owned(),
                        reason: "the file name is not valid UTF-8".to_owned(),
                    })
                }
            };
            if self.skip_hidden && is_hidden(&name) {
                tracing::debug!(file = %name, "skipping hidden file");
                skipped.push(name);
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|source| io_error(&path, source))?;
            if meta.is_dir() {
                tracing::debug!(dir = %name, "skipping subdirectory");
                skipped.push(format!("{name}/"));
                continue;
            }
            inputs.push(Input {
                name,
                source: Source::File {
                    path,
                    len: meta.len(),
                },
            });
        }
        if inputs.is_empty() && self.added.is_empty() {
            return Err(ArchiveError::EmptyDirectory {
                path: dir.to_path_buf(),
            });
        }
        inputs.append(&mut self.added);
        self.build_inputs(inputs, skipped)
    }

    /// [`build_from_dir`](Self::build_from_dir) on tokio's blocking thread pool, so the runtime's
    /// workers are not blocked while the photos are read.
    ///
    /// # Errors
    ///
    /// As [`build_from_dir`](Self::build_from_dir); a failure of the blocking task itself is
    /// reported as [`ArchiveError::Io`].
    pub async fn build_from_dir_async(
        self,
        dir: impl AsRef<Path>,
    ) -> Result<TrainingArchive, ArchiveError> {
        let dir = dir.as_ref().to_path_buf();
        let task_dir = dir.clone();
        tokio::task::spawn_blocking(move || self.build_from_dir(task_dir))
            .await
            .map_err(|e| io_error(&dir, std::io::Error::other(e)))?
    }

    /// Checks an existing ZIP with this builder's options (images added in memory are ignored).
    /// See [`validate_zip`] for the rules.
    ///
    /// # Errors
    ///
    /// As [`validate_zip`].
    pub fn validate_zip(&self, zip: &[u8]) -> Result<ArchiveReport, ArchiveError> {
        let _span = tracing::debug_span!("validate_training_archive", len = zip.len()).entered();
        let mut archive =
            ZipArchive::new(Cursor::new(zip)).map_err(|e| ArchiveError::InvalidZip {
                reason: e.to_string(),
            })?;
        let mut names = Vec::with_capacity(archive.len());
        for index in 0..archive.len() {
            let file = archive
                .by_index_raw(index)
                .map_err(|e| ArchiveError::InvalidZip {
                    reason: format!("entry #{index}: {e}"),
                })?;
            names.push((file.name().to_owned(), index));
        }
        names.sort();

        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for (name, index) in names {
            if name.ends_with('/') {
                continue;
            }
            if name.starts_with("__MACOSX/") || (self.skip_hidden && name.split('/').any(is_hidden))
            {
                tracing::debug!(file = %name, "skipping hidden entry");
                skipped.push(name);
                continue;
            }
            {
                let raw = archive
                    .by_index_raw(index)
                    .map_err(|e| invalid_entry(&name, e))?;
                if raw.enclosed_name().is_none() || name.contains('\\') {
                    return Err(ArchiveError::InvalidName {
                        name,
                        reason: "the entry path leaves the archive or is not portable".to_owned(),
                    });
                }
                if raw.encrypted() {
                    return Err(ArchiveError::InvalidZip {
                        reason: format!("entry `{name}` is encrypted"),
                    });
                }
            }
            let mut file = archive
                .by_index(index)
                .map_err(|e| invalid_entry(&name, e))?;
            let declared = file.size();
            let item = if is_caption_name(&name) {
                let max = self.max_caption_bytes;
                if declared > max as u64 {
                    return Err(ArchiveError::CaptionTooLong {
                        file: name,
                        bytes: usize::try_from(declared).unwrap_or(usize::MAX),
                        max,
                    });
                }
                let raw =
                    read_limited(&mut file, max as u64).map_err(|e| invalid_entry(&name, e))?;
                let text = check_caption(&name, &raw, max)?;
                caption_item(name, text)
            } else if declared > self.max_image_bytes {
                let head =
                    read_limited(&mut file, SNIFF_LEN).map_err(|e| invalid_entry(&name, e))?;
                return Err(too_large_or_not_image(
                    name,
                    &head,
                    declared,
                    self.max_image_bytes,
                ));
            } else {
                let data = read_limited(&mut file, self.max_image_bytes)
                    .map_err(|e| invalid_entry(&name, e))?;
                let size = data.len() as u64;
                if size > self.max_image_bytes {
                    return Err(ArchiveError::ImageTooLarge {
                        file: name,
                        bytes: size,
                        max: self.max_image_bytes,
                    });
                }
                let (format, width, height) = identify_image(&name, &data)?;
                image_item(name, format, width, height, size, Bytes::new())
            };
            items.push(item);
        }

        let (images, skipped) = self.pair(items, skipped, false)?;
        let report = ArchiveReport {
            images: images
                .into_iter()
                .map(|p| ImageSummary {
                    name: p.name,
                    format: p.format,
                    width: p.width,
                    height: p.height,
                    size: p.size,
                    caption: p.caption,
                })
                .collect(),
            skipped,
        };
        tracing::debug!(
            images = report.image_count(),
            captioned = report.captioned_count(),
            "validated training archive"
        );
        Ok(report)
    }

    /// Reads and checks every input, pairs captions, checks counts and writes the ZIP.
    fn build_inputs(
        &self,
        mut inputs: Vec<Input>,
        mut skipped: Vec<String>,
    ) -> Result<TrainingArchive, ArchiveError> {
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut items = Vec::with_capacity(inputs.len());
        for input in inputs {
            check_name(&input.name)?;
            if self.skip_hidden && is_hidden(&input.name) {
                tracing::debug!(file = %input.name, "skipping hidden file");
                skipped.push(input.name);
                continue;
            }
            items.push(self.read_input(input)?);
        }
        let (images, skipped) = self.pair(items, std::mem::take(&mut skipped), true)?;
        let archive = write_zip(images, skipped)?;
        tracing::debug!(
            images = archive.image_count(),
            captioned = archive.captioned_count(),
            bytes = archive.len(),
            "built training archive"
        );
        Ok(archive)
    }

    /// Reads one input and checks it as a caption or an image.
    fn read_input(&self, input: Input) -> Result<Item, ArchiveError> {
        let Input { name, source } = input;
        match source {
            Source::Caption(text) => {
                let text = check_caption(&name, text.as_bytes(), self.max_caption_bytes)?;
                Ok(caption_item(name, text))
            }
            Source::Image(bytes) => {
                let size = bytes.len() as u64;
                if size > self.max_image_bytes {
                    return Err(too_large_or_not_image(
                        name,
                        &bytes,
                        size,
                        self.max_image_bytes,
                    ));
                }
                let (format, width, height) = identify_image(&name, &bytes)?;
                Ok(image_item(name, format, width, height, size, bytes))
            }
            Source::File { path, len } if is_caption_name(&name) => {
                let max = self.max_caption_bytes;
                if len > max as u64 {
                    return Err(ArchiveError::CaptionTooLong {
                        file: name,
                        bytes: usize::try_from(len).unwrap_or(usize::MAX),
                        max,
                    });
                }
                let raw = read_file(&path, max as u64)?;
                let text = check_caption(&name, &raw, max)?;
                Ok(caption_item(name, text))
            }
            Source::File { path, len } => {
                let max = self.max_image_bytes;
                if len > max {
                    let head = read_file(&path, SNIFF_LEN)?;
                    return Err(too_large_or_not_image(name, &head, len, max));
                }
                let data = read_file(&path, max)?;
                let size = data.len() as u64;
                if size > max {
                    // The file grew while we were reading it.
                    return Err(ArchiveError::ImageTooLarge {
                        file: name,
                        bytes: size,
                        max,
                    });
                }
                let (format, width, height) = identify_image(&name, &data)?;
                Ok(image_item(
                    name,
                    format,
                    width,
                    height,
                    size,
                    Bytes::from(data),
                ))
            }
        }
    }

    /// Pairs captions with images by base name and checks the image count. `rename` gives
    /// images canonical entry names (for building) instead of keeping them (for validation).
    /// Returns the images in entry-name order and the sorted skipped list.
    fn pair(
        &self,
        items: Vec<Item>,
        mut skipped: Vec<String>,
        rename: bool,
    ) -> Result<(Vec<Prepared>, Vec<String>), ArchiveError> {
        let mut images: BTreeMap<String, ImageItem> = BTreeMap::new();
        let mut captions: BTreeMap<String, CaptionItem> = BTreeMap::new();
        for item in items {
            match item {
                Item::Image(image) => {
                    if let Some(first) = images.get(&image.stem) {
                        return Err(ArchiveError::DuplicateName {
                            first: first.file.clone(),
                            second: image.file,
                        });
                    }
                    images.insert(image.stem.clone(), image);
                }
                Item::Caption(caption) => {
                    if let Some(first) = captions.get(&caption.stem) {
                        return Err(ArchiveError::DuplicateName {
                            first: first.file.clone(),
                            second: caption.file,
                        });
                    }
                    captions.insert(caption.stem.clone(), caption);
                }
            }
        }

        for (stem, caption) in &captions {
            if !images.contains_key(stem) {
                if !self.allow_unpaired_captions {
                    return Err(ArchiveError::UnpairedCaption {
                        file: caption.file.clone(),
                    });
                }
                tracing::debug!(file = %caption.file, "dropping unpaired caption");
                skipped.push(caption.file.clone());
            }
        }

        let found = images.len();
        let min = self.min_images.max(1);
        if found < min {
            return Err(ArchiveError::TooFewImages {
                found,
                min,
                trainer: self.rules.map(|r| r.trainer.to_owned()),
            });
        }
        if let Some(max) = self.max_images {
            if found > max {
                return Err(ArchiveError::TooManyImages { found, max });
            }
        }

        let mut prepared: Vec<Prepared> = images
            .into_iter()
            .map(|(stem, image)| {
                let caption = captions.remove(&stem);
                let name = if rename {
                    let ext = if image.format.accepts_extension(&image.ext) {
                        image.ext.as_str()
                    } else {
                        image.format.extension()
                    };
                    format!("{stem}.{ext}")
                } else {
                    image.file
                };
                let caption_name = caption.as_ref().map(|c| {
                    if rename {
                        format!("{stem}.txt")
                    } else {
                        c.file.clone()
                    }
                });
                Prepared {
                    name,
                    format: image.format,
                    width: image.width,
                    height: image.height,
                    size: image.size,
                    bytes: image.bytes,
                    caption_name,
                    caption: caption.map(|c| c.text),
                }
            })
            .collect();
        prepared.sort_by(|a, b| a.name.cmp(&b.name));
        skipped.sort();
        self.apply_caption_rules(&mut prepared, rename)?;

        let with_trigger = prepared
            .iter()
            .filter(|p| {
                p.caption
                    .as_deref()
                    .is_some_and(|c| c.contains(TRIGGER_PLACEHOLDER))
            })
            .count();
        let captioned = prepared.iter().filter(|p| p.caption.is_some()).count();
        if with_trigger > 0 && with_trigger < captioned {
            tracing::debug!(
                with_trigger,
                captioned,
                "some captions use the [trigger] placeholder and some do not"
            );
        }
        Ok((prepared, skipped))
    }
}

impl ArchiveBuilder {
    /// Apply the default caption, the trigger placement and the caption requirement of the rules.
    /// `writing` is true when building (captions may be written), false when checking a ZIP as
    /// it is.
    fn apply_caption_rules(
        &self,
        prepared: &mut [Prepared],
        writing: bool,
    ) -> Result<(), ArchiveError> {
        let trainer = self.rules.map_or("the trainer", |r| r.trainer);
        let in_captions = self
            .rules
            .is_some_and(|r| r.trigger == TriggerPlacement::InCaptions);
        let captions_required = self.rules.is_some_and(|r| r.captions_required);
        if let Some(text) = &self.default_caption {
            check_caption("default caption", text.as_bytes(), self.max_caption_bytes)?;
        }
        if self.trigger.as_deref().is_some_and(str::is_empty) {
            return Err(ArchiveError::InvalidTrigger {
                trigger: String::new(),
                reason: "it is empty".to_owned(),
            });
        }
        if let Some(t) = self
            .trigger
            .as_deref()
            .filter(|t| t.contains(TRIGGER_PLACEHOLDER))
        {
            return Err(ArchiveError::InvalidTrigger {
                trigger: t.to_owned(),
                reason: "it contains the [trigger] placeholder".to_owned(),
            });
        }
        for image in prepared.iter_mut() {
            let stem = split_name(&image.name).0.to_owned();
            if image.caption.is_none() && writing {
                if let Some(text) = &self.default_caption {
                    image.caption = Some(text.clone());
                    image.caption_name = Some(format!("{stem}.txt"));
                }
            }
            let caption_file = || {
                image
                    .caption_name
                    .clone()
                    .unwrap_or_else(|| format!("{stem}.txt"))
            };
            match &mut image.caption {
                Some(text) if in_captions => match (&self.trigger, writing) {
                    (Some(phrase), true) => {
                        *text = write_trigger(text, phrase);
                        // What was written is checked like a caption read from a file.
                        check_caption(&caption_file(), text.as_bytes(), self.max_caption_bytes)?;
                    }
                    _ if text.contains(TRIGGER_PLACEHOLDER) => {
                        return Err(ArchiveError::UnresolvedTrigger {
                            file: caption_file(),
                            trainer: trainer.to_owned(),
                        })
                    }
                    // Checking a ZIP as it is: the phrase must already be in every caption.
                    (Some(phrase), false) if !contains_phrase(text, phrase) => {
                        return Err(ArchiveError::MissingTrigger {
                            file: caption_file(),
                            trigger: phrase.clone(),
                            trainer: trainer.to_owned(),
                        })
                    }
                    _ => {}
                },
                Some(_) => {}
                // Checking a ZIP as it is: a default caption the trainer will get counts.
                None if captions_required && (writing || self.default_caption.is_none()) => {
                    return Err(ArchiveError::MissingCaption {
                        file: image.name.clone(),
                        caption: format!("{stem}.txt"),
                        trainer: trainer.to_owned(),
                    })
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// `caption` with the trigger phrase written in: `[trigger]` replaced, or the phrase in front
/// when the caption does not already hold it (as a whole word: `TOK` is not in `TOKYO`).
fn write_trigger(caption: &str, phrase: &str) -> String {
    if caption.contains(TRIGGER_PLACEHOLDER) {
        caption.replace(TRIGGER_PLACEHOLDER, phrase)
    } else if contains_phrase(caption, phrase) {
        caption.to_owned()
    } else {
        format!("{phrase}, {caption}")
    }
}

/// Whether `text` holds `phrase` as a whole word or words: an occurrence counts only when the
/// characters around it do not continue a word (`TOK_anna` is not in `TOK_annabelle`, `TOK` is
/// not in `TOKYO`).
pub(crate) fn contains_phrase(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let starts_word = phrase.chars().next().is_some_and(word);
    let ends_word = phrase.chars().next_back().is_some_and(word);
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + phrase.len()..].chars().next();
        let glued_before = starts_word && before.is_some_and(word);
        let glued_after = ends_word && after.is_some_and(word);
        !glued_before && !glued_after
    })
}

/// A file to put in the archive, before it is read.
#[derive(Clone)]
struct Input {
    name: String,
    source: Source,
}

#[derive(Clone)]
enum Source {
    File { path: PathBuf, len: u64 },
    Image(Bytes),
    Caption(String),
}

/// A checked file.
enum Item {
    Image(ImageItem),
    Caption(CaptionItem),
}

struct ImageItem {
    file: String,
    stem: String,
    /// Lower-case extension, possibly empty.
    ext: String,
    format: ImageFormat,
    width: u32,
    height: u32,
    size: u64,
    bytes: Bytes,
}

struct CaptionItem {
    file: String,
    stem: String,
    text: String,
}

/// An image with its final entry name and caption.
struct Prepared {
    name: String,
    format: ImageFormat,
    width: u32,
    height: u32,
    size: u64,
    bytes: Bytes,
    caption_name: Option<String>,
    caption: Option<String>,
}

fn image_item(
    file: String,
    format: ImageFormat,
    width: u32,
    height: u32,
    size: u64,
    bytes: Bytes,
) -> Item {
    let (stem, ext) = split_name(&file);
    let (stem, ext) = (stem.to_owned(), ext.to_ascii_lowercase());
    Item::Image(ImageItem {
        file,
        stem,
        ext,
        format,
        width,
        height,
        size,
        bytes,
    })
}

fn caption_item(file: String, text: String) -> Item {
    let stem = split_name(&file).0.to_owned();
    Item::Caption(CaptionItem { file, stem, text })
}

/// Writes the ZIP and points each image's bytes at its (stored, so verbatim) data inside it.
fn write_zip(images: Vec<Prepared>, skipped: Vec<String>) -> Result<TrainingArchive, ArchiveError> {
    let base = SimpleFileOptions::default()
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
        .large_file(false);
    let stored = base.compression_method(CompressionMethod::Stored);
    let deflated = base
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(CAPTION_DEFLATE_LEVEL));

    let mut entries: Vec<(&str, &[u8], SimpleFileOptions)> = Vec::with_capacity(images.len() * 2);
    for image in &images {
        entries.push((&image.name, &image.bytes, stored));
        if let (Some(name), Some(text)) = (&image.caption_name, &image.caption) {
            entries.push((name, text.as_bytes(), deflated));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(b.0));

    let capacity: usize = entries
        .iter()
        .map(|e| e.1.len() + 2 * e.0.len() + 100)
        .sum();
    let mut writer = ZipWriter::new(Cursor::new(Vec::with_capacity(capacity + 22)));
    for (name, data, options) in entries {
        writer.start_file(name, options).map_err(zip_error)?;
        writer
            .write_all(data)
            .map_err(|e| ArchiveError::Zip(format!("writing `{name}`: {e}")))?;
    }
    let zip = Bytes::from(writer.finish().map_err(zip_error)?.into_inner());

    // Locate each image's data, so `ArchiveImage::bytes` shares the archive's buffer.
    let mut ranges = BTreeMap::new();
    let mut reader = ZipArchive::new(Cursor::new(zip.as_ref())).map_err(zip_error)?;
    for index in 0..reader.len() {
        let file = reader.by_index_raw(index).map_err(zip_error)?;
        ranges.insert(
            file.name().to_owned(),
            (file.data_start(), file.compressed_size()),
        );
    }
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let slice = ranges
            .get(&image.name)
            .and_then(|&(start, len)| {
                let start = usize::try_from(start).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                zip.get(start..end).map(|_| zip.slice(start..end))
            })
            .filter(|slice| *slice == image.bytes)
            .ok_or_else(|| {
                ArchiveError::Zip(format!("entry `{}` was not stored verbatim", image.name))
            })?;
        out.push(ArchiveImage {
            name: image.name,
            format: image.format,
            width: image.width,
            height: image.height,
            bytes: slice,
            caption: image.caption,
        });
    }
    Ok(TrainingArchive {
        zip,
        images: out,
        skipped,
    })
}

fn zip_error(e: zip::result::ZipError) -> ArchiveError {
    ArchiveError::Zip(e.to_string())
}

fn invalid_entry(name: &str, e: impl fmt::Display) -> ArchiveError {
    ArchiveError::InvalidZip {
        reason: format!("entry `{name}`: {e}"),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads at most `limit + 1` bytes, so the caller can tell "too long" from "exactly at the limit".
fn read_limited(reader: &mut impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    read_limited(&mut file, limit).map_err(|source| io_error(path, source))
}

/// Splits a file name (or a `/`-separated entry path) into base name and extension at the last
/// `.` of its last component. A leading `.` does not start an extension.
fn split_name(name: &str) -> (&str, &str) {
    let file_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[file_start..].rfind('.') {
        Some(dot) if dot > 0 => {
            let dot = file_start + dot;
            (&name[..dot], &name[dot + 1..])
        }
        _ => (name, ""),
    }
}

fn is_caption_name(name: &str) -> bool {
    split_name(name).1.eq_ignore_ascii_case("txt")
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
        || name.eq_ignore_ascii_case("Thumbs.db")
        || name.eq_ignore_ascii_case("desktop.ini")
}

/// Checks a name given for an entry at the root of the archive.
fn check_name(name: &str) -> Result<(), ArchiveError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.contains(['/', '\\']) {
        "the name contains a path separator"
    } else if name == "." || name == ".." {
        "the name is a relative path"
    } else if name.contains('\0') {
        "the name contains NUL"
    } else {
        return Ok(());
    };
    Err(ArchiveError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    })
}

/// Checks a caption's raw bytes and returns its text without BOM and surrounding whitespace.
fn check_caption(file: &str, raw: &[u8], max: usize) -> Result<String, ArchiveError> {
    if raw.len() > max {
        return Err(ArchiveError::CaptionTooLong {
            file: file.to_owned(),
            bytes: raw.len(),
            max,
        });
    }
    let text = std::str::from_utf8(raw).map_err(|_| ArchiveError::CaptionNotUtf8 {
        file: file.to_owned(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim();
    if text.is_empty() {
        return Err(ArchiveError::EmptyCaption {
            file: file.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// The accepted format whose signature `data` starts with.
fn sniff(data: &[u8]) -> Option<ImageFormat> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if data.starts_with(b"\x89PNG") {
        Some(ImageFormat::Png)
    } else if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// The error for a file over the image size limit: too large if it is an image, else not one.
fn too_large_or_not_image(file: String, head: &[u8], bytes: u64, max: u64) -> ArchiveError {
    if sniff(head).is_some() {
        ArchiveError::ImageTooLarge { file, bytes, max }
    } else {
        not_an_image(file, head)
    }
}

/// `NotAnImage`, or `UnsupportedImageFormat` when the content is an image fal does not take.
fn not_an_image(file: String, data: &[u8]) -> ArchiveError {
    // Only formats with unambiguous signatures: weaker ones (TGA, PNM, BMP's "BM") also match
    // ordinary text files.
    let format = match imagesize::image_type(data) {
        Ok(imagesize::ImageType::Heif(_)) => Some("HEIF/AVIF"),
        Ok(imagesize::ImageType::Gif) => Some("GIF"),
        Ok(imagesize::ImageType::Tiff) => Some("TIFF"),
        Ok(imagesize::ImageType::Jxl) => Some("JPEG XL"),
        Ok(imagesize::ImageType::Psd) => Some("PSD"),
        _ => None,
    };
    match format {
        Some(format) => ArchiveError::UnsupportedImageFormat {
            file,
            format: format.to_owned(),
        },
        None => ArchiveError::NotAnImage { file },
    }
}

/// Identifies an image by content and reads its dimensions, checking its structure far enough to
/// catch truncated files.
fn identify_image(file: &str, data: &[u8]) -> Result<(ImageFormat, u32, u32), ArchiveError> {
    let Some(format) = sniff(data) else {
        return Err(not_an_image(file.to_owned(), data));
    };
    let corrupt = |reason: String| ArchiveError::CorruptImage {
        file: file.to_owned(),
        reason,
    };
    match format {
        ImageFormat::Jpeg => check_jpeg(data),
        ImageFormat::Png => check_png(data),
        ImageFormat::WebP => check_webp(data),
    }
    .map_err(corrupt)?;
    let size = imagesize::blob_size(data).map_err(|e| match e {
        imagesize::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            corrupt(format!("the {format} header is truncated"))
        }
        e => corrupt(format!("cannot read the {format} dimensions: {e}")),
    })?;
    let (Ok(width), Ok(height)) = (u32::try_from(size.width), u32::try_from(size.height)) else {
        return Err(corrupt(format!(
            "implausible dimensions {}x{}",
            size.width, size.height
        )));
    };
    if width == 0 || height == 0 {
        return Err(corrupt(format!("zero-sized image ({width}x{height})")));
    }
    Ok((format, width, height))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Walks the PNG chunks: signature, `IHDR` first, at least one `IDAT`, and `IEND` before the end.
fn check_png(data: &[u8]) -> Result<(), String> {
    if !data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("bad PNG signature".to_owned());
    }
    let mut pos = 8usize;
    let mut seen_idat = false;
    loop {
        let (Some(len), Some(kind)) = (be_u32(data, pos), data.get(pos + 4..pos + 8)) else {
            return Err(format!(
                "truncated: the file ends at byte {} without an IEND chunk",
                data.len()
            ));
        };
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| pos.checked_add(12)?.checked_add(len))
            .filter(|&end| end <= data.len());
        let name = String::from_utf8_lossy(kind);
        let Some(end) = end else {
            return Err(format!(
                "truncated: chunk `{name}` at byte {pos} runs past the end of the file ({} bytes)",
                data.len()
            ));
        };
        if pos == 8 && (kind != b"IHDR" || len != 13) {
            return Err("the first chunk is not a valid IHDR".to_owned());
        }
        match kind {
            b"IDAT" => seen_idat = true,
            b"IEND" if seen_idat => return Ok(()),
            b"IEND" => return Err("no image data (IDAT chunk)".to_owned()),
            _ => {}
        }
        pos = end;
    }
}

/// Walks the JPEG segments up to the first scan, then looks for the end-of-image marker.
fn check_jpeg(data: &[u8]) -> Result<(), String> {
    let truncated = || "truncated: the file ends before the end-of-image marker".to_owned();
    let mut pos = 2usize;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return match data.get(pos) {
                None => Err(truncated()),
                Some(_) => Err(format!("expected a segment marker at byte {pos}")),
            };
        }
        // Markers may be preceded by any number of 0xFF fill bytes.
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos + 1) else {
            return Err(truncated());
        };
        match marker {
            // Stand-alone markers (TEM, RSTn) carry no length.
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            0xD8 => return Err(format!("unexpected start-of-image marker at byte {pos}")),
            0xD9 => return Err("the file ends before any image data".to_owned()),
            _ => {}
        }
        let Some(len) = data
            .get(pos + 2..pos + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Err(truncated());
        };
        if len < 2 {
            return Err(format!("invalid segment length at byte {pos}"));
        }
        let end = pos + 2 + len;
        if end > data.len() {
            return Err(truncated());
        }
        if marker == 0xDA {
            // Entropy-coded data follows; 0xFF bytes in it are stuffed, so `FF D9` is the end.
            let found = data[end..].windows(2).rev().any(|w| w == [0xFF, 0xD9]);
            return if found { Ok(()) } else { Err(truncated()) };
        }
        pos = end;
    }
}

/// Checks that the RIFF container is as long as it says.
fn check_webp(data: &[u8]) -> Result<(), String> {
    let declared = data
        .get(4..8)
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) + 8)
        .unwrap_or(u64::MAX);
    if declared > data.len() as u64 {
        return Err(format!(
            "truncated: the RIFF header declares {declared} bytes but the file has {}",
            data.len()
        ));
    }
    match data.get(12..16) {
        Some(b"VP8 " | b"VP8L" | b"VP8X") => Ok(()),
        Some(_) => Err("unknown WebP chunk after the RIFF header".to_owned()),
        None => Err("truncated: no WebP image chunk".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_name_uses_last_dot_of_last_component() {
        assert_eq!(split_name("a.jpg"), ("a", "jpg"));
        assert_eq!(split_name("a.b.JPG"), ("a.b", "JPG"));
        assert_eq!(split_name("noext"), ("noext", ""));
        assert_eq!(split_name(".hidden"), (".hidden", ""));
        assert_eq!(split_name("dir.v2/a"), ("dir.v2/a", ""));
        assert_eq!(split_name("dir/a.txt"), ("dir/a", "txt"));
    }

    #[test]
    fn jpeg_walk_rejects_missing_eoi_and_garbage() {
        // SOI, an APP0 segment of length 4, SOS of length 2, data, EOI.
        let good = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34,
            0xFF, 0xD9,
        ];
        assert_eq!(check_jpeg(&good), Ok(()));
        assert!(check_jpeg(&good[..14]).is_err());
        assert!(check_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A]).is_err());
        assert!(check_jpeg(b"\xFF\xD8\xFFhello world").is_err());
    }
}
