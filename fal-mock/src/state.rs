//! The mock's shared state: jobs and their time-driven lifecycle, stored files, recorded requests
//! and injected failures.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::billing::PlatformHeaders;
use super::media::{self, ImageFormat, ImageSpec};
use super::validate::{self, Detail, ModelKind};
use super::{FailureUse, JobSnapshot, JobState, MockFailure, RecordedRequest};
use fal_client::archive::{ArchiveBuilder, ArchiveRules, TriggerPlacement};

/// Lock a mutex, recovering the data from a poisoned lock (the mock never leaves state
/// half-updated across a panic point).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lifecycle timings applied to new jobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) queue_time: Duration,
    pub(crate) processing_time: Duration,
    pub(crate) log_lines: usize,
    pub(crate) initial_queue_position: u32,
}

/// A file on the mock CDN: stored bytes, or an image rendered on first download.
#[derive(Debug, Clone)]
pub(crate) enum StoredFile {
    Bytes { content_type: String, data: Bytes },
    Image(ImageSpec),
}

/// An upload URL handed out by `initiate`, waiting for (or having received) its PUT.
#[derive(Debug, Clone)]
pub(crate) struct UploadSlot {
    /// `/files/...` path the bytes are served at.
    pub(crate) file_path: String,
    /// Content type announced at initiation (used when the PUT has none).
    pub(crate) content_type: String,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) key: String,
    /// `http://127.0.0.1:P/`
    pub(crate) api_base: String,
    /// `http://127.0.0.1:Q/`
    pub(crate) cdn_base: String,
    pub(crate) timing: Mutex<Timing>,
    pub(crate) jobs: Mutex<HashMap<String, Arc<Job>>>,
    pub(crate) files: Mutex<HashMap<String, StoredFile>>,
    pub(crate) uploads: Mutex<HashMap<String, UploadSlot>>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) submissions: Mutex<HashMap<String, usize>>,
    pub(crate) runs: Mutex<HashMap<String, usize>>,
    pub(crate) faults: super::faults::Injector,
    pub(crate) failures: Mutex<HashMap<String, VecDeque<MockFailure>>>,
    pub(crate) multipart: super::multipart::Multipart,
    pub(crate) cdn: super::cdn::Cdn,
    /// Endpoint ids answered with 404 (apps fal no longer serves).
    pub(crate) removed: Mutex<std::collections::HashSet<String>>,
    pub(crate) streams: super::stream::Streams,
    pub(crate) tokens: super::tokens::Tokens,
    pub(crate) realtime: super::realtime::Realtime,
    /// Sync and streaming runs, payload deletions and idempotency keys of the Platform API.
    pub(crate) platform: super::platform::Platform,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) webhooks: Arc<super::webhook::Webhooks>,
}

/// Why a job reached `COMPLETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Normal,
    Cancelled,
    /// `x-fal-request-timeout` passed while the job was still queued.
    StartTimeout,
}

/// A queued request.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) endpoint: String,
    pub(crate) app_id: String,
    pub(crate) input: Map<String, Value>,
    pub(crate) webhook: Option<String>,
    pub(crate) priority: Option<String>,
    pub(crate) runner_hint: Option<String>,
    pub(crate) request_timeout: Option<String>,
    /// The `x-fal-object-lifecycle-preference` JSON, applied to the output's files.
    pub(crate) object_lifecycle: Option<Value>,
    /// Parsed `x-fal-request-timeout`.
    pub(crate) start_deadline: Option<Duration>,
    /// `X-Fal-Tags`, `X-Fal-Store-IO` and the other platform headers of the submit.
    pub(crate) platform: PlatformHeaders,
    pub(crate) injected: Option<MockFailure>,
    pub(crate) submitted: Instant,
    pub(crate) submitted_wall: SystemTime,
    pub(crate) timing: Timing,
    pub(crate) messages: Vec<String>,
    pub(crate) changed: Notify,
    pub(crate) m: Mutex<JobMut>,
}

/// The mutable part of a job.
#[derive(Default)]
pub(crate) struct JobMut {
    pub(crate) cancelled_at: Option<Instant>,
    pub(crate) completion: Option<Arc<Completion>>,
}

/// How a completed job ended, fixed once at completion.
#[derive(Debug)]
pub(crate) struct Completion {
    /// When the mock marked the job `COMPLETED` (its first observation at or after the end).
    pub(crate) at: SystemTime,
    pub(crate) logs: usize,
    pub(crate) inference_time: Option<f64>,
    pub(crate) outcome: Outcome,
}

/// The result of a completed job.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ok(Value),
    Failed(Failure),
}

/// A failed job: what status shows and what the result call answers.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// Status `error`.
    pub(crate) error: String,
    /// Status `error_type` (absent for model errors such as 422).
    pub(crate) error_type: Option<String>,
    pub(crate) http_status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(String, String)>,
}

impl Failure {
    /// A request error (`{"detail": text, "error_type": t}` + `x-fal-error-type`).
    pub(crate) fn request_error(http_status: u16, error: &str, error_type: &str) -> Self {
        Self {
            error: error.to_owned(),
            error_type: Some(error_type.to_owned()),
            http_status,
            body: json!({ "detail": error, "error_type": error_type }),
            headers: vec![("x-fal-error-type".into(), error_type.to_owned())],
        }
    }

    /// A model validation error (422 `{"detail": [...]}`).
    pub(crate) fn validation(details: &[Detail]) -> Self {
        Self {
            error: "Invalid status code: 422".into(),
            error_type: None,
            http_status: 422,
            body: validate::detail_body(details),
            headers: Vec::new(),
        }
    }
}

/// HTTP status of a request error category (fal's request-errors table).
pub(crate) fn status_for_error_type(error_type: &str) -> u16 {
    match error_type {
        "request_timeout" | "startup_timeout" => 504,
        "runner_scheduling_failure"
        | "runner_connection_timeout"
        | "runner_disconnected"
        | "runner_connection_refused"
        | "runner_connection_error" => 503,
        "runner_incomplete_response" => 502,
        "client_disconnected" | "client_cancelled" => 499,
        "bad_request" => 400,
        _ => 500,
    }
}

/// Where a job is at some instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    InQueue { position: u32 },
    InProgress { logs: usize },
    Completed,
}

/// A job observed at one instant.
pub(crate) struct View {
    pub(crate) phase: Phase,
    /// Set when `phase` is `Completed`.
    pub(crate) completion: Option<Arc<Completion>>,
    /// When the observation may change next (without a cancel).
    pub(crate) next_change: Option<Instant>,
}

impl View {
    /// Number of log lines visible now.
    pub(crate) fn logs(&self) -> usize {
        match (&self.phase, &self.completion) {
            (Phase::InProgress { logs }, _) => *logs,
            (_, Some(c)) => c.logs,
            _ => 0,
        }
    }
}

impl Job {
    fn queue_end(&self) -> Instant {
        self.submitted + self.timing.queue_time
    }

    fn natural_end(&self) -> (Instant, End) {
        match self.start_deadline {
            Some(t) if t < self.timing.queue_time => (self.submitted + t, End::StartTimeout),
            _ => (self.queue_end() + self.timing.processing_time, End::Normal),
        }
    }

    pub(crate) fn end(&self, cancelled_at: Option<Instant>) -> (Instant, End) {
        let (end, why) = self.natural_end();
        match cancelled_at {
            Some(c) if c < end => (c, End::Cancelled),
            _ => (end, why),
        }
    }

    /// Instant log line `i` appears (lines are spread evenly over processing, the first at its
    /// start).
    fn log_time(&self, i: usize) -> Instant {
        let n = self.timing.log_lines.max(1) as u32;
        self.queue_end() + self.timing.processing_time * (i as u32) / n
    }

    /// Log lines visible at `t`.
    fn logs_at(&self, t: Instant) -> usize {
        let qe = self.queue_end();
        if t < qe {
            return 0;
        }
        let n = self.timing.log_lines;
        let p = self.timing.processing_time;
        if p.is_zero() || t >= qe + p {
            return n;
        }
        let frac = (t - qe).as_secs_f64() / p.as_secs_f64();
        ((frac * n as f64).floor() as usize + 1).min(n)
    }

    /// Queue position at `t` (< queue end): counts down evenly from the initial position to 0.
    fn position_at(&self, t: Instant) -> u32 {
        let q = self.timing.queue_time;
        let init = self.timing.initial_queue_position;
        if q.is_zero() {
            return 0;
        }
        let frac = (t.saturating_duration_since(self.submitted)).as_secs_f64() / q.as_secs_f64();
        let steps = (frac * (f64::from(init) + 1.0)).floor() as u32;
        init.saturating_sub(steps)
    }

    fn position_change_after(&self, t: Instant) -> Instant {
        let q = self.timing.queue_time;
        let init = self.timing.initial_queue_position;
        let done = u64::from(init - self.position_at(t)) + 1;
        let step = q.as_secs_f64() / (u64::from(init) + 1) as f64;
        self.submitted + Duration::from_secs_f64(step * done as f64)
    }

    /// The phase at `now` (ignoring completion details).
    fn phase_at(&self, now: Instant, cancelled_at: Option<Instant>) -> (Phase, Option<Instant>) {
        let (end, _) = self.end(cancelled_at);
        if now >= end {
            (Phase::Completed, None)
        } else if now < self.queue_end() {
            let next = self
                .position_change_after(now)
                .min(self.queue_end())
                .min(end);
            (
                Phase::InQueue {
                    position: self.position_at(now),
                },
                Some(next),
            )
        } else {
            let logs = self.logs_at(now);
            let next = if logs < self.timing.log_lines {
                self.log_time(logs).min(end)
            } else {
                end
            };
            (Phase::InProgress { logs }, Some(next))
        }
    }

    /// Log entry `i` as fal shows it.
    pub(crate) fn log_entry(&self, i: usize) -> Value {
        let offset = self.timing.queue_time
            + self.timing.processing_time * (i as u32) / self.timing.log_lines.max(1) as u32;
        json!({
            "message": self.messages.get(i).cloned().unwrap_or_default(),
            "level": "INFO",
            "source": "USER",
            "timestamp": media::rfc3339(self.submitted_wall + offset),
        })
    }

    fn lock(&self) -> MutexGuard<'_, JobMut> {
        lock(&self.m)
    }
}

/// Plausible log messages for `n` lines of a job on `endpoint`.
fn log_messages(endpoint: &str, input: &Map<String, Value>, n: usize) -> Vec<String> {
    let model = validate::model(endpoint);
    let int = |k: &str| {
        input
            .get(k)
            .or_else(|| model.and_then(|m| m.default_of(k)))
            .and_then(Value::as_u64)
    };
    (0..n)
        .map(|i| {
            let done = (i + 1) as f64 / n as f64;
            match model.map(|m| &m.kind) {
                Some(ModelKind::LoraTrainer { .. } | ModelKind::FinetuneTrainer { .. }) => {
                    let total = int("steps")
                        .or_else(|| int("iterations"))
                        .unwrap_or(1000)
                        .max(1);
                    let step = ((total as f64 * done).round() as u64).max(1);
                    let loss = 0.02 + 0.12 * (-3.0 * done).exp();
                    format!("step {step}/{total}, loss {loss:.4}")
                }
                Some(ModelKind::Generator { .. }) => {
                    let k = int("num_images").unwrap_or(1).max(1) as usize;
                    let j = (i * k / n + 1).min(k);
                    format!("generating image {j}/{k} ({:.0}%)", done * 100.0)
                }
                None => format!("processing ({}/{n})", i + 1),
            }
        })
        .collect()
}

/// What a submit carries besides the body.
pub(crate) struct SubmitMeta {
    pub(crate) webhook: Option<String>,
    pub(crate) priority: Option<String>,
    pub(crate) runner_hint: Option<String>,
    pub(crate) request_timeout: Option<String>,
    pub(crate) start_deadline: Option<Duration>,
    pub(crate) object_lifecycle: Option<Value>,
    pub(crate) platform: PlatformHeaders,
}

impl Shared {
    pub(crate) fn timing(&self) -> Timing {
        *lock(&self.timing)
    }

    /// Record an HTTP request (never the key itself).
    pub(crate) fn record(&self, r: RecordedRequest) {
        lock(&self.requests).push(r);
    }

    /// Take the next injected failure for `endpoint` that a submit or sync run takes, if any.
    pub(crate) fn take_failure(&self, endpoint: &str) -> Option<MockFailure> {
        self.take_failure_if(endpoint, FailureUse::Request, |_| true)
    }

    /// Take the first injected failure for `endpoint` that a request of kind `kind` takes,
    /// when `pick` accepts it (failures for other kinds of requests stay queued).
    pub(crate) fn take_failure_if(
        &self,
        endpoint: &str,
        kind: FailureUse,
        pick: impl FnOnce(&MockFailure) -> bool,
    ) -> Option<MockFailure> {
        let mut f = lock(&self.failures);
        let q = f.get_mut(endpoint)?;
        let i = q.iter().position(|m| m.applies_to(kind))?;
        if !q.get(i).is_some_and(pick) {
            return None;
        }
        let next = q.remove(i);
        if q.is_empty() {
            f.remove(endpoint);
        }
        next
    }

    pub(crate) fn job(&self, id: &str) -> Option<Arc<Job>> {
        lock(&self.jobs).get(id).cloned()
    }

    /// `{api}queue/{app_id}/requests/{id}`
    pub(crate) fn response_url(&self, job: &Job) -> String {
        format!("{}queue/{}/requests/{}", self.api_base, job.app_id, job.id)
    }

    /// Accept a queue submit: store the job and schedule its completion.
    pub(crate) fn submit(
        self: &Arc<Self>,
        endpoint: &fal_client::EndpointId,
        input: Map<String, Value>,
        meta: SubmitMeta,
        injected: Option<MockFailure>,
    ) -> Arc<Job> {
        let timing = self.timing();
        let job = Arc::new(Job {
            id: media::uuid(),
            endpoint: endpoint.as_str().to_owned(),
            app_id: endpoint.app_id(),
            messages: log_messages(endpoint.as_str(), &input, timing.log_lines),
            input,
            webhook: meta.webhook,
            priority: meta.priority,
            runner_hint: meta.runner_hint,
            request_timeout: meta.request_timeout,
            object_lifecycle: meta.object_lifecycle,
            start_deadline: meta.start_deadline,
            platform: meta.platform,
            injected,
            submitted: Instant::now(),
            submitted_wall: SystemTime::now(),
            timing,
            changed: Notify::new(),
            m: Mutex::new(JobMut::default()),
        });
        lock(&self.jobs).insert(job.id.clone(), job.clone());
        *lock(&self.submissions)
            .entry(job.endpoint.clone())
            .or_default() += 1;
        tracing::debug!(endpoint = %job.endpoint, request_id = %job.id, "mock: job queued");

        // Complete the job on time even if nobody polls, so the completion hook fires.
        let shared = Arc::clone(self);
        let task_job = Arc::clone(&job);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                let (end, _) = task_job.end(task_job.lock().cancelled_at);
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => {}
                    _ = task_job.changed.notified() => {}
                    r = shutdown.changed() => if r.is_err() { return },
                }
                if shared.observe(&task_job).completion.is_some() {
                    return;
                }
            }
        });
        job
    }

    /// How many jobs of `endpoint` (the full id) are waiting (`IN_QUEUE`) now.
    pub(crate) fn waiting(&self, endpoint: &str) -> usize {
        let jobs: Vec<Arc<Job>> = lock(&self.jobs)
            .values()
            .filter(|j| j.endpoint == endpoint)
            .cloned()
            .collect();
        jobs.iter()
            .filter(|j| matches!(self.observe(j).phase, Phase::InQueue { .. }))
            .count()
    }

    /// Observe `job` now, completing it (once) when its time has come.
    pub(crate) fn observe(&self, job: &Job) -> View {
        let now = Instant::now();
        let mut m = job.lock();
        let (phase, next_change) = job.phase_at(now, m.cancelled_at);
        if phase != Phase::Completed {
            return View {
                phase,
                completion: None,
                next_change,
            };
        }
        let (completion, first) = match &m.completion {
            Some(c) => (Arc::clone(c), false),
            None => {
                let (end, why) = job.end(m.cancelled_at);
                let c = Arc::new(self.complete(job, end, why));
                m.completion = Some(Arc::clone(&c));
                (c, true)
            }
        };
        drop(m);
        if first {
            self.on_job_completed(job, &completion);
        }
        View {
            phase,
            completion: Some(completion),
            next_change: None,
        }
    }

    /// Request cancellation. `Ok(())` when accepted, `Err(())` when already completed.
    pub(crate) fn cancel(&self, job: &Job) -> Result<(), ()> {
        let now = Instant::now();
        {
            let mut m = job.lock();
            let (end, _) = job.end(m.cancelled_at);
            if now >= end {
                return Err(());
            }
            m.cancelled_at = Some(now);
        }
        job.changed.notify_waiters();
        job.changed.notify_one();
        self.observe(job);
        Ok(())
    }

    /// Called exactly once per job, right after it reaches `COMPLETED`.
    fn on_job_completed(&self, job: &Job, completion: &Completion) {
        tracing::debug!(
            endpoint = %job.endpoint,
            request_id = %job.id,
            ok = matches!(completion.outcome, Outcome::Ok(_)),
            "mock: job completed"
        );
        if let Some(url) = &job.webhook {
            let body = Bytes::from(webhook_body(job, completion).to_string());
            self.webhooks.deliver(url, &job.id, body);
        }
    }

    /// Build the completion of `job`, ended at `end` for reason `why`.
    fn complete(&self, job: &Job, end: Instant, why: End) -> Completion {
        let ran = end.saturating_duration_since(job.queue_end());
        let logs = job.logs_at(end);
        let inference_time = (!ran.is_zero()).then_some(ran.as_secs_f64());
        let outcome = match why {
            End::Cancelled => Outcome::Failed(Failure::request_error(
                499,
                "Request was cancelled",
                "client_cancelled",
            )),
            End::StartTimeout => {
                let mut f = Failure::request_error(504, "Request timed out", "request_timeout");
                f.headers
                    .push(("x-fal-request-timeout-type".into(), "user".into()));
                Outcome::Failed(f)
            }
            End::Normal => match &job.injected {
                Some(MockFailure::Validation(fields)) => {
                    let details: Vec<Detail> = fields
                        .iter()
                        .map(|(field, msg, ty)| {
                            Detail::new(vec![json!("body"), json!(field)], msg, ty)
                        })
                        .collect();
                    Outcome::Failed(Failure::validation(&details))
                }
                Some(MockFailure::CompletedWithError { error, error_type }) => Outcome::Failed(
                    Failure::request_error(status_for_error_type(error_type), error, error_type),
                ),
                _ => match self.check_input(&job.endpoint, &job.input) {
                    Err(details) => Outcome::Failed(Failure::validation(&details)),
                    Ok(()) => {
                        let output = self.produce(
                            &job.endpoint,
                            &job.id,
                            &job.input,
                            job.timing.processing_time,
                        );
                        super::cdn::record_outputs(self, &output, job.object_lifecycle.as_ref());
                        Outcome::Ok(output)
                    }
                },
            },
        };
        Completion {
            at: SystemTime::now(),
            logs,
            inference_time,
            outcome,
        }
    }

    /// Validate an input like the model would (including the trainers' archive check).
    pub(crate) fn check_input(
        &self,
        endpoint: &str,
        input: &Map<String, Value>,
    ) -> Result<(), Vec<Detail>> {
        let mut details = validate::validate(endpoint, input);
        if details.is_empty() {
            let archive_field = match validate::model(endpoint).map(|m| &m.kind) {
                Some(
                    ModelKind::LoraTrainer { archive_field }
                    | ModelKind::FinetuneTrainer { archive_field },
                ) => Some(archive_field.as_str()),
                _ => None,
            };
            if let Some(field) = archive_field {
                if let Some(problem) = input
                    .get(field)
                    .and_then(Value::as_str)
                    .and_then(|u| self.archive_problem(endpoint, input, u))
                {
                    details.push(Detail::new(
                        vec![json!("body"), json!(field)],
                        problem,
                        "value_error",
                    ));
                }
            }
        }
        if details.is_empty() {
            Ok(())
        } else {
            Err(details)
        }
    }

    /// Why the archive at `url` is unusable for `endpoint`, when it is a data URI or on this
    /// mock's CDN: not a ZIP, fewer images than the trainer takes, or an image without a caption
    /// where the trainer needs one and `default_caption` is not set (the trainer's rules, see
    /// [`ArchiveRules`](fal_client::archive::ArchiveRules)).
    fn archive_problem(
        &self,
        endpoint: &str,
        input: &Map<String, Value>,
        url: &str,
    ) -> Option<String> {
        let bytes = if let Some(rest) = url.strip_prefix("data:") {
            let Some((meta, data)) = rest.split_once(',') else {
                return Some("invalid data URI: no ',' separator".into());
            };
            if !meta.ends_with(";base64") {
                return Some("invalid data URI: only base64 data URIs are supported".into());
            }
            match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
                Ok(b) => Bytes::from(b),
                Err(e) => return Some(format!("invalid data URI: {e}")),
            }
        } else if let Some(path) = self.cdn_path(url) {
            match self.file(&path) {
                Some((_, b)) => b,
                None => {
                    return Some(format!(
                        "could not download the archive from {url}: 404 Not Found"
                    ))
                }
            }
        } else {
            return None;
        };
        if !bytes.starts_with(b"PK\x03\x04") {
            return Some("the training archive is not a valid ZIP file (it does not start with PK\\x03\\x04)".into());
        }
        let rules = ArchiveRules::for_trainer(endpoint).or_else(|| {
            // A trainer the crate does not type: at least 10 images ("try to use at least 10"),
            // and a caption for each when it has a `default_caption` field, as every newer fal
            // trainer does ("if no default_caption is provided, the training will fail").
            let m = validate::model(endpoint)?;
            let captions = m.has_input("default_caption");
            Some(ArchiveRules::new(
                &m.endpoint_id,
                10,
                captions,
                TriggerPlacement::TrainerField,
            ))
        })?;
        // What fal itself refuses: count and captions. The trigger placeholder is the client's
        // business (fal trains on a literal `[trigger]`), and fal's caption length is unknown.
        let rules = ArchiveRules::new(
            rules.trainer,
            rules.min_images,
            rules.captions_required,
            TriggerPlacement::TrainerField,
        );
        let mut builder = ArchiveBuilder::new()
            .rules(rules)
            .allow_unpaired_captions(true)
            .max_caption_bytes(64 * 1024);
        if let Some(caption) = input
            .get("default_caption")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty())
        {
            builder = builder.default_caption(caption);
        }
        builder.validate_zip(&bytes).err().map(|e| e.to_string())
    }

    /// The `/files/...` path of `url` when it is on this mock's CDN.
    pub(crate) fn cdn_path(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(self.cdn_base.trim_end_matches('/'))?;
        let parsed = url::Url::parse(url).ok()?;
        rest.starts_with("/files/")
            .then(|| parsed.path().to_owned())
    }

    /// Store a file at `/files/{token}/{name}` and return its URL.
    pub(crate) fn put_file(&self, name: &str, file: StoredFile) -> String {
        let path = file_path(&media::uuid(), name);
        let url = format!("{}{}", self.cdn_base.trim_end_matches('/'), path);
        lock(&self.files).insert(path, file);
        url
    }

    /// A stored file's content type and bytes, rendering a lazy image on first access.
    pub(crate) fn file(&self, path: &str) -> Option<(String, Bytes)> {
        if self.cdn.expired(path) {
            return None;
        }
        let entry = lock(&self.files).get(path).cloned()?;
        match entry {
            StoredFile::Bytes { content_type, data } => Some((content_type, data)),
            StoredFile::Image(spec) => {
                let data = match media::render(&spec) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "mock: could not render an image");
                        return None;
                    }
                };
                let ct = spec.format.content_type().to_owned();
                lock(&self.files).insert(
                    path.to_owned(),
                    StoredFile::Bytes {
                        content_type: ct.clone(),
                        data: data.clone(),
                    },
                );
                Some((ct, data))
            }
        }
    }

    /// Whether `path` names a lazily rendered image not yet rendered.
    pub(crate) fn is_lazy(&self, path: &str) -> bool {
        matches!(lock(&self.files).get(path), Some(StoredFile::Image(_)))
    }

    /// The output of a successful job.
    pub(crate) fn produce(
        &self,
        endpoint: &str,
        request_id: &str,
        input: &Map<String, Value>,
        ran: Duration,
    ) -> Value {
        let Some(model) = validate::model(endpoint) else {
            return json!({ "echo": input });
        };
        match &model.kind {
            ModelKind::LoraTrainer { .. } => {
                let mut meta = Map::new();
                meta.insert("format".into(), json!("pt"));
                meta.insert("fal_endpoint".into(), json!(endpoint));
                meta.insert("fal_request_id".into(), json!(request_id));
                for k in [
                    "trigger_phrase",
                    "trigger_word",
                    "default_caption",
                    "steps",
                    "learning_rate",
                ] {
                    if let Some(v) = input.get(k).filter(|v| !v.is_null()) {
                        meta.insert(k.into(), v.clone());
                    }
                }
                let weights = media::safetensors(&meta);
                let config = Bytes::from(
                    serde_json::to_vec_pretty(&json!({
                        "endpoint": endpoint,
                        "request_id": request_id,
                        "input": input,
                    }))
                    .unwrap_or_default(),
                );
                let file = |name: &str, ct: &str, data: Bytes| {
                    let size = data.len();
                    let url = self.put_file(
                        name,
                        StoredFile::Bytes {
                            content_type: ct.into(),
                            data,
                        },
                    );
                    json!({"url": url, "content_type": ct, "file_name": name, "file_size": size})
                };
                json!({
                    "diffusers_lora_file": file("pytorch_lora_weights.safetensors", "application/octet-stream", weights),
                    "config_file": file("config.json", "application/json", config),
                })
            }
            ModelKind::FinetuneTrainer { .. } => json!({ "finetune_id": media::uuid() }),
            ModelKind::Generator {
                file_images,
                default_format,
                image_size,
            } => self.generate(input, ran, *file_images, *default_format, *image_size),
        }
    }

    fn generate(
        &self,
        input: &Map<String, Value>,
        ran: Duration,
        file_images: bool,
        default_format: ImageFormat,
        image_size: bool,
    ) -> Value {
        let prompt = input
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let seed_value = match input.get("seed") {
            Some(v @ Value::Number(_)) => v.clone(),
            _ => json!(fastrand::u32(..)),
        };
        let seed = seed_value
            .as_u64()
            .or_else(|| seed_value.as_i64().map(|i| i as u64))
            .unwrap_or_default();
        let n = input
            .get("num_images")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 4) as u32;
        let format = input
            .get("output_format")
            .and_then(Value::as_str)
            .and_then(ImageFormat::parse)
            .unwrap_or(default_format);
        let (w, h) = if image_size {
            image_size_px(input.get("image_size"))
        } else {
            aspect_size(input.get("aspect_ratio").and_then(Value::as_str))
        };
        let sync = input
            .get("sync_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let images: Vec<Value> = (0..n)
            .map(|index| {
                let spec = ImageSpec {
                    prompt: prompt.clone(),
                    seed,
                    index,
                    width: w,
                    height: h,
                    format,
                };
                let name = format!("image-{}.{}", index + 1, format.extension());
                let url = if sync {
                    match media::render(&spec) {
                        Ok(b) => format!(
                            "data:{};base64,{}",
                            format.content_type(),
                            base64::engine::general_purpose::STANDARD.encode(&b)
                        ),
                        Err(_) => String::new(),
                    }
                } else {
                    self.put_file(&name, StoredFile::Image(spec))
                };
                if file_images {
                    // fal's current `ImageFile`: only `url` is required.
                    json!({"url": url, "content_type": format.content_type(), "file_name": name,
                           "width": w, "height": h})
                } else {
                    json!({"url": url, "width": w, "height": h, "content_type": format.content_type()})
                }
            })
            .collect();
        json!({
            "images": images,
            "timings": {"inference": ran.as_secs_f64()},
            "seed": seed_value,
            "has_nsfw_concepts": vec![false; n as usize],
            "prompt": prompt,
        })
    }

    /// The status JSON of `job` as seen in `view`; `logs` selects the log lines to include
    /// (`None` → `"logs": null`).
    pub(crate) fn status_json(&self, job: &Job, view: &View, logs: Option<Range<usize>>) -> Value {
        let response_url = self.response_url(job);
        let mut o = Map::new();
        let status = match view.phase {
            Phase::InQueue { .. } => "IN_QUEUE",
            Phase::InProgress { .. } => "IN_PROGRESS",
            Phase::Completed => "COMPLETED",
        };
        o.insert("status".into(), json!(status));
        o.insert("request_id".into(), json!(job.id));
        o.insert("response_url".into(), json!(response_url));
        o.insert("status_url".into(), json!(format!("{response_url}/status")));
        o.insert("cancel_url".into(), json!(format!("{response_url}/cancel")));
        if let Phase::InQueue { position } = view.phase {
            o.insert("queue_position".into(), json!(position));
            return Value::Object(o);
        }
        let logs = match logs {
            Some(r) => Value::Array(r.map(|i| job.log_entry(i)).collect()),
            None => Value::Null,
        };
        o.insert("logs".into(), logs);
        if let Some(c) = &view.completion {
            let metrics = match c.inference_time {
                Some(t) => json!({ "inference_time": t }),
                None => json!({}),
            };
            o.insert("metrics".into(), metrics);
            if let Outcome::Failed(f) = &c.outcome {
                o.insert("error".into(), json!(f.error));
                if let Some(t) = &f.error_type {
                    o.insert("error_type".into(), json!(t));
                }
            }
        }
        Value::Object(o)
    }

    /// A snapshot of `job` for tests.
    pub(crate) fn snapshot(&self, job: &Job) -> JobSnapshot {
        let view = self.observe(job);
        let cancelled = job.lock().cancelled_at.is_some();
        let state = match (&view.phase, &view.completion) {
            (Phase::InQueue { position }, _) => JobState::InQueue {
                position: *position,
            },
            (Phase::InProgress { logs }, _) => JobState::InProgress { logs: *logs },
            (Phase::Completed, c) => {
                let (error, error_type) = match c.as_ref().map(|c| &c.outcome) {
                    Some(Outcome::Failed(f)) => (Some(f.error.clone()), f.error_type.clone()),
                    _ => (None, None),
                };
                JobState::Completed { error, error_type }
            }
        };
        JobSnapshot {
            request_id: job.id.clone(),
            endpoint_id: job.endpoint.clone(),
            input: Value::Object(job.input.clone()),
            state,
            webhook_url: job.webhook.clone(),
            priority: job.priority.clone(),
            runner_hint: job.runner_hint.clone(),
            request_timeout: job.request_timeout.clone(),
            object_lifecycle: job.object_lifecycle.clone(),
            cancelled,
            completed_at: view.completion.as_ref().map(|c| c.at),
            platform_headers: job.platform.clone(),
        }
    }

    /// Recorded requests, oldest first.
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }
}

/// The body fal POSTs to a webhook for a completed job (<https://docs.fal.ai/model-apis/model-endpoints/webhooks>).
pub(crate) fn webhook_body(job: &Job, completion: &Completion) -> Value {
    match &completion.outcome {
        Outcome::Ok(out) => json!({
            "request_id": job.id,
            "gateway_request_id": job.id,
            "status": "OK",
            "payload": out,
            "error": null,
        }),
        Outcome::Failed(f) => json!({
            "request_id": job.id,
            "gateway_request_id": job.id,
            "status": "ERROR",
            "payload": f.body,
            "error": f.error,
        }),
    }
}

/// `/files/{token}/{percent-encoded name}`
pub(crate) fn file_path(token: &str, name: &str) -> String {
    format!("/files/{token}/{}", encode_segment(name))
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Pixel size of an image from its `image_size` (preset or `{width, height}`, default
/// `landscape_4_3`), scaled down to the mock's maximum.
fn image_size_px(v: Option<&Value>) -> (u32, u32) {
    let (w, h) = match v {
        Some(Value::String(s)) => validate::IMAGE_SIZE_PRESETS
            .iter()
            .find(|p| p.0 == s)
            .map_or((1024, 768), |p| (p.1, p.2)),
        Some(Value::Object(o)) => (
            o.get("width").and_then(Value::as_u64).unwrap_or(512),
            o.get("height").and_then(Value::as_u64).unwrap_or(512),
        ),
        _ => (1024, 768),
    };
    media::fit(w, h)
}

/// Pixel size of a generated image when the input gives no size: `image_size` endpoints default
/// to `landscape_4_3`, `aspect_ratio` ones to `16:9` (scaled to the mock's maximum).
pub(crate) fn default_size(image_size: bool) -> (u32, u32) {
    if image_size {
        image_size_px(None)
    } else {
        aspect_size(None)
    }
}

/// Pixel size for an `aspect_ratio` like `16:9` (default), scaled to the mock's maximum.
fn aspect_size(ratio: Option<&str>) -> (u32, u32) {
    let parsed = ratio.and_then(|r| {
        let (a, b) = r.split_once(':')?;
        let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
        (a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()).then_some((a, b))
    });
    let (a, b) = parsed.unwrap_or((16.0, 9.0));
    media::fit((a * 1000.0).round() as u64, (b * 1000.0).round() as u64)
}
