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
/// uploads the data URIs explicitly (upload local files with
/// [`Storage::upload_file`](crate::storage::Storage::upload_file) and put the URL in).
///
/// As JSON it is a string: the URL or the data URI. A path or bytes cannot be serialized before
/// they are uploaded (a serialization error says so), and a string never reads back as a local
/// path: input that comes from outside (a deserialized request, a user's JSON) can never make the
/// client read a local file. A string reads back as a [`DataUri`](Self::DataUri) when it is a
/// base64 data URI (`data:<type>;base64,<data>`), else as a [`Url`](Self::Url) (sent as is:
/// a data URI that is not base64 is sent inline).
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
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileInput {
    /// An `http(s)` URL fal fetches itself: sent as is.
    Url(String),
    /// A base64 data URI (`data:<type>;base64,<data>`): decoded and uploaded first.
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
    /// A URL (or, for a base64 data URI, a [`DataUri`](Self::DataUri)).
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

/// The media type (possibly empty) and the data of `data:[<type>][;...];base64,<data>`.
pub(crate) fn base64_data_uri_parts(s: &str) -> Option<(&str, &str)> {
    let (meta, data) = s.strip_prefix("data:")?.split_once(',')?;
    Some((meta.strip_suffix(";base64")?, data))
}

/// Whether `s` is a base64 data URI: `data:`, an optional `type/subtype` and parameters without
/// spaces, `;base64,`, then only base64 characters.
pub(crate) fn is_data_uri(s: &str) -> bool {
    let Some((media, data)) = base64_data_uri_parts(s) else {
        return false;
    };
    let media_ok =
        media.is_empty() || (media.contains('/') && !media.contains(char::is_whitespace));
    media_ok
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r'))
}

/// A base64 data URI → [`FileInput::DataUri`]; anything else → [`FileInput::Url`]. Never a
/// local path (see [`FileInput`]).
impl From<String> for FileInput {
    fn from(s: String) -> Self {
        if is_data_uri(&s) {
            FileInput::DataUri(s)
        } else {
            FileInput::Url(s)
        }
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

/// The URL or data URI; an absolute path as a `file://` URL (another path as it is) and bytes by their size (for messages: those
/// are not sendable before they are uploaded).
impl fmt::Display for FileInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileInput::Url(s) | FileInput::DataUri(s) => f.write_str(s),
            FileInput::Path(p) => match Url::from_file_path(p) {
                Ok(u) => f.write_str(u.as_str()),
                Err(()) => write!(f, "{}", p.display()),
            },
            FileInput::Bytes { data, content_type } => {
                write!(f, "{} bytes of {content_type}", data.len())
            }
        }
    }
}

/// Shows the size of bytes, not the bytes.
impl fmt::Debug for FileInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileInput::Url(s) => f.debug_tuple("Url").field(s).finish(),
            FileInput::DataUri(s) => f
                .debug_tuple("DataUri")
                .field(&format_args!("{} characters", s.len()))
                .finish(),
            FileInput::Path(p) => f.debug_tuple("Path").field(p).finish(),
            FileInput::Bytes { data, content_type } => f
                .debug_struct("Bytes")
                .field("data", &format_args!("{} bytes", data.len()))
                .field("content_type", content_type)
                .finish(),
        }
    }
}

/// A URL or data URI as its string. A path or bytes is an error: they are uploaded first
/// ([`FalClient::submit`](crate::FalClient::submit) does it), never sent as they are.
impl Serialize for FileInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FileInput::Url(u) | FileInput::DataUri(u) => s.serialize_str(u),
            other => Err(serde::ser::Error::custom(format!(
                "the local file input {other} is not uploaded yet: send the input with \
                 FalClient::submit or run (they upload it), or upload it first"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for FileInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(FileInput::from)
    }
}

/// Equal to a string when it is a URL or data URI that is that string (handy in tests).
impl PartialEq<str> for FileInput {
    fn eq(&self, other: &str) -> bool {
        match self {
            FileInput::Url(s) | FileInput::DataUri(s) => s == other,
            _ => false,
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
        // Never a local path from a string: outside input cannot make the client read a file.
        assert_eq!(
            serde_json::from_str::<FileInput>(r#""file:///etc/passwd""#).unwrap(),
            FileInput::Url("file:///etc/passwd".into())
        );
        // Not base64 data URIs, and text that starts with `data:`, are plain strings (sent as is).
        for s in [
            "data:text/plain,abc",
            "data:science,chart",
            "data: a prompt;base64,x y",
        ] {
            assert_eq!(FileInput::from(s), FileInput::Url(s.into()), "{s}");
        }
        assert_eq!(
            serde_json::to_string(&FileInput::url("https://x")).unwrap(),
            r#""https://x""#
        );
        // A path or bytes cannot be sent before it is uploaded.
        let p = FileInput::path("/tmp/a b.png");
        let err = serde_json::to_string(&p).unwrap_err().to_string();
        assert!(
            err.contains("file:///tmp/a%20b.png") && err.contains("not uploaded"),
            "{err}"
        );
        let b = FileInput::bytes(vec![0u8; 1000], "image/png");
        assert!(serde_json::to_string(&b).is_err());
        assert_eq!(
            format!("{b:?}"),
            r#"Bytes { data: 1000 bytes, content_type: "image/png" }"#
        );
        assert!(!FileInput::url("https://x").needs_upload());
        assert!(b.needs_upload() && p.needs_upload());
    }
}
