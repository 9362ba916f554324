//! Fault injection: a seeded plan of bad answers per route ([`Faults`]), applied by a layer in
//! front of the mock's handlers, with counters ([`FaultCounts`]).
//!
//! Faults are drawn per request from one [`fastrand::Rng`] seeded by [`Faults::new`], shared
//! behind a mutex, so a plan gives the same sequence of decisions on every run (which request
//! gets which decision still depends on the order in which concurrent requests arrive).
//!
//! The wire shape of each fault is described on [`FaultKind`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use super::state::{lock, Shared};
use super::{media, FalMock, FalMockBuilder};

/// A route of the mock that faults can be injected on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MockRoute {
    /// `POST /queue/{endpoint}`.
    Submit,
    /// `GET /queue/.../requests/{id}/status`.
    Status,
    /// `GET /queue/.../requests/{id}/status/stream`.
    Stream,
    /// `GET /queue/.../requests/{id}`.
    Result,
    /// `PUT /queue/.../requests/{id}/cancel`.
    Cancel,
    /// `POST /run/{endpoint}` (a sync run, or a streaming run at `/run/{endpoint}/stream`).
    Run,
    /// `POST /rest/storage/upload/initiate`.
    UploadInitiate,
    /// `PUT /upload/...` on the CDN.
    UploadPut,
    /// `GET /files/...` on the CDN.
    Download,
    /// `POST /rest/storage/auth/token` (a CDN token of the v3 upload flow).
    CdnToken,
    /// `POST /files/upload` and the v3 multipart calls (`POST`/`PUT` under `/files/`) on the
    /// CDN.
    CdnUpload,
}

impl MockRoute {
    /// Every route.
    pub const ALL: [MockRoute; 11] = [
        MockRoute::Submit,
        MockRoute::Status,
        MockRoute::Stream,
        MockRoute::Result,
        MockRoute::Cancel,
        MockRoute::Run,
        MockRoute::UploadInitiate,
        MockRoute::UploadPut,
        MockRoute::Download,
        MockRoute::CdnToken,
        MockRoute::CdnUpload,
    ];

    /// Whether the client may repeat a call to this route without risk (everything but submit,
    /// sync run and the CDN v3 upload, each of which makes something new).
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            MockRoute::Submit | MockRoute::Run | MockRoute::CdnUpload
        )
    }

    /// The route of a request to the API server (`cdn == false`) or the CDN server.
    fn classify(method: &Method, path: &str, cdn: bool) -> Option<MockRoute> {
        if cdn {
            return match *method {
                Method::PUT if path.starts_with("/upload/") => Some(MockRoute::UploadPut),
                Method::GET if path.starts_with("/files/") => Some(MockRoute::Download),
                Method::POST | Method::PUT if path.starts_with("/files/") => {
                    Some(MockRoute::CdnUpload)
                }
                _ => None,
            };
        }
        if let Some(rest) = path.strip_prefix("/queue/") {
            let rest = rest.trim_end_matches('/');
            return match *method {
                Method::POST => Some(MockRoute::Submit),
                Method::PUT if rest.ends_with("/cancel") => Some(MockRoute::Cancel),
                Method::GET if rest.ends_with("/status/stream") => Some(MockRoute::Stream),
                Method::GET if rest.ends_with("/status") => Some(MockRoute::Status),
                Method::GET if rest.contains("/requests/") => Some(MockRoute::Result),
                _ => None,
            };
        }
        match *method {
            Method::POST if path.starts_with("/run/") => Some(MockRoute::Run),
            Method::POST if path == "/rest/storage/upload/initiate" => {
                Some(MockRoute::UploadInitiate)
            }
            Method::POST if path == "/rest/storage/auth/token" => Some(MockRoute::CdnToken),
            _ => None,
        }
    }
}

impl fmt::Display for MockRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A kind of fault, and what the client sees:
///
/// | fault | what the client sees | when it is decided |
/// |---|---|---|
/// | [`TooManyRequests`](FaultKind::TooManyRequests) | `429 {"detail": ...}` with `Retry-After: N` (whole seconds from [`Faults::retry_after`]) | before the handler (nothing happens on the mock) |
/// | [`ServerError`](FaultKind::ServerError) | `500 {"detail":"Internal Server Error"}` with an `x-fal-request-id` (fal answered) | before the handler |
/// | [`IngressUnavailable`](FaultKind::IngressUnavailable) | `503` HTML page signed `nginx`, **no** `x-fal-request-id` (the ingress answered; fal never saw the request) | before the handler |
/// | [`Reset`](FaultKind::Reset) | the connection is closed without an answer | before the handler (a submit is **not** accepted) |
/// | [`ResetAfterAccept`](FaultKind::ResetAfterAccept) | the connection is closed without an answer | **after** the handler ran (a submit **is** accepted: the job exists) |
/// | [`Slow`](FaultKind::Slow) | the normal answer, after a delay of up to [`Faults::slow`] | before the handler |
/// | [`TruncatedStream`](FaultKind::TruncatedStream) | the status stream sends at most its first event (never `COMPLETED`) and then ends cleanly | status stream only |
/// | [`StalledStream`](FaultKind::StalledStream) | the status stream sends at most its first event (never `COMPLETED`) and then stays open, silent | status stream only |
/// | [`MalformedJson`](FaultKind::MalformedJson) | the normal success status with the first half of the JSON body | after the handler; only when it answered 2xx with JSON |
/// | [`HtmlPage`](FaultKind::HtmlPage) | `200` with a `text/html` page (a proxy or captive portal answered) | before the handler |
///
/// A fault that does not apply (a stream fault on another route, a malformed body for an error
/// answer) leaves the answer alone and is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// `429` with `Retry-After`.
    TooManyRequests,
    /// `500` from fal (with `x-fal-request-id`).
    ServerError,
    /// `503` HTML page from the ingress (nginx), without `x-fal-request-id`.
    IngressUnavailable,
    /// Connection closed without an answer, before the mock acted on the request.
    Reset,
    /// Connection closed without an answer, after the mock acted on the request (a submitted
    /// job exists).
    ResetAfterAccept,
    /// The normal answer, late.
    Slow,
    /// Status stream: at most the first event, then a clean end without `COMPLETED`.
    TruncatedStream,
    /// Status stream: at most the first event, then silence with the connection open.
    StalledStream,
    /// A success answer whose JSON body is cut in half.
    MalformedJson,
    /// `200 text/html` instead of the answer.
    HtmlPage,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::TooManyRequests,
        FaultKind::ServerError,
        FaultKind::IngressUnavailable,
        FaultKind::Reset,
        FaultKind::ResetAfterAccept,
        FaultKind::Slow,
        FaultKind::TruncatedStream,
        FaultKind::StalledStream,
        FaultKind::MalformedJson,
        FaultKind::HtmlPage,
    ];

    /// Whether this kind can apply to `route` (stream faults only apply to the status stream).
    pub fn applies_to(self, route: MockRoute) -> bool {
        match self {
            FaultKind::TruncatedStream | FaultKind::StalledStream => route == MockRoute::Stream,
            _ => true,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A seeded fault plan: for each route, the probability of each fault kind per request.
///
/// ```
/// use std::time::Duration;
/// use fal_mock::{FaultKind, Faults, MockRoute};
///
/// // Every status poll has a 10% chance of a 500 and a 5% chance of a reset; 429s say
/// // `Retry-After: 0` or `1`.
/// let plan = Faults::new(7)
///     .rate(MockRoute::Status, FaultKind::ServerError, 0.10)
///     .rate(MockRoute::Status, FaultKind::Reset, 0.05)
///     .rate(MockRoute::Submit, FaultKind::TooManyRequests, 0.2)
///     .retry_after(0..=1)
///     .slow(Duration::from_millis(50));
/// assert!((plan.rate_of(MockRoute::Status) - 0.15).abs() < 1e-9);
///
/// // A mix of every kind that fits each route, 25% of all answers (what the avatar example
/// // uses with FAL_MOCK_FAULT_RATE=0.25).
/// let mix = Faults::uniform(7, 0.25);
/// assert!((mix.rate_of(MockRoute::Download) - 0.25).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    seed: u64,
    rates: BTreeMap<MockRoute, Vec<(FaultKind, f64)>>,
    retry_after: RangeInclusive<u64>,
    slow: Duration,
    limit: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::none()
    }
}

impl Faults {
    /// An empty plan (no faults) with this seed; add rates with [`rate`](Self::rate).
    /// Defaults: `Retry-After` 0 or 1 s, slow answers up to 200 ms, no limit.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rates: BTreeMap::new(),
            retry_after: 0..=1,
            slow: Duration::from_millis(200),
            limit: None,
        }
    }

    /// No faults at all (the mock's default).
    pub fn none() -> Self {
        Self::new(0)
    }

    /// `rate` (0..=1) of the answers of every route faulted, split evenly between the kinds that
    /// a careful client is expected to survive on that route:
    ///
    /// - submit, sync run and the CDN v3 upload (not idempotent): 429, ingress 503, slow — never
    ///   a reset, a 500 or a broken body, which leave a real client unable to know whether fal
    ///   took the job (or stored the file);
    /// - status and result: 429, 500, ingress 503, reset, slow, malformed JSON, HTML page;
    /// - status stream: 429, 500, ingress 503, reset, slow, truncated stream, stalled stream;
    /// - cancel, upload initiate, upload `PUT`, file download, CDN token: 429, 500, ingress 503,
    ///   reset, slow (a broken download body would be silently saved as the file).
    pub fn uniform(seed: u64, rate: f64) -> Self {
        use FaultKind::*;
        let mut plan = Self::new(seed);
        let common: &[FaultKind] = &[
            TooManyRequests,
            ServerError,
            IngressUnavailable,
            Reset,
            Slow,
        ];
        for route in MockRoute::ALL {
            let mut kinds: Vec<FaultKind> = if route.is_idempotent() {
                common.to_vec()
            } else {
                vec![TooManyRequests, IngressUnavailable, Slow]
            };
            match route {
                MockRoute::Status | MockRoute::Result => kinds.extend([MalformedJson, HtmlPage]),
                MockRoute::Stream => kinds.extend([TruncatedStream, StalledStream]),
                _ => {}
            }
            let each = rate / kinds.len() as f64;
            for kind in kinds {
                plan = plan.rate(route, kind, each);
            }
        }
        plan
    }

    /// Fault `rate` (clamped to 0..=1) of the requests to `route` with `kind`. Rates of one route
    /// add up (and are cut at 1 in total); setting the same kind again replaces its rate. A kind
    /// that cannot apply to the route (a stream fault elsewhere) is ignored.
    pub fn rate(mut self, route: MockRoute, kind: FaultKind, rate: f64) -> Self {
        if !kind.applies_to(route) {
            return self;
        }
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let list = self.rates.entry(route).or_default();
        list.retain(|(k, _)| *k != kind);
        if rate > 0.0 {
            list.push((kind, rate));
        }
        self
    }

    /// [`rate`](Self::rate) for several routes.
    pub fn rate_on(mut self, routes: &[MockRoute], kind: FaultKind, rate: f64) -> Self {
        for &route in routes {
            self = self.rate(route, kind, rate);
        }
        self
    }

    /// The `Retry-After` values (whole seconds, drawn uniformly) sent with 429s. Default `0..=1`.
    pub fn retry_after(mut self, secs: RangeInclusive<u64>) -> Self {
        self.retry_after = secs;
        self
    }

    /// The longest delay of a [`Slow`](FaultKind::Slow) answer; each delay is drawn between
    /// half of it and all of it. Default 200 ms.
    pub fn slow(mut self, max: Duration) -> Self {
        self.slow = max;
        self
    }

    /// Stop injecting after `n` faults (e.g. "the first submit gets a 503, then all is well").
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The total fault probability of a request to `route` (at most 1).
    pub fn rate_of(&self, route: MockRoute) -> f64 {
        self.rates
            .get(&route)
            .map_or(0.0, |l| l.iter().map(|(_, r)| r).sum::<f64>())
            .min(1.0)
    }

    fn is_empty(&self) -> bool {
        self.rates.values().all(Vec::is_empty)
    }
}

/// How many requests the fault layer saw and how many faults it injected, per kind and route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCounts {
    /// Requests to a [`MockRoute`] (whether faulted or not).
    pub requests: u64,
    /// Injected faults per kind.
    pub by_kind: BTreeMap<FaultKind, u64>,
    /// Requests per route.
    pub requests_by_route: BTreeMap<MockRoute, u64>,
    /// Injected faults per route.
    pub faults_by_route: BTreeMap<MockRoute, u64>,
}

impl FaultCounts {
    /// All injected faults.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Injected faults of `kind`.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// Injected faults divided by requests (0 when there were none).
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.total() as f64 / self.requests as f64
        }
    }
}

/// The live fault state shared by the handlers.
pub(crate) struct Injector {
    inner: Mutex<InjectorState>,
}

struct InjectorState {
    plan: Faults,
    rng: fastrand::Rng,
    injected: u64,
    counts: FaultCounts,
}

/// What to do with one request.
struct Decision {
    kind: FaultKind,
    retry_after: u64,
    delay: Duration,
}

impl Injector {
    pub(crate) fn new(plan: Faults) -> Self {
        Self {
            inner: Mutex::new(InjectorState {
                rng: fastrand::Rng::with_seed(plan.seed),
                plan,
                injected: 0,
                counts: FaultCounts::default(),
            }),
        }
    }

    fn set(&self, plan: Faults) {
        let mut st = lock(&self.inner);
        st.rng = fastrand::Rng::with_seed(plan.seed);
        st.plan = plan;
        st.injected = 0;
    }

    /// Count a request to `route` and draw its fault, if any.
    fn decide(&self, route: MockRoute) -> Option<Decision> {
        let mut st = lock(&self.inner);
        st.counts.requests += 1;
        *st.counts.requests_by_route.entry(route).or_default() += 1;
        if st.plan.is_empty() || st.plan.limit.is_some_and(|l| st.injected >= l) {
            return None;
        }
        let list = st.plan.rates.get(&route)?.clone();
        let draw = st.rng.f64();
        let mut acc = 0.0;
        let kind = list.iter().find_map(|&(kind, rate)| {
            acc += rate;
            (draw < acc).then_some(kind)
        })?;
        let ra = st.plan.retry_after.clone();
        let retry_after = if ra.is_empty() { 0 } else { st.rng.u64(ra) };
        let max = st.plan.slow;
        let delay = max / 2 + max.mul_f64(st.rng.f64() / 2.0);
        st.injected += 1;
        Some(Decision {
            kind,
            retry_after,
            delay,
        })
    }

    /// Count an injected fault (when it actually applied).
    fn count(&self, route: MockRoute, kind: FaultKind) {
        let mut st = lock(&self.inner);
        *st.counts.by_kind.entry(kind).or_default() += 1;
        *st.counts.faults_by_route.entry(route).or_default() += 1;
    }

    fn counts(&self) -> FaultCounts {
        lock(&self.inner).counts.clone()
    }
}

impl FalMockBuilder {
    /// Inject faults from the start (default: none). See [`Faults`].
    pub fn faults(mut self, plan: Faults) -> Self {
        self.faults = plan;
        self
    }
}

impl FalMock {
    /// Replace the fault plan (reseeding its generator); counters keep counting.
    pub fn set_faults(&self, plan: Faults) {
        self.shared.faults.set(plan);
    }

    /// Requests seen and faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.shared.faults.counts()
    }

    /// Accepted queue submits beyond the first with the same endpoint id and the same input:
    /// 0 when no job was submitted twice.
    pub fn duplicate_submissions(&self) -> usize {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for job in lock(&self.shared.jobs).values() {
            let input = Value::Object(job.input.clone()).to_string();
            *seen.entry((job.endpoint.clone(), input)).or_default() += 1;
        }
        seen.values().map(|n| n - 1).sum()
    }
}

/// The fault layer of the API server.
pub(crate) async fn api_layer(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    apply(s, false, req, next).await
}

/// The fault layer of the CDN server.
pub(crate) async fn cdn_layer(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    apply(s, true, req, next).await
}

async fn apply(s: Arc<Shared>, cdn: bool, req: Request, next: Next) -> Response {
    let Some(route) = MockRoute::classify(req.method(), req.uri().path(), cdn) else {
        return next.run(req).await;
    };
    let Some(d) = s.faults.decide(route) else {
        return next.run(req).await;
    };
    tracing::debug!(%route, kind = %d.kind, path = %req.uri().path(), "mock: injecting a fault");
    let counted = |kind| s.faults.count(route, kind);
    match d.kind {
        FaultKind::TooManyRequests => {
            counted(d.kind);
            let mut r = json(429, r#"{"detail":"Too many requests, please retry later"}"#);
            if let Ok(v) = HeaderValue::from_str(&d.retry_after.to_string()) {
                r.headers_mut().insert(RETRY_AFTER, v);
            }
            r
        }
        FaultKind::ServerError => {
            counted(d.kind);
            let mut r = json(500, r#"{"detail":"Internal Server Error"}"#);
            if let Ok(v) = HeaderValue::from_str(&media::uuid()) {
                r.headers_mut().insert("x-fal-request-id", v);
            }
            r
        }
        FaultKind::IngressUnavailable => {
            counted(d.kind);
            html(503, INGRESS_503)
        }
        FaultKind::HtmlPage => {
            counted(d.kind);
            html(200, PORTAL_PAGE)
        }
        FaultKind::Reset => {
            counted(d.kind);
            reset()
        }
        FaultKind::ResetAfterAccept => {
            counted(d.kind);
            // Let the handler act (a submit queues its job), then drop the connection unanswered.
            drop(next.run(req).await);
            reset()
        }
        FaultKind::Slow => {
            counted(d.kind);
            let mut stop = s.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(d.delay) => {}
                _ = stop.changed() => {}
            }
            next.run(req).await
        }
        FaultKind::MalformedJson => {
            let r = next.run(req).await;
            let is_json = r
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/json"));
            if !r.status().is_success() || !is_json {
                return r;
            }
            let (mut parts, body) = r.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return reset();
            };
            counted(d.kind);
            let cut = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            parts.headers.remove(CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
        FaultKind::TruncatedStream | FaultKind::StalledStream => {
            let r = next.run(req).await;
            let is_sse = r
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"));
            if !r.status().is_success() || !is_sse {
                return r;
            }
            counted(d.kind);
            let stall = d.kind == FaultKind::StalledStream;
            let (parts, body) = r.into_parts();
            Response::from_parts(parts, first_event_only(body, stall, s.shutdown.clone()))
        }
    }
}

/// A body that forwards at most the first SSE event of `body` (never a `COMPLETED` one), then
/// ends, or (`stall`) stays open and silent until the mock shuts down.
fn first_event_only(body: Body, stall: bool, mut stop: tokio::sync::watch::Receiver<bool>) -> Body {
    let stream = async_stream(move |tx| async move {
        let mut chunks = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = chunks.next().await {
            buf.extend_from_slice(&chunk);
            if let Some(end) = find(&buf, b"\n\n") {
                let event = &buf[..end + 2];
                if !is_completed_event(event) {
                    let _ = tx.send(Bytes::copy_from_slice(event)).await;
                }
                break;
            }
        }
        drop(chunks);
        if stall {
            // Keep the connection open without a byte until the client goes away or the mock stops.
            tokio::select! {
                _ = tx.closed() => {}
                _ = async { while !*stop.borrow_and_update() { if stop.changed().await.is_err() { break } } } => {}
            }
        }
    });
    Body::from_stream(stream.map(Ok::<_, std::convert::Infallible>))
}

/// A stream fed by a task through a channel (the task ends when the receiver is dropped).
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Bytes> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(f(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_completed_event(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .any(|v| v.get("status").and_then(Value::as_str) == Some("COMPLETED"))
}

fn json(status: u16, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn html(status: u16, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// An answer hyper never completes: its body fails before the first byte, so the connection is
/// closed without a status line (the client sees a connection-level error, not an HTTP status).
fn reset() -> Response {
    let fail = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault injected by FalMock: connection reset",
        ))
    });
    Response::new(Body::from_stream(fail))
}

const INGRESS_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

const PORTAL_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Just a moment...</title></head>\n<body><h1>Checking your connection</h1><p>Please enable JavaScript and cookies to continue.</p></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        use MockRoute::*;
        let c = |m: Method, p: &str, cdn| MockRoute::classify(&m, p, cdn);
        assert_eq!(
            c(Method::POST, "/queue/fal-ai/flux-lora", false),
            Some(Submit)
        );
        assert_eq!(
            c(
                Method::GET,
                "/queue/fal-ai/flux-lora/requests/x/status",
                false
            ),
            Some(Status)
        );
        assert_eq!(
            c(
                Method::GET,
                "/queue/fal-ai/flux-lora/requests/x/status/stream",
                false
            ),
            Some(Stream)
        );
        assert_eq!(
            c(Method::GET, "/queue/fal-ai/flux-lora/requests/x", false),
            Some(Result)
        );
        assert_eq!(
            c(
                Method::PUT,
                "/queue/fal-ai/flux-lora/requests/x/cancel",
                false
            ),
            Some(Cancel)
        );
        assert_eq!(c(Method::POST, "/run/fal-ai/flux-lora", false), Some(Run));
        assert_eq!(
            c(Method::POST, "/rest/storage/upload/initiate", false),
            Some(UploadInitiate)
        );
        assert_eq!(c(Method::PUT, "/upload/tok", true), Some(UploadPut));
        assert_eq!(c(Method::GET, "/files/tok/a.png", true), Some(Download));
        assert_eq!(c(Method::GET, "/nope", false), None);
        assert_eq!(c(Method::GET, "/files/x", false), None);
    }

    #[test]
    fn decisions_follow_the_seed_and_the_rates() {
        let plan = Faults::new(42)
            .rate(MockRoute::Status, FaultKind::ServerError, 0.3)
            .rate(MockRoute::Status, FaultKind::Reset, 0.2);
        let draw = |plan: &Faults| {
            let inj = Injector::new(plan.clone());
            (0..1000)
                .map(|_| inj.decide(MockRoute::Status).map(|d| d.kind))
                .collect::<Vec<_>>()
        };
        let a = draw(&plan);
        assert_eq!(a, draw(&plan), "same seed, same decisions");
        let errors = a
            .iter()
            .filter(|k| **k == Some(FaultKind::ServerError))
            .count();
        let resets = a.iter().filter(|k| **k == Some(FaultKind::Reset)).count();
        assert!((230..370).contains(&errors), "{errors}");
        assert!((140..260).contains(&resets), "{resets}");
        let inj = Injector::new(plan);
        assert!((0..100).all(|_| inj.decide(MockRoute::Submit).is_none()));
        assert_eq!(inj.counts().requests, 100);
    }

    #[test]
    fn stream_faults_only_apply_to_the_stream_and_limits_stop_injection() {
        let plan = Faults::new(1).rate(MockRoute::Status, FaultKind::StalledStream, 1.0);
        assert_eq!(plan.rate_of(MockRoute::Status), 0.0);
        let inj = Injector::new(
            Faults::new(1)
                .rate(MockRoute::Submit, FaultKind::IngressUnavailable, 1.0)
                .limit(2),
        );
        let n = (0..10)
            .filter(|_| inj.decide(MockRoute::Submit).is_some())
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn uniform_keeps_submits_unambiguous() {
        let plan = Faults::uniform(3, 0.3);
        for route in [MockRoute::Submit, MockRoute::Run, MockRoute::CdnUpload] {
            for (kind, _) in &plan.rates[&route] {
                assert!(
                    matches!(
                        kind,
                        FaultKind::TooManyRequests
                            | FaultKind::IngressUnavailable
                            | FaultKind::Slow
                    ),
                    "{kind} on {route}"
                );
            }
        }
        for route in MockRoute::ALL {
            assert!((plan.rate_of(route) - 0.3).abs() < 1e-9, "{route}");
        }
    }
}
