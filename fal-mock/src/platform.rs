//! fal's Platform API (`https://api.fal.ai/v1`, fal's OpenAPI document "Platform APIs" v1) under
//! `/v1` on the API server: model search, pricing and estimates, usage, the request listing and
//! payload deletion, from what the mock actually ran.
//!
//! Errors answer fal's Platform error body `{"error": {"type", "message"}}` (`type` one of
//! `authorization_error`, `validation_error`, `not_found`, `rate_limited`, `server_error`,
//! `not_implemented`), not the model API's `{"detail": ...}`.

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::billing::{self, PlatformHeaders, Price, CURRENCY};
use super::realtime::REALTIME_APPS;
use super::routes::json_response;
use super::state::{lock, Outcome, Shared};
use super::validate::{self, ModelKind};
use super::{media, FalMock};

/// How long an `Idempotency-Key`'s answer is kept (fal: 10 minutes).
pub(crate) const IDEMPOTENCY_TTL: Duration = Duration::from_secs(600);
/// `limit` of `GET /v1/models` and `GET /v1/models/usage` when not given (fal's document gives
/// no default there).
const DEFAULT_LIMIT: usize = 20;
/// `limit` of `GET /v1/models/requests/by-endpoint` when not given, and its maximum.
const REQUESTS_LIMIT: (usize, usize) = (50, 100);
/// Most values of a multi-value parameter (`endpoint_id`).
const MAX_IDS: usize = 50;
/// `updated_at` / `date` of a model whose document has none.
const UNDATED: &str = "2025-01-01T00:00:00.000Z";
/// `thumbnail_url` of a model whose document has none.
const NO_THUMBNAIL: &str = "https://fal.media/files/fal-mock/thumbnail.jpg";

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The metadata fields of fal's `Model` schema (nothing else is answered).
const METADATA_FIELDS: [&str; 21] = [
    "display_name",
    "category",
    "description",
    "status",
    "tags",
    "updated_at",
    "is_favorited",
    "thumbnail_url",
    "thumbnail_animated_url",
    "model_url",
    "github_url",
    "license_type",
    "date",
    "group",
    "highlighted",
    "kind",
    "training_endpoint_ids",
    "inference_endpoint_ids",
    "stream_url",
    "duration_estimate",
    "pinned",
];

/// How a sync run or a streaming run was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// `POST /run/{endpoint}`.
    Run,
    /// `POST /run/{endpoint}/stream`.
    Stream,
}

/// A sync run or a streaming run (queue jobs are in [`Shared::jobs`]).
pub(crate) struct Call {
    id: String,
    endpoint: String,
    kind: CallKind,
    input: Map<String, Value>,
    headers: PlatformHeaders,
    sent: SystemTime,
    end: Mutex<Option<CallEnd>>,
}

#[derive(Debug, Clone)]
struct CallEnd {
    at: SystemTime,
    status: u16,
    output: Option<Value>,
}

/// An `Idempotency-Key`'s cached answer.
struct Cached {
    until: Instant,
    body: Value,
}

/// What the Platform API keeps: sync and streaming runs, payload deletions, idempotency keys.
pub(crate) struct Platform {
    calls: Mutex<HashMap<String, Arc<Call>>>,
    deletions: Mutex<HashMap<String, usize>>,
    idempotency: Mutex<HashMap<String, Cached>>,
}

impl Platform {
    pub(crate) fn new() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            deletions: Mutex::new(HashMap::new()),
            idempotency: Mutex::new(HashMap::new()),
        }
    }

    /// Record an accepted sync or streaming run.
    pub(crate) fn begin(
        &self,
        id: &str,
        endpoint: &str,
        kind: CallKind,
        input: &Map<String, Value>,
        headers: PlatformHeaders,
    ) {
        let call = Call {
            id: id.to_owned(),
            endpoint: endpoint.to_owned(),
            kind,
            input: input.clone(),
            headers,
            sent: SystemTime::now(),
            end: Mutex::new(None),
        };
        lock(&self.calls).insert(id.to_owned(), Arc::new(call));
    }

    /// Record how a run ended (its answer's status and, for a success, its output; for a
    /// failure, the error body). Only the first end counts.
    pub(crate) fn finish(&self, id: &str, status: u16, output: Option<Value>) {
        let Some(call) = lock(&self.calls).get(id).cloned() else {
            return;
        };
        let mut end = lock(&call.end);
        if end.is_none() {
            tracing::debug!(request_id = %id, kind = ?call.kind, status, "mock: run ended");
            *end = Some(CallEnd {
                at: SystemTime::now(),
                status,
                output,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// every request the mock ran, seen alike

/// A queue job, sync run or streaming run as the Platform API shows it.
struct Req {
    id: String,
    endpoint: String,
    sent: SystemTime,
    started: SystemTime,
    ended: Option<SystemTime>,
    status: Option<u16>,
    input: Value,
    /// The output of a success, the error body of a failure.
    output: Option<Value>,
    store_io: bool,
}

impl Req {
    /// Total duration (sent to ended), in seconds.
    fn duration(&self) -> Option<f64> {
        let ended = self.ended?;
        let d = ended.duration_since(self.sent).unwrap_or_default();
        Some(billing::round_to(d.as_secs_f64(), 3))
    }

    /// The units billed and the price, for a successful request of a priced endpoint.
    fn billed(&self) -> Option<(f64, &'static Price)> {
        if self.status != Some(200) {
            return None;
        }
        let units = billing::billable_units(&self.endpoint, self.output.as_ref()?)?;
        Some((units, billing::price_of(&self.endpoint)?))
    }
}

/// Every queue job (completed first if its time has come) and every sync or streaming run.
fn all_requests(s: &Shared) -> Vec<Req> {
    let jobs: Vec<_> = lock(&s.jobs).values().cloned().collect();
    let calls: Vec<_> = lock(&s.platform.calls).values().cloned().collect();
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(jobs.len() + calls.len());
    for job in jobs {
        let view = s.observe(&job);
        let completion = view.completion.as_deref();
        let ended = completion.map(|c| c.at);
        let queue_end = job.submitted_wall + job.timing.queue_time;
        let started = match ended {
            Some(e) => queue_end.min(e),
            None if now >= queue_end => queue_end,
            None => job.submitted_wall,
        };
        let (status, output) = match completion.map(|c| &c.outcome) {
            Some(Outcome::Ok(v)) => (Some(200), Some(v.clone())),
            Some(Outcome::Failed(f)) => (Some(f.http_status), Some(f.body.clone())),
            None => (None, None),
        };
        out.push(Req {
            id: job.id.clone(),
            endpoint: job.endpoint.clone(),
            sent: job.submitted_wall,
            started,
            ended,
            status,
            input: Value::Object(job.input.clone()),
            output,
            store_io: job.platform.store_io,
        });
    }
    for call in calls {
        let end = lock(&call.end).clone();
        out.push(Req {
            id: call.id.clone(),
            endpoint: call.endpoint.clone(),
            sent: call.sent,
            started: call.sent,
            ended: end.as_ref().map(|e| e.at),
            status: end.as_ref().map(|e| e.status),
            input: Value::Object(call.input.clone()),
            output: end.and_then(|e| e.output),
            store_io: call.headers.store_io,
        });
    }
    out
}

fn find_request(s: &Shared, id: &str) -> Option<Req> {
    all_requests(s).into_iter().find(|r| r.id == id)
}

// ---------------------------------------------------------------------------------------------
// router and helpers

/// The Platform API routes, to nest under `/v1` (with their own auth: fal's error body).
pub(crate) fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/models", get(models))
        .route("/models/pricing", get(pricing))
        .route("/models/pricing/estimate", post(estimate))
        .route("/models/usage", get(usage))
        .route("/models/requests/by-endpoint", get(by_endpoint))
        .route(
            "/models/requests/{request_id}/payloads",
            delete(delete_payloads),
        )
        .route("/meta", get(meta))
        .route("/models/analytics", get(not_implemented))
        .route("/models/billing-events", get(not_implemented))
        .route("/models/requests/search", get(not_implemented))
        .route(
            "/storage/settings",
            get(not_implemented).put(not_implemented),
        )
        .route(
            "/storage/files/acl",
            get(not_implemented).put(not_implemented),
        )
        .route("/storage/files/sign", post(not_implemented))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared, auth))
}

/// fal's Platform error answer.
fn error(status: u16, kind: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"type": kind, "message": message}}),
    )
}

fn invalid(message: &str) -> Response {
    error(400, "validation_error", message)
}

async fn not_found() -> Response {
    error(404, "not_found", "Resource not found")
}

async fn method_not_allowed() -> Response {
    error(405, "validation_error", "Method not allowed")
}

async fn not_implemented(req: Request) -> Response {
    error(
        404,
        "not_implemented",
        &format!(
            "fal-mock does not implement {} /v1{}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// `Authorization: Key <key>`, optional for `GET /models` and `GET /meta` (a wrong key is
/// still refused).
async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let given = req.headers().get(AUTHORIZATION);
    let ok = given
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Key "))
        .is_some_and(|k| k.trim() == s.key);
    let path = req.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let public = req.method() == Method::GET && matches!(path, "/models" | "/meta");
    if ok || (public && given.is_none()) {
        next.run(req).await
    } else if given.is_none() {
        error(401, "authorization_error", "Authentication required")
    } else {
        error(401, "authorization_error", "Invalid API key")
    }
}

/// Every value of a multi-value parameter: repeated, comma-separated, or both.
fn values(query: Option<&str>, name: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The last value of a single-value parameter (empty ones ignored).
fn single(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, v)| k == name && !v.trim().is_empty())
        .last()
        .map(|(_, v)| v.trim().to_owned())
}

/// The `endpoint_id` values (1 to 50), or the 400; `None` when absent and not `required`.
fn endpoint_ids(query: Option<&str>, required: bool) -> Result<Option<Vec<String>>, Response> {
    let ids = values(query, "endpoint_id");
    if ids.is_empty() {
        return if required {
            Err(invalid("endpoint_id is required (1 to 50 endpoint ids)"))
        } else {
            Ok(None)
        };
    }
    if ids.len() > MAX_IDS {
        return Err(invalid(&format!(
            "endpoint_id accepts at most {MAX_IDS} values, got {}",
            ids.len()
        )));
    }
    Ok(Some(ids))
}

/// `limit`: an integer ≥ 1 (and ≤ `max` when there is one).
fn limit(query: Option<&str>, default: usize, max: Option<usize>) -> Result<usize, Response> {
    let Some(raw) = single(query, "limit") else {
        return Ok(default);
    };
    let n = raw
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| invalid(&format!("limit must be an integer >= 1, got {raw:?}")))?;
    match max {
        Some(m) if n > m => Err(invalid(&format!("limit must be at most {m}, got {n}"))),
        _ => Ok(n),
    }
}

/// `cursor`: base64 of the offset of the page's first item (`0` without a cursor).
fn cursor(query: Option<&str>) -> Result<usize, Response> {
    let Some(raw) = single(query, "cursor") else {
        return Ok(0);
    };
    base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.parse::<usize>().ok())
        .ok_or_else(|| invalid(&format!("cursor {raw:?} is not a cursor this API gave")))
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(offset.to_string())
}

/// The page of `items` at `offset`, with `next_cursor` and `has_more`.
fn page<T>(items: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, Value, bool) {
    let total = items.len();
    let end = offset.saturating_add(limit).min(total);
    let page: Vec<T> = items
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    if end < total {
        (page, json!(encode_cursor(end)), true)
    } else {
        (page, Value::Null, false)
    }
}

/// Values of `expand`, each one of `allowed`.
fn expand(query: Option<&str>, allowed: &[&str]) -> Result<Vec<String>, Response> {
    let given = values(query, "expand");
    match given.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(bad) => Err(invalid(&format!(
            "expand {bad:?} is not one of {}",
            allowed.join(", ")
        ))),
        None => Ok(given),
    }
}

/// Whether `s` looks like a UUID (`8-4-4-4-12` hex digits).
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------------------
// time

fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// RFC 3339 UTC with milliseconds (`2026-01-28T12:34:56.789Z`).
fn iso(t: SystemTime) -> String {
    media::rfc3339(t)
}

fn iso_ms(ms: i64) -> String {
    iso(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `start`/`end`: an ISO 8601 date-time (a time without offset is UTC) or `YYYY-MM-DD`
/// (midnight UTC), as milliseconds since the epoch.
fn parse_time(name: &str, raw: &str) -> Result<i64, Response> {
    let bad = || {
        invalid(&format!(
            "{name} must be an ISO 8601 date-time or YYYY-MM-DD, got {raw:?}"
        ))
    };
    let b = raw.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let num = |r: std::ops::Range<usize>| raw.get(r).and_then(|t| t.parse::<u32>().ok());
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(bad());
        };
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(bad());
        }
        return Ok(days_from_civil(i64::from(y), m, d) * DAY_MS);
    }
    let rfc = &time::format_description::well_known::Rfc3339;
    // A `+` of an offset not percent-encoded in the query arrives as a space.
    let fixed = raw.replace(' ', "+");
    [fixed.clone(), format!("{fixed}Z")]
        .iter()
        .find_map(|t| time::OffsetDateTime::parse(t, rfc).ok())
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .ok_or_else(bad)
}

/// A time range of a query: `[start, end)` in milliseconds since the epoch.
fn time_range(
    query: Option<&str>,
    now: SystemTime,
    default_span: Duration,
) -> Result<(i64, i64), Response> {
    let end = match single(query, "end") {
        Some(raw) => parse_time("end", &raw)?,
        None => to_ms(now),
    };
    let start = match single(query, "start") {
        Some(raw) => parse_time("start", &raw)?,
        None => to_ms(now) - i64::try_from(default_span.as_millis()).unwrap_or(0),
    };
    if start >= end {
        return Err(invalid("start must be before end"));
    }
    Ok((start, end))
}

/// A `timeframe` of the usage time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeframe {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Timeframe {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            _ => return None,
        })
    }

    /// fal's automatic choice: minute (< 2 h), hour (< 2 d), day (< 64 d), week (< 183 d),
    /// month.
    fn auto(span_ms: i64) -> Self {
        if span_ms < 2 * HOUR_MS {
            Self::Minute
        } else if span_ms < 2 * DAY_MS {
            Self::Hour
        } else if span_ms < 64 * DAY_MS {
            Self::Day
        } else if span_ms < 183 * DAY_MS {
            Self::Week
        } else {
            Self::Month
        }
    }

    /// The start of the bucket holding `ms` (UTC; weeks start on Monday).
    fn floor(self, ms: i64) -> i64 {
        let step = |unit: i64| ms.div_euclid(unit) * unit;
        match self {
            Self::Minute => step(MINUTE_MS),
            Self::Hour => step(HOUR_MS),
            Self::Day => step(DAY_MS),
            Self::Week => {
                let days = ms.div_euclid(DAY_MS);
                // 1970-01-01 was a Thursday: 3 days after a Monday.
                (days - (days + 3).rem_euclid(7)) * DAY_MS
            }
            Self::Month => {
                let (y, m, _) = media::civil_from_days(ms.div_euclid(DAY_MS));
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// The start of the bucket after the one starting at `floor`.
    fn next(self, floor: i64) -> i64 {
        match self {
            Self::Minute => floor + MINUTE_MS,
            Self::Hour => floor + HOUR_MS,
            Self::Day => floor + DAY_MS,
            Self::Week => floor + 7 * DAY_MS,
            Self::Month => {
                let (y, m, _) = media::civil_from_days(floor.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

/// A bucket's timestamp: ISO 8601 with the (UTC) offset, e.g. `2025-01-15T00:00:00+00:00`.
fn bucket_label(ms: i64) -> String {
    let t = iso_ms(ms);
    format!("{}+00:00", t.get(..19).unwrap_or(&t))
}

// ---------------------------------------------------------------------------------------------
// GET /models

/// One model of the catalogue.
struct Entry {
    endpoint_id: String,
    metadata: Map<String, Value>,
    openapi: Option<&'static Value>,
}

/// Every endpoint the mock knows, sorted by id: the documented trainers and generators, and
/// the realtime apps.
fn catalogue(s: &Shared, authed: bool) -> Vec<Entry> {
    let run = format!("{}run/", s.api_base);
    let deprecated = |id: &str| fal_client::models::deprecation(id).is_some();
    let mut out: Vec<Entry> = validate::models()
        .iter()
        .map(|m| {
            let training = !matches!(m.kind, ModelKind::Generator { .. });
            Entry {
                endpoint_id: m.endpoint_id.clone(),
                metadata: metadata(
                    &m.endpoint_id,
                    &m.metadata,
                    training,
                    deprecated(&m.endpoint_id),
                    authed,
                    &run,
                ),
                openapi: Some(m.openapi()),
            }
        })
        .collect();
    for id in REALTIME_APPS {
        let alias = id.rsplit('/').next().unwrap_or(id);
        let name: Vec<String> = alias
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            })
            .collect();
        let doc = json!({
            "display_name": name.join(" "),
            "description": "Realtime text-to-image over WebSocket (fal-mock's realtime app).",
            "tags": ["realtime"],
        });
        out.push(Entry {
            endpoint_id: id.to_owned(),
            metadata: metadata(id, &doc, false, false, authed, &run),
            openapi: None,
        });
    }
    out.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    out
}

/// A model's metadata: fal's from the document (only the schema's fields), the required ones
/// filled in, `category`/`kind`/`status` from what the mock knows, URLs pointing at the mock.
fn metadata(
    id: &str,
    doc: &Value,
    training: bool,
    deprecated: bool,
    authed: bool,
    run: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(o) = doc.as_object() {
        for k in METADATA_FIELDS {
            if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
                m.insert(k.to_owned(), v.clone());
            }
        }
    }
    let mut default = |k: &str, v: Value| {
        m.entry(k.to_owned()).or_insert(v);
    };
    default("display_name", json!(id));
    default("description", json!(""));
    default("tags", json!([]));
    default("updated_at", json!(UNDATED));
    default("thumbnail_url", json!(NO_THUMBNAIL));
    default("date", json!(UNDATED));
    let status = if deprecated {
        "deprecated"
    } else {
        match m.get("status").and_then(Value::as_str) {
            Some("deprecated") => "deprecated",
            _ => "active",
        }
    };
    let (category, kind) = if training {
        ("training", "training")
    } else {
        ("text-to-image", "inference")
    };
    m.insert("category".into(), json!(category));
    m.insert("kind".into(), json!(kind));
    m.insert("status".into(), json!(status));
    m.insert(
        "is_favorited".into(),
        if authed { json!(false) } else { Value::Null },
    );
    m.insert("model_url".into(), json!(format!("{run}{id}")));
    if m.contains_key("stream_url") {
        m.insert("stream_url".into(), json!(format!("{run}{id}/stream")));
    }
    m.insert("highlighted".into(), json!(false));
    m.insert("pinned".into(), json!(false));
    m
}

async fn models(
    State(s): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = query.as_deref();
    let run = || -> Result<Value, Response> {
        let ids = endpoint_ids(q, false)?;
        let text = single(q, "q").map(|t| t.to_lowercase());
        let category = single(q, "category").map(|c| c.to_lowercase());
        let status = single(q, "status");
        if let Some(st) = &status {
            if st != "active" && st != "deprecated" {
                return Err(invalid(&format!(
                    "status must be active or deprecated, got {st:?}"
                )));
            }
        }
        let expand = expand(q, &["openapi-3.0", "enterprise_status"])?;
        let limit = limit(q, DEFAULT_LIMIT, None)?;
        let offset = cursor(q)?;
        let authed = headers.contains_key(AUTHORIZATION);
        let field = |e: &Entry, k: &str| {
            e.metadata
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase()
        };
        let found: Vec<Entry> = catalogue(&s, authed)
            .into_iter()
            .filter(|e| ids.as_ref().is_none_or(|ids| ids.contains(&e.endpoint_id)))
            .filter(|e| {
                text.as_ref().is_none_or(|t| {
                    e.endpoint_id.to_lowercase().contains(t) || field(e, "display_name").contains(t)
                })
            })
            .filter(|e| category.as_ref().is_none_or(|c| field(e, "category") == *c))
            .filter(|e| status.as_ref().is_none_or(|st| field(e, "status") == *st))
            .collect();
        let (found, next_cursor, has_more) = page(found, offset, limit);
        let with_openapi = expand.iter().any(|x| x == "openapi-3.0");
        let with_enterprise = expand.iter().any(|x| x == "enterprise_status");
        let models: Vec<Value> = found
            .into_iter()
            .map(|e| {
                let mut o = Map::new();
                o.insert("endpoint_id".into(), json!(e.endpoint_id));
                if with_openapi {
                    let doc = match e.openapi {
                        Some(doc) => doc.clone(),
                        None => json!({"error": {
                            "code": "expansion_failed",
                            "message": format!("No OpenAPI document is available for {}", e.endpoint_id),
                        }}),
                    };
                    o.insert("openapi".into(), doc);
                }
                o.insert("metadata".into(), Value::Object(e.metadata));
                if with_enterprise {
                    o.insert("enterprise_status".into(), json!("ready"));
                }
                Value::Object(o)
            })
            .collect();
        Ok(json!({"models": models, "next_cursor": next_cursor, "has_more": has_more}))
    };
    match run() {
        Ok(body) => json_response(200, &body),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------------
// pricing

fn price_json(p: &Price) -> Value {
    json!({
        "endpoint_id": p.endpoint_id,
        "unit_price": p.unit_price,
        "unit": p.unit,
        "currency": CURRENCY,
    })
}

async fn pricing(RawQuery(query): RawQuery) -> Response {
    let ids = match endpoint_ids(query.as_deref(), true) {
        Ok(ids) => ids.unwrap_or_default(),
        Err(r) => return r,
    };
    let mut prices: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for p in ids.iter().filter_map(|id| billing::price_of(id)) {
        if !seen.contains(&p.endpoint_id) {
            seen.push(p.endpoint_id);
            prices.push(price_json(p));
        }
    }
    json_response(
        200,
        &json!({"prices": prices, "next_cursor": null, "has_more": false}),
    )
}

/// The total of an estimate body, or the message of the 400.
fn estimate_total(body: &Value) -> Result<(String, f64), String> {
    let o = body.as_object().ok_or("the body must be a JSON object")?;
    let kind = o
        .get("estimate_type")
        .and_then(Value::as_str)
        .ok_or("estimate_type is required: historical_api_price or unit_price")?;
    let field = match kind {
        "historical_api_price" => "call_quantity",
        "unit_price" => "unit_quantity",
        other => {
            return Err(format!(
                "estimate_type must be historical_api_price or unit_price, got {other:?}"
            ))
        }
    };
    let endpoints = o
        .get("endpoints")
        .and_then(Value::as_object)
        .ok_or("endpoints is required: an object of endpoint ids")?;
    let mut total = 0.0;
    for (id, e) in endpoints {
        let q = e
            .get(field)
            .ok_or_else(|| format!("endpoints.{id}.{field} is required"))?;
        let quantity = if field == "call_quantity" {
            q.as_u64()
                .filter(|n| *n >= 1)
                .map(|n| n as f64)
                .ok_or_else(|| format!("endpoints.{id}.call_quantity must be an integer >= 1"))?
        } else {
            q.as_f64()
                .filter(|n| *n >= 1e-6 && n.is_finite())
                .ok_or_else(|| {
                    format!("endpoints.{id}.unit_quantity must be a number >= 0.000001")
                })?
        };
        let price = billing::price_of(id).ok_or_else(|| format!("no price for endpoint {id:?}"))?;
        let per = if field == "call_quantity" {
            billing::default_call_units(id).unwrap_or(1.0) * price.unit_price
        } else {
            price.unit_price
        };
        total += per * quantity;
    }
    Ok((kind.to_owned(), billing::round_to(total, 6)))
}

async fn estimate(body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("the body is not JSON: {e}")),
    };
    match estimate_total(&parsed) {
        Ok((kind, total)) => json_response(
            200,
            &json!({"estimate_type": kind, "total_cost": total, "currency": CURRENCY}),
        ),
        Err(m) => invalid(&m),
    }
}

// ---------------------------------------------------------------------------------------------
// usage

/// A usage line item of `quantity` units at `price`.
fn line_item(endpoint: &str, price: &Price, quantity: f64) -> Value {
    let quantity = billing::round_to(quantity, 3);
    let cost = billing::round_to(quantity * price.unit_price, 6);
    json!({
        "endpoint_id": endpoint,
        "unit": price.unit,
        "quantity": quantity,
        "unit_price": price.unit_price,
        "percent_discount": null,
        "cost_subtotal": cost,
        "cost_discount": 0,
        "cost_total": cost,
        "cost": cost,
        "currency": CURRENCY,
    })
}

/// Line items of (endpoint, units) pairs, one per endpoint, by endpoint id.
fn line_items(billed: &[(&str, &'static Price, f64)]) -> Vec<Value> {
    let mut by: BTreeMap<&str, (&'static Price, f64)> = BTreeMap::new();
    for (endpoint, price, units) in billed {
        by.entry(endpoint).or_insert((price, 0.0)).1 += units;
    }
    by.into_iter()
        .map(|(e, (p, q))| line_item(e, p, q))
        .collect()
}

async fn usage(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let q = query.as_deref();
    let run = || -> Result<Value, Response> {
        let now = SystemTime::now();
        let (mut start, mut end) = time_range(q, now, Duration::from_secs(86_400))?;
        let ids = endpoint_ids(q, false)?;
        let expand = expand(
            q,
            &[
                "time_series",
                "summary",
                "auth_method",
                "auth_method_structured",
            ],
        )?;
        let expand = if expand.is_empty() {
            vec!["time_series".to_owned()]
        } else {
            expand
        };
        let series = expand.iter().any(|x| x == "time_series");
        let summary = expand.iter().any(|x| x == "summary");
        if !series && !summary {
            return Err(invalid("expand must include time_series or summary"));
        }
        if let Some(tz) = single(q, "timezone") {
            if !matches!(tz.as_str(), "UTC" | "utc" | "Etc/UTC" | "Z" | "+00:00") {
                return Err(invalid(&format!(
                    "fal-mock buckets in UTC only; timezone {tz:?} is not supported"
                )));
            }
        }
        let timeframe = match single(q, "timeframe") {
            Some(t) => Timeframe::parse(&t).ok_or_else(|| {
                invalid(&format!(
                    "timeframe must be minute, hour, day, week or month, got {t:?}"
                ))
            })?,
            None => Timeframe::auto(end - start),
        };
        match single(q, "bound_to_timeframe").as_deref() {
            None | Some("true") => {
                start = timeframe.floor(start);
                let floor = timeframe.floor(end);
                end = if floor == end {
                    end
                } else {
                    timeframe.next(floor)
                };
            }
            Some("false") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "bound_to_timeframe must be true or false, got {other:?}"
                )))
            }
        }
        let limit = limit(q, DEFAULT_LIMIT, None)?;
        let offset = cursor(q)?;
        let reqs = all_requests(&s);
        let billed: Vec<(i64, &str, &'static Price, f64)> = reqs
            .iter()
            .filter(|r| ids.as_ref().is_none_or(|ids| ids.contains(&r.endpoint)))
            .filter_map(|r| {
                let at = to_ms(r.ended?);
                let (units, price) = r.billed()?;
                (start <= at && at < end).then_some((at, r.endpoint.as_str(), price, units))
            })
            .collect();
        let mut body = Map::new();
        let mut more = (Value::Null, false);
        if series {
            let mut buckets: BTreeMap<i64, Vec<(&str, &'static Price, f64)>> = BTreeMap::new();
            for (at, e, p, u) in &billed {
                buckets
                    .entry(timeframe.floor(*at))
                    .or_default()
                    .push((e, p, *u));
            }
            let all: Vec<Value> = buckets
                .into_iter()
                .map(|(b, items)| json!({"bucket": bucket_label(b), "results": line_items(&items)}))
                .collect();
            let (page, next, has_more) = page(all, offset, limit);
            body.insert("time_series".into(), Value::Array(page));
            more = (next, has_more);
        }
        if summary && offset == 0 {
            let items: Vec<_> = billed.iter().map(|(_, e, p, u)| (*e, *p, *u)).collect();
            body.insert("summary".into(), Value::Array(line_items(&items)));
        }
        body.insert("next_cursor".into(), more.0);
        body.insert("has_more".into(), json!(more.1));
        Ok(Value::Object(body))
    };
    match run() {
        Ok(body) => json_response(200, &body),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------------
// requests

/// Whether a status code is in a `status` filter class.
fn status_class(code: Option<u16>, class: &str) -> bool {
    match (code, class) {
        (Some(c), "success") => (200..300).contains(&c),
        (Some(c), "user_error") => (400..500).contains(&c),
        (Some(c), "error") => c >= 500,
        _ => false,
    }
}

async fn by_endpoint(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let q = query.as_deref();
    let run = || -> Result<Value, Response> {
        let ids = endpoint_ids(q, true)?.unwrap_or_default();
        let limit = limit(q, REQUESTS_LIMIT.0, Some(REQUESTS_LIMIT.1))?;
        let offset = cursor(q)?;
        let request_id = single(q, "request_id");
        if let Some(id) = &request_id {
            if !is_uuid(id) {
                return Err(invalid(&format!("request_id must be a UUID, got {id:?}")));
            }
        }
        let span = if request_id.is_some() { 90 } else { 1 };
        let (start, end) = time_range(q, SystemTime::now(), Duration::from_secs(span * 86_400))?;
        let status = single(q, "status");
        if let Some(st) = &status {
            if !matches!(st.as_str(), "success" | "error" | "user_error") {
                return Err(invalid(&format!(
                    "status must be success, error or user_error, got {st:?}"
                )));
            }
        }
        let by_duration = match single(q, "sort_by").as_deref() {
            None | Some("ended_at") => false,
            Some("duration") => true,
            Some(other) => {
                return Err(invalid(&format!(
                    "sort_by must be ended_at or duration, got {other:?}"
                )))
            }
        };
        let payloads = !expand(q, &["payloads"])?.is_empty();
        let deleted = lock(&s.platform.deletions).clone();
        let mut found: Vec<Req> = all_requests(&s)
            .into_iter()
            .filter(|r| ids.contains(&r.endpoint))
            .filter(|r| request_id.as_ref().is_none_or(|id| *id == r.id))
            .filter(|r| status.as_ref().is_none_or(|c| status_class(r.status, c)))
            .filter(|r| (start..end).contains(&to_ms(r.sent)))
            .collect();
        // Newest (or longest) first; requests still running (no end, no duration) first by
        // end, last by duration; ties by the newest submit, then the id.
        found.sort_by(|a, b| {
            let primary = if by_duration {
                match (a.duration(), b.duration()) {
                    (Some(x), Some(y)) => y.total_cmp(&x),
                    (x, y) => x.is_none().cmp(&y.is_none()),
                }
            } else {
                match (a.ended, b.ended) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                }
            };
            primary
                .then_with(|| b.sent.cmp(&a.sent))
                .then_with(|| a.id.cmp(&b.id))
        });
        let (found, next_cursor, has_more) = page(found, offset, limit);
        let items: Vec<Value> = found
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("request_id".into(), json!(r.id));
                o.insert("endpoint_id".into(), json!(r.endpoint));
                o.insert("started_at".into(), json!(iso(r.started)));
                o.insert("sent_at".into(), json!(iso(r.sent)));
                o.insert("ended_at".into(), json!(r.ended.map(iso)));
                o.insert("status_code".into(), json!(r.status));
                o.insert("duration".into(), json!(r.duration()));
                if payloads {
                    let kept = r.store_io && !deleted.contains_key(&r.id);
                    let (input, output) = if kept {
                        (r.input, r.output.unwrap_or(Value::Null))
                    } else {
                        (Value::Null, Value::Null)
                    };
                    o.insert("json_input".into(), input);
                    o.insert("json_output".into(), output);
                }
                Value::Object(o)
            })
            .collect();
        Ok(json!({"items": items, "next_cursor": next_cursor, "has_more": has_more}))
    };
    match run() {
        Ok(body) => json_response(200, &body),
        Err(r) => r,
    }
}

/// The mock CDN files `output` points at, in order, without those `input` points at too.
fn output_files(s: &Shared, output: &Value, input: &Value) -> Vec<String> {
    fn urls(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(u) if !out.contains(u) => out.push(u.clone()),
            Value::Array(a) => a.iter().for_each(|v| urls(v, out)),
            Value::Object(o) => o.values().for_each(|v| urls(v, out)),
            _ => {}
        }
    }
    let (mut outs, mut ins) = (Vec::new(), Vec::new());
    urls(output, &mut outs);
    urls(input, &mut ins);
    outs.into_iter()
        .filter(|u| s.cdn_path(u).is_some() && !ins.contains(u))
        .collect()
}

async fn delete_payloads(
    State(s): State<Arc<Shared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if let Some(k) = &key {
        let mut cache = lock(&s.platform.idempotency);
        let now = Instant::now();
        cache.retain(|_, c| c.until > now);
        if let Some(c) = cache.get(k) {
            tracing::debug!(key = %k, "mock: payload deletion answered from the idempotency cache");
            return json_response(200, &c.body);
        }
    }
    if !is_uuid(&request_id) {
        return invalid(&format!("request_id must be a UUID, got {request_id:?}"));
    }
    let Some(req) = find_request(&s, &request_id) else {
        return error(404, "not_found", &format!("Request {request_id} not found"));
    };
    if req.ended.is_none() {
        return invalid(&format!(
            "Request {request_id} has not finished: its payloads cannot be deleted yet"
        ));
    }
    let links = req
        .output
        .as_ref()
        .map(|o| output_files(&s, o, &req.input))
        .unwrap_or_default();
    let results: Vec<Value> = links
        .into_iter()
        .map(|link| {
            let removed = s
                .cdn_path(&link)
                .is_some_and(|p| lock(&s.files).remove(&p).is_some());
            let exception = if removed {
                Value::Null
            } else {
                json!("File not found")
            };
            json!({"link": link, "exception": exception})
        })
        .collect();
    *lock(&s.platform.deletions)
        .entry(request_id.clone())
        .or_default() += 1;
    tracing::debug!(%request_id, files = results.len(), "mock: request payloads deleted");
    let body = json!({ "cdn_delete_results": results });
    if let Some(k) = key {
        lock(&s.platform.idempotency).insert(
            k,
            Cached {
                until: Instant::now() + IDEMPOTENCY_TTL,
                body: body.clone(),
            },
        );
    }
    json_response(200, &body)
}

async fn meta() -> Response {
    json_response(
        200,
        &json!({"webhook_ip_ranges": ["127.0.0.1/32", "::1/128"]}),
    )
}

// ---------------------------------------------------------------------------------------------
// in-process API

impl FalMock {
    /// The platform headers (`X-Fal-Tags`, `X-Fal-Store-IO`, `X-Fal-No-Retry`,
    /// `X-Fal-Retry-Config`, the fallback switches) of a queue job, sync run or streaming run,
    /// by its request id (the `x-fal-request-id` answer header).
    pub fn platform_headers(&self, request_id: &str) -> Option<PlatformHeaders> {
        if let Some(job) = self.shared.job(request_id) {
            return Some(job.platform.clone());
        }
        lock(&self.shared.platform.calls)
            .get(request_id)
            .map(|c| c.headers.clone())
    }

    /// How many times the payloads of `request_id` were deleted
    /// (`DELETE /v1/models/requests/{request_id}/payloads`), answers from the idempotency cache
    /// not counted.
    pub fn payload_deletions(&self, request_id: &str) -> usize {
        lock(&self.shared.platform.deletions)
            .get(request_id)
            .copied()
            .unwrap_or(0)
    }

    /// The units `request_id` billed (its `x-fal-billable-units`): `None` while it runs, when
    /// it failed, or for an endpoint without a price in [`PRICES`](crate::PRICES).
    pub fn billable_units(&self, request_id: &str) -> Option<f64> {
        find_request(&self.shared, request_id)?
            .billed()
            .map(|(units, _)| units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_bucket() {
        assert_eq!(parse_time("start", "1970-01-02").ok(), Some(DAY_MS));
        assert_eq!(
            parse_time("start", "2025-07-09T00:09:30.123Z").ok(),
            Some(1_752_019_770_123)
        );
        assert_eq!(
            parse_time("start", "2025-07-09T02:09:30.123 02:00").ok(),
            Some(1_752_019_770_123)
        );
        assert_eq!(
            parse_time("start", "2025-07-09T00:09:30.123").ok(),
            Some(1_752_019_770_123)
        );
        assert!(parse_time("start", "yesterday").is_err());
        assert!(parse_time("start", "2025-13-01").is_err());
        let t = 1_752_019_770_123; // 2025-07-09T00:09:30.123Z, a Wednesday
        assert_eq!(
            bucket_label(Timeframe::Hour.floor(t)),
            "2025-07-09T00:00:00+00:00"
        );
        assert_eq!(
            bucket_label(Timeframe::Week.floor(t)),
            "2025-07-07T00:00:00+00:00"
        );
        assert_eq!(
            bucket_label(Timeframe::Month.floor(t)),
            "2025-07-01T00:00:00+00:00"
        );
        let dec = parse_time("x", "2025-12-15").unwrap_or_default();
        assert_eq!(
            bucket_label(Timeframe::Month.next(Timeframe::Month.floor(dec))),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(Timeframe::auto(HOUR_MS), Timeframe::Minute);
        assert_eq!(Timeframe::auto(DAY_MS), Timeframe::Hour);
        assert_eq!(Timeframe::auto(30 * DAY_MS), Timeframe::Day);
        assert_eq!(Timeframe::auto(100 * DAY_MS), Timeframe::Week);
        assert_eq!(Timeframe::auto(400 * DAY_MS), Timeframe::Month);
    }

    #[test]
    fn cursors_and_pages() {
        assert_eq!(encode_cursor(2), "Mg==");
        assert_eq!(cursor(Some("cursor=Mg%3D%3D")).ok(), Some(2));
        assert!(cursor(Some("cursor=nope")).is_err());
        let (p, next, more) = page(vec![1, 2, 3, 4, 5, 6, 7], 3, 3);
        assert_eq!((p, next, more), (vec![4, 5, 6], json!("Ng=="), true));
        let (p, next, more) = page(vec![1, 2, 3, 4, 5, 6, 7], 6, 3);
        assert_eq!((p, next, more), (vec![7], Value::Null, false));
        let (p, _, more) = page(vec![1], 9, 3);
        assert!(p.is_empty() && !more);
    }

    #[test]
    fn multi_values_and_uuids() {
        assert_eq!(
            values(Some("endpoint_id=a,b&endpoint_id=c&x=1"), "endpoint_id"),
            vec!["a", "b", "c"]
        );
        assert!(is_uuid(&media::uuid()));
        assert!(!is_uuid("abc"));
    }

    #[test]
    fn estimates() {
        let hist = json!({"estimate_type": "historical_api_price", "endpoints": {
            "fal-ai/flux-lora-fast-training": {"call_quantity": 2},
            "fal-ai/flux-lora": {"call_quantity": 10},
        }});
        // 2 × 2.0 + 10 × 0.197 MP × 0.035
        assert_eq!(
            estimate_total(&hist).ok(),
            Some(("historical_api_price".into(), 4.06895))
        );
        let unit = json!({"estimate_type": "unit_price", "endpoints": {
            "fal-ai/flux-pro/v1.1-ultra-finetuned": {"unit_quantity": 5},
        }});
        assert_eq!(estimate_total(&unit).ok(), Some(("unit_price".into(), 0.3)));
        for bad in [
            json!([]),
            json!({"estimate_type": "guess", "endpoints": {}}),
            json!({"estimate_type": "unit_price"}),
            json!({"estimate_type": "unit_price", "endpoints": {"fal-ai/flux-lora": {"call_quantity": 1}}}),
            json!({"estimate_type": "historical_api_price", "endpoints": {"fal-ai/flux-lora": {"call_quantity": 0}}}),
            json!({"estimate_type": "historical_api_price", "endpoints": {"fal-ai/flux-lora": {"call_quantity": 1.5}}}),
            json!({"estimate_type": "unit_price", "endpoints": {"someone/unpriced": {"unit_quantity": 1}}}),
        ] {
            assert!(estimate_total(&bad).is_err(), "{bad}");
        }
    }
}
