//! [`FalMock`]: an in-process fake of fal.ai for examples and tests (feature `mock`).
//!
//! The mock speaks fal's wire protocol (see the crate's `PROTOCOL.md` notes) on two local
//! listeners bound to `127.0.0.1` on ephemeral ports:
//!
//! - an **API server** serving the queue under `/queue/`, synchronous runs under `/run/` and the
//!   REST storage routes under `/rest/`; every route requires `Authorization: Key <key>` and
//!   answers `401 {"detail":"Unauthorized"}` otherwise;
//! - a **CDN server** (a different address, so tests can check the key never goes there) serving
//!   upload targets (`PUT /upload/<token>`) and files (`GET /files/...`), without auth.
//!
//! Multipart uploads (`/rest/storage/upload/initiate-multipart`, then part `PUT`s and a
//! `complete` on the CDN server) are checked like fal's CDN would: see
//! [`FalMock::multipart_upload`], [`FalMock::fail_upload_part_once`] and
//! [`FalMockBuilder::store_uploads`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> fal_client::Result<()> {
//! use fal_client::mock::FalMock;
//!
//! let mock = FalMock::start().await?;
//! let fal = mock.client()?; // a FalClient pointed at the mock, with the mock's key
//! assert!(mock.queue_url().ends_with("/queue/"));
//! # drop(fal);
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Queue lifecycle
//!
//! A submitted job is `IN_QUEUE` for [`queue_time`](FalMockBuilder::queue_time) with a
//! `queue_position` counting down from [`initial_queue_position`](FalMockBuilder::initial_queue_position)
//! to 0, then `IN_PROGRESS` for [`processing_time`](FalMockBuilder::processing_time) while
//! [`log_lines`](FalMockBuilder::log_lines) log lines appear evenly spread, then `COMPLETED` with
//! all logs and `metrics.inference_time`. Everything is computed from the submit instant (timings
//! are captured per job at submit). Status answers 202 until completion, then 200.
//!
//! Status, status stream, result and cancel live under `[namespace/]owner/alias/requests/{id}`
//! only (fal's owner/alias rule): a job submitted to `fal-ai/flux-pro/v1.1-ultra-finetuned` is at
//! `/queue/fal-ai/flux-pro/requests/{id}`; using the full path answers
//! `404 {"detail":"Request not found"}`.
//!
//! # Decisions where fal's behaviour is not documented
//!
//! - Result of an unfinished job: `400 {"detail":"Request is still in progress"}`.
//! - Result of a cancelled job: `499 {"detail":"Request was cancelled","error_type":"client_cancelled"}`
//!   with `x-fal-error-type: client_cancelled` (fal's request-error shape and status for that
//!   category); its status is `COMPLETED` with the same `error`/`error_type`.
//! - Cancel: `202 {"status":"CANCELLATION_REQUESTED"}` (queued or running),
//!   `400 {"status":"ALREADY_COMPLETED"}`, `404 {"status":"NOT_FOUND"}`.
//! - Status stream with `logs=1`: each event carries only the log lines that are new since the
//!   previous event (fal-js accumulates logs across events); polling returns all of them.
//! - `x-fal-request-timeout` shorter than the queue time: the job completes when it expires with
//!   `error: "Request timed out"`, `error_type: "request_timeout"`; the result answers 504 with
//!   `x-fal-request-timeout-type: user`.
//! - Invalid JSON / non-object bodies, a bad `x-fal-queue-priority`, `x-fal-request-timeout` or
//!   `fal_webhook` are rejected at submit with 422; field validation happens like fal, when the
//!   job runs (status `COMPLETED` with `error: "Invalid status code: 422"`, result 422).
//! - Generated images are at most 512 px on the long side (keeping the requested ratio); the
//!   reported `width`/`height` are the real pixel sizes. They are rendered on first download.

mod media;
mod multipart;
mod routes;
mod state;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::{FalClient, FalClientBuilder};
use state::{lock, Shared, Timing};

pub use multipart::MultipartRecord;

/// A failure to inject with [`FalMock::fail_next`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MockFailure {
    /// Answer the submit (or sync run) directly with this status, JSON body and headers, e.g. a
    /// 503 or a 429. The request is not queued and not counted as a submission.
    Http {
        /// HTTP status code.
        status: u16,
        /// JSON body.
        body: Value,
        /// Extra response headers (name, value).
        headers: Vec<(String, String)>,
    },
    /// The queue accepts the request, which then completes with a validation error: status
    /// `COMPLETED` with `error: "Invalid status code: 422"`, result
    /// `422 {"detail":[{"loc":["body",field],"msg":msg,"type":type}]}`. A sync run answers the 422
    /// directly.
    Validation(Vec<(String, String, String)>),
    /// The queue accepts the request, which completes with a request error: status `COMPLETED`
    /// carries `error`/`error_type`; the result answers `{"detail": error, "error_type": error_type}`
    /// with header `x-fal-error-type` and the status fal uses for that category (503 for
    /// `runner_*` errors, 504 for timeouts, 500 otherwise).
    CompletedWithError {
        /// Human-readable message, e.g. `Runner disconnected`.
        error: String,
        /// Category, e.g. `runner_disconnected`.
        error_type: String,
    },
}

impl MockFailure {
    /// [`MockFailure::Http`] without extra headers.
    pub fn http(status: u16, body: Value) -> Self {
        Self::Http {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// [`MockFailure::Validation`] with one field error.
    pub fn validation(field: &str, msg: &str, error_type: &str) -> Self {
        Self::Validation(vec![(
            field.to_owned(),
            msg.to_owned(),
            error_type.to_owned(),
        )])
    }

    /// [`MockFailure::CompletedWithError`].
    pub fn completed_with_error(error: &str, error_type: &str) -> Self {
        Self::CompletedWithError {
            error: error.to_owned(),
            error_type: error_type.to_owned(),
        }
    }
}

/// Which of the mock's two servers received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// The API server (`/queue/`, `/run/`, `/rest/`).
    Api,
    /// The CDN server (`/upload/`, `/files/`).
    Cdn,
}

/// An HTTP request the mock received. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// HTTP method (`POST`, `GET`, ...).
    pub method: String,
    /// URL path as sent (percent-encoded), e.g. `/queue/fal-ai/flux-lora`.
    pub path: String,
    /// Raw query string without `?`, when present.
    pub query: Option<String>,
    /// Whether an `Authorization` header was present (whatever its value).
    pub authorization_present: bool,
    /// Which server received it.
    pub host_kind: HostKind,
}

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting in the queue.
    InQueue {
        /// Position in the queue (0 = next).
        position: u32,
    },
    /// Running.
    InProgress {
        /// Log lines emitted so far.
        logs: usize,
    },
    /// Done, successfully or not.
    Completed {
        /// Status `error` for a failed job.
        error: Option<String>,
        /// Status `error_type` for a failed job, when it has one.
        error_type: Option<String>,
    },
}

/// What the mock knows about one queued request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSnapshot {
    /// The request id.
    pub request_id: String,
    /// The full endpoint id it was submitted to.
    pub endpoint_id: String,
    /// The submitted input.
    pub input: Value,
    /// Its state now.
    pub state: JobState,
    /// The `fal_webhook` URL, when given.
    pub webhook_url: Option<String>,
    /// The `x-fal-queue-priority` header, when sent.
    pub priority: Option<String>,
    /// The `x-fal-runner-hint` header, when sent.
    pub runner_hint: Option<String>,
    /// The `x-fal-request-timeout` header as sent, when sent.
    pub request_timeout: Option<String>,
    /// Whether a cancel was accepted for it.
    pub cancelled: bool,
}

/// Configures and starts a [`FalMock`].
#[derive(Debug, Clone)]
pub struct FalMockBuilder {
    key: String,
    timing: Timing,
    store_uploads: bool,
}

impl Default for FalMockBuilder {
    fn default() -> Self {
        Self {
            key: "mock-key".into(),
            timing: Timing {
                queue_time: Duration::from_millis(300),
                processing_time: Duration::from_secs(1),
                log_lines: 5,
                initial_queue_position: 2,
            },
            store_uploads: true,
        }
    }
}

impl FalMockBuilder {
    /// The API key the mock accepts (`Authorization: Key <key>`). Default `mock-key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }

    /// How long a job stays `IN_QUEUE`. Default 300 ms.
    pub fn queue_time(mut self, t: Duration) -> Self {
        self.timing.queue_time = t;
        self
    }

    /// How long a job stays `IN_PROGRESS` (also the duration of a sync run). Default 1 s.
    pub fn processing_time(mut self, t: Duration) -> Self {
        self.timing.processing_time = t;
        self
    }

    /// Number of log lines a job emits while in progress, spread evenly. Default 5.
    pub fn log_lines(mut self, n: usize) -> Self {
        self.timing.log_lines = n;
        self
    }

    /// Queue position right after submit; it counts down to 0 during the queue time. Default 2.
    pub fn initial_queue_position(mut self, n: u32) -> Self {
        self.timing.initial_queue_position = n;
        self
    }

    /// Bind both listeners on `127.0.0.1` (ephemeral ports) and start serving on the current
    /// tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] when a listener cannot be bound.
    pub async fn start(self) -> Result<FalMock> {
        let bind = || async {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|source| Error::Io {
                    path: "127.0.0.1:0 (mock listener)".into(),
                    source,
                })?;
            let addr = l.local_addr().map_err(|source| Error::Io {
                path: "127.0.0.1:0 (mock listener)".into(),
                source,
            })?;
            Ok::<_, Error>((l, addr))
        };
        let (api, api_addr) = bind().await?;
        let (cdn, cdn_addr) = bind().await?;
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            key: self.key,
            api_base: format!("http://{api_addr}/"),
            cdn_base: format!("http://{cdn_addr}/"),
            timing: Mutex::new(self.timing),
            jobs: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            submissions: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            multipart: multipart::Multipart::new(self.store_uploads),
            shutdown: rx.clone(),
        });
        let tasks = vec![
            tokio::spawn(serve(api, routes::api_router(shared.clone()), rx.clone())),
            tokio::spawn(serve(cdn, routes::cdn_router(shared.clone()), rx)),
        ];
        tracing::debug!(api = %api_addr, cdn = %cdn_addr, "mock: fal mock started");
        Ok(FalMock {
            shared,
            api_addr,
            cdn_addr,
            shutdown: tx,
            tasks,
        })
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let signal = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await
    {
        tracing::warn!(error = %e, "mock: server stopped with an error");
    }
}

/// An in-process fake of fal.ai. See the [module docs](self) for the protocol it speaks.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) stops both servers and every task it
/// spawned.
pub struct FalMock {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    cdn_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for FalMock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FalMock")
            .field("api", &self.api_addr)
            .field("cdn", &self.cdn_addr)
            .finish_non_exhaustive()
    }
}

impl FalMock {
    /// Start a mock with the default settings (see [`FalMockBuilder`]).
    ///
    /// # Errors
    /// [`Error::Io`] when a listener cannot be bound.
    pub async fn start() -> Result<FalMock> {
        FalMockBuilder::default().start().await
    }

    /// A builder for custom timings or key.
    pub fn builder() -> FalMockBuilder {
        FalMockBuilder::default()
    }

    /// Queue base URL, e.g. `http://127.0.0.1:P/queue/`.
    pub fn queue_url(&self) -> String {
        format!("{}queue/", self.shared.api_base)
    }

    /// Sync-run base URL, e.g. `http://127.0.0.1:P/run/`.
    pub fn run_url(&self) -> String {
        format!("{}run/", self.shared.api_base)
    }

    /// REST base URL, e.g. `http://127.0.0.1:P/rest/`.
    pub fn rest_url(&self) -> String {
        format!("{}rest/", self.shared.api_base)
    }

    /// CDN base URL (a different port than the API), e.g. `http://127.0.0.1:Q/`.
    pub fn cdn_url(&self) -> String {
        self.shared.cdn_base.clone()
    }

    /// The key the mock accepts.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// A [`FalClientBuilder`] pointed at the mock with its key, for adding options.
    pub fn client_builder(&self) -> FalClientBuilder {
        FalClient::builder()
            .key(self.key())
            .queue_url(self.queue_url())
            .run_url(self.run_url())
            .rest_url(self.rest_url())
    }

    /// A [`FalClient`] pointed at the mock with its key.
    ///
    /// # Errors
    /// As [`FalClientBuilder::build`].
    pub fn client(&self) -> Result<FalClient> {
        self.client_builder().build()
    }

    /// `FAL_KEY`, `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL` for a child process.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("FAL_KEY".into(), self.key().to_owned()),
            ("FAL_QUEUE_URL".into(), self.queue_url()),
            ("FAL_RUN_URL".into(), self.run_url()),
            ("FAL_REST_URL".into(), self.rest_url()),
        ]
    }

    /// How many queue submits were accepted for `endpoint_id` (the full id, e.g.
    /// `fal-ai/flux-pro/v1.1-ultra-finetuned`). Submits answered with an error are not counted.
    pub fn submissions(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.submissions)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many sync runs (`POST /run/...`) were accepted for `endpoint_id`.
    pub fn runs(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.runs)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }

    /// Every request received by either server, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The content type and bytes of a file on the mock CDN, by its URL: an upload (after its
    /// PUT) or a generated output file.
    pub fn uploaded(&self, file_url: &str) -> Option<(String, Bytes)> {
        let path = self.shared.cdn_path(file_url)?;
        self.shared.file(&path)
    }

    /// What the mock knows about a queued request (completing it first if its time has come).
    pub fn job(&self, request_id: &str) -> Option<JobSnapshot> {
        let job = self.shared.job(request_id)?;
        Some(self.shared.snapshot(&job))
    }

    /// Make the next submit or sync run of `endpoint_id` (the full id) fail as `failure`
    /// describes. Calls queue up: each failure applies to one request, in order.
    pub fn fail_next(&self, endpoint_id: &str, failure: MockFailure) {
        lock(&self.shared.failures)
            .entry(endpoint_id.to_owned())
            .or_default()
            .push_back(failure);
    }

    /// Change the processing time of jobs submitted from now on (and of sync runs).
    pub fn set_processing_time(&self, t: Duration) {
        lock(&self.shared.timing).processing_time = t;
    }

    /// Change the queue time of jobs submitted from now on.
    pub fn set_queue_time(&self, t: Duration) {
        lock(&self.shared.timing).queue_time = t;
    }

    /// Stop both servers and wait (at most 5 s) for them to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("mock: a server did not stop within 5 s");
            }
        }
    }
}

impl Drop for FalMock {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
