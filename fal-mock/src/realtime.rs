//! Realtime apps over WebSocket: `GET {run}/{endpoint_id}/realtime`, as fal's clients connect
//! (`fal.realtime.connect` in `@fal-ai/client`'s `realtime.ts`, `fal_client.realtime` in Python,
//! served by fal's SDK `fal/realtime.py`).
//!
//! - The handshake answers plain HTTP `404 {"detail": "Application '<id>' not found"}` for an
//!   app the mock does not serve as a realtime app ([`REALTIME_APPS`]), and `422` when
//!   `max_buffering` is not a whole number in `1..=60`.
//! - Authorization: `Authorization: Key <key>` on the handshake, or `?fal_jwt_token=<token>`
//!   from `POST {rest}/tokens/` that has not expired and lists the app's alias. Without either
//!   the upgrade is accepted, one text frame `{"status":"error","error":"Unauthorized"}` is sent
//!   and the socket is closed with code 1008 (what fal's JavaScript client detects).
//! - Each binary client frame is one msgpack map: `prompt` (required), optional `seed`,
//!   `num_inference_steps` (1..=50), `image_size` (preset or `{width, height}`) or
//!   `width`/`height`, `request_id`. Each is answered by one binary msgpack frame:
//!   `{"images": [{"url": "data:image/jpeg;base64,...", "width", "height", "content_type":
//!   "image/jpeg"}], "seed", "num_inference_steps", "timings": {"inference": <s>},
//!   "has_nsfw_concepts": [false], "request_id"}` (`request_id` only when the input had one;
//!   the JPEG is at most 64 px on its long side, keeping the requested ratio).
//! - A frame that is not a msgpack map with a string `prompt` (or any text frame) is answered
//!   with text `{"type":"x-fal-error","error":"BAD_REQUEST","reason":"..."}`; the session goes
//!   on.
//! - With [`realtime_timings`](FalMockBuilder::realtime_timings), each result is followed by text
//!   `{"type":"x-fal-message","action":"timings","timing":<s>}`.
//! - No input for [`realtime_session_timeout`](FalMockBuilder::realtime_session_timeout):
//!   text `{"type":"x-fal-error","error":"TIMEOUT","reason":"no inputs, reconnect when
//!   needed!"}`, then close code 1000.
//! - [`MockFailure::RealtimeClose`](super::MockFailure::RealtimeClose) closes the next session
//!   with code 1011 after some results; the mock's shutdown closes open sessions with 1001.

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::media::{self, ImageFormat, ImageSpec};
use super::routes::{detail, json_response, query_param};
use super::state::{lock, Shared};
use super::validate::{self, Detail};
use super::{FailureUse, FalMock, FalMockBuilder, MockFailure};

/// The realtime apps the mock serves at `GET /run/{endpoint_id}/realtime` (a WebSocket); any
/// other endpoint answers that handshake with 404.
pub const REALTIME_APPS: [&str; 2] = ["fal-ai/fast-lcm-diffusion", "fal-ai/fast-turbo-diffusion"];

/// Longest side, in pixels, of a realtime image (small, so round trips stay fast).
const REALTIME_MAX_SIDE: u64 = 64;

/// Close codes (RFC 6455, section 7.4.1).
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const POLICY_VIOLATION: u16 = 1008;
const INTERNAL_ERROR: u16 = 1011;

/// Realtime settings, from the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RealtimeConfig {
    pub(crate) processing_time: Duration,
    pub(crate) timings: bool,
    pub(crate) session_timeout: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            processing_time: Duration::ZERO,
            timings: false,
            session_timeout: Duration::from_secs(60),
        }
    }
}

/// Realtime settings and session counts.
pub(crate) struct Realtime {
    config: RealtimeConfig,
    sessions: Mutex<HashMap<String, usize>>,
    /// Sessions running now, per endpoint.
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Realtime {
    pub(crate) fn new(config: RealtimeConfig) -> Self {
        Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            open: Arc::default(),
        }
    }
}

/// Counts a session as open while it lives.
struct OpenSession {
    open: Arc<Mutex<HashMap<String, usize>>>,
    endpoint: String,
}

impl OpenSession {
    fn new(open: &Arc<Mutex<HashMap<String, usize>>>, endpoint: &str) -> Self {
        *lock(open).entry(endpoint.to_owned()).or_default() += 1;
        Self {
            open: Arc::clone(open),
            endpoint: endpoint.to_owned(),
        }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.open).get_mut(&self.endpoint) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The endpoint path of a realtime connection (`fal-ai/fast-lcm-diffusion/realtime` →
/// `fal-ai/fast-lcm-diffusion`), or `None` for another path.
pub(crate) fn realtime_target(path: &str) -> Option<&str> {
    path.strip_suffix("/realtime").filter(|p| !p.is_empty())
}

/// `max_buffering`: absent, or a whole number in 1..=60 (fal's clients' bounds); else the 422.
fn max_buffering(query: Option<&str>) -> Result<Option<u8>, Response> {
    let Some(raw) = query_param(query, "max_buffering") else {
        return Ok(None);
    };
    let loc = vec![json!("query"), json!("max_buffering")];
    let detail = match raw.trim().parse::<i64>() {
        Ok(n @ 1..=60) => return Ok(u8::try_from(n).ok()),
        Ok(n) if n < 1 => {
            let mut d = Detail::new(
                loc,
                "ensure this value is greater than or equal to 1",
                "value_error.number.not_ge",
            );
            d.ctx = Some(json!({"limit_value": 1}));
            d
        }
        Ok(_) => {
            let mut d = Detail::new(
                loc,
                "ensure this value is less than or equal to 60",
                "value_error.number.not_le",
            );
            d.ctx = Some(json!({"limit_value": 60}));
            d
        }
        Err(_) => Detail::new(loc, "value is not a valid integer", "type_error.integer"),
    };
    Err(json_response(422, &validate::detail_body(&[detail])))
}

/// `GET /run/{endpoint}/realtime` (`path` is the endpoint's path, without `/realtime`).
pub(crate) async fn connect(
    s: Arc<Shared>,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let endpoint = match super::routes::endpoint_or_404(&s, path) {
        Ok(e) => e,
        Err(r) => return r,
    };
    if !REALTIME_APPS.contains(&endpoint.as_str()) {
        return detail(404, &format!("Application '{path}' not found"));
    }
    if let Err(r) = max_buffering(query) {
        return r;
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let by_key = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Key "))
        .is_some_and(|k| k.trim() == s.key);
    let by_token = query_param(query, "fal_jwt_token")
        .is_some_and(|t| s.tokens.allows_endpoint(&t, endpoint.as_str()));
    let endpoint = endpoint.as_str().to_owned();
    if !(by_key || by_token) {
        tracing::debug!(%endpoint, "mock: unauthorized realtime connection");
        return upgrade.on_upgrade(unauthorized);
    }
    if let Some(r) = super::routes::take_http_failure_for(&s, &endpoint, FailureUse::Realtime) {
        return r;
    }
    let close_after = match s.take_failure_if(&endpoint, FailureUse::Realtime, |_| true) {
        Some(MockFailure::RealtimeClose { after_results }) => Some(after_results),
        _ => None,
    };
    *lock(&s.realtime.sessions)
        .entry(endpoint.clone())
        .or_default() += 1;
    tracing::debug!(%endpoint, ?close_after, "mock: realtime session accepted");
    upgrade.on_upgrade(move |socket| session(s, endpoint, close_after, socket))
}

/// How long the mock waits for the client's answer to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Send a close frame and wait (at most [`CLOSE_WAIT`]) for the client's close answer, so that
/// the client sees a clean close with this code.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    if socket.send(frame).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_WAIT, drain(socket)).await;
    }
}

/// Read until the connection ends (this also sends tungstenite's queued answer to a client's
/// close frame).
async fn drain(socket: &mut WebSocket) {
    while let Some(Ok(_)) = socket.recv().await {}
}

async fn unauthorized(mut socket: WebSocket) {
    let frame = json!({"status": "error", "error": "Unauthorized"}).to_string();
    if socket.send(Message::Text(frame.into())).await.is_ok() {
        close(&mut socket, POLICY_VIOLATION, "Unauthorized").await;
    }
}

fn error_frame(error: &str, reason: &str) -> Message {
    Message::Text(
        json!({"type": "x-fal-error", "error": error, "reason": reason})
            .to_string()
            .into(),
    )
}

/// One realtime session, until the client leaves, the session times out, a planned close or the
/// mock's shutdown.
async fn session(
    s: Arc<Shared>,
    endpoint: String,
    close_after: Option<usize>,
    mut socket: WebSocket,
) {
    let _open = OpenSession::new(&s.realtime.open, &endpoint);
    let config = s.realtime.config;
    let mut stop = s.shutdown.clone();
    let mut results = 0usize;
    let mut idle_until = Instant::now() + config.session_timeout;
    loop {
        if close_after.is_some_and(|n| results >= n) {
            tracing::debug!(%endpoint, results, "mock: closing a realtime session abnormally");
            close(&mut socket, INTERNAL_ERROR, "mock: abnormal close").await;
            return;
        }
        let msg = tokio::select! {
            m = socket.recv() => m,
            _ = tokio::time::sleep_until(idle_until) => {
                let reason = "no inputs, reconnect when needed!";
                if socket.send(error_frame("TIMEOUT", reason)).await.is_ok() {
                    close(&mut socket, NORMAL, "").await;
                }
                return;
            }
            _ = async { while !*stop.borrow_and_update() { if stop.changed().await.is_err() { break } } } => {
                close(&mut socket, GOING_AWAY, "mock: shutting down").await;
                return;
            }
        };
        let bytes = match msg {
            None | Some(Err(_)) => return,
            Some(Ok(Message::Close(_))) => {
                // Answer the client's close (tungstenite queued the answer; reading sends it).
                let _ = tokio::time::timeout(CLOSE_WAIT, drain(&mut socket)).await;
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                idle_until = Instant::now() + config.session_timeout;
                let reason = "expected a binary msgpack message, got text";
                if socket
                    .send(error_frame("BAD_REQUEST", reason))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Some(Ok(Message::Binary(b))) => b,
        };
        idle_until = Instant::now() + config.session_timeout;
        let input = match parse_input(&bytes, &endpoint) {
            Ok(i) => i,
            Err(reason) => {
                if socket
                    .send(error_frame("BAD_REQUEST", &reason))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let started = Instant::now();
        if !config.processing_time.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(config.processing_time) => {}
                _ = async { while !*stop.borrow_and_update() { if stop.changed().await.is_err() { break } } } => {
                    close(&mut socket, GOING_AWAY, "mock: shutting down").await;
                    return;
                }
            }
        }
        let frame = match result(&input, started) {
            Ok(f) => f,
            Err(reason) => {
                tracing::warn!(%reason, "mock: could not make a realtime result");
                close(&mut socket, INTERNAL_ERROR, "mock: internal error").await;
                return;
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        if socket.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
        results += 1;
        if config.timings {
            let t = json!({"type": "x-fal-message", "action": "timings", "timing": elapsed});
            if socket
                .send(Message::Text(t.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        // The idle timeout counts from the last answer too.
        idle_until = Instant::now() + config.session_timeout;
    }
}

/// A realtime input, checked.
#[derive(Debug, Clone, PartialEq)]
struct Input {
    prompt: String,
    seed: Value,
    steps: u64,
    width: u32,
    height: u32,
    request_id: Option<String>,
}

/// Decode and check one binary frame, or the BAD_REQUEST reason.
fn parse_input(bytes: &[u8], endpoint: &str) -> Result<Input, String> {
    let value: Value =
        rmp_serde::from_slice(bytes).map_err(|e| format!("could not decode msgpack: {e}"))?;
    let Value::Object(o) = value else {
        return Err("the input must be a msgpack map".into());
    };
    let prompt = match o.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        None | Some(Value::Null) => return Err("prompt: field required".into()),
        Some(_) => return Err("prompt: str type expected".into()),
    };
    let seed = match o.get("seed") {
        None | Some(Value::Null) => json!(fastrand::u32(..)),
        Some(v @ Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => v.clone(),
        Some(_) => return Err("seed: value is not a valid integer".into()),
    };
    let default_steps = if endpoint.ends_with("turbo-diffusion") {
        2
    } else {
        6
    };
    let steps = match o.get("num_inference_steps") {
        None | Some(Value::Null) => default_steps,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(k @ 1..=50) => k,
            _ => {
                return Err(
                    "num_inference_steps: ensure this value is a whole number in 1..=50".into(),
                )
            }
        },
        Some(_) => return Err("num_inference_steps: value is not a valid integer".into()),
    };
    let (w, h) = requested_size(&o)?;
    let request_id = match o.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err("request_id: str type expected".into()),
    };
    let (width, height) = fit_small(w, h);
    Ok(Input {
        prompt,
        seed,
        steps,
        width,
        height,
        request_id,
    })
}

/// The size asked for: `image_size` (preset or `{width, height}`), else `width`/`height`, else
/// 512×512.
fn requested_size(o: &Map<String, Value>) -> Result<(u64, u64), String> {
    let side = |v: Option<&Value>, name: &str| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(px @ 1..=8192) => Ok(Some(px)),
            _ => Err(format!(
                "{name}: ensure this value is a whole number in 1..=8192"
            )),
        },
        Some(_) => Err(format!("{name}: value is not a valid integer")),
    };
    match o.get("image_size") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) => {
            return validate::IMAGE_SIZE_PRESETS
                .iter()
                .find(|(name, ..)| name == p)
                .map(|&(_, w, h)| (w, h))
                .ok_or_else(|| format!("image_size: unknown preset {p:?}"));
        }
        Some(Value::Object(s)) => {
            let w = side(s.get("width"), "image_size.width")?.unwrap_or(512);
            let h = side(s.get("height"), "image_size.height")?.unwrap_or(512);
            return Ok((w, h));
        }
        Some(_) => return Err("image_size: a preset name or {width, height} expected".into()),
    }
    let w = side(o.get("width"), "width")?;
    let h = side(o.get("height"), "height")?;
    Ok((w.or(h).unwrap_or(512), h.or(w).unwrap_or(512)))
}

/// Scale `(w, h)` so that the long side is at most [`REALTIME_MAX_SIDE`], keeping the ratio;
/// both sides at least 8 px.
fn fit_small(w: u64, h: u64) -> (u32, u32) {
    let long = w.max(h).max(1) as f64;
    let scale = (REALTIME_MAX_SIDE as f64 / long).min(1.0);
    let side = |v: u64| ((v as f64 * scale).round() as u32).clamp(8, REALTIME_MAX_SIDE as u32);
    (side(w), side(h))
}

/// The msgpack result frame for `input`.
fn result(input: &Input, started: Instant) -> Result<Vec<u8>, String> {
    let seed = input
        .seed
        .as_u64()
        .or_else(|| input.seed.as_i64().map(|i| i as u64))
        .unwrap_or_default();
    let spec = ImageSpec {
        prompt: input.prompt.clone(),
        seed,
        index: 0,
        width: input.width,
        height: input.height,
        format: ImageFormat::Jpeg,
    };
    let jpeg = media::render(&spec)?;
    let url = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    );
    let mut out = json!({
        "images": [{
            "url": url,
            "width": input.width,
            "height": input.height,
            "content_type": "image/jpeg",
        }],
        "seed": input.seed,
        "num_inference_steps": input.steps,
        "timings": {"inference": started.elapsed().as_secs_f64()},
        "has_nsfw_concepts": [false],
    });
    if let (Some(id), Value::Object(o)) = (&input.request_id, &mut out) {
        o.insert("request_id".into(), json!(id));
    }
    rmp_serde::to_vec_named(&out).map_err(|e| e.to_string())
}

impl FalMockBuilder {
    /// How long a realtime app takes per input before it answers. Default zero.
    pub fn realtime_processing_time(mut self, t: Duration) -> Self {
        self.realtime.processing_time = t;
        self
    }

    /// Follow each realtime result with a text frame
    /// `{"type":"x-fal-message","action":"timings","timing":<seconds>}`, as fal's realtime apps
    /// can. Default `false`.
    pub fn realtime_timings(mut self, on: bool) -> Self {
        self.realtime.timings = on;
        self
    }

    /// How long a realtime session may go without an input before the mock sends `TIMEOUT` and
    /// closes it (code 1000). Default 60 s.
    pub fn realtime_session_timeout(mut self, t: Duration) -> Self {
        self.realtime.session_timeout = t;
        self
    }
}

impl FalMock {
    /// Realtime base URL, e.g. `ws://127.0.0.1:P/run/` (the run URL with `http` → `ws`, as fal's
    /// clients build it): connect to `{realtime_url}{endpoint_id}/realtime`.
    pub fn realtime_url(&self) -> String {
        let run = self.run_url();
        match run.strip_prefix("http") {
            Some(rest) => format!("ws{rest}"),
            None => run,
        }
    }

    /// How many realtime sessions with `endpoint_id` are running now (a session ends when the
    /// client leaves, on the idle `TIMEOUT`, a planned close or the mock's shutdown).
    pub fn realtime_open_sessions(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.realtime.open)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many realtime connections to `endpoint_id` (the full id, without `/realtime`) were
    /// accepted and authorized: a reconnect counts again.
    pub fn realtime_sessions(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.realtime.sessions)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(v: &Value) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap_or_default()
    }

    #[test]
    fn inputs_are_checked() {
        let ok = parse_input(
            &pack(&json!({"prompt": "a cat", "seed": 7, "request_id": "r1"})),
            "fal-ai/fast-lcm-diffusion",
        )
        .unwrap();
        assert_eq!(ok.seed, json!(7));
        assert_eq!(ok.steps, 6);
        assert_eq!((ok.width, ok.height), (64, 64));
        assert_eq!(ok.request_id.as_deref(), Some("r1"));
        let wide = parse_input(
            &pack(&json!({"prompt": "a", "image_size": "landscape_4_3"})),
            "fal-ai/fast-turbo-diffusion",
        )
        .unwrap();
        assert_eq!((wide.width, wide.height, wide.steps), (64, 48, 2));
        for bad in [
            json!({}),
            json!({"prompt": 1}),
            json!(["prompt"]),
            json!({"prompt": "a", "num_inference_steps": 0}),
            json!({"prompt": "a", "seed": "x"}),
            json!({"prompt": "a", "image_size": "huge"}),
        ] {
            assert!(
                parse_input(&pack(&bad), "fal-ai/fast-lcm-diffusion").is_err(),
                "{bad}"
            );
        }
        assert!(parse_input(b"\xc1", "fal-ai/fast-lcm-diffusion").is_err());
    }

    #[test]
    fn max_buffering_bounds() {
        assert!(matches!(max_buffering(None), Ok(None)));
        assert!(matches!(
            max_buffering(Some("max_buffering=1")),
            Ok(Some(1))
        ));
        assert!(matches!(
            max_buffering(Some("max_buffering=60")),
            Ok(Some(60))
        ));
        for bad in ["max_buffering=0", "max_buffering=61", "max_buffering=x"] {
            assert!(max_buffering(Some(bad)).is_err(), "{bad}");
        }
    }
}
