//! Waiting for a queued request: status stream first, polling as the fallback, an overall
//! deadline, and progress reported to the caller.

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::status::LogCursor;
use super::{OnEvent, QueueStatus, RequestHandle, RequestLog, WaitOptions};
use crate::error::{Error, ErrorDetail, Result};

/// Progress of a wait, reported to [`Wait::on_event`](super::Wait::on_event).
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

impl<O: DeserializeOwned + Send + 'static> RequestHandle<O> {
    /// The wait behind [`RequestHandle::wait`].
    pub(crate) async fn wait_for(
        &self,
        options: WaitOptions,
        mut on_event: OnEvent<'_>,
    ) -> Result<O> {
        let start = Instant::now();
        let deadline = options.deadline_from(start);
        let span = tracing::info_span!("fal.wait", endpoint = %self.inner.endpoint, request_id = %self.inner.request_id);
        let run = tracing::Instrument::instrument(
            self.wait_inner(&options, &mut *on_event, deadline.is_some()),
            span,
        );
        let outcome = match deadline {
            None => run.await,
            Some(at) => match tokio::time::timeout_at(at, run).await {
                Ok(r) => r,
                Err(_) => return Err(self.deadline_passed(&options, start).await),
            },
        };
        outcome.map_err(|e| e.with_request_id(&self.inner.request_id))
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
                    // An unknown status ends the wait at once, as a poll's would.
                    Err(e @ Error::UnknownQueueStatus { .. }) => return Err(e),
                    // Any other stream failure falls back to polling, even a 404 or 405: a
                    // server (or proxy) may lack the stream route, and a request that is really
                    // unknown is then reported by the first status poll.
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
            return Err(match self.result_bytes_once().await {
                Err(Error::Api(api))
                    if api.detail != ErrorDetail::None || api.error_type.is_some() =>
                {
                    Error::Api(api)
                }
                _ => Error::RequestFailed {
                    request_id: self.inner.request_id.clone(),
                    endpoint: self.inner.endpoint.to_string(),
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
        let interval = options.poll_interval;
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
            request_id: Some(self.inner.request_id.clone()),
            endpoint: self.inner.endpoint.to_string(),
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
        Error::UnknownQueueStatus { .. } => true,
        _ => false,
    }
}
