//! Waiting for a queued request: status stream first, polling as the fallback, an overall
//! deadline, and progress reported to the caller.

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::status::LogCursor;
use super::{QueueStatus, RequestHandle, RequestLog};
use crate::error::{Error, ErrorDetail, Result};
use crate::retry::RetryPolicy;

/// How a [`RequestHandle::wait`] runs.
///
/// Defaults: no deadline, logs requested, status stream first, the client's poll interval
/// (500 ms), cancel on fal when the deadline passes, and — only when there is no deadline —
/// giving up after 20 consecutive failed status polls (each already retried by the retry
/// policy).
#[derive(Debug, Clone)]
pub struct WaitOptions {
    deadline: Option<Deadline>,
    logs: bool,
    stream: bool,
    poll_interval: Option<Duration>,
    cancel_on_timeout: bool,
    max_missed_polls: u32,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    After(Duration),
    At(Instant),
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            logs: true,
            stream: true,
            poll_interval: None,
            cancel_on_timeout: true,
            max_missed_polls: 20,
        }
    }
}

impl WaitOptions {
    /// Give up (and, by default, cancel on fal) after this long, counted from the start of the
    /// wait. The error is [`Error::Timeout`] carrying the request id.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.deadline = Some(Deadline::After(t));
        self
    }

    /// Give up at this instant.
    pub fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(Deadline::At(at));
        self
    }

    /// Ask for runner logs (default `true`); they reach the caller as [`WaitEvent::Log`].
    pub fn logs(mut self, on: bool) -> Self {
        self.logs = on;
        self
    }

    /// Use the SSE status stream first (default `true`); `false` polls only.
    pub fn stream(mut self, on: bool) -> Self {
        self.stream = on;
        self
    }

    /// Interval between status polls (default: the client's, 500 ms).
    pub fn poll_interval(mut self, t: Duration) -> Self {
        self.poll_interval = Some(t);
        self
    }

    /// Whether to cancel the request on fal when the deadline passes (default `true`). Set
    /// `false` for paid training jobs you want to [`resume`](crate::FalClient::resume) later.
    pub fn cancel_on_timeout(mut self, on: bool) -> Self {
        self.cancel_on_timeout = on;
        self
    }

    /// Consecutive failed polls after which a wait *without deadline* gives up (default 20).
    pub fn max_missed_polls(mut self, n: u32) -> Self {
        self.max_missed_polls = n.max(1);
        self
    }

    fn deadline_from(&self, start: Instant) -> Option<Instant> {
        self.deadline.map(|d| match d {
            Deadline::After(t) => start + t,
            Deadline::At(at) => at,
        })
    }
}

/// Progress of a wait, reported to the callback of [`RequestHandle::wait_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum WaitEvent<'a> {
    /// Waiting in the queue; sent when the position changes.
    Queued {
        /// Requests ahead of this one.
        position: u64,
    },
    /// A runner picked the request up (sent once).
    Started,
    /// A new runner log line (each line once).
    Log(&'a RequestLog),
    /// The request completed; the result is being fetched.
    Completed,
    /// The status stream broke or went silent; the wait continues by polling.
    PollingFallback,
}

#[derive(Default)]
struct Tracker {
    cursor: LogCursor,
    position: Option<u64>,
    started: bool,
}

impl Tracker {
    /// Report what changed; `polled` for a status poll's answer (its logs are the full list).
    fn observe(
        &mut self,
        status: &QueueStatus,
        polled: bool,
        on_event: &mut (dyn FnMut(WaitEvent<'_>) + Send),
    ) {
        match status {
            QueueStatus::InQueue { queue_position } => {
                if self.position != Some(*queue_position) {
                    self.position = Some(*queue_position);
                    on_event(WaitEvent::Queued {
                        position: *queue_position,
                    });
                }
            }
            _ => {
                if !self.started {
                    self.started = true;
                    on_event(WaitEvent::Started);
                }
                for line in self.cursor.new_lines(status.logs(), polled) {
                    on_event(WaitEvent::Log(line));
                }
            }
        }
    }
}

impl<O: DeserializeOwned + 'static> RequestHandle<O> {
    /// Wait for the request to complete and return its typed output.
    ///
    /// Uses the status stream (submit, stream, result: three requests when the stream works)
    /// and falls back to polling when the stream fails or stalls. A failed status poll counts
    /// as a missed poll, not as a failure of the wait.
    ///
    /// # Errors
    /// - [`Error::Timeout`] when the deadline passes (carries the request id; the request is
    ///   cancelled on fal unless [`WaitOptions::cancel_on_timeout`] is off);
    /// - [`Error::Api`] with fal's field details when the request failed validation (422), or
    ///   the model's error; [`Error::RequestFailed`] when `COMPLETED` carries an `error`;
    /// - [`Error::Decode`] when the output does not match `O` (names the JSON path);
    /// - [`Error::Api`] for a non-retryable status answer (401, 403, 404).
    ///
    /// Every error of a wait carries the request id ([`Error::request_id`]).
    pub async fn wait(&self, options: WaitOptions) -> Result<O> {
        self.wait_with(options, |_| {}).await
    }

    /// [`wait`](Self::wait), reporting progress (queue position, start, each new log line) to
    /// `on_event`.
    ///
    /// ```no_run
    /// # async fn demo(job: fal_client::queue::RequestHandle<fal_client::models::LoraTrainingOutput>) -> fal_client::Result<()> {
    /// use fal_client::queue::{WaitEvent, WaitOptions};
    /// let out = job
    ///     .wait_with(WaitOptions::default(), |event| match event {
    ///         WaitEvent::Queued { position } => println!("queue position {position}"),
    ///         WaitEvent::Log(line) => println!("{}", line.message),
    ///         _ => {}
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub async fn wait_with<F>(&self, options: WaitOptions, mut on_event: F) -> Result<O>
    where
        F: FnMut(WaitEvent<'_>) + Send,
    {
        let start = Instant::now();
        let deadline = options.deadline_from(start);
        let span = tracing::info_span!("fal.wait", endpoint = %self.endpoint, request_id = %self.request_id);
        let run = tracing::Instrument::instrument(
            self.wait_inner(&options, &mut on_event, deadline.is_some()),
            span,
        );
        let outcome = match deadline {
            None => run.await,
            Some(at) => match tokio::time::timeout_at(at, run).await {
                Ok(r) => r,
                Err(_) => return Err(self.deadline_passed(&options, start).await),
            },
        };
        outcome.map_err(|e| e.with_request_id(&self.request_id))
    }

    async fn wait_inner(
        &self,
        options: &WaitOptions,
        on_event: &mut (dyn FnMut(WaitEvent<'_>) + Send),
        has_deadline: bool,
    ) -> Result<O> {
        let mut tracker = Tracker::default();
        let mut completed = None;
        if options.stream {
            let mut events = self.events(options.logs);
            while let Some(item) = events.next().await {
                match item {
                    Ok(status) => {
                        tracker.observe(&status, false, on_event);
                        if status.is_completed() {
                            completed = Some(status);
                            break;
                        }
                    }
                    // Any stream failure falls back to polling, even a 404 or 405: a server (or
                    // proxy) may lack the stream route, and a request that is really unknown is
                    // then reported by the first status poll.
                    Err(e) => {
                        tracing::info!(error = %e, "status stream failed; polling instead");
                        break;
                    }
                }
            }
            if completed.is_none() {
                on_event(WaitEvent::PollingFallback);
            }
        }
        let completed = match completed {
            Some(s) => s,
            None => {
                self.poll(options, &mut tracker, on_event, has_deadline)
                    .await?
            }
        };
        on_event(WaitEvent::Completed);
        if let Some((message, error_type)) = completed.failure() {
            // The result call returns the model's own error (e.g. 422 with field details).
            // It is final, so it is asked once, without retries; an answer without details
            // (an ingress page, a dropped connection) leaves fal's status message as the error.
            let once = RetryPolicy::none();
            return Err(match self.result_bytes_with(Some(&once)).await {
                Err(Error::Api(api))
                    if api.detail != ErrorDetail::None || api.error_type.is_some() =>
                {
                    Error::Api(api)
                }
                _ => Error::RequestFailed {
                    request_id: self.request_id.clone(),
                    endpoint: self.endpoint.to_string(),
                    message: message.to_owned(),
                    error_type: error_type.map(str::to_owned),
                },
            });
        }
        self.result().await
    }

    async fn poll(
        &self,
        options: &WaitOptions,
        tracker: &mut Tracker,
        on_event: &mut (dyn FnMut(WaitEvent<'_>) + Send),
        has_deadline: bool,
    ) -> Result<QueueStatus> {
        let interval = options
            .poll_interval
            .unwrap_or(self.client.inner.poll_interval);
        let mut missed = 0u32;
        loop {
            match self.status(options.logs).await {
                Ok(status) => {
                    missed = 0;
                    tracker.observe(&status, true, on_event);
                    if status.is_completed() {
                        return Ok(status);
                    }
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    missed += 1;
                    tracing::warn!(error = %e, missed, "status poll failed; counting it as a missed poll");
                    if !has_deadline && missed >= options.max_missed_polls {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn deadline_passed(&self, options: &WaitOptions, start: Instant) -> Error {
        let mut cancel_requested = false;
        if options.cancel_on_timeout {
            match tokio::time::timeout(Duration::from_secs(5), self.cancel()).await {
                Ok(Ok(outcome)) => {
                    tracing::info!(?outcome, "deadline passed; cancel sent");
                    cancel_requested = true;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "deadline passed; cancel failed"),
                Err(_) => tracing::warn!("deadline passed; cancel timed out"),
            }
        }
        Error::Timeout {
            request_id: Some(self.request_id.clone()),
            endpoint: self.endpoint.to_string(),
            waited: start.elapsed(),
            cancel_requested,
        }
    }
}

/// Errors that polling again cannot fix: fal refused the call itself (401, 403, 404, 422...).
///
/// A status fal sends but this crate does not know (`status` other than `IN_QUEUE`,
/// `IN_PROGRESS`, `COMPLETED`: a third-party schema lists `FAILED` and `CANCELED`) is fatal too,
/// as in fal's Python client: polling again would only repeat it until the deadline.
fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Api(api) => !api.is_retryable(),
        // The error `QueueStatus` parsing gives for an unknown status (status.rs).
        Error::Decode { what, path, .. } => what == "queue status" && path == "status",
        _ => false,
    }
}
