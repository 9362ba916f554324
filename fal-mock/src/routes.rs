//! HTTP handlers of the mock's API server (`/queue/`, `/run/`, `/rest/`) and CDN server
//! (`/upload/`, `/files/`).

// Helpers return `Result<_, Response>` where the error is the answer to send; it is sent at once,
// so its size does not matter.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Map, Value};

use super::billing::{self, PlatformHeaders};
use super::platform::CallKind;
use super::state::{self, Outcome, Phase, Shared, SubmitMeta, UploadSlot};
use super::validate::{self, Detail};
use super::{faults, media, FailureUse, HostKind, MockFailure, RecordedRequest};
use fal_client::EndpointId;

/// Largest API request body (a data-URI training archive can be big).
const API_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// Longest sleep between two looks at a job while streaming its status.
const STREAM_TICK: Duration = Duration::from_millis(50);

/// The API server: queue, sync run, streaming run, realtime and REST routes, all behind
/// `Authorization: Key <key>` (a realtime connection authorizes itself, and a streaming run may
/// come with a token in `fal_jwt_token` instead), and the Platform API under `/v1`.
pub(crate) fn api_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/queue/{*path}", post(submit).get(queue_get).put(queue_put))
        .route("/run/{*path}", post(run).get(run_get))
        .route("/rest/tokens/", post(super::tokens::create))
        .route("/rest/tokens", post(super::tokens::create))
        .route("/rest/storage/upload/initiate", post(initiate))
        .route("/rest/storage/auth/token", post(super::cdn::token))
        .route(
            "/rest/storage/upload/initiate-multipart",
            post(super::multipart::initiate),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        // Added after the auth layer: the webhook key set is public, like fal's.
        .route(super::webhook::JWKS_PATH, get(super::webhook::jwks))
        // fal's Platform API, with its own auth and error bodies.
        .nest("/v1", super::platform::router(shared.clone()))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::api_layer,
        ))
        .layer(middleware::from_fn_with_state(
            (shared.clone(), HostKind::Api),
            record,
        ))
        .with_state(shared)
}

/// The CDN server: upload targets and file downloads, no auth.
pub(crate) fn cdn_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/upload/{token}", put(upload))
        .route(
            "/multipart/{token}/{part}",
            put(super::multipart::put_part).post(super::multipart::complete),
        )
        .route(
            "/files/{*path}",
            get(download)
                .post(super::cdn::files_post)
                .put(super::cdn::files_put),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::cdn_layer,
        ))
        .layer(middleware::from_fn_with_state(
            (shared.clone(), HostKind::Cdn),
            record,
        ))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// helpers

pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn with_header(mut r: Response, name: &str, value: &str) -> Response {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        r.headers_mut().insert(n, v);
    }
    r
}

pub(crate) fn with_request_id(r: Response, id: &str) -> Response {
    with_header(r, "x-fal-request-id", id)
}

pub(crate) fn detail(status: u16, text: &str) -> Response {
    json_response(status, &json!({ "detail": text }))
}

pub(crate) fn unprocessable(details: &[Detail]) -> Response {
    json_response(422, &validate::detail_body(details))
}

pub(crate) fn failure_response(
    status: u16,
    body: &Value,
    headers: &[(String, String)],
) -> Response {
    let mut r = json_response(status, body);
    for (k, v) in headers {
        r = with_header(r, k, v);
    }
    r
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Parse a JSON object body like FastAPI would, or the 422 to answer.
pub(crate) fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(unprocessable(&[Detail::new(
            vec![json!("body")],
            "field required",
            "value_error.missing",
        )]));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(unprocessable(&[Detail::new(
            vec![json!("body")],
            "value is not a valid dict",
            "type_error.dict",
        )])),
        Err(e) => Err(unprocessable(&[Detail::new(
            vec![json!("body"), json!(e.column())],
            format!("Expecting value: line {} column {}", e.line(), e.column()),
            "value_error.jsondecode",
        )])),
    }
}

/// Validate `x-fal-request-timeout` (a number of seconds > 1).
pub(crate) fn start_timeout(headers: &HeaderMap) -> Result<Option<(String, Duration)>, Response> {
    let Some(raw) = header(headers, "x-fal-request-timeout") else {
        return Ok(None);
    };
    let loc = vec![json!("header"), json!("x-fal-request-timeout")];
    let Ok(secs) = raw.parse::<f64>() else {
        return Err(unprocessable(&[Detail::new(
            loc,
            "value is not a valid float",
            "type_error.float",
        )]));
    };
    if !secs.is_finite() || secs <= 1.0 {
        return Err(unprocessable(&[Detail::new(
            loc,
            "Timeout must be greater than 1 seconds",
            "value_error",
        )]));
    }
    Ok(Some((
        raw.to_owned(),
        Duration::from_secs_f64(secs.min(1e9)),
    )))
}

/// The endpoint of a submit or sync run, or the 404 fal answers for an app it does not serve
/// (a malformed id, or one the mock was told is removed).
pub(crate) fn endpoint_or_404(s: &Shared, path: &str) -> Result<EndpointId, Response> {
    let not_found = || detail(404, &format!("Application '{path}' not found"));
    let endpoint = EndpointId::parse(path).map_err(|_| not_found())?;
    if state::lock(&s.removed).contains(endpoint.as_str()) {
        tracing::debug!(endpoint = %endpoint, "mock: request to a removed endpoint");
        return Err(not_found());
    }
    Ok(endpoint)
}

/// Pop the next injected failure of `endpoint` for a submit or sync run if it is an HTTP
/// failure.
fn take_http_failure(s: &Shared, endpoint: &str) -> Option<Response> {
    take_http_failure_for(s, endpoint, FailureUse::Request)
}

/// Pop the next injected failure of `endpoint` that a request of kind `kind` takes, if it is an
/// HTTP failure, as the answer to send.
pub(crate) fn take_http_failure_for(
    s: &Shared,
    endpoint: &str,
    kind: FailureUse,
) -> Option<Response> {
    let f = s.take_failure_if(endpoint, kind, |f| matches!(f, MockFailure::Http { .. }));
    match f {
        Some(MockFailure::Http {
            status,
            body,
            headers,
        }) => Some(failure_response(status, &body, &headers)),
        _ => None,
    }
}

async fn not_found() -> Response {
    detail(404, "Not Found")
}

// ---------------------------------------------------------------------------------------------
// middleware

/// The query string to record: a `fal_jwt_token` value is replaced by `redacted` (tokens are
/// never stored).
fn recorded_query(query: &str) -> String {
    if !query.contains("fal_jwt_token=") {
        return query.to_owned();
    }
    query
        .split('&')
        .map(|pair| {
            if pair.starts_with("fal_jwt_token=") {
                "fal_jwt_token=redacted"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn record(
    State((s, kind)): State<(Arc<Shared>, HostKind)>,
    req: Request,
    next: Next,
) -> Response {
    s.record(RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(recorded_query),
        authorization_present: req.headers().contains_key(AUTHORIZATION),
        key_sent: req
            .headers()
            .values()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(s.key.as_str()))),
        host_kind: kind,
    });
    next.run(req).await
}

/// Whether `req` may go on without the key: a realtime connection (it authorizes itself, and
/// answers an unauthorized client over the WebSocket), or a streaming run with a valid
/// `fal_jwt_token` for its app (fal's JavaScript client in `connectionMode: "client"`).
fn authorized_without_key(s: &Shared, req: &Request) -> bool {
    let Some(path) = req.uri().path().strip_prefix("/run/") else {
        return false;
    };
    if req.method() == http::Method::GET {
        return super::realtime::realtime_target(path).is_some();
    }
    match (
        req.method() == http::Method::POST,
        super::stream::stream_target(path),
        query_param(req.uri().query(), "fal_jwt_token"),
    ) {
        (true, Some(endpoint), Some(token)) => s.tokens.allows_endpoint(&token, endpoint),
        _ => false,
    }
}

async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Key "))
        .is_some_and(|k| k.trim() == s.key);
    if ok || authorized_without_key(&s, &req) {
        next.run(req).await
    } else {
        detail(401, "Unauthorized")
    }
}

// ---------------------------------------------------------------------------------------------
// queue

async fn submit(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = match endpoint_or_404(&s, &path) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if let Some(r) = take_http_failure(&s, endpoint.as_str()) {
        return r;
    }
    let priority = header(&headers, "x-fal-queue-priority").map(str::to_owned);
    if let Some(p) = &priority {
        if p != "normal" && p != "low" {
            let mut d = Detail::new(
                vec![json!("header"), json!("x-fal-queue-priority")],
                "unexpected value; permitted: 'normal', 'low'",
                "value_error.const",
            );
            d.ctx = Some(json!({"given": p, "permitted": ["normal", "low"]}));
            return unprocessable(&[d]);
        }
    }
    let timeout = match start_timeout(&headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let webhook = query_param(query.as_deref(), "fal_webhook");
    if let Some(w) = &webhook {
        let valid = url::Url::parse(w)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !valid {
            return unprocessable(&[Detail::new(
                vec![json!("query"), json!("fal_webhook")],
                "invalid or missing URL scheme",
                "value_error.url.scheme",
            )]);
        }
    }
    let input = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let object_lifecycle = match output_lifecycle(&headers) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Err(r) = check_queue_length(&s, endpoint.as_str(), query.as_deref()) {
        return r;
    }
    // Taken only once the request is accepted: a rejected one leaves the planned failure queued.
    let injected = s.take_failure(endpoint.as_str());
    let meta = SubmitMeta {
        webhook,
        priority,
        runner_hint: header(&headers, "x-fal-runner-hint").map(str::to_owned),
        request_timeout: timeout.as_ref().map(|t| t.0.clone()),
        start_deadline: timeout.map(|t| t.1),
        object_lifecycle,
        platform: PlatformHeaders::from_headers(&headers),
    };
    let job = s.submit(&endpoint, input, meta, injected);
    let view = s.observe(&job);
    let mut body = s.status_json(&job, &view, None);
    if let Value::Object(o) = &mut body {
        // Submit always answers IN_QUEUE (with position 0 when the queue time is zero).
        let position = match view.phase {
            Phase::InQueue { position } => position,
            _ => 0,
        };
        o.insert("status".into(), json!("IN_QUEUE"));
        o.insert("queue_position".into(), json!(position));
        o.remove("logs");
        o.remove("metrics");
        o.remove("error");
        o.remove("error_type");
        o.insert("gateway_request_id".into(), json!(job.id));
    }
    with_request_id(json_response(200, &body), &job.id)
}

/// `fal_max_queue_length=N` of a submit: `429 {"detail": ...}` when more than `N` requests of
/// `endpoint` are waiting (`IN_QUEUE`); 422 when `N` is not a whole number.
fn check_queue_length(s: &Shared, endpoint: &str, query: Option<&str>) -> Result<(), Response> {
    let Some(raw) = query_param(query, "fal_max_queue_length") else {
        return Ok(());
    };
    let Ok(max) = raw.trim().parse::<usize>() else {
        return Err(unprocessable(&[Detail::new(
            vec![json!("query"), json!("fal_max_queue_length")],
            "value is not a valid integer",
            "type_error.integer",
        )]));
    };
    let waiting = s.waiting(endpoint);
    if waiting > max {
        tracing::debug!(%endpoint, waiting, max, "mock: submit refused, the queue is too long");
        return Err(detail(
            429,
            &format!(
                "Queue length exceeded: {waiting} requests are waiting for {endpoint} \
                 (fal_max_queue_length={max})"
            ),
        ));
    }
    Ok(())
}

/// A successful result or run answer, with `x-fal-billable-units` when the endpoint has a
/// price.
pub(crate) fn billed_response(endpoint: &str, output: &Value) -> Response {
    let r = json_response(200, output);
    match billing::billable_units(endpoint, output) {
        Some(units) => with_header(r, "x-fal-billable-units", &billing::format_units(units)),
        None => r,
    }
}

/// A `/queue/...` path naming a request: `{app}/requests/{id}[/status[/stream]|/cancel]`.
#[derive(Debug, PartialEq, Eq)]
enum RequestRoute {
    Result,
    Status,
    Stream,
    Cancel,
}

fn parse_request_path(path: &str) -> Option<(String, String, RequestRoute)> {
    let seg: Vec<&str> = path.split('/').collect();
    let n = seg.len();
    let (k, route) =
        if n >= 5 && seg[n - 4] == "requests" && seg[n - 2] == "status" && seg[n - 1] == "stream" {
            (n - 4, RequestRoute::Stream)
        } else if n >= 4 && seg[n - 3] == "requests" && seg[n - 1] == "status" {
            (n - 3, RequestRoute::Status)
        } else if n >= 4 && seg[n - 3] == "requests" && seg[n - 1] == "cancel" {
            (n - 3, RequestRoute::Cancel)
        } else if n >= 3 && seg[n - 2] == "requests" {
            (n - 2, RequestRoute::Result)
        } else {
            return None;
        };
    let app = seg[..k].join("/");
    let id = seg[k + 1];
    (!app.is_empty() && !id.is_empty()).then(|| (app, id.to_owned(), route))
}

/// `logs` query: `1/0/true/false` (and pydantic's other boolean spellings).
fn logs_flag(query: Option<&str>) -> Result<bool, Response> {
    match query_param(query, "logs")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("0" | "false" | "no" | "off" | "f" | "n") => Ok(false),
        Some("1" | "true" | "yes" | "on" | "t" | "y") => Ok(true),
        Some(_) => Err(unprocessable(&[Detail::new(
            vec![json!("query"), json!("logs")],
            "value could not be parsed to a boolean",
            "type_error.bool",
        )])),
    }
}

async fn queue_get(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((app, id, route)) = parse_request_path(&path) else {
        return detail(404, "Not Found");
    };
    let job = match s.job(&id) {
        Some(j) if j.app_id == app => j,
        _ => return detail(404, "Request not found"),
    };
    match route {
        RequestRoute::Status => {
            let with_logs = match logs_flag(query.as_deref()) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let view = s.observe(&job);
            let logs = with_logs.then(|| 0..view.logs());
            let code = if view.phase == Phase::Completed {
                200
            } else {
                202
            };
            with_request_id(
                json_response(code, &s.status_json(&job, &view, logs)),
                &job.id,
            )
        }
        RequestRoute::Stream => match logs_flag(query.as_deref()) {
            Ok(with_logs) => status_stream(s, job, with_logs),
            Err(r) => r,
        },
        RequestRoute::Result => {
            let view = s.observe(&job);
            let r = match view.completion.as_deref().map(|c| &c.outcome) {
                Some(Outcome::Ok(out)) => billed_response(&job.endpoint, out),
                Some(Outcome::Failed(f)) => failure_response(f.http_status, &f.body, &f.headers),
                None => detail(400, "Request is still in progress"),
            };
            with_request_id(r, &job.id)
        }
        RequestRoute::Cancel => detail(405, "Method Not Allowed"),
    }
}

async fn queue_put(State(s): State<Arc<Shared>>, Path(path): Path<String>) -> Response {
    let Some((app, id, RequestRoute::Cancel)) = parse_request_path(&path) else {
        return detail(405, "Method Not Allowed");
    };
    let job = match s.job(&id) {
        Some(j) if j.app_id == app => j,
        _ => return json_response(404, &json!({"status": "NOT_FOUND"})),
    };
    let r = match s.cancel(&job) {
        Ok(()) => json_response(202, &json!({"status": "CANCELLATION_REQUESTED"})),
        Err(()) => json_response(400, &json!({"status": "ALREADY_COMPLETED"})),
    };
    with_request_id(r, &job.id)
}

/// `text/event-stream` of status events: one at once, then one per change, closed after
/// `COMPLETED`. With `logs=1` each event carries the log lines that are new since the previous
/// event (fal-js accumulates them across events).
fn status_stream(s: Arc<Shared>, job: Arc<state::Job>, with_logs: bool) -> Response {
    struct St {
        s: Arc<Shared>,
        job: Arc<state::Job>,
        with_logs: bool,
        sent_logs: usize,
        last: Option<Phase>,
        done: bool,
        shutdown: tokio::sync::watch::Receiver<bool>,
    }
    let id = job.id.clone();
    let st = St {
        shutdown: s.shutdown.clone(),
        s,
        job,
        with_logs,
        sent_logs: 0,
        last: None,
        done: false,
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if *st.shutdown.borrow() {
                return None;
            }
            let view = st.s.observe(&st.job);
            let logs_now = view.logs();
            if st.last.as_ref() != Some(&view.phase) || (st.with_logs && logs_now > st.sent_logs) {
                let logs = st.with_logs.then_some(st.sent_logs..logs_now);
                let body = st.s.status_json(&st.job, &view, logs);
                st.sent_logs = logs_now;
                st.done = view.phase == Phase::Completed;
                st.last = Some(view.phase);
                let event = Bytes::from(format!("data: {body}\n\n"));
                return Some((Ok::<_, Infallible>(event), st));
            }
            let now = tokio::time::Instant::now();
            let wait = view
                .next_change
                .map_or(STREAM_TICK, |t| t.saturating_duration_since(now))
                .clamp(Duration::from_millis(1), STREAM_TICK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = st.shutdown.changed() => if r.is_err() { return None },
            }
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_request_id(r, &id)
}

// ---------------------------------------------------------------------------------------------
// sync run

/// `GET /run/...`: a realtime connection (`.../realtime`), else 405.
async fn run_get(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match super::realtime::realtime_target(&path) {
        Some(endpoint) => {
            super::realtime::connect(s, endpoint, query.as_deref(), &headers, upgrade).await
        }
        None => detail(405, "Method Not Allowed"),
    }
}

async fn run(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(endpoint) = super::stream::stream_target(&path) {
        return super::stream::stream(s, endpoint, &headers, &body).await;
    }
    let endpoint = match endpoint_or_404(&s, &path) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let request_id = media::uuid();
    if let Some(r) = take_http_failure(&s, endpoint.as_str()) {
        return r;
    }
    if let Err(r) = start_timeout(&headers) {
        return with_request_id(r, &request_id);
    }
    let lifecycle = match output_lifecycle(&headers) {
        Ok(l) => l,
        Err(r) => return with_request_id(r, &request_id),
    };
    let input = match parse_body(&body) {
        Ok(m) => m,
        Err(r) => return with_request_id(r, &request_id),
    };
    *state::lock(&s.runs)
        .entry(endpoint.as_str().to_owned())
        .or_default() += 1;
    let endpoint = endpoint.as_str();
    s.platform.begin(
        &request_id,
        endpoint,
        CallKind::Run,
        &input,
        PlatformHeaders::from_headers(&headers),
    );
    // The answer, and what the Platform API records of it (status, output or error body).
    let (r, status, recorded) = match s.take_failure(endpoint) {
        Some(MockFailure::Validation(fields)) => {
            let details: Vec<Detail> = fields
                .iter()
                .map(|(f, m, t)| Detail::new(vec![json!("body"), json!(f)], m, t))
                .collect();
            (
                unprocessable(&details),
                422,
                validate::detail_body(&details),
            )
        }
        Some(MockFailure::CompletedWithError { error, error_type }) => {
            let f = state::Failure::request_error(
                state::status_for_error_type(&error_type),
                &error,
                &error_type,
            );
            (
                failure_response(f.http_status, &f.body, &f.headers),
                f.http_status,
                f.body,
            )
        }
        _ => match s.check_input(endpoint, &input) {
            Err(details) => (
                unprocessable(&details),
                422,
                validate::detail_body(&details),
            ),
            Ok(()) => {
                let processing = s.timing().processing_time;
                let mut shutdown = s.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(processing) => {}
                    _ = shutdown.changed() => {
                        let body = json!({"detail": "Service shutting down"});
                        s.platform.finish(&request_id, 503, Some(body));
                        return detail(503, "Service shutting down");
                    }
                }
                let output = s.produce(endpoint, &request_id, &input, processing);
                super::cdn::record_outputs(&s, &output, lifecycle.as_ref());
                (billed_response(endpoint, &output), 200, output)
            }
        },
    };
    s.platform.finish(&request_id, status, Some(recorded));
    with_request_id(r, &request_id)
}

// ---------------------------------------------------------------------------------------------
// storage

/// The `x-fal-object-lifecycle-preference` of a submit or run, checked (422 naming the header
/// when it is not fal's shape).
pub(crate) fn output_lifecycle(headers: &HeaderMap) -> Result<Option<Value>, Response> {
    super::cdn::lifecycle_of(headers, &[super::cdn::LIFECYCLE_PREFERENCE]).map_err(|m| {
        unprocessable(&[Detail::new(
            vec![json!("header"), json!(super::cdn::LIFECYCLE_PREFERENCE)],
            &m,
            "value_error",
        )])
    })
}

/// What both initiate routes start with: the body read like FastAPI would, a new upload token,
/// the file's path (its lifecycle recorded from the headers).
pub(crate) struct Initiated {
    pub(crate) token: String,
    pub(crate) content_type: String,
    pub(crate) file_path: String,
}

/// The start of `POST /rest/storage/upload/initiate[-multipart]`, or the answer to refuse it.
pub(crate) fn initiated(
    s: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Initiated, Response> {
    let req = parse_body(body)?;
    let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let content_type = text("content_type")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let token = media::uuid();
    let file_path = state::file_path(&token, text("file_name").unwrap_or("upload.bin"));
    super::cdn::record_upload(s, &file_path, headers)?;
    Ok(Initiated {
        token,
        content_type,
        file_path,
    })
}

async fn initiate(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Initiated {
        token,
        content_type,
        file_path,
    } = match initiated(&s, &headers, &body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let cdn = s.cdn_base.trim_end_matches('/');
    let answer = json!({
        "upload_url": format!("{cdn}/upload/{token}"),
        "file_url": format!("{cdn}{file_path}"),
    });
    state::lock(&s.uploads).insert(
        token,
        UploadSlot {
            file_path,
            content_type,
        },
    );
    json_response(200, &answer)
}

async fn upload(
    State(s): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slot) = state::lock(&s.uploads).get(&token).cloned() else {
        return detail(404, "Not Found");
    };
    let content_type = header(&headers, CONTENT_TYPE.as_str())
        .filter(|c| !c.is_empty())
        .map_or(slot.content_type, str::to_owned);
    tracing::debug!(path = %slot.file_path, bytes = body.len(), "mock: upload stored");
    state::lock(&s.files).insert(
        slot.file_path,
        state::StoredFile::Bytes {
            content_type,
            data: body,
        },
    );
    StatusCode::OK.into_response()
}

async fn download(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let found = if s.is_lazy(&path) {
        let s2 = Arc::clone(&s);
        tokio::task::spawn_blocking(move || s2.file(&path))
            .await
            .ok()
            .flatten()
    } else {
        s.file(&path)
    };
    match found {
        Some((ct, data)) => {
            let mut r = Response::new(Body::from(data));
            r = with_header(r, CONTENT_TYPE.as_str(), &ct);
            r
        }
        None => detail(404, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths() {
        assert_eq!(
            parse_request_path("fal-ai/flux-pro/requests/abc/status"),
            Some(("fal-ai/flux-pro".into(), "abc".into(), RequestRoute::Status))
        );
        assert_eq!(
            parse_request_path("workflows/o/a/requests/abc/status/stream"),
            Some(("workflows/o/a".into(), "abc".into(), RequestRoute::Stream))
        );
        assert_eq!(
            parse_request_path("fal-ai/flux-pro/v1.1-ultra-finetuned/requests/abc"),
            Some((
                "fal-ai/flux-pro/v1.1-ultra-finetuned".into(),
                "abc".into(),
                RequestRoute::Result
            ))
        );
        assert_eq!(
            parse_request_path("a/b/requests/x/cancel"),
            Some(("a/b".into(), "x".into(), RequestRoute::Cancel))
        );
        assert_eq!(parse_request_path("a/b"), None);
        assert_eq!(parse_request_path("requests/x"), None);
    }
}
