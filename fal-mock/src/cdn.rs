//! fal's CDN v3 upload flow (fal's Python client's default), and the lifecycle of every file.
//!
//! - `POST /rest/storage/auth/token?storage_type=fal-cdn-v3` (API server, key required) answers
//!   `{"token", "token_type": "Bearer", "base_url": "{cdn}", "expires_at": "<RFC 3339>"}`; the
//!   token is good for [`FalMockBuilder::cdn_token_ttl`] (default one hour).
//! - `POST /files/upload` (CDN server, `Authorization: Bearer <token>`) with the file as the
//!   body, its type in `Content-Type` and its name in `X-Fal-File-Name` (default `upload.bin`)
//!   stores it and answers `{"access_url": "{cdn}/files/{id}/{name}"}`.
//! - Multipart: `POST /files/upload/multipart` (same headers, no body) answers
//!   `{"access_url", "uploadId"}`; `PUT {access_url}/multipart/{uploadId}/{n}` stores part `n`
//!   (1-based) and answers its `ETag` header; `POST {access_url}/multipart/{uploadId}/complete`
//!   with `{"parts": [{"partNumber", "etag"}]}` (any order) assembles the file.
//! - A missing, unknown or expired token answers `401 {"detail": "Invalid or expired token"}`.
//!
//! Uploads of both flows record their `X-Fal-Object-Lifecycle` (or
//! `X-Fal-Object-Lifecycle-Preference`) header; a submit's or sync run's
//! `X-Fal-Object-Lifecycle-Preference` applies to the files its output points at. A file past its
//! `expiration_duration_seconds` answers 404. A lifecycle header that is not fal's shape answers
//! `400` (uploads) or `422` (submits and runs) naming what is wrong.

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::StreamExt;
use serde_json::{json, Value};

use super::routes::{detail, json_response, query_param};
use super::state::{self, lock, Shared, StoredFile};
use super::{media, multipart, FalMock, FalMockBuilder};

/// Default life of a CDN token: one hour.
pub(crate) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The header an upload's lifecycle comes in (fal's CDN v3 and the JS client's initiate).
pub(crate) const LIFECYCLE: &str = "x-fal-object-lifecycle";
/// The header a run's or submit's output lifecycle comes in (and fal's Python client sends it
/// on uploads too).
pub(crate) const LIFECYCLE_PREFERENCE: &str = "x-fal-object-lifecycle-preference";

/// CDN tokens and file lifecycles.
pub(crate) struct Cdn {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    token_fetches: AtomicUsize,
    lifecycles: Mutex<HashMap<String, FileLifecycle>>,
}

#[derive(Debug, Clone)]
struct FileLifecycle {
    /// The header's JSON as sent.
    header: Value,
    expires_at: Option<Instant>,
}

/// The longest token lifetime: 100 years.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Cdn {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            // A token's expiry is added to the clocks: at most MAX_TOKEN_TTL so that it fits.
            ttl: ttl.min(MAX_TOKEN_TTL),
            tokens: Mutex::new(HashMap::new()),
            token_fetches: AtomicUsize::new(0),
            lifecycles: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `authorization` is `Bearer <a token this mock issued and that has not expired>`.
    fn valid(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        lock(&self.tokens)
            .get(token.trim())
            .is_some_and(|until| Instant::now() < *until)
    }

    /// Record `lifecycle` (checked) for the file at `path`.
    fn record(&self, path: &str, lifecycle: Value) {
        let expires_at = lifecycle
            .get("expiration_duration_seconds")
            .and_then(Value::as_u64)
            // An expiry past what the clock can hold is none.
            .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
        lock(&self.lifecycles).insert(
            path.to_owned(),
            FileLifecycle {
                header: lifecycle,
                expires_at,
            },
        );
    }

    /// Whether the file at `path` is past its expiry.
    pub(crate) fn expired(&self, path: &str) -> bool {
        lock(&self.lifecycles)
            .get(path)
            .and_then(|l| l.expires_at)
            .is_some_and(|at| Instant::now() >= at)
    }

    fn lifecycle(&self, path: &str) -> Option<Value> {
        lock(&self.lifecycles).get(path).map(|l| l.header.clone())
    }
}

impl FalMockBuilder {
    /// How long a CDN token of the v3 upload flow is good for (default one hour, at most 100
    /// years). A short one makes clients fetch tokens again (their caches are tested against
    /// it).
    pub fn cdn_token_ttl(mut self, ttl: Duration) -> Self {
        self.cdn_token_ttl = ttl;
        self
    }
}

impl FalMock {
    /// How many CDN tokens were handed out (`POST /rest/storage/auth/token`).
    pub fn cdn_token_fetches(&self) -> usize {
        self.shared.cdn.token_fetches.load(Ordering::SeqCst)
    }

    /// The lifecycle recorded for the file at `file_url` (an upload's `X-Fal-Object-Lifecycle`,
    /// or the output preference of the request that made it), as JSON; `None` when none was
    /// sent.
    pub fn file_lifecycle(&self, file_url: impl AsRef<str>) -> Option<Value> {
        let path = self.shared.cdn_path(file_url.as_ref())?;
        self.shared.cdn.lifecycle(&path)
    }
}

/// The lifecycle JSON of `headers` (`X-Fal-Object-Lifecycle`, else
/// `X-Fal-Object-Lifecycle-Preference`), checked against fal's shape; `Ok(None)` when absent.
pub(crate) fn lifecycle_of(headers: &HeaderMap, names: &[&str]) -> Result<Option<Value>, String> {
    let Some((name, raw)) = names.iter().find_map(|n| headers.get(*n).map(|v| (*n, v))) else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| format!("{name} is not visible ASCII"))?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("{name} is not JSON: {e}"))?;
    check_lifecycle(&value).map_err(|m| format!("{name}: {m}"))?;
    Ok(Some(value))
}

/// fal's lifecycle shape: `{"expiration_duration_seconds": N > 0 | null, "initial_acl":
/// {"default": "allow"|"forbid"|"hide", "rules": [{"user": "...", "decision": ...}]}}`, both keys
/// optional, nothing else.
fn check_lifecycle(v: &Value) -> Result<(), String> {
    let Value::Object(o) = v else {
        return Err("must be a JSON object".into());
    };
    for (k, v) in o {
        match k.as_str() {
            "expiration_duration_seconds" => match v {
                Value::Null => {}
                Value::Number(n) if n.as_u64().is_some_and(|s| s > 0) => {}
                other => {
                    return Err(format!(
                        "expiration_duration_seconds must be a whole number of seconds > 0 or null, got {other}"
                    ))
                }
            },
            "initial_acl" => check_acl(v)?,
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    Ok(())
}

fn check_acl(v: &Value) -> Result<(), String> {
    let decision = |d: &Value, what: &str| match d.as_str() {
        Some("allow" | "forbid" | "hide") => Ok(()),
        _ => Err(format!("{what} must be allow, forbid or hide, got {d}")),
    };
    let Value::Object(o) = v else {
        return Err("initial_acl must be an object".into());
    };
    for (k, v) in o {
        match k.as_str() {
            "default" => decision(v, "initial_acl.default")?,
            "rules" => {
                let Value::Array(rules) = v else {
                    return Err("initial_acl.rules must be an array".into());
                };
                for (i, r) in rules.iter().enumerate() {
                    let user = r.get("user").and_then(Value::as_str).unwrap_or_default();
                    if user.is_empty() {
                        return Err(format!(
                            "initial_acl.rules[{i}].user must be a non-empty string"
                        ));
                    }
                    decision(
                        r.get("decision").unwrap_or(&Value::Null),
                        &format!("initial_acl.rules[{i}].decision"),
                    )?;
                }
            }
            other => return Err(format!("unknown initial_acl field {other:?}")),
        }
    }
    Ok(())
}

/// Record the lifecycle of `headers` for the upload at `path` (both flows).
pub(crate) fn record_upload(s: &Shared, path: &str, headers: &HeaderMap) -> Result<(), Response> {
    match lifecycle_of(headers, &[LIFECYCLE, LIFECYCLE_PREFERENCE]) {
        Ok(Some(v)) => {
            s.cdn.record(path, v);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(m) => Err(detail(400, &m)),
    }
}

/// Apply a request's output lifecycle to every mock file its `output` points at.
pub(crate) fn record_outputs(s: &Shared, output: &Value, lifecycle: Option<&Value>) {
    let Some(lifecycle) = lifecycle else {
        return;
    };
    match output {
        Value::String(url) => {
            if let Some(path) = s.cdn_path(url) {
                s.cdn.record(&path, lifecycle.clone());
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| record_outputs(s, v, Some(lifecycle))),
        Value::Object(o) => o
            .values()
            .for_each(|v| record_outputs(s, v, Some(lifecycle))),
        _ => {}
    }
}

/// `POST /rest/storage/auth/token?storage_type=fal-cdn-v3` (behind the API server's auth).
pub(crate) async fn token(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let storage_type = query_param(query.as_deref(), "storage_type");
    if storage_type.as_deref() != Some("fal-cdn-v3") {
        return detail(400, "storage_type must be fal-cdn-v3");
    }
    let token = format!("{}{}", media::uuid(), media::uuid()).replace('-', "");
    let until = Instant::now() + s.cdn.ttl;
    lock(&s.cdn.tokens).insert(token.clone(), until);
    s.cdn.token_fetches.fetch_add(1, Ordering::SeqCst);
    let expires_at = time::OffsetDateTime::from(SystemTime::now() + s.cdn.ttl)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    json_response(
        200,
        &json!({
            "token": token,
            "token_type": "Bearer",
            "base_url": s.cdn_base.trim_end_matches('/'),
            "expires_at": expires_at,
        }),
    )
}

/// The token check of every CDN v3 request.
fn authorize(s: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let auth = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if s.cdn.valid(auth) {
        Ok(())
    } else {
        Err(detail(401, "Invalid or expired token"))
    }
}

fn upload_name(headers: &HeaderMap) -> String {
    headers
        .get("x-fal-file-name")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("upload.bin")
        .to_owned()
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `POST /files/...` on the CDN server: a single upload, a multipart create, or a complete.
pub(crate) async fn files_post(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let cdn = s.cdn_base.trim_end_matches('/').to_owned();
    match path.as_str() {
        "upload" => {
            let data = match read(body).await {
                Ok(d) => d,
                Err(r) => return r,
            };
            let file_path = state::file_path(&media::uuid(), &upload_name(&headers));
            if let Err(r) = record_upload(&s, &file_path, &headers) {
                return r;
            }
            tracing::debug!(path = %file_path, bytes = data.len(), "mock: v3 upload stored");
            lock(&s.files).insert(
                file_path.clone(),
                StoredFile::Bytes {
                    content_type: content_type(&headers),
                    data,
                },
            );
            json_response(200, &json!({ "access_url": format!("{cdn}{file_path}") }))
        }
        "upload/multipart" => {
            let file_path = state::file_path(&media::uuid(), &upload_name(&headers));
            if let Err(r) = record_upload(&s, &file_path, &headers) {
                return r;
            }
            let upload_id = media::uuid();
            let access_url = format!("{cdn}{file_path}");
            multipart::start_v3(
                &s,
                &upload_id,
                file_path,
                access_url.clone(),
                content_type(&headers),
            );
            json_response(
                200,
                &json!({ "access_url": access_url, "uploadId": upload_id }),
            )
        }
        other => match parse_multipart(other) {
            Some((prefix, id, _)) if !at_access_url(&s, prefix, id) => {
                detail(404, "Not Found: not this upload's access_url")
            }
            Some((_, id, "complete")) => {
                let data = match read(body).await {
                    Ok(d) => d,
                    Err(r) => return r,
                };
                multipart::complete_upload(&s, id, &data, true)
            }
            _ => detail(404, "Not Found"),
        },
    }
}

/// `PUT {access_url}/multipart/{uploadId}/{n}` on the CDN server.
pub(crate) async fn files_put(
    State(s): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    match parse_multipart(&path) {
        Some((prefix, id, _)) if !at_access_url(&s, prefix, id) => {
            detail(404, "Not Found: not this upload's access_url")
        }
        Some((_, id, part)) if part != "complete" => {
            multipart::store_part(&s, id, part, body).await
        }
        _ => detail(405, "Method Not Allowed"),
    }
}

/// `{id}/{name}/multipart/{uploadId}/{last}` → `({id}/{name}, uploadId, last)`.
fn parse_multipart(path: &str) -> Option<(&str, &str, &str)> {
    let (prefix, tail) = path.split_once("/multipart/")?;
    let (id, last) = tail.split_once('/')?;
    (!id.is_empty() && !last.is_empty() && !last.contains('/')).then_some((prefix, id, last))
}

/// Whether `/files/{prefix}` is the `access_url` path of upload `upload_id`.
fn at_access_url(s: &Shared, prefix: &str, upload_id: &str) -> bool {
    multipart::file_path_of(s, upload_id).is_some_and(|p| p == format!("/files/{prefix}"))
}

async fn read(body: Body) -> Result<Bytes, Response> {
    let mut out = bytes::BytesMut::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| detail(400, &format!("Could not read the body: {e}")))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycles_are_checked_against_fals_shape() {
        let ok = [
            json!({}),
            json!({"expiration_duration_seconds": 3600}),
            json!({"expiration_duration_seconds": null}),
            json!({"initial_acl": {"default": "hide", "rules": [{"user": "u1", "decision": "allow"}]}}),
        ];
        for v in ok {
            assert!(check_lifecycle(&v).is_ok(), "{v}");
        }
        let bad = [
            json!([]),
            json!({"expiration_duration_seconds": 0}),
            json!({"expiration_duration_seconds": "1h"}),
            json!({"expires_in": 60}),
            json!({"initial_acl": {"default": "public"}}),
            json!({"initial_acl": {"rules": [{"decision": "allow"}]}}),
        ];
        for v in bad {
            assert!(check_lifecycle(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn an_expiry_or_token_lifetime_past_the_clock_never_panics() {
        let cdn = Cdn::new(Duration::MAX);
        assert_eq!(cdn.ttl, MAX_TOKEN_TTL);
        let far = json!({"expiration_duration_seconds": u64::MAX});
        assert!(check_lifecycle(&far).is_ok());
        cdn.record("/files/x/far.zip", far);
        assert!(!cdn.expired("/files/x/far.zip"));
        cdn.record(
            "/files/x/soon.zip",
            json!({"expiration_duration_seconds": 1}),
        );
        assert!(!cdn.expired("/files/x/soon.zip"));
        assert!(cdn.lifecycle("/files/x/soon.zip").is_some());
    }

    #[test]
    fn multipart_paths() {
        assert_eq!(
            parse_multipart("abc/photo.zip/multipart/u1/3"),
            Some(("abc/photo.zip", "u1", "3"))
        );
        assert_eq!(
            parse_multipart("abc/photo.zip/multipart/u1/complete"),
            Some(("abc/photo.zip", "u1", "complete"))
        );
        assert_eq!(parse_multipart("abc/photo.zip"), None);
        assert_eq!(parse_multipart("abc/x/multipart/u1/3/4"), None);
    }
}
