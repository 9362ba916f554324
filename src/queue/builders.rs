//! The call builders of the queue: [`Submit`], [`Run`] and [`Wait`]. Each holds its options and
//! sends when awaited (`IntoFuture`).

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::wait::WaitEvent;
use super::Priority;
use crate::billing::{BillableUnits, Billed, ServerRetries, UsageTags, TAGS_HEADER};
use crate::config::Config;
use crate::endpoint::EndpointId;
use crate::error::{Error, Result};
use crate::lifecycle::{ObjectLifecycle, LIFECYCLE_PREFERENCE_HEADER};
use crate::transport::Transport;

/// A request body: ready, or ready once the input's local files are uploaded.
pub(crate) enum Body {
    Ready(Bytes),
    AfterUploads(BoxFuture<'static, Result<Bytes>>),
}

impl Body {
    pub(crate) async fn ready(self) -> Result<Bytes> {
        match self {
            Body::Ready(b) => Ok(b),
            Body::AfterUploads(f) => f.await,
        }
    }
}

/// The options submits and runs share; they become the call's headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOptions {
    pub(crate) runner_hint: Option<String>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) headers: HeaderMap,
    pub(crate) output_lifecycle: Option<ObjectLifecycle>,
    pub(crate) tags: UsageTags,
    /// `Some(false)`: `X-Fal-Store-IO: 0`.
    pub(crate) store_io: Option<bool>,
    pub(crate) disable_fallbacks: bool,
}

impl CallOptions {
    /// The call's headers, checked and built once before anything is sent or uploaded: the
    /// caller's own, then the typed options over them; the output lifecycle
    /// (`X-Fal-Object-Lifecycle-Preference`) is the call's own, else the client's unless the
    /// caller set that header.
    pub(crate) fn headers(&self, config: &Config) -> Result<HeaderMap> {
        let mut h = self.headers.clone();
        if let Some(hint) = &self.runner_hint {
            let v = HeaderValue::from_str(hint)
                .map_err(|_| Error::invalid_input("runner_hint", "must be a valid header value"))?;
            h.insert("x-fal-runner-hint", v);
        }
        if let Some(t) = self.start_timeout {
            h.insert("x-fal-request-timeout", timeout_header(t)?);
        }
        let lifecycle = match &self.output_lifecycle {
            Some(l) => Some(l),
            None if h.contains_key(LIFECYCLE_PREFERENCE_HEADER) => None,
            None => config.output_lifecycle(),
        };
        if let Some(value) = lifecycle.map(|l| l.header(true)).transpose()?.flatten() {
            h.insert(LIFECYCLE_PREFERENCE_HEADER, value);
        }
        if let Some(tags) = self.tags.header_value()? {
            h.insert(TAGS_HEADER, tags);
        }
        if let Some(store) = self.store_io {
            h.insert(
                "x-fal-store-io",
                HeaderValue::from_static(if store { "1" } else { "0" }),
            );
        }
        if self.disable_fallbacks {
            // fal documents two names (the platform-headers page, and the older reliability
            // page): both are sent.
            h.insert(
                "x-app-fal-disable-fallback",
                HeaderValue::from_static("true"),
            );
            h.insert("x-fal-disable-fallbacks", HeaderValue::from_static("true"));
        }
        Ok(h)
    }
}

/// The options of a submit.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubmitOptions {
    pub(crate) webhook: Option<Url>,
    pub(crate) priority: Option<Priority>,
    pub(crate) no_retry: bool,
    pub(crate) retry_config: Option<ServerRetries>,
    pub(crate) max_queue_length: Option<u32>,
    pub(crate) call: CallOptions,
}

impl SubmitOptions {
    /// The headers this submit sends (see [`CallOptions::headers`]), plus its priority and the
    /// queue's retry settings.
    pub(crate) fn headers(&self, config: &Config) -> Result<HeaderMap> {
        let mut h = self.call.headers(config)?;
        if let Some(p) = self.priority {
            h.insert("x-fal-queue-priority", HeaderValue::from_static(p.as_str()));
        }
        if self.no_retry {
            h.insert("x-fal-no-retry", HeaderValue::from_static("1"));
        }
        if let Some(cfg) = &self.retry_config {
            h.insert("x-fal-retry-config", cfg.header_value()?);
        }
        Ok(h)
    }
}

type SendFn<T> = Box<dyn FnOnce(SubmitOptions) -> BoxFuture<'static, Result<T>> + Send>;

/// A queue submit, sent when awaited: from [`FalClient::submit`](crate::FalClient::submit) and
/// [`FalClient::submit_json`](crate::FalClient::submit_json) (a
/// [`RequestHandle`](super::RequestHandle)), or
/// [`TrainingPlan::submit`](crate::avatar::TrainingPlan::submit) (a
/// [`TrainingJob`](crate::avatar::TrainingJob)). All options are optional.
///
/// ```no_run
/// # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
/// use std::time::Duration;
/// use fal_client::models::{FluxLora, FluxLoraInput};
/// use fal_client::queue::Priority;
///
/// let job = fal
///     .submit::<FluxLora>(&FluxLoraInput::new("a red fox"))
///     .webhook("https://example.com/webhook/fal/status".parse().unwrap())
///     .priority(Priority::Low)
///     .start_timeout(Duration::from_secs(300))
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a submit does nothing until it is awaited"]
pub struct Submit<T> {
    options: SubmitOptions,
    send: SendFn<T>,
}

impl<T> fmt::Debug for Submit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submit")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<T> Submit<T> {
    pub(crate) fn new(
        send: impl FnOnce(SubmitOptions) -> BoxFuture<'static, Result<T>> + Send + 'static,
    ) -> Self {
        Self {
            options: SubmitOptions::default(),
            send: Box::new(send),
        }
    }

    /// The same submit with `options` (the adapter passes a plan's options on).
    pub(crate) fn with_options(mut self, options: SubmitOptions) -> Self {
        self.options = options;
        self
    }

    /// Have fal `POST` the outcome to this URL when the request finishes (query `fal_webhook`).
    /// Verify deliveries with [`FalClient::webhooks`](crate::FalClient::webhooks).
    pub fn webhook(mut self, url: Url) -> Self {
        self.options.webhook = Some(url);
        self
    }

    /// Queue priority (`x-fal-queue-priority`). Not sent unless set (fal's default is `normal`).
    pub fn priority(mut self, p: Priority) -> Self {
        self.options.priority = Some(p);
        self
    }

    /// Routing / session-affinity hint (`x-fal-runner-hint`).
    pub fn runner_hint(mut self, hint: impl Into<String>) -> Self {
        self.options.call.runner_hint = Some(hint.into());
        self
    }

    /// Server-side deadline for the request to *start* (`x-fal-request-timeout`, seconds): it
    /// covers queue wait and runner acquisition; on expiry fal answers 504 with
    /// `x-fal-request-timeout-type: user`. Must be more than 1 s (checked before sending, like
    /// the official clients).
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.options.call.start_timeout = Some(t);
        self
    }

    /// The lifecycle (expiry, initial ACL) of the files this request creates on fal's CDN,
    /// sent as `X-Fal-Object-Lifecycle-Preference`, instead of the client's
    /// [`output_lifecycle`](crate::FalClientBuilder::output_lifecycle). An invalid one fails
    /// with [`Error::InvalidInput`] before anything is sent.
    pub fn output_lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.options.call.output_lifecycle = Some(lifecycle);
        self
    }

    /// Usage tags (`X-Fal-Tags`), checked before anything is sent; see [`UsageTags`].
    pub fn tags(mut self, tags: UsageTags) -> Self {
        self.options.call.tags = tags;
        self
    }

    /// `false`: fal does not store the request's JSON input and output (`X-Fal-Store-IO: 0`;
    /// otherwise kept 30 days and shown in the dashboard's history). Files the request creates on
    /// the CDN are still made and follow their lifecycle.
    pub fn store_io(mut self, store: bool) -> Self {
        self.options.call.store_io = Some(store);
        self
    }

    /// Turn off fal's automatic model fallbacks for this request (sent as both names fal
    /// documents: `x-app-fal-disable-fallback: true` and `x-fal-disable-fallbacks: true`).
    pub fn disable_fallbacks(mut self) -> Self {
        self.options.call.disable_fallbacks = true;
        self
    }

    /// Turn off the queue's automatic retries (`X-Fal-No-Retry: 1`; fal otherwise makes up to
    /// 10 attempts on 503, 504 and connection errors).
    pub fn no_retry(mut self) -> Self {
        self.options.no_retry = true;
        self
    }

    /// The queue's retry budget per failure kind (`X-Fal-Retry-Config`); fal applies it only to
    /// your own apps. See [`ServerRetries`].
    pub fn retry_config(mut self, retries: ServerRetries) -> Self {
        self.options.retry_config = Some(retries);
        self
    }

    /// Refuse the submit (429, nothing queued or billed) when more than `n` requests of the
    /// endpoint are already waiting, counted across all callers (query `fal_max_queue_length`).
    pub fn max_queue_length(mut self, n: u32) -> Self {
        self.options.max_queue_length = Some(n);
        self
    }

    /// An extra header (lower-cased by `http`); the typed options above override headers of the
    /// same name.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.options.call.headers.insert(name, value);
        self
    }
}

impl<T: Send + 'static> IntoFuture for Submit<T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<'static, Result<T>>;

    fn into_future(self) -> Self::IntoFuture {
        (self.send)(self.options)
    }
}

/// The options of a sync run.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) call: CallOptions,
    pub(crate) timeout: Option<Duration>,
}

/// A sync run (`POST {run}/{endpoint id}`), sent when awaited: from
/// [`FalClient::run`](crate::FalClient::run) and [`FalClient::run_json`](crate::FalClient::run_json).
///
/// ```no_run
/// # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
/// use std::time::Duration;
/// use fal_client::models::{FluxLora, FluxLoraInput};
/// let out = fal
///     .run::<FluxLora>(&FluxLoraInput::new("a red fox"))
///     .timeout(Duration::from_secs(120))
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a run does nothing until it is awaited"]
pub struct Run<O> {
    transport: Arc<Transport>,
    prepared: Result<(EndpointId, Body)>,
    options: RunOptions,
    _output: PhantomData<fn() -> O>,
}

impl<O> fmt::Debug for Run<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field(
                "endpoint",
                &self.prepared.as_ref().map(|(e, _)| e.as_str()).ok(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<O> Run<O> {
    pub(crate) fn new(transport: Arc<Transport>, prepared: Result<(EndpointId, Body)>) -> Self {
        Self {
            transport,
            prepared,
            options: RunOptions::default(),
            _output: PhantomData,
        }
    }

    /// Routing / session-affinity hint (`x-fal-runner-hint`).
    pub fn runner_hint(mut self, hint: impl Into<String>) -> Self {
        self.options.call.runner_hint = Some(hint.into());
        self
    }

    /// Server-side deadline for the run to start (`x-fal-request-timeout`), more than 1 s; see
    /// [`Submit::start_timeout`].
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.options.call.start_timeout = Some(t);
        self
    }

    /// The lifecycle (expiry, initial ACL) of the files this request creates on fal's CDN,
    /// sent as `X-Fal-Object-Lifecycle-Preference`, instead of the client's
    /// [`output_lifecycle`](crate::FalClientBuilder::output_lifecycle). An invalid one fails
    /// with [`Error::InvalidInput`] before anything is sent.
    pub fn output_lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.options.call.output_lifecycle = Some(lifecycle);
        self
    }

    /// An extra header (lower-cased by `http`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.options.call.headers.insert(name, value);
        self
    }

    /// Usage tags (`X-Fal-Tags`); see [`Submit::tags`].
    pub fn tags(mut self, tags: UsageTags) -> Self {
        self.options.call.tags = tags;
        self
    }

    /// `false`: fal does not store the run's JSON input and output; see [`Submit::store_io`].
    pub fn store_io(mut self, store: bool) -> Self {
        self.options.call.store_io = Some(store);
        self
    }

    /// Turn off fal's automatic model fallbacks; see [`Submit::disable_fallbacks`].
    pub fn disable_fallbacks(mut self) -> Self {
        self.options.call.disable_fallbacks = true;
        self
    }

    /// Overall client-side limit of the call, model time included (default: none — a sync run
    /// may legitimately take minutes; a dead connection is found by TCP keep-alive, and an
    /// answer body that stalls by the read timeout).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.options.timeout = Some(t);
        self
    }
}

impl<O: DeserializeOwned + Send + 'static> Run<O> {
    /// The output with the units fal billed for it (`x-fal-billable-units`) and the run's
    /// request id: a [`BilledRun`] that sends when awaited.
    pub fn billed(self) -> BilledRun<O> {
        BilledRun(self)
    }

    async fn send(self) -> Result<(O, HeaderMap)> {
        let (endpoint, body) = self.prepared?;
        // The options are checked before the input's files are uploaded.
        let headers = self.options.call.headers(self.transport.config())?;
        let body = body.ready().await?;
        super::run(
            &self.transport,
            endpoint,
            body,
            headers,
            self.options.timeout,
        )
        .await
    }
}

impl<O: DeserializeOwned + Send + 'static> IntoFuture for Run<O> {
    type Output = Result<O>;
    type IntoFuture = BoxFuture<'static, Result<O>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.send().await.map(|(output, _)| output) })
    }
}

/// A sync run whose answer keeps the billed units: from [`Run::billed`].
#[must_use = "a run does nothing until it is awaited"]
pub struct BilledRun<O>(Run<O>);

impl<O> fmt::Debug for BilledRun<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BilledRun").field(&self.0).finish()
    }
}

impl<O: DeserializeOwned + Send + 'static> IntoFuture for BilledRun<O> {
    type Output = Result<Billed<O>>;
    type IntoFuture = BoxFuture<'static, Result<Billed<O>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (output, headers) = self.0.send().await?;
            Ok(Billed {
                output,
                billable_units: BillableUnits::from_headers(&headers),
                request_id: crate::transport::header_str(&headers, "x-fal-request-id")
                    .map(str::to_owned),
            })
        })
    }
}

/// The options of a wait.
#[derive(Debug, Clone)]
pub(crate) struct WaitOptions {
    deadline: Option<Deadline>,
    pub(crate) logs: bool,
    pub(crate) stream: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) hedge_after: Duration,
    pub(crate) cancel_on_timeout: bool,
    pub(crate) max_missed_polls: u32,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    After(Duration),
    At(Instant),
}

/// Default interval between status polls: 500 ms, as fal-js.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Default quiet period after which a silent status stream is hedged with polls: 1 s, twice the
/// default poll interval and five times the event spacing of `FalMock`'s default job (a log
/// line every 200 ms). fal sends an event per change (queue position, start, log lines,
/// completion), not at a fixed rate, so no value is longer than every healthy silence: a job
/// silent for longer (no logs during a long run) costs one poll per poll interval beyond it.
pub const DEFAULT_HEDGE_AFTER: Duration = Duration::from_secs(1);

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            deadline: None,
            logs: true,
            stream: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            hedge_after: DEFAULT_HEDGE_AFTER,
            cancel_on_timeout: true,
            max_missed_polls: 20,
        }
    }
}

impl WaitOptions {
    /// The deadline of a wait started at `start`; a timeout too large to add is none.
    pub(crate) fn deadline_from(&self, start: Instant) -> Option<Instant> {
        self.deadline.and_then(|d| match d {
            Deadline::After(t) => start.checked_add(t),
            Deadline::At(at) => Some(at),
        })
    }
}

/// The progress callback of a wait.
pub(crate) type OnEvent<'a> = Box<dyn FnMut(WaitEvent<'_>) + Send + 'a>;

type WaitFn<'a, T> =
    Box<dyn FnOnce(WaitOptions, OnEvent<'a>) -> BoxFuture<'a, Result<T>> + Send + 'a>;

/// Waiting for a queued request, when awaited: from
/// [`RequestHandle::wait`](super::RequestHandle::wait) (the output),
/// [`TrainingJob::wait`](crate::avatar::TrainingJob::wait) (a trained avatar) and
/// [`TrainedAvatar::generate`](crate::avatar::TrainedAvatar::generate) (the images).
///
/// It uses the status stream (submit, stream, result: three requests when the stream works) and
/// polls status as well while the stream has been silent for a quiet period
/// ([`hedge_after`](Self::hedge_after)), so that a stalled stream costs about one poll interval,
/// not the stream's idle timeout: the first of the stream and a poll to see `COMPLETED` wins,
/// the stream keeps being read, and polls stop when it speaks again. When the stream fails, the
/// wait polls alone. A failed status poll counts as a missed poll, not as a failure of the wait.
///
/// Defaults: no deadline, logs requested, status stream first, polls every 500 ms (alongside a
/// stream silent for 1 s, or alone), cancel on fal when the deadline passes, and, only when
/// there is no deadline, giving up after 20 consecutive failed polls once the stream is gone
/// (each poll already retried by the retry policy).
///
/// ```no_run
/// # async fn demo(job: fal_client::queue::RequestHandle<fal_client::models::LoraTrainingOutput>) -> fal_client::Result<()> {
/// use std::time::Duration;
/// use fal_client::queue::WaitEvent;
/// let out = job
///     .wait()
///     .timeout(Duration::from_secs(1800))
///     .cancel_on_timeout(false) // a paid training: resume it later instead
///     .on_event(|event| match event {
///         WaitEvent::Queued { position } => println!("queue position {position}"),
///         WaitEvent::Log(line) => println!("{}", line.message),
///         _ => {}
///     })
///     .await?;
/// # Ok(()) }
/// ```
///
/// # Errors (when awaited)
/// - [`Error::Timeout`] when the deadline passes (carries the request id; the request is
///   cancelled on fal unless [`cancel_on_timeout`](Self::cancel_on_timeout) is off);
/// - [`Error::Api`] with fal's field details when the request failed validation (422), or
///   the model's error; [`Error::RequestFailed`] when `COMPLETED` carries an `error`;
/// - [`Error::Decode`] when the output does not match its type (names the JSON path);
/// - [`Error::UnknownQueueStatus`] for a status this crate does not know;
/// - [`Error::Api`] for a status answer that polling again cannot fix (401, 403, 404).
///
/// Every error of a wait carries the request id ([`Error::request_id`]). The generation waits
/// ([`GenerationRequest::generate`](crate::avatar::GenerationRequest::generate),
/// [`TrainedAvatar::generate`](crate::avatar::TrainedAvatar::generate)) submit first: an error of
/// that submit has no request id yet, and their deadline starts once the request is queued.
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait<'a, T> {
    options: WaitOptions,
    on_event: Option<OnEvent<'a>>,
    run: WaitFn<'a, T>,
}

impl<T> fmt::Debug for Wait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("options", &self.options)
            .field("on_event", &self.on_event.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, T> Wait<'a, T> {
    pub(crate) fn new(
        run: impl FnOnce(WaitOptions, OnEvent<'a>) -> BoxFuture<'a, Result<T>> + Send + 'a,
    ) -> Self {
        Self {
            options: WaitOptions::default(),
            on_event: None,
            run: Box::new(run),
        }
    }

    /// Give up (and, by default, cancel on fal) after this long, counted from the start of the
    /// wait. The error is [`Error::Timeout`] carrying the request id.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.options.deadline = Some(Deadline::After(t));
        self
    }

    /// Give up at this instant, a [`tokio::time::Instant`] (from a `std::time::Instant` with
    /// `tokio::time::Instant::from_std`).
    pub fn deadline(mut self, at: Instant) -> Self {
        self.options.deadline = Some(Deadline::At(at));
        self
    }

    /// Ask for runner logs (default `true`); they reach [`on_event`](Self::on_event) as
    /// [`WaitEvent::Log`].
    pub fn logs(mut self, on: bool) -> Self {
        self.options.logs = on;
        self
    }

    /// Use the SSE status stream first (default `true`); `false` polls only.
    pub fn stream(mut self, on: bool) -> Self {
        self.options.stream = on;
        self
    }

    /// Interval between status polls (default [`DEFAULT_POLL_INTERVAL`], 500 ms), alone or
    /// alongside a silent stream (see [`hedge_after`](Self::hedge_after)).
    pub fn poll_interval(mut self, t: Duration) -> Self {
        self.options.poll_interval = t;
        self
    }

    /// How long the status stream may be silent (no event) before the wait also polls status,
    /// once per [`poll_interval`](Self::poll_interval) until the stream speaks again or the
    /// request completes (default 1 s; counted from the start of the wait before the first
    /// event).
    ///
    /// A stalled stream then costs this plus at most one poll interval, instead of the client's
    /// SSE idle timeout (15 s by default; it still ends a stream silent that long, and the wait
    /// goes on polling alone). A stream whose events come closer together than this costs no
    /// poll at all; fal sends an event per change (queue position, start, log lines), so a job
    /// silent for longer (a long run without log lines) costs the polls of that silence past the
    /// quiet period. Raise it for long silent jobs and a trusted stream; a quiet period longer
    /// than the SSE idle timeout never hedges (the stream is given up first).
    pub fn hedge_after(mut self, quiet: Duration) -> Self {
        self.options.hedge_after = quiet;
        self
    }

    /// Whether to cancel the request on fal when the deadline passes (default `true`). Set
    /// `false` for paid training jobs you want to [`resume`](crate::FalClient::resume) later.
    pub fn cancel_on_timeout(mut self, on: bool) -> Self {
        self.options.cancel_on_timeout = on;
        self
    }

    /// Consecutive failed polls after which a wait *without deadline* gives up (default 20);
    /// checked once the status stream is gone (while it is open, its idle timeout decides).
    pub fn max_missed_polls(mut self, n: u32) -> Self {
        self.options.max_missed_polls = n.max(1);
        self
    }

    /// Report progress (queue position, start, each new log line, completion, the first
    /// status poll of a streamed wait) to `f`.
    pub fn on_event(mut self, f: impl FnMut(WaitEvent<'_>) + Send + 'a) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }
}

impl<'a, T: Send + 'a> IntoFuture for Wait<'a, T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<'a, Result<T>>;

    fn into_future(self) -> Self::IntoFuture {
        let on_event = self.on_event.unwrap_or_else(|| Box::new(|_| {}));
        (self.run)(self.options, on_event)
    }
}

/// `x-fal-request-timeout` value: whole seconds without a fraction (`30`), else the shortest
/// decimal (`2.5`), as fal-js. Must be more than 1 s.
pub(crate) fn timeout_header(t: Duration) -> Result<HeaderValue> {
    if t <= Duration::from_secs(1) {
        return Err(Error::invalid_input(
            "start_timeout",
            format!("must be greater than 1 second (got {t:?})"),
        ));
    }
    let s = if t.subsec_nanos() == 0 {
        t.as_secs().to_string()
    } else {
        format!("{}", t.as_secs_f64())
    };
    HeaderValue::from_str(&s)
        .map_err(|_| Error::invalid_input("start_timeout", "not representable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_formats_like_fal_js() {
        assert_eq!(timeout_header(Duration::from_secs(30)).unwrap(), "30");
        assert_eq!(timeout_header(Duration::from_secs(5)).unwrap(), "5");
        assert_eq!(timeout_header(Duration::from_millis(2500)).unwrap(), "2.5");
        assert_eq!(timeout_header(Duration::from_millis(1010)).unwrap(), "1.01");
    }

    #[test]
    fn timeout_of_one_second_or_less_is_rejected() {
        for t in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_secs(1),
        ] {
            let err = timeout_header(t).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { ref field, ref message } if field == "start_timeout" && message.contains("greater than 1 second"))
            );
        }
    }

    #[test]
    fn typed_options_override_user_headers() {
        let submit = Submit::<()>::new(|_| Box::pin(async { Ok(()) }))
            .header(
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("1"),
            )
            .header(
                HeaderName::from_static("x-fal-queue-priority"),
                HeaderValue::from_static("normal"),
            )
            .header(
                HeaderName::from_static("x-fal-runner-hint"),
                HeaderValue::from_static("old"),
            )
            .header(
                HeaderName::from_static("x-fal-request-timeout"),
                HeaderValue::from_static("10"),
            )
            .priority(Priority::Low)
            .runner_hint("new-hint")
            .start_timeout(Duration::from_secs(60));
        let fal = crate::FalClient::builder().key("k").build().unwrap();
        let h = submit.options.headers(fal.config()).unwrap();
        assert_eq!(h["x-custom"], "1");
        assert_eq!(h["x-fal-queue-priority"], "low");
        assert_eq!(h["x-fal-runner-hint"], "new-hint");
        assert_eq!(h["x-fal-request-timeout"], "60");
    }

    #[test]
    fn default_options_send_no_fal_headers() {
        let fal = crate::FalClient::builder().key("k").build().unwrap();
        let h = SubmitOptions::default().headers(fal.config()).unwrap();
        assert!(h.is_empty());
    }
}
