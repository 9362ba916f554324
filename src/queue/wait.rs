//! Waiting for a queued request: the status stream, hedged by status polls while it is silent,
//! polling alone when it breaks (or is turned off), an overall deadline, and progress reported
//! to the caller.
//!
//! # Hedging
//!
//! fal sends a status event when something changes (queue position, start, new log lines,
//! completion), so a healthy stream can be silent for a while, but a stream that has stalled
//! (its connection open, nothing more coming) looks the same until the SSE idle timeout
//! (15 s by default) gives up on it. So while the stream has been silent for the quiet period
//! ([`Wait::hedge_after`](super::Wait::hedge_after), 1 s by default), the wait also polls
//! status, once per poll interval for as long as the silence lasts: a stalled stream then
//! costs about one poll interval instead of the idle timeout. The stream keeps being read
//! meanwhile (a late event still counts) and an event from it stops the polls; whichever of
//! the stream and a poll sees `COMPLETED` first wins, and the result is fetched once.
//!
//! A stream whose events are never further apart than the quiet period costs no poll at all
//! (submit, stream, result: three requests). A job that is legitimately silent for longer (no
//! log lines during a long run) costs one poll per poll interval beyond the quiet period, as
//! polling alone would.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
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
    /// A new runner log line (each line once, whether the stream or a poll brought it).
    Log(&'a RequestLog),
    /// The request completed; the result is being fetched.
    Completed,
    /// The wait polls status: the status stream broke, or has been silent for the quiet period
    /// ([`Wait::hedge_after`](super::Wait::hedge_after); a silent stream keeps being read,
    /// and polls stop when it speaks again). Sent once per wait, at its first poll; not sent
    /// when the wait polls only ([`Wait::stream`](super::Wait::stream) off).
    PollingFallback,
}

#[derive(Default)]
struct Tracker {
    /// The log lines of stream events (they may carry only the new lines, or all of them).
    stream_logs: LogCursor,
    /// Log lines the stream has brought so far.
    streamed: usize,
    /// Log lines reported so far: the first `reported` lines of the request's log, whether a
    /// stream event or a poll brought them.
    reported: usize,
    position: Option<u64>,
    started: bool,
}

impl Tracker {
    /// Report what changed; `polled` for a status poll's answer (its logs are the full list),
    /// `stale` for one older than the last stream event (the poll was sent before it came).
    fn observe(
        &mut self,
        status: &QueueStatus,
        polled: bool,
        stale: bool,
        on_event: &mut (dyn FnMut(WaitEvent<'_>) + Send),
    ) {
        match status {
            QueueStatus::InQueue { queue_position } => {
                // A stale answer says nothing new about the queue: the stream has spoken since.
                // (Its log lines are still good: a poll's list is the full one.)
                if !stale && self.position != Some(*queue_position) {
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
                let fresh = if polled {
                    let logs = status.logs();
                    let fresh = logs.get(self.reported..).unwrap_or(&[]);
                    self.reported = self.reported.max(logs.len());
                    fresh
                } else {
                    // Lines `streamed..` of the log; those a poll already reported are skipped.
                    let lines = self.stream_logs.new_lines(status.logs(), false);
                    let first = self.streamed;
                    self.streamed += lines.len();
                    let fresh = lines
                        .get(self.reported.saturating_sub(first)..)
                        .unwrap_or(&[]);
                    self.reported = self.reported.max(self.streamed);
                    fresh
                };
                for line in fresh {
                    on_event(WaitEvent::Log(line));
                }
            }
        }
    }
}

/// When the next status poll is due.
struct Schedule {
    /// The quiet period after which a silent stream is hedged with polls.
    hedge_after: Duration,
    interval: Duration,
    /// The last stream event (the start of the wait before the first).
    last_heard: Instant,
    /// When the last poll ended.
    last_poll: Option<Instant>,
    /// When the poll in flight (or the last one) was sent.
    poll_sent: Instant,
}

impl Schedule {
    /// The instant the next poll is due; `None`: no poll while the stream is open (a quiet
    /// period too large to add to an instant is no hedging).
    fn due(&self, stream_open: bool, now: Instant) -> Option<Instant> {
        // (An interval too large to add is no next poll.)
        let after_poll = match self.last_poll {
            Some(t) => Some(t.checked_add(self.interval)?),
            None => None,
        };
        if stream_open {
            let quiet = self.last_heard.checked_add(self.hedge_after)?;
            Some(after_poll.map_or(quiet, |p| p.max(quiet)))
        } else {
            Some(after_poll.unwrap_or(now))
        }
    }
}

type Events = BoxStream<'static, Result<QueueStatus>>;

/// The next item of the stream (never ready without one).
async fn next_event(events: &mut Option<Events>) -> Option<Result<QueueStatus>> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The answer of the poll in flight (never ready without one).
async fn poll_answer(poll: &mut Option<BoxFuture<'_, Result<QueueStatus>>>) -> Result<QueueStatus> {
    match poll {
        Some(p) => p.await,
        None => std::future::pending().await,
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
                // Boxed, as the result calls below: a future is as large as its largest state,
                // and a wait spends nearly all its time in the small one (watching status);
                // with ten thousand waits in flight, ~1.5 KiB each counts.
                Err(_) => return Err(Box::pin(self.deadline_passed(&options, start)).await),
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
        let completed = self
            .until_completed(options, on_event, has_deadline)
            .await?;
        on_event(WaitEvent::Completed);
        if let Some((message, error_type)) = completed.failure() {
            // The result call returns the model's own error (e.g. 422 with field details).
            // It is final, so it is asked once, without retries; an answer without details
            // (an ingress page, a dropped connection) leaves fal's status message as the error.
            return Err(match Box::pin(self.result_bytes_once()).await {
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
        Box::pin(self.result()).await
    }

    /// The `COMPLETED` status, from the status stream or a poll, whichever sees it first.
    ///
    /// The stream is read until it completes or fails; while it has been silent for the quiet
    /// period, status is polled as well (one poll at a time, one per poll interval), and once
    /// it failed (or without it), status is polled alone.
    ///
    /// A failed poll counts as missed; polls missed in a row end a wait without deadline only
    /// once the stream is gone (while it is open, its own idle timeout decides). An answer
    /// polling again cannot fix ([`is_fatal`]) ends the wait at once.
    async fn until_completed(
        &self,
        options: &WaitOptions,
        on_event: &mut (dyn FnMut(WaitEvent<'_>) + Send),
        has_deadline: bool,
    ) -> Result<QueueStatus> {
        let mut tracker = Tracker::default();
        let mut events = options.stream.then(|| self.events(options.logs));
        let mut schedule = Schedule {
            hedge_after: options.hedge_after,
            interval: options.poll_interval,
            last_heard: Instant::now(),
            last_poll: None,
            poll_sent: Instant::now(),
        };
        let mut poll: Option<BoxFuture<'_, Result<QueueStatus>>> = None;
        // A poll is started when due; the timer is re-armed lazily: a stream event moves the
        // due instant later without touching it (it fires, and is set again to the new instant).
        let timer = tokio::time::sleep_until(schedule.last_heard);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut missed = 0u32;
        let mut reported_polling = !options.stream;
        loop {
            if poll.is_none() {
                let now = Instant::now();
                match schedule.due(events.is_some(), now) {
                    Some(at) if at <= now => {
                        if !reported_polling {
                            reported_polling = true;
                            on_event(WaitEvent::PollingFallback);
                        }
                        if events.is_some() {
                            tracing::debug!(
                                quiet = ?now.saturating_duration_since(schedule.last_heard),
                                "status stream silent; polling alongside it"
                            );
                        }
                        poll = Some(Box::pin(self.status(options.logs)));
                        schedule.poll_sent = now;
                        armed = None;
                    }
                    Some(at) if armed.is_none_or(|a| at < a) => {
                        timer.as_mut().reset(at);
                        armed = Some(at);
                    }
                    _ => {}
                }
            }
            tokio::select! {
                // The stream first: of a stream event and a poll answer ready together, the
                // event is taken (it is the newer).
                biased;
                item = next_event(&mut events), if events.is_some() => match item {
                    Some(Ok(status)) => {
                        schedule.last_heard = Instant::now();
                        tracker.observe(&status, false, false, on_event);
                        if status.is_completed() {
                            return Ok(status);
                        }
                    }
                    // An unknown status ends the wait at once, as a poll's would.
                    Some(Err(e @ Error::UnknownQueueStatus { .. })) => return Err(e),
                    // Any other stream failure leaves polling alone, even a 404 or 405: a
                    // server (or proxy) may lack the stream route, and a request that is
                    // really unknown is then reported by the next status poll.
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "status stream failed; polling instead");
                        events = None;
                    }
                    // The stream ends after an item that is `COMPLETED` or an error: not
                    // reached, but an end is a failure too.
                    None => events = None,
                },
                answer = poll_answer(&mut poll), if poll.is_some() => {
                    poll = None;
                    schedule.last_poll = Some(Instant::now());
                    match answer {
                        Ok(status) => {
                            missed = 0;
                            let stale = schedule.poll_sent < schedule.last_heard;
                            tracker.observe(&status, true, stale, on_event);
                            if status.is_completed() {
                                return Ok(status);
                            }
                        }
                        Err(e) if is_fatal(&e) => return Err(e),
                        Err(e) => {
                            missed += 1;
                            tracing::warn!(
                                error = %e,
                                missed,
                                "status poll failed; counting it as a missed poll"
                            );
                            let gone = events.is_none();
                            if gone && !has_deadline && missed >= options.max_missed_polls {
                                return Err(e);
                            }
                        }
                    }
                }
                () = &mut timer, if poll.is_none() && armed.is_some() => armed = None,
            }
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
