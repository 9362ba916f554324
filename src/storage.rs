//! fal storage: upload bytes and files, download result files, and data URIs.
//!
//! Uploads follow fal-js (PROTOCOL.md §5.2): `POST {rest}/storage/upload/initiate?storage_type=fal-cdn-v3`
//! with `{"content_type", "file_name"}` answers `{"upload_url", "file_url"}`; the bytes then go
//! to `upload_url` with a `PUT` that carries **no** fal key (the URL is pre-signed), and the
//! returned `file_url` is what model inputs take (`images_data_url`, `data_url`, `image_url`).
//! Files stream from disk; they are never read whole into memory.
//!
//! Uploads larger than 90 MiB use fal's multipart flow (`initiate-multipart`, parts of 10 MiB
//! sent a few at a time and retried one by one, then `complete`); [`UploadOptions`] changes the
//! threshold, part size and concurrency, and reports progress ([`UploadProgress`], in bytes).
//!
//! ```no_run
//! # async fn demo() -> fal_client::Result<()> {
//! let fal = fal_client::FalClient::from_env()?;
//! let url = fal.storage().upload_file("photos.zip").await?;
//! let big = fal
//!     .storage()
//!     .upload_file_with(
//!         "dataset.tar",
//!         fal_client::storage::UploadOptions::default()
//!             .on_progress(|p| eprintln!("{:.0}%", p.fraction() * 100.0)),
//!     )
//!     .await?;
//! let inline = fal_client::storage::data_uri(b"\x89PNG...", "image/png");
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;
use url::Url;

use crate::client::FalClient;
use crate::error::{Error, Result};
use crate::http::{redact_url, Call, CallBody, Meter};
use crate::queue::join;

mod multipart;
mod options;

pub use options::{
    UploadOptions, UploadProgress, DEFAULT_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
};

/// `storage_type` query value of the initiate call (fal-js).
const STORAGE_TYPE: &str = "fal-cdn-v3";

/// Upload and download calls of a [`FalClient`] (`fal.storage()`).
#[derive(Debug, Clone)]
pub struct Storage {
    client: FalClient,
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

impl FalClient {
    /// Storage calls (uploads, downloads) sharing this client's connection pool.
    pub fn storage(&self) -> Storage {
        Storage {
            client: self.clone(),
        }
    }
}

impl Storage {
    /// Upload bytes and return their fal file URL.
    ///
    /// `file_name` defaults to `upload.{ext}` with the extension from `content_type`. Above
    /// 90 MiB the multipart flow is used (see [`upload_bytes_with`](Self::upload_bytes_with)).
    ///
    /// # Errors
    /// [`Error::Api`] from the initiate call or the `PUT`, [`Error::Upload`] for a malformed
    /// initiate answer, [`Error::Transport`] after retries.
    pub async fn upload_bytes(
        &self,
        data: impl Into<Bytes>,
        content_type: &str,
        file_name: Option<&str>,
    ) -> Result<String> {
        let mut options = UploadOptions::default().content_type(content_type);
        options.file_name = file_name.map(str::to_owned);
        self.upload_bytes_with(data, options).await
    }

    /// Upload bytes with [`UploadOptions`] (content type, file name, multipart settings,
    /// progress) and return their fal file URL.
    ///
    /// The content type defaults to `application/octet-stream`, the file name to `upload.{ext}`
    /// with the extension from the content type. Multipart parts are zero-copy slices of `data`.
    ///
    /// # Errors
    /// As [`upload_file_with`](Self::upload_file_with), without the I/O errors.
    pub async fn upload_bytes_with(
        &self,
        data: impl Into<Bytes>,
        options: UploadOptions,
    ) -> Result<String> {
        let data = data.into();
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let name = options
            .file_name
            .clone()
            .unwrap_or_else(|| default_name(&content_type));
        let len = data.len() as u64;
        self.upload(Source::Bytes(data), len, &content_type, &name, &options)
            .await
    }

    /// Upload a file from disk, streamed (memory does not grow with the file size). The content
    /// type is guessed from the extension (`application/octet-stream` when unknown); the file
    /// name is the path's last component. Above 90 MiB the multipart flow is used (see
    /// [`upload_file_with`](Self::upload_file_with)).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, then as [`upload_bytes`](Self::upload_bytes).
    pub async fn upload_file(&self, path: impl AsRef<Path>) -> Result<String> {
        self.upload_file_with(path, UploadOptions::default()).await
    }

    /// Upload a file from disk with [`UploadOptions`] and return its fal file URL.
    ///
    /// The file is streamed from disk in 256 KiB chunks and never read whole into memory.
    /// Files up to [`multipart_threshold`](UploadOptions::multipart_threshold) bytes (default
    /// 90 MiB) go up in one `PUT` to the initiate answer's `upload_url`. Larger files use fal's
    /// multipart flow (PROTOCOL.md §5.2): `POST {rest}/storage/upload/initiate-multipart`, parts
    /// of [`part_size`](UploadOptions::part_size) bytes (default 10 MiB, 1-based numbers) each
    /// `PUT` to `{upload_url path}/{n}` with the query string kept, at most
    /// [`concurrency`](UploadOptions::concurrency) at once (default 4), then
    /// `POST {upload_url path}/complete` with every part's ETag. Each part is retried on its
    /// own under the client's [`RetryPolicy`](crate::retry::RetryPolicy) (a part `PUT` is
    /// idempotent); only the failed part is sent again. The fal key is never sent to the upload,
    /// part or complete URLs (they are pre-signed).
    ///
    /// # Errors
    /// - [`Error::Io`] when the file cannot be read (or is not a regular file);
    /// - [`Error::InvalidInput`] for a part size of 0;
    /// - [`Error::Api`] when fal or its CDN refuses the initiate call, a part or the complete
    ///   call (after retries for retryable statuses), [`Error::Transport`] after retries;
    /// - [`Error::Upload`] for a malformed initiate answer, a part answer without an ETag
    ///   (naming the part), parts that do not add up to the file, or a file that changed size
    ///   during the upload. Nothing is completed in those cases.
    pub async fn upload_file_with(
        &self,
        path: impl AsRef<Path>,
        options: UploadOptions,
    ) -> Result<String> {
        let path = path.as_ref();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(path.display(), e))?;
        if !meta.is_file() {
            return Err(Error::io(
                path.display(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let content_type = options.content_type.clone().unwrap_or_else(|| {
            mime_guess::from_path(path)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_owned()
        });
        let name = options.file_name.clone().unwrap_or_else(|| {
            path.file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .unwrap_or_else(|| default_name(&content_type))
        });
        let source = Source::File(PathBuf::from(path));
        self.upload(source, meta.len(), &content_type, &name, &options)
            .await
    }

    async fn upload(
        &self,
        source: Source,
        len: u64,
        content_type: &str,
        file_name: &str,
        options: &UploadOptions,
    ) -> Result<String> {
        let multipart = len > options.multipart_threshold;
        let parts = if multipart {
            multipart::plan(len, options.part_size)?
        } else {
            Vec::new()
        };
        let span = tracing::info_span!(
            "fal.upload",
            file_name,
            bytes = len,
            parts = parts.len().max(1)
        );
        async {
            let tracker = options::tracker(options, len);
            let meter = tracker.clone().map(|t| t as Arc<dyn Meter>);
            let target = if multipart {
                let target = self
                    .initiate("storage/upload/initiate-multipart", content_type, file_name)
                    .await?;
                multipart::upload(
                    &self.client,
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
                    .initiate("storage/upload/initiate", content_type, file_name)
                    .await?;
                let mut put = Call::new(Method::PUT, target.upload_url.clone(), "upload");
                put.auth = false; // pre-signed URL: the fal key never goes there
                put.headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_str(content_type)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                );
                put.body = Some(source.body(0, len));
                put.meter = meter;
                self.client.execute(put).await?;
                target
            };
            if let Some(t) = &tracker {
                t.finish();
            }
            tracing::info!(file_url = %redact_url(&target.file_url), "uploaded");
            Ok(target.file_url.to_string())
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
        let mut url = join(&self.client.inner.rest_url, route)?;
        url.query_pairs_mut()
            .append_pair("storage_type", STORAGE_TYPE);
        let body = serde_json::to_vec(&InitiateRequest {
            content_type,
            file_name,
        })
        .map_err(|e| Error::Upload(format!("cannot encode the initiate request: {e}")))?;
        let mut call = Call::new(Method::POST, url, "upload_initiate").json_body(body.into());
        call.timeout = Some(self.client.inner.request_timeout);
        let answer: InitiateResponse = self
            .client
            .execute_json(call, "upload initiate answer")
            .await?;
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

    /// Download a file (e.g. a result image or LoRA) into memory. No fal key is sent.
    ///
    /// # Errors
    /// [`Error::Api`] for a non-success answer, [`Error::Transport`] after retries.
    pub async fn download(&self, url: &str) -> Result<Bytes> {
        let url = parse_url(url)?;
        let mut call = Call::new(Method::GET, url, "download");
        call.auth = false;
        let (_, body) = self.client.execute_bytes(call).await?;
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
    pub async fn download_to_file(&self, url: &str, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let url = parse_url(url)?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".part");
        let partial = PathBuf::from(partial);
        let policy = &self.client.inner.retry;
        let mut attempt = 0;
        loop {
            match self.download_once(&url, &partial).await {
                Ok(written) => {
                    tokio::fs::rename(&partial, path)
                        .await
                        .map_err(|e| Error::io(path.display(), e))?;
                    return Ok(written);
                }
                // The answer head came and its body broke or stalled: start again. (A failure
                // before the head was already retried inside `execute`.)
                Err((e, true)) if attempt < policy.max_retries => {
                    let delay = policy.delay(attempt, None);
                    attempt += 1;
                    tracing::warn!(op = "download", attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying fal call");
                    tokio::time::sleep(delay).await;
                }
                Err((e, _)) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(e);
                }
            }
        }
    }

    /// One download; the flag says whether the failure came after the answer head (a body
    /// that broke or stalled), which is worth a fresh attempt.
    async fn download_once(
        &self,
        url: &Url,
        partial: &Path,
    ) -> std::result::Result<u64, (Error, bool)> {
        use futures::StreamExt;
        let shown = redact_url(url);
        let mut call = Call::new(Method::GET, url.clone(), "download");
        call.auth = false;
        let idle = self.client.inner.read_idle_timeout;
        let method = call.method.clone();
        let resp = self.client.execute(call).await.map_err(|e| (e, false))?;
        let declared = resp.content_length();
        let mut file = tokio::fs::File::create(partial)
            .await
            .map_err(|e| (Error::io(partial.display(), e), false))?;
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    let e = Error::Stalled {
                        method: method.to_string(),
                        url: shown.clone(),
                        request_id: None,
                        idle,
                    };
                    return Err((e, true));
                }
            };
            let chunk = chunk.map_err(|source| {
                let e = Error::Transport {
                    method: "GET".into(),
                    url: shown.clone(),
                    request_id: None,
                    source: source.without_url(),
                };
                (e, true)
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|e| (Error::io(partial.display(), e), false))?;
            written += chunk.len() as u64;
        }
        file.flush()
            .await
            .map_err(|e| (Error::io(partial.display(), e), false))?;
        if let Some(n) = declared.filter(|n| *n != written) {
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the answer declared {n} bytes but {written} arrived"),
            );
            return Err((Error::io(shown, e), true));
        }
        Ok(written)
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
    fn body(&self, offset: u64, len: u64) -> CallBody {
        match self {
            Source::File(path) => CallBody::File {
                path: path.clone(),
                offset,
                len,
            },
            Source::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                CallBody::Bytes(b.slice(start..end))
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
