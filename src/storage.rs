//! fal storage: upload bytes and files, download result files, and data URIs.
//!
//! Uploads follow fal's JavaScript client (<https://docs.fal.ai/model-apis/fal-cdn>):
//! `POST {rest}/storage/upload/initiate?storage_type=fal-cdn-v3` with `{"content_type",
//! "file_name"}` answers `{"upload_url", "file_url"}`; the bytes then go to `upload_url` with a
//! `PUT` that carries **no** fal key (the URL is pre-signed), and the returned `file_url` is what
//! model inputs take (`images_data_url`, `image_data_url`, `image_url`). Files stream from disk;
//! they are never read whole into memory.
//!
//! Uploads larger than 90 MiB use fal's multipart flow (`initiate-multipart`, parts of 10 MiB
//! sent a few at a time and retried one by one, then `complete`); the [`Upload`] builder changes
//! the threshold, part size and concurrency, and reports progress ([`UploadProgress`], in bytes).
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! let fal = fal_client::FalClient::from_env()?;
//! let url = fal.storage().upload_file("photos.zip").await?;
//! let big = fal
//!     .storage()
//!     .upload_file("dataset.tar")
//!     .on_progress(|p| eprintln!("{:.0}%", p.fraction() * 100.0))
//!     .await?;
//! let inline = fal_client::storage::data_uri(b"\x89PNG...", "image/png");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

use crate::error::{Error, Result};
use crate::queue::join;
use crate::transport::Transport;
use crate::transport::{redact_url, Body, Meter, Op, Request};

mod multipart;
mod options;

use options::UploadOptions;
pub use options::{
    UploadProgress, DEFAULT_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE,
};

/// `storage_type` query value of the initiate call (fal-js).
const STORAGE_TYPE: &str = "fal-cdn-v3";

/// Uploads and downloads of a [`FalClient`](crate::FalClient) (`fal.storage()`), on its connection pool.
#[derive(Debug, Clone)]
pub struct Storage {
    transport: Arc<Transport>,
}

#[derive(Serialize)]
struct InitiateRequest<'a> {
    content_type: &'a str,
    file_name: &'a str,
}

#[derive(Deserialize)]
struct InitiateResponse {
    upload_url: String,
    file_url: String,
}

impl Storage {
    pub(crate) fn new(transport: Arc<Transport>) -> Self {
        Self { transport }
    }

    /// Upload bytes: an [`Upload`] builder (content type, file name, multipart settings,
    /// progress) that uploads when awaited and returns the file's fal URL.
    ///
    /// The content type defaults to `application/octet-stream`, the file name to `upload.{ext}`
    /// with the extension from the content type. Multipart parts are zero-copy slices of `data`.
    pub fn upload_bytes(&self, data: impl Into<Bytes>) -> Upload {
        Upload::new(self.clone(), Source::Bytes(data.into()))
    }

    /// Upload a file from disk, streamed (memory does not grow with the file size): an
    /// [`Upload`] builder that uploads when awaited and returns the file's fal URL. The content
    /// type is guessed from the extension (`application/octet-stream` when unknown); the file
    /// name is the path's last component.
    pub fn upload_file(&self, path: impl AsRef<Path>) -> Upload {
        Upload::new(self.clone(), Source::File(path.as_ref().to_path_buf()))
    }

    /// Download a file (e.g. a result image or LoRA; the URL as a `&str`, `String` or [`Url`])
    /// into memory, up to the client's
    /// [`max_response_bytes`](crate::Config::max_response_bytes). No fal key is sent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that is not `http(s)`; [`Error::Api`] for a
    /// non-success answer, [`Error::Transport`] after retries, [`Error::ResponseTooLarge`].
    pub async fn download(&self, url: impl AsRef<str>) -> Result<Bytes> {
        let req = Request::new(Op::Download, Method::GET, parse_url(url.as_ref())?);
        let (_, body) = self.transport.bytes(&req).await?;
        Ok(body)
    }

    /// Download a file to `path`, streamed (memory does not grow with the file size); returns
    /// the number of bytes written. No fal key is sent.
    ///
    /// The bytes go to `path` with `.part` appended and are renamed to `path` only when the
    /// whole body arrived (and matched its `Content-Length`), so `path` never holds a cut-short
    /// file. A body that breaks on the way is downloaded again from the start, under the
    /// client's retry policy.
    ///
    /// # Errors
    /// As [`download`](Self::download), plus [`Error::Io`] when `path` cannot be written.
    pub async fn download_to_file(
        &self,
        url: impl AsRef<str>,
        path: impl AsRef<Path>,
    ) -> Result<u64> {
        let req = Request::new(Op::Download, Method::GET, parse_url(url.as_ref())?);
        self.transport.to_file(&req, path.as_ref()).await
    }

    async fn upload(&self, source: Source, options: UploadOptions) -> Result<Url> {
        let (len, content_type, name) = match &source {
            Source::Bytes(data) => {
                let ct = options
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".to_owned());
                let name = options
                    .file_name
                    .clone()
                    .unwrap_or_else(|| default_name(&ct));
                (data.len() as u64, ct, name)
            }
            Source::File(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| Error::io(path.display(), e))?;
                if !meta.is_file() {
                    return Err(Error::io(
                        path.display(),
                        std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
                    ));
                }
                let ct = options.content_type.clone().unwrap_or_else(|| {
                    mime_guess::from_path(path)
                        .first_raw()
                        .unwrap_or("application/octet-stream")
                        .to_owned()
                });
                let name = options.file_name.clone().unwrap_or_else(|| {
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| default_name(&ct))
                });
                (meta.len(), ct, name)
            }
        };
        let content_type_header = HeaderValue::from_str(&content_type)
            .map_err(|_| Error::invalid_input("content_type", "cannot be an HTTP header value"))?;
        let multipart = len > options.multipart_threshold;
        let parts = if multipart {
            multipart::plan(len, options.part_size)?
        } else {
            Vec::new()
        };
        let span = tracing::info_span!(
            "fal.upload",
            file_name = %name,
            bytes = len,
            parts = parts.len().max(1)
        );
        async {
            let tracker = options::tracker(&options, len);
            let meter = tracker.clone().map(|t| t as Arc<dyn Meter>);
            let target = if multipart {
                let target = self
                    .initiate("storage/upload/initiate-multipart", &content_type, &name)
                    .await?;
                multipart::upload(
                    &self.transport,
                    &target,
                    &source,
                    &parts,
                    len,
                    options.concurrency,
                    meter,
                )
                .await?;
                target
            } else {
                let target = self
                    .initiate("storage/upload/initiate", &content_type, &name)
                    .await?;
                // A pre-signed URL: the op never carries the fal key.
                let mut put = Request::new(Op::Upload, Method::PUT, target.upload_url.clone());
                put.headers
                    .insert(http::header::CONTENT_TYPE, content_type_header);
                put.body = Some(source.body(0, len));
                put.meter = meter;
                self.transport.send(&put).await?;
                target
            };
            if let Some(t) = &tracker {
                t.finish();
            }
            tracing::info!(file_url = %redact_url(&target.file_url), "uploaded");
            Ok(target.file_url)
        }
        .instrument(span)
        .await
    }

    /// `route` is `storage/upload/initiate` or `storage/upload/initiate-multipart`.
    async fn initiate(
        &self,
        route: &str,
        content_type: &str,
        file_name: &str,
    ) -> Result<UploadTarget> {
        let mut url = join(self.transport.config().rest_url(), route)?;
        url.query_pairs_mut()
            .append_pair("storage_type", STORAGE_TYPE);
        let body = serde_json::to_vec(&InitiateRequest {
            content_type,
            file_name,
        })
        .map_err(|e| Error::Upload(format!("cannot encode the initiate request: {e}")))?;
        let req = Request::new(Op::UploadInitiate, Method::POST, url).json_body(body.into());
        let answer: InitiateResponse = self.transport.json(&req, &"upload initiate answer").await?;
        let parse = |what: &str, s: &str| {
            Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    Error::Upload(format!(
                        "the initiate answer's {what} is not an http(s) URL"
                    ))
                })
        };
        Ok(UploadTarget {
            upload_url: parse("upload_url", &answer.upload_url)?,
            file_url: parse("file_url", &answer.file_url)?,
        })
    }
}

/// An upload, sent when awaited: from [`Storage::upload_bytes`] and [`Storage::upload_file`].
/// Returns the file's fal URL, the one model inputs take.
///
/// Files up to [`multipart_threshold`](Self::multipart_threshold) bytes (default 90 MiB) go up in
/// one `PUT` to the initiate answer's `upload_url`. Larger ones use fal's multipart flow:
/// `POST {rest}/storage/upload/initiate-multipart`, parts of [`part_size`](Self::part_size)
/// bytes (default 10 MiB, 1-based numbers) each `PUT` to `{upload_url path}/{n}` with the query
/// string kept, at most [`concurrency`](Self::concurrency) at once (default 4), then
/// `POST {upload_url path}/complete` with every part's ETag. Each part is retried on its own
/// under the client's [`RetryPolicy`](crate::retry::RetryPolicy) (a part `PUT` is idempotent);
/// only the failed part is sent again. The fal key is never sent to the upload, part or
/// complete URLs (they are pre-signed).
///
/// ```no_run
/// # async fn demo(fal: fal_client::FalClient, zip: bytes::Bytes) -> fal_client::Result<()> {
/// let url = fal
///     .storage()
///     .upload_bytes(zip)
///     .content_type("application/zip")
///     .file_name("anna.zip")
///     .on_progress(|p| eprintln!("{}/{} bytes", p.sent, p.total))
///     .await?;
/// # Ok(()) }
/// ```
///
/// # Errors (when awaited)
/// - [`Error::Io`] when the file cannot be read (or is not a regular file);
/// - [`Error::InvalidInput`] for a part size of 0, or more than 10,000 parts;
/// - [`Error::Api`] when fal or its CDN refuses the initiate call, a part or the complete
///   call (after retries for retryable statuses), [`Error::Transport`] after retries;
/// - [`Error::Upload`] for a malformed initiate answer, a part answer without an ETag (naming
///   the part), parts that do not add up to the file, or a file that changed size during the
///   upload. Nothing is completed in those cases.
#[must_use = "an upload does nothing until it is awaited"]
pub struct Upload {
    storage: Storage,
    source: Source,
    options: UploadOptions,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes themselves are not shown: an upload can be large.
        let mut d = f.debug_struct("Upload");
        match &self.source {
            Source::File(path) => d.field("source", path),
            Source::Bytes(data) => d.field("source", &format_args!("{} bytes", data.len())),
        };
        d.field("options", &self.options).finish()
    }
}

impl Upload {
    fn new(storage: Storage, source: Source) -> Self {
        Self {
            storage,
            source,
            options: UploadOptions::default(),
        }
    }

    /// Content type announced to fal and sent with a single `PUT`, instead of the guess from
    /// the file name (or `application/octet-stream` for bytes). One that cannot be an HTTP
    /// header value fails the upload with [`Error::InvalidInput`] before anything is sent.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.options.content_type = Some(content_type.into());
        self
    }

    /// File name announced to fal (it ends the file URL), instead of the path's last component
    /// (or `upload.{ext}` for bytes).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.options.file_name = Some(name.into());
        self
    }

    /// Uploads **larger than** `bytes` use the multipart flow; others go up in one `PUT`.
    /// Default [`DEFAULT_MULTIPART_THRESHOLD`] (90 MiB). `u64::MAX` disables multipart.
    pub fn multipart_threshold(mut self, bytes: u64) -> Self {
        self.options.multipart_threshold = bytes;
        self
    }

    /// Size of each multipart part in bytes (the last part holds the rest). Default
    /// [`DEFAULT_PART_SIZE`] (10 MiB).
    ///
    /// The client enforces no minimum so that tests and mocks can use small parts, but fal's CDN
    /// follows S3-style multipart rules, which refuse parts under 5 MiB other than the last:
    /// keep at least 5 MiB against fal. A part size of 0 makes the upload fail with
    /// [`Error::InvalidInput`].
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.options.part_size = bytes;
        self
    }

    /// How many parts of a multipart upload are sent at once (at least 1). Default
    /// [`DEFAULT_CONCURRENCY`] (4). Each part in flight holds one connection and a read buffer
    /// of 256 KiB, so memory stays bounded whatever the file size.
    pub fn concurrency(mut self, parts: usize) -> Self {
        self.options.concurrency = parts.max(1);
        self
    }

    /// Call `f` as the upload progresses.
    ///
    /// - The first report is `sent == 0` (made before any byte is sent, when `total > 0`).
    /// - Reports follow as body chunks (256 KiB) are handed to the connection, across all parts
    ///   in flight; `sent` only ever grows.
    /// - When an attempt fails and is retried (a part, or a single `PUT`), its bytes are taken
    ///   back internally and reports resume only once the retry has sent more than was
    ///   reported before: bytes are never counted twice, and `sent` never goes down.
    /// - `sent == total` is reported exactly once, last, after fal accepted the upload (the
    ///   single `PUT` answered, or the multipart `complete` call succeeded); until then reports
    ///   stop at `total - 1`. A failed upload never reports `sent == total`.
    ///
    /// `f` runs on the tasks that send the body, under a lock that keeps reports in order: keep
    /// it cheap (update a progress bar, send on a channel).
    pub fn on_progress(mut self, f: impl Fn(UploadProgress) + Send + Sync + 'static) -> Self {
        self.options.progress = Some(Arc::new(f));
        self
    }
}

impl IntoFuture for Upload {
    type Output = Result<Url>;
    type IntoFuture = BoxFuture<'static, Result<Url>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.storage.upload(self.source, self.options).await })
    }
}

struct UploadTarget {
    upload_url: Url,
    file_url: Url,
}

/// What an upload reads its bytes from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Bytes(Bytes),
}

impl Source {
    /// A re-sendable body for `len` bytes from `offset`.
    fn body(&self, offset: u64, len: u64) -> Body {
        match self {
            Source::File(path) => Body::File {
                path: path.clone(),
                offset,
                len,
            },
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                Body::Bytes(b.slice(start..end))
            }
        }
    }

    /// Refuse to complete an upload whose file changed size while it was being sent.
    async fn check_unchanged(&self, len: u64) -> Result<()> {
        let Source::File(path) = self else {
            return Ok(());
        };
        let now = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        if now != len {
            return Err(Error::Upload(format!(
                "{} changed size during the upload ({len} bytes, now {now}); not completing it",
                path.display()
            )));
        }
        Ok(())
    }
}

fn parse_url(s: &str) -> Result<Url> {
    Url::parse(s)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| Error::invalid_input("url", format!("{s:?} is not an http(s) URL")))
}

/// `upload.{ext}` where `ext` is the content type's subtype cut at `+`, `-` or `;`
/// (`image/png` → `upload.png`, `application/zip` → `upload.zip`), as fal-js names blobs.
fn default_name(content_type: &str) -> String {
    let ext = content_type
        .split('/')
        .nth(1)
        .and_then(|s| s.split([';', '+', '-']).next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("bin");
    format!("upload.{ext}")
}

/// Encode bytes as a data URI: `data:{content_type};base64,{base64}` (fal's Python `encode`).
/// Some models accept data URIs instead of URLs; URLs work with every model.
///
/// ```
/// assert_eq!(fal_client::storage::data_uri(b"hi", "text/plain"), "data:text/plain;base64,aGk=");
/// ```
pub fn data_uri(data: &[u8], content_type: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    format!("data:{content_type};base64,{b64}")
}

/// Read a file and encode it as a data URI, the content type guessed from the extension
/// (`application/octet-stream` when unknown). Reads the whole file: keep it for small files.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub async fn data_uri_from_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| Error::io(path.display(), e))?;
    let ct = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    Ok(data_uri(&data, ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_content_type() {
        assert_eq!(default_name("image/png"), "upload.png");
        assert_eq!(default_name("application/zip"), "upload.zip");
        assert_eq!(default_name("image/svg+xml"), "upload.svg");
        assert_eq!(default_name("text/plain; charset=utf-8"), "upload.plain");
        assert_eq!(default_name("nonsense"), "upload.bin");
    }

    #[test]
    fn data_uris_are_base64() {
        assert_eq!(
            data_uri(&[0xff, 0x00], "application/octet-stream"),
            "data:application/octet-stream;base64,/wA="
        );
    }

    #[tokio::test]
    async fn data_uri_from_file_guesses_the_type() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            data_uri_from_file(&p).await.unwrap(),
            "data:image/png;base64,YWJj"
        );
        assert!(matches!(
            data_uri_from_file(dir.path().join("missing.png")).await,
            Err(Error::Io { .. })
        ));
    }
}
