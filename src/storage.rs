//! fal storage: upload bytes and files, download result files, and data URIs.
//!
//! Uploads speak both of fal's flows (<https://docs.fal.ai/model-apis/fal-cdn>): the CDN v3
//! flow of fal's Python client (a CDN token, then the file to `{cdn}/files/upload`, or multipart
//! with ETags) and the initiate flow of fal's JavaScript client (`initiate`, then a `PUT` to a
//! pre-signed URL that carries **no** fal key), the first falling back to the second when it is
//! unavailable ([`Upload`] says when). The returned URL is what model inputs take
//! (`images_data_url`, `image_data_url`, `image_url`). Files stream from disk; they are never
//! read whole into memory.
//!
//! Uploads larger than 90 MiB are multipart (parts of 10 MiB sent a few at a time and retried one
//! by one, then `complete`); the [`Upload`] builder changes the threshold, part size and
//! concurrency, sets the file's [lifecycle](ObjectLifecycle) (expiry, initial access control),
//! and reports progress ([`UploadProgress`], in bytes).
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

use crate::archive::TrainingArchive;
use crate::config::{http_url, join};
use crate::error::{Error, Result};
use crate::lifecycle::{LIFECYCLE_HEADER, LIFECYCLE_PREFERENCE_HEADER};
use crate::transport::Transport;
use crate::transport::{redact_url, Body, Meter, Op, Request};

mod cdn;
mod multipart;
mod options;

pub use crate::file_input::FileInput;
use crate::file_input::{base64_data_uri_parts, is_data_uri};
pub use crate::lifecycle::{
    Acl, AclDecision, AclRule, Expiry, ObjectLifecycle, UploadFlow, DEFAULT_ARCHIVE_EXPIRY,
};
pub(crate) use cdn::CdnTokens;

use options::UploadOptions;
pub use options::{
    UploadProgress, DEFAULT_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE,
};

/// `storage_type` query value of the CDN token and initiate calls (fal-js, fal's Python client).
const STORAGE_TYPE: &str = "fal-cdn-v3";

/// Uploads and downloads of a [`FalClient`](crate::FalClient) (`fal.storage()`), on its connection pool.
#[derive(Debug, Clone)]
pub struct Storage {
    transport: Arc<Transport>,
    tokens: Arc<CdnTokens>,
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
    pub(crate) fn new(transport: Arc<Transport>, tokens: Arc<CdnTokens>) -> Self {
        Self { transport, tokens }
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

    /// Upload a training archive (people's photos): an [`Upload`] of `archive.zip`
    /// (`application/zip`) that **expires after [`DEFAULT_ARCHIVE_EXPIRY`] (one day)** unless
    /// the client has an [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle) or the
    /// upload sets its own [`lifecycle`](Upload::lifecycle) (`ObjectLifecycle::keep()` turns
    /// expiry off). A trainer reads the archive when the training starts; a day covers a long
    /// queue.
    ///
    /// ```no_run
    /// # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
    /// use fal_client::archive::ArchiveBuilder;
    /// let archive = ArchiveBuilder::new().build_from_dir_async("photos/anna").await?;
    /// let zip_url = fal.storage().upload_archive(&archive).await?; // gone from fal in a day
    /// # Ok(()) }
    /// ```
    pub fn upload_archive(&self, archive: &TrainingArchive) -> Upload {
        let mut upload = self
            .upload_bytes(archive.bytes().clone())
            .content_type(archive.content_type())
            .file_name("archive.zip");
        if self.transport.config().upload_lifecycle().is_none() {
            upload = upload.lifecycle(ObjectLifecycle::expiring(DEFAULT_ARCHIVE_EXPIRY));
        }
        upload
    }

    /// Upload the data URIs of an untyped JSON input and put the uploaded files' URLs in their
    /// place: every string that is a base64 data URI (`data:<type>;base64,<data>`), at any
    /// depth. Other strings, a prompt that happens to start with `data:` among them, are left
    /// alone. At most four uploads run at once; the client's
    /// [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle) applies. For a local
    /// file, [`upload_file`](Self::upload_file) it and put its URL in (a string from the input
    /// never makes the client read a local file). Typed models need no call: their
    /// [`FileInput`] fields are uploaded by [`FalClient::submit`](crate::FalClient::submit) and
    /// [`run`](crate::FalClient::run).
    ///
    /// ```no_run
    /// # async fn demo(fal: fal_client::FalClient, png: &[u8]) -> fal_client::Result<()> {
    /// let input = serde_json::json!({
    ///     "prompt": "a fox",
    ///     "image_url": fal_client::storage::data_uri(png, "image/png"),
    /// });
    /// let input = fal.storage().upload_files_in(input).await?; // image_url is now a URL
    /// let job = fal.submit_json("fal-ai/flux/dev/image-to-image", &input).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Upload`].
    pub async fn upload_files_in(&self, mut value: serde_json::Value) -> Result<serde_json::Value> {
        let mut found = Vec::new();
        collect_data_uris(&value, String::new(), &mut found);
        let (pointers, mut files): (Vec<String>, Vec<FileInput>) = found.into_iter().unzip();
        self.upload_file_inputs(files.iter_mut().collect(), None)
            .await?;
        for (pointer, file) in pointers.iter().zip(files) {
            if let (Some(slot), FileInput::Url(url)) = (value.pointer_mut(pointer), file) {
                *slot = serde_json::Value::String(url);
            }
        }
        Ok(value)
    }

    /// Upload the file inputs that are not URLs (at most four at once) and put their URLs in
    /// their place. `lifecycle` applies unless the client has an upload lifecycle.
    pub(crate) async fn upload_file_inputs(
        &self,
        files: Vec<&mut FileInput>,
        lifecycle: Option<ObjectLifecycle>,
    ) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let lifecycle = lifecycle.filter(|_| self.transport.config().upload_lifecycle().is_none());
        let mut slots = Vec::new();
        let mut sources = Vec::new();
        for file in files {
            if file.needs_upload() {
                sources.push(file.clone());
                slots.push(file);
            }
        }
        let urls: Vec<Url> = futures::stream::iter(sources)
            .map(|source| {
                let lifecycle = lifecycle.clone();
                async move {
                    let upload = match source {
                        FileInput::Path(path) => self.upload_file(path),
                        FileInput::Bytes { data, content_type } => {
                            self.upload_bytes(data).content_type(content_type)
                        }
                        // Decoded only when its turn comes.
                        FileInput::DataUri(uri) => {
                            let (content_type, data) = decode_data_uri(&uri)?;
                            self.upload_bytes(data).content_type(content_type)
                        }
                        FileInput::Url(url) => return parse_url(&url),
                    };
                    match lifecycle {
                        Some(l) => upload.lifecycle(l).await,
                        None => upload.await,
                    }
                }
            })
            .buffered(4)
            .try_collect()
            .await?;
        for (slot, url) in slots.into_iter().zip(urls) {
            *slot = FileInput::Url(url.into());
        }
        Ok(())
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
        let file_name_header = HeaderValue::from_str(&name)
            .map_err(|_| Error::invalid_input("file_name", "cannot be an HTTP header value"))?;
        let config = self.transport.config();
        let lifecycle = options
            .lifecycle
            .as_ref()
            .or(config.upload_lifecycle())
            .map(|l| l.header(false))
            .transpose()?
            .flatten();
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
            let ctx = UploadCtx {
                source: &source,
                len,
                content_type: &content_type,
                content_type_header,
                file_name: &name,
                file_name_header,
                lifecycle,
                parts: &parts,
                concurrency: options.concurrency,
                meter: tracker.clone().map(|t| t as Arc<dyn Meter>),
            };
            let flows = config.upload_flows();
            let mut failed: Option<Error> = None;
            for (i, flow) in flows.iter().enumerate() {
                let attempt = match flow {
                    UploadFlow::CdnV3 => self.via_cdn(&ctx).await,
                    UploadFlow::Initiate => self.via_initiate(&ctx).await,
                };
                match attempt {
                    Ok(file_url) => {
                        if let Some(t) = &tracker {
                            t.finish();
                        }
                        tracing::info!(file_url = %redact_url(&file_url), flow = ?flow, "uploaded");
                        return Ok(file_url);
                    }
                    Err(Attempt::Unavailable(e)) if i + 1 < flows.len() => {
                        tracing::warn!(
                            flow = ?flow,
                            next = ?flows[i + 1],
                            error = %e,
                            "upload flow unavailable; falling back"
                        );
                        failed = Some(e);
                    }
                    Err(Attempt::Unavailable(e) | Attempt::Final(e)) => return Err(e),
                }
            }
            Err(failed.unwrap_or_else(|| Error::Config("no upload flow is configured".into())))
        }
        .instrument(span)
        .await
    }

    /// fal's CDN v3 flow: a CDN token, then one `POST {cdn}/files/upload`, or multipart.
    async fn via_cdn(&self, ctx: &UploadCtx<'_>) -> std::result::Result<Url, Attempt> {
        // Whatever stops the token (its route missing, refused, down, malformed) leaves the
        // file untouched: the next flow may work.
        let token = self
            .tokens
            .get(&self.transport)
            .await
            .map_err(|e| match e {
                Error::InvalidInput { .. } | Error::Config(_) => Attempt::Final(e),
                e => Attempt::Unavailable(e),
            })?;
        let refused = |e: Error| async {
            // A token the CDN refuses is not used again.
            if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) {
                self.tokens.forget(&token).await;
            }
            Attempt::classify(e)
        };
        let headers = |req: &mut Request<'_>| {
            req.headers
                .insert(http::header::AUTHORIZATION, token.authorization.clone());
            req.headers
                .insert(http::header::CONTENT_TYPE, ctx.content_type_header.clone());
            req.headers
                .insert("x-fal-file-name", ctx.file_name_header.clone());
            ctx.lifecycle_headers(req);
        };
        if ctx.parts.is_empty() {
            let url = join(
                self.transport.config().cdn_url().unwrap_or(&token.base_url),
                "files/upload",
            )
            .map_err(Attempt::Final)?;
            // Each POST stores a new file: once it may have been stored, it is neither repeated
            // nor followed by the next flow (no second copy of someone's photos).
            let mut req = Request::new(Op::CdnUpload, Method::POST, url);
            req.endpoint = Some("the CDN (POST /files/upload)");
            headers(&mut req);
            req.headers.insert(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            );
            req.body = Some(ctx.source.body(0, ctx.len));
            req.meter = ctx.meter.clone();
            let answer: CdnUploadAnswer =
                match self.transport.json(&req, &"CDN upload answer").await {
                    Ok(a) => a,
                    // The CDN answered 2xx with an unreadable body: it stored the file.
                    Err(e @ Error::Decode { .. }) => return Err(Attempt::Final(e)),
                    Err(e) => return Err(refused(e).await),
                };
            return answer_url("access_url", &answer.access_url).map_err(Attempt::Final);
        }
        let url = join(&token.base_url, "files/upload/multipart").map_err(Attempt::Final)?;
        let mut create = Request::new(Op::UploadCreate, Method::POST, url);
        headers(&mut create);
        let created: CdnMultipartAnswer = match self
            .transport
            .json(&create, &"multipart create answer")
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(refused(e).await),
        };
        let access_url =
            answer_url("access_url", &created.access_url).map_err(Attempt::classify)?;
        if created.upload_id.trim().is_empty() {
            return Err(Attempt::classify(Error::Upload(
                "the multipart create answer has no uploadId".into(),
            )));
        }
        // From the first part on, the file is on its way: no fallback.
        let target = multipart::MultipartTarget::Cdn {
            access_url: access_url.clone(),
            upload_id: created.upload_id,
            tokens: Arc::clone(&self.tokens),
        };
        ctx.multipart(&self.transport, &target)
            .await
            .map_err(Attempt::Final)?;
        Ok(access_url)
    }

    /// The initiate flow: `initiate[-multipart]` with the fal key, then the pre-signed `PUT`(s).
    async fn via_initiate(&self, ctx: &UploadCtx<'_>) -> std::result::Result<Url, Attempt> {
        let route = if ctx.parts.is_empty() {
            "storage/upload/initiate"
        } else {
            "storage/upload/initiate-multipart"
        };
        let target = self.initiate(route, ctx).await.map_err(Attempt::classify)?;
        if ctx.parts.is_empty() {
            // A pre-signed URL: the op never carries the fal key.
            let mut put = Request::new(Op::Upload, Method::PUT, target.upload_url);
            put.headers
                .insert(http::header::CONTENT_TYPE, ctx.content_type_header.clone());
            put.body = Some(ctx.source.body(0, ctx.len));
            put.meter = ctx.meter.clone();
            self.transport.send(&put).await.map_err(Attempt::classify)?;
        } else {
            let signed = multipart::MultipartTarget::Signed {
                upload_url: target.upload_url,
            };
            ctx.multipart(&self.transport, &signed)
                .await
                .map_err(Attempt::Final)?;
        }
        Ok(target.file_url)
    }

    /// `route` is `storage/upload/initiate` or `storage/upload/initiate-multipart`.
    async fn initiate(&self, route: &str, ctx: &UploadCtx<'_>) -> Result<UploadTarget> {
        let mut url = join(self.transport.config().rest_url(), route)?;
        url.query_pairs_mut()
            .append_pair("storage_type", STORAGE_TYPE);
        let body = serde_json::to_vec(&InitiateRequest {
            content_type: ctx.content_type,
            file_name: ctx.file_name,
        })
        .map_err(|e| Error::Upload(format!("cannot encode the initiate request: {e}")))?;
        let mut req = Request::new(Op::UploadInitiate, Method::POST, url).json_body(body.into());
        ctx.lifecycle_headers(&mut req);
        let answer: InitiateResponse = self.transport.json(&req, &"upload initiate answer").await?;
        Ok(UploadTarget {
            upload_url: answer_url("upload_url", &answer.upload_url)?,
            file_url: answer_url("file_url", &answer.file_url)?,
        })
    }
}

/// An upload, sent when awaited: from [`Storage::upload_bytes`] and [`Storage::upload_file`].
/// Returns the file's fal URL, the one model inputs take.
///
/// The upload flows are tried in the client's order
/// ([`FalClientBuilder::upload_flows`](crate::FalClientBuilder::upload_flows); default the CDN
/// v3 flow, then the initiate flow, as fal's Python client):
///
/// - [`UploadFlow::CdnV3`]: a CDN token (`POST {rest}/storage/auth/token?storage_type=fal-cdn-v3`
///   with the fal key; cached until shortly before it expires, one fetch shared by concurrent
///   uploads), then files up to [`multipart_threshold`](Self::multipart_threshold) bytes (default
///   90 MiB) in one `POST {cdn}/files/upload` with the token, larger ones as multipart: `POST
///   {token base_url}/files/upload/multipart`, parts `PUT {access_url}/multipart/{uploadId}/{n}`,
///   then `complete` with every part's ETag.
/// - [`UploadFlow::Initiate`]: `POST {rest}/storage/upload/initiate` (or `initiate-multipart`)
///   with the fal key, then one `PUT` to the pre-signed `upload_url`, or parts `PUT` to
///   `{upload_url path}/{n}` (query string kept) and `POST {upload_url path}/complete`.
///
/// **Fallback**: the next flow is tried only when one is unavailable before any of the file was
/// stored: its routes missing or refused (404, 405, 501, 401, 403; the token route fails at
/// once, without retries), fal's or the CDN's errors and rate limits after retries (5xx, 429),
/// a connection that failed or stalled after retries, an answer of the wrong shape from the
/// initiate or create call. A refused file (other 4xx), bad input, a local file error, a v3
/// upload that may have been stored (answered 2xx, or cut off after it was sent: never sent
/// twice), or a multipart upload whose parts are on their way end the upload.
///
/// Parts are [`part_size`](Self::part_size) bytes (default 10 MiB, 1-based numbers), at most
/// [`concurrency`](Self::concurrency) in flight (default 4), each retried on its own under the
/// client's [`RetryPolicy`](crate::retry::RetryPolicy): only a failed part is sent again. Files
/// stream from disk: memory does not grow with the file size. The fal key never goes to the CDN
/// (it gets the CDN token) nor to a pre-signed URL.
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
/// The error of the last flow tried:
/// - [`Error::Io`] when the file cannot be read (or is not a regular file);
/// - [`Error::InvalidInput`] for a part size of 0, more than 10,000 parts, a content type or
///   file name that cannot be a header value, or an invalid [`lifecycle`](Self::lifecycle);
/// - [`Error::Api`] when fal or its CDN refuses the token, initiate or create call, the file, a
///   part or the complete call (after retries for retryable statuses), [`Error::Transport`]
///   after retries;
/// - [`Error::Upload`] for a malformed answer, a part answer without an ETag (naming the part),
///   parts that do not add up to the file, or a file that changed size during the upload.
///   Nothing is completed in those cases.
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

    /// Content type announced to fal and sent with the file, instead of the guess from
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

    /// The lifecycle of the uploaded file (its expiry, its initial access control list),
    /// instead of the client's [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle).
    /// Sent as `X-Fal-Object-Lifecycle` and `X-Fal-Object-Lifecycle-Preference` (as fal's Python
    /// client does: the CDN reads the first, storage-backed initiation the second). An invalid
    /// one fails the upload with [`Error::InvalidInput`] before anything is sent.
    ///
    /// ```no_run
    /// # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
    /// use fal_client::storage::{Expiry, ObjectLifecycle};
    /// let url = fal
    ///     .storage()
    ///     .upload_file("selfie.jpg")
    ///     .lifecycle(ObjectLifecycle::expiring(Expiry::OneDay))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.options.lifecycle = Some(lifecycle);
        self
    }

    /// Uploads **larger than** `bytes` use the multipart flow; others go up in one request.
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
    /// - When an attempt fails and is retried (a part, or a single upload), its bytes are taken
    ///   back internally and reports resume only once the retry has sent more than was
    ///   reported before: bytes are never counted twice, and `sent` never goes down.
    /// - `sent == total` is reported exactly once, last, after fal accepted the upload (the
    ///   single upload answered, or the multipart `complete` call succeeded); until then reports
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

#[derive(Deserialize)]
struct CdnUploadAnswer {
    access_url: String,
}

#[derive(Deserialize)]
struct CdnMultipartAnswer {
    access_url: String,
    #[serde(rename = "uploadId")]
    upload_id: String,
}

/// An http(s) URL from an upload answer's field `what`.
fn answer_url(what: &str, s: &str) -> Result<Url> {
    http_url(s)
        .ok_or_else(|| Error::Upload(format!("the upload answer's {what} is not an http(s) URL")))
}

/// What one upload sends, whatever the flow.
struct UploadCtx<'a> {
    source: &'a Source,
    len: u64,
    content_type: &'a str,
    content_type_header: HeaderValue,
    file_name: &'a str,
    file_name_header: HeaderValue,
    /// The lifecycle header value, when there is one.
    lifecycle: Option<HeaderValue>,
    parts: &'a [multipart::Part],
    concurrency: usize,
    meter: Option<Arc<dyn Meter>>,
}

impl UploadCtx<'_> {
    /// The lifecycle under both names, as fal's Python client sends it on uploads (the CDN reads
    /// `X-Fal-Object-Lifecycle`, storage-backed initiation `X-Fal-Object-Lifecycle-Preference`).
    fn lifecycle_headers(&self, req: &mut Request<'_>) {
        if let Some(v) = &self.lifecycle {
            req.headers.insert(LIFECYCLE_HEADER, v.clone());
            req.headers.insert(LIFECYCLE_PREFERENCE_HEADER, v.clone());
        }
    }

    async fn multipart(
        &self,
        transport: &Transport,
        target: &multipart::MultipartTarget,
    ) -> Result<()> {
        multipart::upload(
            transport,
            target,
            self.source,
            self.parts,
            self.len,
            self.concurrency,
            self.meter.clone(),
        )
        .await
    }
}

/// How an upload flow failed.
enum Attempt {
    /// The flow is unavailable and nothing of the file was stored: the next flow may work.
    Unavailable(Error),
    /// The upload failed for good (bad input, a local file problem, or a multipart upload
    /// already on its way).
    Final(Error),
}

impl Attempt {
    /// Which failures say a flow is unavailable: its routes missing or refused (404, 405, 501,
    /// 401, 403), fal's or the CDN's own errors and rate limits after retries (5xx, 429), a
    /// connection that failed or stalled after retries, an answer of the wrong shape. Not:
    /// [`Error::InvalidInput`], [`Error::Io`], other 4xx (the file itself was refused, and the
    /// other flow would refuse it too), or an answer too large.
    fn classify(e: Error) -> Self {
        let unavailable = match &e {
            Error::Api(a) => {
                matches!(a.status.as_u16(), 401 | 403 | 404 | 405 | 429 | 501)
                    || a.status.is_server_error()
            }
            Error::Transport { .. }
            | Error::Stalled { .. }
            | Error::Decode { .. }
            | Error::Upload(_) => true,
            _ => false,
        };
        if unavailable {
            Attempt::Unavailable(e)
        } else {
            Attempt::Final(e)
        }
    }
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

/// Every string of `value` that is a base64 data URI, with its JSON pointer.
fn collect_data_uris(
    value: &serde_json::Value,
    pointer: String,
    out: &mut Vec<(String, FileInput)>,
) {
    match value {
        serde_json::Value::String(s) if is_data_uri(s) => {
            out.push((pointer, FileInput::DataUri(s.clone())));
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_data_uris(v, format!("{pointer}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                collect_data_uris(v, format!("{pointer}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// The content type and bytes of a base64 data URI (`data:[<type>][;...];base64,<data>`).
fn decode_data_uri(uri: &str) -> Result<(String, Bytes)> {
    let invalid = |why: &str| Error::invalid_input("data_uri", why.to_owned());
    let (media, data) = base64_data_uri_parts(uri).ok_or_else(|| {
        invalid("is not a base64 data URI (data:[<type>];base64,<data>; only those are uploaded)")
    })?;
    let content_type = if media.is_empty() {
        "application/octet-stream".to_owned()
    } else {
        media.to_owned()
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| invalid(&format!("is not valid base64: {e}")))?;
    Ok((content_type, Bytes::from(bytes)))
}

fn parse_url(s: &str) -> Result<Url> {
    http_url(s).ok_or_else(|| Error::invalid_input("url", format!("{s:?} is not an http(s) URL")))
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
