//! Streaming runs (`POST /run/{endpoint}/stream`), realtime tokens (`POST /rest/tokens/`) and
//! realtime sessions (`GET /run/{endpoint}/realtime`, a WebSocket) of `FalMock`, checked with
//! plain `reqwest` and `tokio-tungstenite` against fal's wire protocol.

use std::time::Duration;

use base64::Engine as _;
use fal_mock::{FalMock, MockFailure, TokenShape};
use futures::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const LCM: &str = "fal-ai/fast-lcm-diffusion";
const FLUX: &str = "fal-ai/flux-lora";
/// The limit of any one wait in these tests: generous, as it only bounds a failure.
const PATIENCE: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One client for the whole test binary, without idle connections (so a dropped body closes
/// its connection, and nothing ties the client to one test's runtime).
fn http() -> Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| Client::builder().pool_max_idle_per_host(0).build().unwrap())
        .clone()
}

fn auth(mock: &FalMock) -> String {
    format!("Key {}", mock.key())
}

async fn fast_mock() -> FalMock {
    FalMock::builder()
        .processing_time(Duration::from_millis(100))
        .start()
        .await
        .unwrap()
}

/// `POST {run}{endpoint}/stream` with the key.
async fn post_stream(mock: &FalMock, endpoint: &str, input: &Value) -> reqwest::Response {
    http()
        .post(format!("{}{endpoint}/stream", mock.run_url()))
        .header("authorization", auth(mock))
        .json(input)
        .send()
        .await
        .unwrap()
}

/// The `data:` JSON documents of an SSE body.
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<String>();
            serde_json::from_str(&data).unwrap_or_else(|err| panic!("{err}: {e:?}"))
        })
        .collect()
}

/// Read a body until it ends or breaks: the bytes read, and whether it broke.
async fn read_body(r: reqwest::Response) -> (String, bool) {
    let mut body = r.bytes_stream();
    let mut bytes = Vec::new();
    let broke = loop {
        match tokio::time::timeout(PATIENCE, body.next()).await {
            Ok(Some(Ok(chunk))) => bytes.extend_from_slice(&chunk),
            Ok(Some(Err(_))) => break true,
            Ok(None) => break false,
            Err(_) => panic!("the stream stalled"),
        }
    };
    (String::from_utf8(bytes).unwrap(), broke)
}

/// Wait (at most [`PATIENCE`]) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// streaming runs

#[tokio::test]
async fn stream_sends_partial_events_then_the_run_output() {
    let mock = fast_mock().await;
    let input = json!({"prompt": "a fox", "seed": 42});
    let r = post_stream(&mock, FLUX, &input).await;
    assert_eq!(r.status(), 200);
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    let request_id = header("x-fal-request-id").expect("x-fal-request-id");
    assert_eq!(request_id.len(), 36);
    let (body, broke) = read_body(r).await;
    assert!(!broke, "the body ends cleanly");
    assert!(body.starts_with("data: {"), "{body}");
    let got = events(&body);
    assert_eq!(got.len(), 4, "{body}");
    for (k, e) in got[..3].iter().enumerate() {
        let progress = (k + 1) as f64 / 3.0;
        assert_eq!(
            e,
            &json!({"images": [], "progress": progress, "partial": true})
        );
    }
    let last = &got[3];
    assert!(last.get("partial").is_none(), "{last}");

    // Exactly what a sync run answers for that input (but for the generated URLs and timings).
    let run: Value = http()
        .post(format!("{}{FLUX}", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&input)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(last), keys(&run));
    assert_eq!(last["seed"], 42);
    assert_eq!(last["prompt"], "a fox");
    assert_eq!(last["has_nsfw_concepts"], json!([false]));
    assert_eq!(keys(&last["images"][0]), keys(&run["images"][0]));
    assert_eq!(last["images"][0]["width"], run["images"][0]["width"]);
    // The image is served like a run's.
    let image = http()
        .get(last["images"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);

    let counts = mock.streams(FLUX);
    assert_eq!((counts.started, counts.completed), (1, 1));
    assert_eq!((counts.cut, counts.disconnected), (0, 0));
    assert_eq!(mock.runs(FLUX), 1, "a stream is not a sync run");
    assert!(mock
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path == "/run/fal-ai/flux-lora/stream"));
}

#[tokio::test]
async fn stream_events_option_and_zero_processing_time() {
    let mock = FalMock::builder()
        .processing_time(Duration::ZERO)
        .stream_events(5)
        .start()
        .await
        .unwrap();
    let (body, broke) = read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
    assert!(!broke);
    let got = events(&body);
    assert_eq!(got.len(), 6);
    assert_eq!(got[4]["progress"], 1.0);
    assert!(got[5]["images"][0]["url"].is_string());

    let mock = FalMock::builder()
        .processing_time(Duration::ZERO)
        .stream_events(0)
        .start()
        .await
        .unwrap();
    let (body, _) = read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
    let got = events(&body);
    assert_eq!(got.len(), 1, "only the final event");
    assert!(got[0]["images"].is_array());
}

#[tokio::test]
async fn stream_answers_errors_before_streaming() {
    let mock = fast_mock().await;
    // 422: the same body as a sync run's.
    let bad = json!({"prompt": "x", "num_images": 9});
    let r = post_stream(&mock, FLUX, &bad).await;
    assert_eq!(r.status(), 422);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(r.headers().contains_key("x-fal-request-id"));
    let streamed: Value = r.json().await.unwrap();
    let run = http()
        .post(format!("{}{FLUX}", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 422);
    assert_eq!(streamed, run.json::<Value>().await.unwrap());
    // Not an object.
    let r = post_stream(&mock, FLUX, &json!([1])).await;
    assert_eq!(r.status(), 422);

    // 404: a removed endpoint and a malformed id.
    let r = post_stream(&mock, "fal-ai/flux-pro-trainer", &json!({})).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Application 'fal-ai/flux-pro-trainer' not found"})
    );

    // 401 without the key (and without a token).
    let r = http()
        .post(format!("{}{FLUX}/stream", mock.run_url()))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Unauthorized"})
    );

    // Planned failures apply like on a sync run.
    mock.fail_next(FLUX, MockFailure::http(503, json!({"detail": "busy"})));
    mock.fail_next(
        FLUX,
        MockFailure::validation("prompt", "too long", "value_error"),
    );
    mock.fail_next(
        FLUX,
        MockFailure::completed_with_error("Runner disconnected", "runner_disconnected"),
    );
    let r = post_stream(&mock, FLUX, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 503);
    let r = post_stream(&mock, FLUX, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"][0]["loc"],
        json!(["body", "prompt"])
    );
    let r = post_stream(&mock, FLUX, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-fal-error-type"], "runner_disconnected");

    assert_eq!(mock.streams(FLUX).started, 0);
    // A good request after the failures streams.
    let (body, _) = read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
    assert_eq!(events(&body).len(), 4);
    assert_eq!(mock.streams(FLUX).started, 1);
}

#[tokio::test]
async fn a_planned_stream_cut_breaks_the_body() {
    let mock = fast_mock().await;
    mock.fail_next(FLUX, MockFailure::stream_cut(2));
    // A sync run does not take a stream failure.
    let run = http()
        .post(format!("{}{FLUX}", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200);

    let r = post_stream(&mock, FLUX, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 200);
    let (body, broke) = read_body(r).await;
    assert!(broke, "the body must break, not end cleanly: {body:?}");
    let got = events(&body);
    assert_eq!(got.len(), 2, "{body}");
    assert!(got.iter().all(|e| e["partial"] == true));
    let counts = mock.streams(FLUX);
    assert_eq!((counts.started, counts.cut, counts.completed), (1, 1, 0));
    assert_eq!(counts.disconnected, 0);

    // The failure applied once.
    let (body, broke) = read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
    assert!(!broke);
    assert_eq!(events(&body).len(), 4);
    assert_eq!(mock.streams(FLUX).completed, 1);

    // A cut after more events than there are comes after the final one.
    mock.fail_next(FLUX, MockFailure::stream_cut(100));
    let (body, broke) = read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
    assert!(broke);
    assert_eq!(events(&body).len(), 4);
    assert_eq!(mock.streams(FLUX).cut, 2);
}

#[tokio::test]
async fn stream_cut_after_cuts_every_stream() {
    let mock = FalMock::builder()
        .processing_time(Duration::ZERO)
        .stream_cut_after(Some(1))
        .start()
        .await
        .unwrap();
    for _ in 0..2 {
        let (body, broke) =
            read_body(post_stream(&mock, FLUX, &json!({"prompt": "x"})).await).await;
        assert!(broke);
        assert_eq!(events(&body).len(), 1);
    }
    assert_eq!(mock.streams(FLUX).cut, 2);
}

#[tokio::test]
async fn a_client_that_drops_the_stream_ends_it() {
    // Events ~100 ms apart for 10 s: the client leaves long before the final one.
    let mock = FalMock::builder()
        .processing_time(Duration::from_secs(10))
        .stream_events(99)
        .start()
        .await
        .unwrap();
    let r = post_stream(&mock, FLUX, &json!({"prompt": "x"})).await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let first = tokio::time::timeout(PATIENCE, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    eventually("the mock sees the client leave", || {
        mock.streams(FLUX).disconnected == 1
    })
    .await;
    let counts = mock.streams(FLUX);
    assert_eq!((counts.started, counts.completed, counts.cut), (1, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// tokens

async fn post_token(mock: &FalMock, path: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}{path}", mock.rest_url()))
        .header("authorization", auth(mock))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A token for `apps`, whatever the mock's answer shape.
async fn token(mock: &FalMock, apps: &[&str], secs: u64) -> String {
    let r = post_token(
        mock,
        "tokens/",
        &json!({"allowed_apps": apps, "token_expiration": secs}),
    )
    .await;
    assert_eq!(r.status(), 200);
    match r.json::<Value>().await.unwrap() {
        Value::String(t) => t,
        Value::Object(o) => o
            .get("token")
            .or_else(|| o.get("detail"))
            .and_then(Value::as_str)
            .unwrap()
            .to_owned(),
        other => panic!("unexpected token answer {other}"),
    }
}

#[tokio::test]
async fn tokens_come_in_fal_s_three_shapes() {
    for (shape, key) in [
        (TokenShape::Bare, None),
        (TokenShape::Detail, Some("detail")),
        (TokenShape::Token, Some("token")),
    ] {
        let mock = FalMock::builder()
            .token_response_shape(shape)
            .start()
            .await
            .unwrap();
        let r = post_token(
            &mock,
            "tokens/",
            &json!({"allowed_apps": ["fast-lcm-diffusion"], "token_expiration": 120}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let jwt = match key {
            None => body.as_str().unwrap().to_owned(),
            Some(k) => {
                assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
                body[k].as_str().unwrap().to_owned()
            }
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["allowed_apps"], json!(["fast-lcm-diffusion"]));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let exp = payload["exp"].as_u64().unwrap();
        assert!(exp > now + 100 && exp <= now + 121, "exp {exp}, now {now}");
        let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["typ"], "JWT");
        // Without the trailing slash, and without token_expiration (default 120).
        let r = post_token(&mock, "tokens", &json!({"allowed_apps": ["a", "b"]})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(mock.tokens_created(), 2);
        // The token never shows in the request log (there is none in a token request).
        assert!(mock.requests().iter().all(|r| r.path != jwt));
    }
}

#[tokio::test]
async fn token_requests_are_validated_and_need_the_key() {
    let mock = FalMock::start().await.unwrap();
    let r = post_token(&mock, "tokens/", &json!({"token_expiration": 120})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail":[{"loc":["body","allowed_apps"],"msg":"field required","type":"value_error.missing"}]})
    );
    for bad in [
        json!({"allowed_apps": []}),
        json!({"allowed_apps": "fast-lcm-diffusion"}),
        json!({"allowed_apps": [1]}),
        json!({"allowed_apps": ["a"], "token_expiration": 0}),
        json!({"allowed_apps": ["a"], "token_expiration": -1}),
        json!({"allowed_apps": ["a"], "token_expiration": "60"}),
    ] {
        let r = post_token(&mock, "tokens/", &bad).await;
        assert_eq!(r.status(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"][0], "body", "{body}");
    }
    let r = http()
        .post(format!("{}tokens/", mock.rest_url()))
        .json(&json!({"allowed_apps": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(mock.tokens_created(), 0);
}

#[tokio::test]
async fn a_token_authorizes_a_stream_of_its_app_without_the_key() {
    let mock = fast_mock().await;
    let flux = token(&mock, &["flux-lora"], 120).await;
    let other = token(&mock, &["fast-lcm-diffusion"], 120).await;
    let stream_with = |t: &str| {
        http()
            .post(format!("{}{FLUX}/stream", mock.run_url()))
            .query(&[("fal_jwt_token", t)])
            .json(&json!({"prompt": "x"}))
            .send()
    };
    let r = stream_with(&flux).await.unwrap();
    assert_eq!(r.status(), 200);
    let (body, _) = read_body(r).await;
    assert_eq!(events(&body).len(), 4);
    assert_eq!(stream_with(&other).await.unwrap().status(), 401);
    assert_eq!(stream_with("a.b.c").await.unwrap().status(), 401);
    // A token does not open the other routes.
    let r = http()
        .post(format!("{}{FLUX}", mock.run_url()))
        .query(&[("fal_jwt_token", &flux)])
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Recorded, with the token redacted.
    let recorded = mock.requests();
    assert!(recorded
        .iter()
        .all(|r| !r.query.as_deref().unwrap_or_default().contains(&flux)));
    assert!(recorded
        .iter()
        .any(|r| r.query.as_deref() == Some("fal_jwt_token=redacted")));
    mock.expire_tokens();
    assert_eq!(stream_with(&flux).await.unwrap().status(), 401);
}

// ---------------------------------------------------------------------------------------------
// realtime

fn realtime_url(mock: &FalMock, endpoint: &str, query: &str) -> String {
    let url = format!("{}{endpoint}/realtime", mock.realtime_url());
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

async fn connect_with_key(mock: &FalMock, endpoint: &str) -> Ws {
    let mut req = realtime_url(mock, endpoint, "")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", auth(mock).parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(response.status(), 101);
    ws
}

async fn connect_with_token(mock: &FalMock, endpoint: &str, token: &str) -> Ws {
    let query = format!("fal_jwt_token={token}&max_buffering=5");
    let (ws, _) = tokio_tungstenite::connect_async(realtime_url(mock, endpoint, &query))
        .await
        .unwrap();
    ws
}

/// The handshake's HTTP status when it is refused.
async fn refused(url: String) -> (u16, Value) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = r
                .body()
                .as_deref()
                .map(|b| serde_json::from_slice(b).unwrap())
                .unwrap_or(Value::Null);
            (r.status().as_u16(), body)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a frame in time")
        .expect("a frame, not the end")
        .expect("a frame, not an error")
}

async fn send_input(ws: &mut Ws, input: &Value) {
    let bytes = rmp_serde::to_vec_named(input).unwrap();
    ws.send(Message::binary(bytes)).await.unwrap();
}

fn decode(m: Message) -> Value {
    match m {
        Message::Binary(b) => rmp_serde::from_slice(&b).unwrap(),
        other => panic!("expected a binary msgpack frame, got {other:?}"),
    }
}

fn text(m: Message) -> Value {
    match m {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The close code and reason of a close frame.
fn closed(m: Message) -> (u16, String) {
    match m {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

fn jpeg_size(data_uri: &str) -> (u16, u16) {
    let b64 = data_uri
        .strip_prefix("data:image/jpeg;base64,")
        .expect("a JPEG data URI");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut d = jpeg_decoder::Decoder::new(&bytes[..]);
    d.decode().unwrap();
    let info = d.info().unwrap();
    (info.width, info.height)
}

#[tokio::test]
async fn realtime_round_trips_with_the_key() {
    let mock = FalMock::start().await.unwrap();
    let mut ws = connect_with_key(&mock, LCM).await;
    assert_eq!(mock.realtime_sessions(LCM), 1);
    for i in 0..5u64 {
        let id = format!("r-{i}");
        send_input(
            &mut ws,
            &json!({"prompt": format!("a cat {i}"), "seed": i, "request_id": id}),
        )
        .await;
        let out = decode(next(&mut ws).await);
        assert_eq!(out["request_id"], id);
        assert_eq!(out["seed"], i);
        assert_eq!(out["num_inference_steps"], 6);
        assert_eq!(out["has_nsfw_concepts"], json!([false]));
        assert!(out["timings"]["inference"].is_f64(), "{out}");
        let image = &out["images"][0];
        assert_eq!(image["content_type"], "image/jpeg");
        assert_eq!(
            (image["width"].clone(), image["height"].clone()),
            (json!(64), json!(64))
        );
        assert_eq!(jpeg_size(image["url"].as_str().unwrap()), (64, 64));
    }
    // Without request_id there is none; the size keeps the requested ratio.
    send_input(
        &mut ws,
        &json!({"prompt": "wide", "image_size": "landscape_4_3", "num_inference_steps": 2}),
    )
    .await;
    let out = decode(next(&mut ws).await);
    assert!(out.get("request_id").is_none(), "{out}");
    assert_eq!(out["num_inference_steps"], 2);
    assert_eq!(
        jpeg_size(out["images"][0]["url"].as_str().unwrap()),
        (64, 48)
    );
    ws.close(None).await.unwrap();

    // The second realtime app, and the handshake in the request log (never the key).
    let mut ws = connect_with_key(&mock, "fal-ai/fast-turbo-diffusion").await;
    send_input(&mut ws, &json!({"prompt": "x"})).await;
    assert_eq!(decode(next(&mut ws).await)["num_inference_steps"], 2);
    let handshakes: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/realtime"))
        .collect();
    assert_eq!(handshakes.len(), 2);
    assert!(handshakes[0].authorization_present && handshakes[0].key_sent);
}

#[tokio::test]
async fn bad_realtime_inputs_answer_bad_request_and_the_session_goes_on() {
    let mock = FalMock::start().await.unwrap();
    let mut ws = connect_with_key(&mock, LCM).await;
    ws.send(Message::binary(vec![0xc1, 0x00])).await.unwrap();
    let e = text(next(&mut ws).await);
    assert_eq!(e["type"], "x-fal-error");
    assert_eq!(e["error"], "BAD_REQUEST");
    assert!(e["reason"].is_string());
    send_input(&mut ws, &json!({"seed": 1})).await;
    let e = text(next(&mut ws).await);
    assert_eq!(e["error"], "BAD_REQUEST");
    assert!(e["reason"].as_str().unwrap().contains("prompt"), "{e}");
    send_input(&mut ws, &json!(["a", "list"])).await;
    assert_eq!(text(next(&mut ws).await)["error"], "BAD_REQUEST");
    ws.send(Message::text(r#"{"prompt":"as text"}"#))
        .await
        .unwrap();
    assert_eq!(text(next(&mut ws).await)["error"], "BAD_REQUEST");
    send_input(&mut ws, &json!({"prompt": "fine", "request_id": "ok"})).await;
    assert_eq!(decode(next(&mut ws).await)["request_id"], "ok");
}

#[tokio::test]
async fn realtime_timings_messages_when_enabled() {
    let mock = FalMock::builder()
        .realtime_timings(true)
        .realtime_processing_time(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let mut ws = connect_with_key(&mock, LCM).await;
    send_input(&mut ws, &json!({"prompt": "x"})).await;
    let out = decode(next(&mut ws).await);
    assert!(out["timings"]["inference"].as_f64().unwrap() >= 0.02);
    let t = text(next(&mut ws).await);
    assert_eq!(t["type"], "x-fal-message");
    assert_eq!(t["action"], "timings");
    assert!(t["timing"].as_f64().unwrap() >= 0.02);
}

#[tokio::test]
async fn an_idle_realtime_session_times_out() {
    let mock = FalMock::builder()
        .realtime_session_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut ws = connect_with_key(&mock, LCM).await;
    send_input(&mut ws, &json!({"prompt": "x"})).await;
    decode(next(&mut ws).await);
    let t = text(next(&mut ws).await);
    assert_eq!(
        t,
        json!({"type":"x-fal-error","error":"TIMEOUT","reason":"no inputs, reconnect when needed!"})
    );
    assert_eq!(closed(next(&mut ws).await).0, 1000);
}

#[tokio::test]
async fn a_planned_abnormal_close_then_a_reconnect() {
    let mock = FalMock::start().await.unwrap();
    mock.fail_next(LCM, MockFailure::realtime_close(1));
    let mut ws = connect_with_key(&mock, LCM).await;
    send_input(&mut ws, &json!({"prompt": "one"})).await;
    assert!(decode(next(&mut ws).await)["images"].is_array());
    assert_eq!(
        closed(next(&mut ws).await),
        (1011, "mock: abnormal close".to_owned())
    );
    let mut ws = connect_with_key(&mock, LCM).await;
    for p in ["two", "three"] {
        send_input(&mut ws, &json!({"prompt": p})).await;
        assert!(decode(next(&mut ws).await)["images"].is_array());
    }
    assert_eq!(mock.realtime_sessions(LCM), 2);
}

#[tokio::test]
async fn realtime_with_tokens() {
    let mock = FalMock::start().await.unwrap();
    let good = token(&mock, &["fast-lcm-diffusion"], 120).await;
    let mut ws = connect_with_token(&mock, LCM, &good).await;
    send_input(&mut ws, &json!({"prompt": "x", "request_id": "t"})).await;
    assert_eq!(decode(next(&mut ws).await)["request_id"], "t");
    ws.close(None).await.unwrap();
    assert_eq!(mock.realtime_sessions(LCM), 1);

    let unauthorized = |mut ws: Ws| async move {
        assert_eq!(
            text(next(&mut ws).await),
            json!({"status": "error", "error": "Unauthorized"})
        );
        assert_eq!(closed(next(&mut ws).await).0, 1008);
    };
    // A token of another app, an unknown token, no credentials at all.
    let wrong = token(&mock, &["flux-lora"], 120).await;
    unauthorized(connect_with_token(&mock, LCM, &wrong).await).await;
    unauthorized(connect_with_token(&mock, LCM, "a.b.c").await).await;
    let (ws, _) = tokio_tungstenite::connect_async(realtime_url(&mock, LCM, ""))
        .await
        .unwrap();
    unauthorized(ws).await;
    // A token past its expiration.
    let short = token(&mock, &["fast-lcm-diffusion"], 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    unauthorized(connect_with_token(&mock, LCM, &short).await).await;
    // Expired on demand.
    mock.expire_tokens();
    unauthorized(connect_with_token(&mock, LCM, &good).await).await;
    assert_eq!(
        mock.realtime_sessions(LCM),
        1,
        "only authorized sessions count"
    );
    // Tokens never reach the request log.
    for r in mock.requests() {
        let q = r.query.unwrap_or_default();
        assert!(!q.contains(&good) && !q.contains(&wrong) && !q.contains(&short));
    }
}

#[tokio::test]
async fn realtime_handshakes_refused_over_http() {
    let mock = FalMock::start().await.unwrap();
    let t = token(&mock, &["fast-lcm-diffusion"], 120).await;
    for n in ["0", "61", "x"] {
        let query = format!("fal_jwt_token={t}&max_buffering={n}");
        let (status, body) = refused(realtime_url(&mock, LCM, &query)).await;
        assert_eq!(status, 422, "max_buffering={n}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", "max_buffering"]));
    }
    for n in ["1", "60"] {
        let query = format!("fal_jwt_token={t}&max_buffering={n}");
        let (mut ws, _) = tokio_tungstenite::connect_async(realtime_url(&mock, LCM, &query))
            .await
            .unwrap();
        send_input(&mut ws, &json!({"prompt": "x"})).await;
        decode(next(&mut ws).await);
    }
    let (status, body) = refused(realtime_url(&mock, FLUX, "")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"detail": "Application 'fal-ai/flux-lora' not found"})
    );
    // A planned HTTP failure answers the handshake.
    mock.fail_next(LCM, MockFailure::http(503, json!({"detail": "busy"})));
    let mut req = realtime_url(&mock, LCM, "").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", auth(&mock).parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected a 503, got {:?}", other.map(|_| ())),
    }
    // A plain GET that is no upgrade is refused too.
    let r = http()
        .get(realtime_url(&mock, LCM, "").replacen("ws", "http", 1))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = http()
        .get(format!("{}{FLUX}", mock.run_url()))
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn shutdown_closes_open_sessions_with_going_away() {
    let mock = FalMock::start().await.unwrap();
    let mut ws = connect_with_key(&mock, LCM).await;
    send_input(&mut ws, &json!({"prompt": "x"})).await;
    decode(next(&mut ws).await);
    let stop = tokio::spawn(mock.shutdown());
    assert_eq!(closed(next(&mut ws).await).0, 1001);
    tokio::time::timeout(PATIENCE, stop).await.unwrap().unwrap();
}
