//! [`FileInput`]: a file a model input takes — a URL, or a local file, bytes or a data URI the
//! client uploads before the request. Public through [`crate::storage`].

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// A file a model input takes (a training archive, an image): a URL fal can fetch, or a local
/// file, bytes or a data URI that the client uploads to fal storage first.
///
/// [`FalClient::submit`](crate::FalClient::submit) and [`run`](crate::FalClient::run) upload
/// every file input of a typed model that is not a URL (paths streamed from disk, several at
/// once) and send the uploaded files' URLs, as fal's JavaScript client does with `Blob`s. For
/// untyped JSON inputs, [`Storage::upload_files_in`](crate::storage::Storage::upload_files_in)
/// does the same explicitly.
///
/// As JSON it is a string: the URL; the data URI; a `file://` URL for a path; a data URI for
/// bytes. A string reads back as [`Url`](Self::Url), [`DataUri`](Self::DataUri) (`data:`) or
/// [`Path`](Self::Path) (`file://`).
///
/// ```
/// use fal_client::models::PortraitTrainerInput;
/// use fal_client::storage::FileInput;
///
/// // A URL fal can fetch ...
/// let input = PortraitTrainerInput::new("https://v3.fal.media/files/abc/photos.zip");
/// // ... or a local file, uploaded (streamed) when the request is sent.
/// let input = PortraitTrainerInput::new(FileInput::path("photos/anna.zip"));
/// assert!(input.images_data_url.needs_upload());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileInput {
    /// An `http(s)` URL fal fetches itself: sent as is.
    Url(String),
    /// A `data:` URI: decoded and uploaded first.
    DataUri(String),
    /// A local file: uploaded first, streamed from disk, its type guessed from the extension.
    Path(PathBuf),
    /// Bytes: uploaded first.
    Bytes {
        /// The file's bytes.
        data: Bytes,
        /// Their content type, e.g. `image/png`.
        content_type: String,
    },
}

impl FileInput {
    /// A URL (or, for a string starting with `data:`, a data URI).
    pub fn url(url: impl Into<String>) -> Self {
        Self::from(url.into())
    }

    /// A local file, uploaded when the request is sent.
    pub fn path(path: impl AsRef<Path>) -> Self {
        FileInput::Path(path.as_ref().to_path_buf())
    }

    /// Bytes of `content_type`, uploaded when the request is sent.
    pub fn bytes(data: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        FileInput::Bytes {
            data: data.into(),
            content_type: content_type.into(),
        }
    }

    /// Whether there is nothing in it: a blank URL or data URI, or an empty path (what an
    /// input's `Default` holds).
    pub fn is_empty(&self) -> bool {
        match self {
            FileInput::Url(s) | FileInput::DataUri(s) => s.trim().is_empty(),
            FileInput::Path(p) => p.as_os_str().is_empty(),
            FileInput::Bytes { .. } => false,
        }
    }

    /// Whether the client uploads it before the request (everything but a URL).
    pub fn needs_upload(&self) -> bool {
        !matches!(self, FileInput::Url(_))
    }

    /// The URL, once it is one.
    pub fn as_url(&self) -> Option<&str> {
        match self {
            FileInput::Url(u) => Some(u),
            _ => None,
        }
    }
}

/// An empty URL (refused by the models' `validate`).
impl Default for FileInput {
    fn default() -> Self {
        FileInput::Url(String::new())
    }
}

/// Whether `s` has the shape of a data URI: `data:`, a media type and parameters without
/// spaces, a comma.
pub(crate) fn is_data_uri(s: &str) -> bool {
    s.strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .is_some_and(|(meta, _)| !meta.contains(char::is_whitespace))
}

/// A data URI (`data:`, a media type and parameters without spaces, a comma) →
/// [`FileInput::DataUri`], a `file://` URL of a local path → [`FileInput::Path`], anything else
/// → [`FileInput::Url`].
impl From<String> for FileInput {
    fn from(s: String) -> Self {
        if is_data_uri(&s) {
            return FileInput::DataUri(s);
        }
        if s.starts_with("file://") {
            if let Some(path) = Url::parse(&s).ok().and_then(|u| u.to_file_path().ok()) {
                return FileInput::Path(path);
            }
        }
        FileInput::Url(s)
    }
}

impl From<&str> for FileInput {
    fn from(s: &str) -> Self {
        Self::from(s.to_owned())
    }
}

impl From<&String> for FileInput {
    fn from(s: &String) -> Self {
        Self::from(s.clone())
    }
}

impl From<Url> for FileInput {
    fn from(u: Url) -> Self {
        Self::from(String::from(u))
    }
}

impl From<&Url> for FileInput {
    fn from(u: &Url) -> Self {
        Self::from(u.as_str())
    }
}

impl From<PathBuf> for FileInput {
    fn from(p: PathBuf) -> Self {
        FileInput::Path(p)
    }
}

impl From<&Path> for FileInput {
    fn from(p: &Path) -> Self {
        FileInput::Path(p.to_path_buf())
    }
}

/// The string it is sent as (see [`FileInput`]).
impl fmt::Display for FileInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileInput::Url(s) | FileInput::DataUri(s) => f.write_str(s),
            FileInput::Path(p) => {
                let absolute = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                match Url::from_file_path(&absolute) {
                    Ok(u) => f.write_str(u.as_str()),
                    Err(()) => write!(f, "file://{}", absolute.display()),
                }
            }
            FileInput::Bytes { data, content_type } => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(data);
                write!(f, "data:{content_type};base64,{b64}")
            }
        }
    }
}

impl Serialize for FileInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FileInput::Url(u) => s.serialize_str(u),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for FileInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(FileInput::from)
    }
}

/// Equal to a string when it is sent as that string (handy in tests).
impl PartialEq<str> for FileInput {
    fn eq(&self, other: &str) -> bool {
        match self {
            FileInput::Url(s) | FileInput::DataUri(s) => s == other,
            _ => self.to_string().as_str() == other,
        }
    }
}

impl PartialEq<&str> for FileInput {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_read_back_as_what_they_are() {
        assert_eq!(
            FileInput::from("https://x/a.zip"),
            FileInput::Url("https://x/a.zip".into())
        );
        assert!(matches!(
            FileInput::from("data:image/png;base64,AA=="),
            FileInput::DataUri(_)
        ));
        let p = FileInput::path("/tmp/a b.png");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#""file:///tmp/a%20b.png""#);
        assert_eq!(serde_json::from_str::<FileInput>(&json).unwrap(), p);
        let b = FileInput::bytes(&b"hi"[..], "text/plain");
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#""data:text/plain;base64,aGk=""#
        );
        assert!(!FileInput::url("https://x").needs_upload());
        assert!(b.needs_upload() && p.needs_upload());
    }
}
