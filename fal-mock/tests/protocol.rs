//! Protocol tests of `FalMock` with plain `reqwest` (not the crate's queue API), so that the mock
//! is checked against fal's wire protocol rather than against our own client.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use fal_mock::{FalMock, HostKind, JobState, MockFailure};
use futures::StreamExt;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const QUEUE: Duration = Duration::from_millis(50);
const PROCESSING: Duration = Duration::from_millis(150);

async fn fast_mock() -> FalMock {
    FalMock::builder()
        .queue_time(QUEUE)
        .processing_time(PROCESSING)
        .log_lines(3)
        .initial_queue_position(2)
        .start()
        .await
        .unwrap()
}

/// One client for the whole test binary (building one per call is slow). Without idle
/// connections, so nothing ties it to one test's runtime.
fn http() -> Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| Client::builder().pool_max_idle_per_host(0).build().unwrap())
        .clone()
}

/// Longer phases for tests that must observe every phase.
async fn lifecycle_mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::from_millis(150))
        .processing_time(Duration::from_millis(300))
        .log_lines(3)
        .initial_queue_position(2)
        .start()
        .await
        .unwrap()
}

fn auth(mock: &FalMock) -> String {
    format!("Key {}", mock.key())
}

async fn submit(mock: &FalMock, endpoint: &str, input: Value) -> Value {
    let r = http()
        .post(format!("{}{endpoint}", mock.queue_url()))
        .header("authorization", auth(mock))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "submit to {endpoint}");
    let id = request_id_header(&r);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"].as_str(), Some(id.as_str()));
    body
}

fn request_id_header(r: &Response) -> String {
    r.headers()
        .get("x-fal-request-id")
        .expect("x-fal-request-id header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn get(mock: &FalMock, url: &str) -> (StatusCode, Value) {
    let r = http()
        .get(url)
        .header("authorization", auth(mock))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Poll the status URL until COMPLETED (bounded), returning every status body seen, with codes.
async fn poll_until_completed(
    mock: &FalMock,
    status_url: &str,
    logs: &str,
) -> Vec<(StatusCode, Value)> {
    let mut seen = Vec::new();
    for _ in 0..500 {
        let (code, body) = get(mock, &format!("{status_url}?logs={logs}")).await;
        let done = body["status"] == "COMPLETED";
        seen.push((code, body));
        if done {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("request did not complete: {:?}", seen.last());
}

async fn completed(mock: &FalMock, submitted: &Value) -> Value {
    let seen = poll_until_completed(mock, submitted["status_url"].as_str().unwrap(), "1").await;
    seen.last().unwrap().1.clone()
}

// ---------------------------------------------------------------------------------------------
// lifecycle

#[tokio::test]
async fn queue_lifecycle_submit_status_result() {
    let mock = lifecycle_mock().await;
    let sub = submit(
        &mock,
        "fal-ai/flux-lora",
        json!({"prompt": "a red fox", "seed": 7}),
    )
    .await;
    let id = sub["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "uuid-shaped id: {id}");
    assert_eq!(sub["status"], "IN_QUEUE");
    assert_eq!(sub["queue_position"], 2);
    assert_eq!(sub["gateway_request_id"], id);
    let base = format!("{}fal-ai/flux-lora/requests/{id}", mock.queue_url());
    assert_eq!(sub["response_url"], base.as_str());
    assert_eq!(sub["status_url"], format!("{base}/status").as_str());
    assert_eq!(sub["cancel_url"], format!("{base}/cancel").as_str());

    // Not finished yet: the result is refused.
    let (code, body) = get(&mock, &base).await;
    assert_eq!(code, 400);
    assert_eq!(body["detail"], "Request is still in progress");

    let seen = poll_until_completed(&mock, sub["status_url"].as_str().unwrap(), "1").await;
    let mut positions = Vec::new();
    let mut progress_logs = Vec::new();
    for (code, body) in &seen {
        match body["status"].as_str().unwrap() {
            "IN_QUEUE" => {
                assert_eq!(*code, 202);
                positions.push(body["queue_position"].as_u64().unwrap());
                assert_eq!(body["response_url"], base.as_str());
            }
            "IN_PROGRESS" => {
                assert_eq!(*code, 202);
                progress_logs.push(body["logs"].as_array().unwrap().len());
            }
            "COMPLETED" => assert_eq!(*code, 200),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        !positions.is_empty() && !progress_logs.is_empty(),
        "{seen:?}"
    );
    assert!(
        positions.windows(2).all(|w| w[0] >= w[1]),
        "positions count down: {positions:?}"
    );
    assert!(*positions.first().unwrap() <= 2);
    assert!(
        progress_logs.windows(2).all(|w| w[0] <= w[1]),
        "logs grow: {progress_logs:?}"
    );
    assert!(progress_logs.iter().all(|n| (1..=3).contains(n)));

    let done = &seen.last().unwrap().1;
    let logs = done["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3);
    for l in logs {
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["source"], "USER");
        assert!(
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("generating image 1/1"),
            "{l}"
        );
        let ts = l["timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
            "{ts}"
        );
    }
    let t = done["metrics"]["inference_time"].as_f64().unwrap();
    assert!((0.25..1.0).contains(&t), "{t}");
    assert!(done.get("error").is_none());

    let r = http()
        .get(&base)
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(request_id_header(&r), id);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["prompt"], "a red fox");
    assert_eq!(out["seed"], 7);
    assert_eq!(out["images"].as_array().unwrap().len(), 1);
    assert_eq!(out["has_nsfw_concepts"], json!([false]));
    assert!(out["timings"]["inference"].is_number());

    assert_eq!(mock.submissions("fal-ai/flux-lora"), 1);
    let snap = mock.job(id).unwrap();
    assert_eq!(
        snap.state,
        JobState::Completed {
            error: None,
            error_type: None
        }
    );
    assert_eq!(snap.endpoint_id, "fal-ai/flux-lora");
}

#[tokio::test]
async fn status_without_logs_has_null_logs() {
    let mock = fast_mock().await;
    let sub = submit(&mock, "fal-ai/flux-lora", json!({"prompt": "p"})).await;
    for flag in ["0", "false"] {
        let seen = poll_until_completed(&mock, sub["status_url"].as_str().unwrap(), flag).await;
        for (_, body) in &seen {
            if body["status"] != "IN_QUEUE" {
                assert!(body["logs"].is_null(), "{body}");
            }
        }
    }
    let (_, body) = get(
        &mock,
        &format!("{}?logs=true", sub["status_url"].as_str().unwrap()),
    )
    .await;
    assert_eq!(body["logs"].as_array().unwrap().len(), 3);
    let (code, _) = get(
        &mock,
        &format!("{}?logs=maybe", sub["status_url"].as_str().unwrap()),
    )
    .await;
    assert_eq!(code, 422);
}

#[tokio::test]
async fn owner_alias_rule_for_the_ultra_endpoint() {
    let mock = fast_mock().await;
    let endpoint = "fal-ai/flux-pro/v1.1-ultra-finetuned";
    let input =
        json!({"prompt": "portrait of TOK", "finetune_id": "ft-1", "finetune_strength": 1.1});
    let sub = submit(&mock, endpoint, input).await;
    let id = sub["request_id"].as_str().unwrap();
    let good = format!("{}fal-ai/flux-pro/requests/{id}", mock.queue_url());
    let bad = format!("{}{endpoint}/requests/{id}", mock.queue_url());
    assert_eq!(sub["response_url"], good.as_str());
    assert_eq!(sub["status_url"], format!("{good}/status").as_str());

    let (code, body) = get(&mock, &format!("{bad}/status")).await;
    assert_eq!(code, 404);
    assert_eq!(body["detail"], "Request not found");
    let (code, _) = get(&mock, &format!("{good}/status")).await;
    assert_eq!(code, 202);

    completed(&mock, &sub).await;
    let (code, _) = get(&mock, &bad).await;
    assert_eq!(code, 404);
    let (code, out) = get(&mock, &good).await;
    assert_eq!(code, 200);
    assert_eq!(out["images"][0]["content_type"], "image/jpeg");
    // Another app's prefix does not find the request either.
    let (code, _) = get(
        &mock,
        &format!("{}fal-ai/flux-lora/requests/{id}/status", mock.queue_url()),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(mock.submissions(endpoint), 1);
    assert_eq!(mock.submissions("fal-ai/flux-pro"), 0);
}

#[tokio::test]
async fn namespaced_and_legacy_ids() {
    let mock = fast_mock().await;
    let sub = submit(&mock, "workflows/fal-ai/my-wf/sub", json!({"a": 1})).await;
    let id = sub["request_id"].as_str().unwrap();
    assert_eq!(
        sub["response_url"],
        format!("{}workflows/fal-ai/my-wf/requests/{id}", mock.queue_url()).as_str()
    );
    let done = completed(&mock, &sub).await;
    assert!(done.get("error").is_none());
    let (code, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(out, json!({"echo": {"a": 1}}));

    let sub = submit(&mock, "110602490/lora", json!({})).await;
    assert!(sub["response_url"]
        .as_str()
        .unwrap()
        .contains("/queue/110602490/lora/requests/"));

    for bad in ["just-an-id", "workflows/only-owner", "a//b"] {
        let r = http()
            .post(format!("{}{bad}", mock.queue_url()))
            .header("authorization", auth(&mock))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
}

#[tokio::test]
async fn sse_stream_yields_queue_to_completed_then_closes() {
    let mock = lifecycle_mock().await;
    let sub = submit(&mock, "fal-ai/flux-lora", json!({"prompt": "p"})).await;
    let url = format!("{}/stream?logs=1", sub["status_url"].as_str().unwrap());
    let r = http()
        .get(&url)
        .header("authorization", auth(&mock))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let read_all = async {
        while let Some(chunk) = body.next().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the stream closes after COMPLETED");
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("data event")).unwrap())
        .collect();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"IN_QUEUE"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"COMPLETED"), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "COMPLETED").count(), 1);
    assert!(statuses.contains(&"IN_PROGRESS"), "{statuses:?}");
    // Logs arrive incrementally: across events, each line exactly once.
    let total: usize = events
        .iter()
        .filter_map(|e| e["logs"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(total, 3);
    assert!(events.last().unwrap()["metrics"]["inference_time"].is_number());

    // Streaming a completed request: one COMPLETED event, then the end.
    let text = http()
        .get(format!("{}/stream", sub["status_url"].as_str().unwrap()))
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.matches("data: ").count(), 1);
    assert!(text.contains("\"COMPLETED\""));
}

// ---------------------------------------------------------------------------------------------
// auth

#[tokio::test]
async fn missing_or_wrong_auth_is_401() {
    let mock = fast_mock().await;
    let client = http();
    let urls = [
        (
            reqwest::Method::POST,
            format!("{}fal-ai/flux-lora", mock.queue_url()),
        ),
        (
            reqwest::Method::POST,
            format!("{}fal-ai/flux-lora", mock.run_url()),
        ),
        (
            reqwest::Method::POST,
            format!(
                "{}storage/upload/initiate?storage_type=fal-cdn-v3",
                mock.rest_url()
            ),
        ),
        (
            reqwest::Method::GET,
            format!("{}fal-ai/flux-lora/requests/x/status", mock.queue_url()),
        ),
    ];
    for (method, url) in &urls {
        let r = client
            .request(method.clone(), url)
            .json(&json!({"prompt": "p"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{url}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"detail": "Unauthorized"})
        );
        for bad in ["Key wrong", "Bearer mock-key", "mock-key"] {
            let r = client
                .request(method.clone(), url)
                .header("authorization", bad)
                .json(&json!({"prompt": "p"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{url} with {bad}");
        }
    }
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 0);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), urls.len() * 4);
    assert_eq!(
        reqs.iter().filter(|r| !r.authorization_present).count(),
        urls.len()
    );
    assert!(reqs.iter().all(|r| r.host_kind == HostKind::Api));
    let initiate = reqs
        .iter()
        .find(|r| r.path == "/rest/storage/upload/initiate")
        .unwrap();
    assert_eq!(initiate.query.as_deref(), Some("storage_type=fal-cdn-v3"));
    assert_eq!(initiate.method, "POST");
    assert!(
        !format!("{reqs:?}").contains("mock-key"),
        "the key is never recorded"
    );

    let custom = FalMock::builder().key("k-123").start().await.unwrap();
    let r = client
        .post(format!("{}fal-ai/x", custom.queue_url()))
        .header("authorization", "Key k-123")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// validation

#[tokio::test]
async fn validation_422_via_run() {
    let mock = fast_mock().await;
    let run = |body: Value| {
        let mock = &mock;
        async move {
            let r = http()
                .post(format!("{}fal-ai/flux-lora", mock.run_url()))
                .header("authorization", auth(mock))
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = r.status();
            (code, r.json::<Value>().await.unwrap())
        }
    };
    let (code, body) = run(json!({"num_images": 9})).await;
    assert_eq!(code, 422);
    let detail = body["detail"].as_array().unwrap();
    assert_eq!(detail[0]["loc"], json!(["body", "prompt"]));
    assert_eq!(detail[0]["msg"], "field required");
    assert_eq!(detail[0]["type"], "value_error.missing");
    assert_eq!(detail[1]["loc"], json!(["body", "num_images"]));
    assert_eq!(detail[1]["type"], "value_error.number.not_le");
    assert_eq!(
        detail[1]["msg"],
        "ensure this value is less than or equal to 4"
    );
    assert_eq!(detail[1]["ctx"]["limit_value"], 4);

    let (code, body) = run(json!({"prompt": "p", "loras": [{"path": "http://x/l.safetensors", "scale": -1}], "guidance_scale": "high", "output_format": "gif"})).await;
    assert_eq!(code, 422);
    let types: Vec<&str> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "value_error.number.not_ge",
            "type_error.float",
            "value_error.const"
        ]
    );
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "loras", 0, "scale"])
    );

    let (code, _) = run(json!([1, 2])).await;
    assert_eq!(code, 422);
    assert_eq!(mock.runs("fal-ai/flux-lora"), 2);

    let (code, out) =
        run(json!({"prompt": "ok", "image_size": {"width": 300, "height": 200}})).await;
    assert_eq!(code, 200);
    assert_eq!(out["images"][0]["width"], 300);
    assert_eq!(out["images"][0]["height"], 200);
    assert_eq!(mock.runs("fal-ai/flux-lora"), 3);
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 0);
}

#[tokio::test]
async fn validation_422_via_queue_and_result() {
    let mock = fast_mock().await;
    let endpoint = "fal-ai/flux-pro/v1.1-ultra-finetuned";
    let sub = submit(
        &mock,
        endpoint,
        json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 3, "safety_tolerance": 2}),
    )
    .await;
    let done = completed(&mock, &sub).await;
    assert_eq!(done["error"], "Invalid status code: 422");
    assert!(done.get("error_type").is_none(), "{done}");
    let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 422);
    let detail = body["detail"].as_array().unwrap();
    // In the order fal's model declares its fields (`x-fal-order-properties`).
    assert_eq!(detail[0]["loc"], json!(["body", "safety_tolerance"]));
    assert_eq!(detail[0]["type"], "value_error.const");
    assert_eq!(detail[1]["loc"], json!(["body", "finetune_strength"]));
    assert_eq!(detail[1]["type"], "value_error.number.not_le");
    assert_eq!(
        detail[1]["msg"],
        "ensure this value is less than or equal to 2"
    );
    let snap = mock.job(sub["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        snap.state,
        JobState::Completed {
            error: Some("Invalid status code: 422".into()),
            error_type: None
        }
    );

    // Body syntax and submit headers are checked at submit.
    let client = http();
    let url = format!("{}{endpoint}", mock.queue_url());
    let r = client
        .post(&url)
        .header("authorization", auth(&mock))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = client
        .post(&url)
        .header("authorization", auth(&mock))
        .json(&json!("text"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    for (h, v) in [
        ("x-fal-queue-priority", "high"),
        ("x-fal-request-timeout", "1"),
        ("x-fal-request-timeout", "0.5"),
        ("x-fal-request-timeout", "soon"),
    ] {
        let r = client
            .post(&url)
            .header("authorization", auth(&mock))
            .header(h, v)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{h}: {v}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"], json!(["header", h]));
    }
    let r = client
        .post(format!("{url}?fal_webhook=not-a-url"))
        .header("authorization", auth(&mock))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(mock.submissions(endpoint), 1);
}

#[tokio::test]
async fn submit_headers_and_webhook_are_kept() {
    let mock = fast_mock().await;
    let r = http()
        .post(format!(
            "{}fal-ai/flux-lora?fal_webhook=https%3A%2F%2Fexample.com%2Fhook%3Fa%3D1",
            mock.queue_url()
        ))
        .header("authorization", auth(&mock))
        .header("x-fal-queue-priority", "low")
        .header("x-fal-runner-hint", "lora:a")
        .header("x-fal-request-timeout", "30.0")
        .json(&json!({"prompt": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sub: Value = r.json().await.unwrap();
    let snap = mock.job(sub["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        snap.webhook_url.as_deref(),
        Some("https://example.com/hook?a=1")
    );
    assert_eq!(snap.priority.as_deref(), Some("low"));
    assert_eq!(snap.runner_hint.as_deref(), Some("lora:a"));
    assert_eq!(snap.request_timeout.as_deref(), Some("30.0"));
    assert_eq!(snap.input, json!({"prompt": "p"}));
    assert!(matches!(
        snap.state,
        JobState::InQueue { .. } | JobState::InProgress { .. }
    ));
    assert!(!snap.cancelled);
    assert!(mock.job("nope").is_none());
}

#[tokio::test]
async fn start_timeout_expiring_in_the_queue_fails_with_504() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.queue_url()))
        .header("authorization", auth(&mock))
        .header("x-fal-request-timeout", "1.05")
        .json(&json!({"prompt": "p"}))
        .send()
        .await
        .unwrap();
    let sub: Value = r.json().await.unwrap();
    let done = completed(&mock, &sub).await;
    assert_eq!(done["error_type"], "request_timeout");
    let r = http()
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-fal-request-timeout-type"], "user");
    assert_eq!(r.headers()["x-fal-error-type"], "request_timeout");
}

// ---------------------------------------------------------------------------------------------
// cancel

#[tokio::test]
async fn cancel_outcomes() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_millis(20))
        .processing_time(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let client = http();
    let sub = submit(&mock, "fal-ai/flux-lora", json!({"prompt": "p"})).await;
    let cancel_url = sub["cancel_url"].as_str().unwrap();
    let r = client
        .put(cancel_url)
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "CANCELLATION_REQUESTED"})
    );

    let (code, status) = get(
        &mock,
        &format!("{}?logs=1", sub["status_url"].as_str().unwrap()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(status["status"], "COMPLETED");
    assert_eq!(status["error"], "Request was cancelled");
    assert_eq!(status["error_type"], "client_cancelled");

    let r = client
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 499);
    assert_eq!(r.headers()["x-fal-error-type"], "client_cancelled");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Request was cancelled", "error_type": "client_cancelled"})
    );

    let r = client
        .put(cancel_url)
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ALREADY_COMPLETED"})
    );

    let r = client
        .put(format!(
            "{}fal-ai/flux-lora/requests/00000000-0000-4000-8000-000000000000/cancel",
            mock.queue_url()
        ))
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "NOT_FOUND"})
    );
    let snap = mock.job(sub["request_id"].as_str().unwrap()).unwrap();
    assert!(snap.cancelled);

    // A finished request cannot be cancelled.
    mock.set_processing_time(Duration::from_millis(10));
    let sub = submit(&mock, "fal-ai/x", json!({})).await;
    completed(&mock, &sub).await;
    let r = client
        .put(sub["cancel_url"].as_str().unwrap())
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

// ---------------------------------------------------------------------------------------------
// storage

#[tokio::test]
async fn storage_initiate_put_get_round_trip() {
    let mock = fast_mock().await;
    let client = http();
    let r = client
        .post(format!(
            "{}storage/upload/initiate?storage_type=fal-cdn-v3",
            mock.rest_url()
        ))
        .header("authorization", auth(&mock))
        .json(&json!({"content_type": "image/png", "file_name": "my photo.png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let init: Value = r.json().await.unwrap();
    let upload_url = init["upload_url"].as_str().unwrap();
    let file_url = init["file_url"].as_str().unwrap();
    assert!(
        upload_url.starts_with(&format!("{}upload/", mock.cdn_url())),
        "{upload_url}"
    );
    assert!(
        file_url.starts_with(&format!("{}files/", mock.cdn_url())),
        "{file_url}"
    );
    assert!(file_url.ends_with("/my%20photo.png"), "{file_url}");
    assert_ne!(mock.cdn_url(), mock.queue_url());

    // The file does not exist before its PUT.
    assert_eq!(client.get(file_url).send().await.unwrap().status(), 404);
    let data = b"\x89PNG fake bytes".to_vec();
    let r = client
        .put(upload_url)
        .header("content-type", "image/png")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(file_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let (ct, bytes) = mock.uploaded(file_url).unwrap();
    assert_eq!(ct, "image/png");
    assert_eq!(bytes.as_ref(), data.as_slice());

    // Overwrite with a second PUT (content type from the PUT wins).
    let r = client
        .put(upload_url)
        .header("content-type", "text/plain")
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.uploaded(file_url).unwrap(),
        ("text/plain".to_owned(), bytes::Bytes::from("v2"))
    );

    // Unknown upload token / file.
    let r = client
        .put(format!("{}upload/nope", mock.cdn_url()))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(mock
        .uploaded(format!("{}files/nope/x", mock.cdn_url()))
        .is_none());

    // The CDN saw no Authorization header; the API did.
    let reqs = mock.requests();
    let cdn: Vec<_> = reqs
        .iter()
        .filter(|r| r.host_kind == HostKind::Cdn)
        .collect();
    assert_eq!(cdn.len(), 5);
    assert!(cdn.iter().all(|r| !r.authorization_present));
    assert!(cdn
        .iter()
        .any(|r| r.method == "PUT" && r.path.starts_with("/upload/")));
    let api: Vec<_> = reqs
        .iter()
        .filter(|r| r.host_kind == HostKind::Api)
        .collect();
    assert_eq!(api.len(), 1);
    assert!(api[0].authorization_present);
    assert_eq!(api[0].path, "/rest/storage/upload/initiate");

    // An Authorization header sent to the CDN is recorded (so the check above is meaningful).
    client
        .get(file_url)
        .header("authorization", "Key leaked")
        .send()
        .await
        .unwrap();
    assert!(mock.requests().last().unwrap().authorization_present);
}

#[tokio::test]
async fn large_upload_round_trip() {
    let mock = fast_mock().await;
    let client = http();
    let init: Value = client
        .post(format!(
            "{}storage/upload/initiate?storage_type=fal-cdn-v3",
            mock.rest_url()
        ))
        .header("authorization", auth(&mock))
        .json(&json!({"content_type": "application/zip", "file_name": "photos.zip"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = vec![7u8; 5 * 1024 * 1024];
    let r = client
        .put(init["upload_url"].as_str().unwrap())
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (ct, bytes) = mock.uploaded(init["file_url"].as_str().unwrap()).unwrap();
    assert_eq!(
        ct, "application/zip",
        "no content type on the PUT: the initiate one is kept"
    );
    assert_eq!(bytes.len(), data.len());
}

// ---------------------------------------------------------------------------------------------
// outputs

async fn download(url: &str) -> (String, bytes::Bytes) {
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, r.bytes().await.unwrap())
}

#[tokio::test]
async fn generated_images_decode_with_the_reported_size() {
    let mock = fast_mock().await;
    // flux-lora, PNG, two images.
    let sub = submit(
        &mock,
        "fal-ai/flux-lora",
        json!({"prompt": "a cat", "seed": 42, "num_images": 2, "output_format": "png", "image_size": "landscape_16_9"}),
    )
    .await;
    let done = completed(&mock, &sub).await;
    assert_eq!(done["logs"][0]["message"], "generating image 1/2 (33%)");
    let (_, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    let images = out["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(out["has_nsfw_concepts"], json!([false, false]));
    let mut pngs = Vec::new();
    for img in images {
        assert_eq!(img["content_type"], "image/png");
        assert_eq!(
            (img["width"].as_u64(), img["height"].as_u64()),
            (Some(512), Some(288))
        );
        let url = img["url"].as_str().unwrap();
        assert!(url.starts_with(&mock.cdn_url()));
        let (ct, bytes) = download(url).await;
        assert_eq!(ct, "image/png");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((u64::from(info.width), u64::from(info.height)), (512, 288));
        pngs.push(bytes);
    }
    assert_ne!(pngs[0], pngs[1], "each index renders differently");

    // ultra-finetuned, JPEG (default), 1:1.
    let input = json!({"prompt": "a dog", "seed": 1, "finetune_id": "f", "finetune_strength": 1.0, "aspect_ratio": "1:1"});
    let sub = submit(&mock, "fal-ai/flux-pro/v1.1-ultra-finetuned", input.clone()).await;
    completed(&mock, &sub).await;
    let (_, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    let img = &out["images"][0];
    assert_eq!(img["content_type"], "image/jpeg");
    let (ct, bytes) = download(img["url"].as_str().unwrap()).await;
    assert_eq!(ct, "image/jpeg");
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    dec.decode().unwrap();
    let info = dec.info().unwrap();
    assert_eq!((u64::from(info.width), u64::from(info.height)), (512, 512));
    assert_eq!(
        (img["width"].as_u64(), img["height"].as_u64()),
        (Some(512), Some(512))
    );

    // Deterministic from (prompt, seed, index).
    let again = submit(&mock, "fal-ai/flux-pro/v1.1-ultra-finetuned", input).await;
    completed(&mock, &again).await;
    let (_, out2) = get(&mock, again["response_url"].as_str().unwrap()).await;
    assert_ne!(out2["images"][0]["url"], img["url"]);
    let (_, bytes2) = download(out2["images"][0]["url"].as_str().unwrap()).await;
    assert_eq!(bytes, bytes2);
    assert_eq!(
        mock.uploaded(img["url"].as_str().unwrap()).unwrap().1,
        bytes
    );
}

#[tokio::test]
async fn sync_mode_returns_data_uris() {
    let mock = fast_mock().await;
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&json!({"prompt": "p", "sync_mode": true, "image_size": "square"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-fal-request-id"));
    let out: Value = r.json().await.unwrap();
    assert!(out["images"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("data:image/jpeg;base64,"));
}

fn tiny_zip() -> Vec<u8> {
    common::training_zip()
}

async fn upload(mock: &FalMock, name: &str, ct: &str, data: Vec<u8>) -> String {
    let init: Value = http()
        .post(format!(
            "{}storage/upload/initiate?storage_type=fal-cdn-v3",
            mock.rest_url()
        ))
        .header("authorization", auth(mock))
        .json(&json!({"content_type": ct, "file_name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http()
        .put(init["upload_url"].as_str().unwrap())
        .header("content-type", ct)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    init["file_url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn portrait_trainer_outputs_real_files() {
    let mock = fast_mock().await;
    let zip_url = upload(&mock, "photos.zip", "application/zip", tiny_zip()).await;
    let input = json!({"images_data_url": zip_url, "trigger_phrase": "TOK", "steps": 1000});
    let sub = submit(&mock, "fal-ai/flux-lora-portrait-trainer", input.clone()).await;
    let done = completed(&mock, &sub).await;
    assert!(done.get("error").is_none(), "{done}");
    assert!(done["logs"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("step 333/1000, loss "));
    assert!(done["logs"][2]["message"]
        .as_str()
        .unwrap()
        .starts_with("step 1000/1000, loss "));
    let (code, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 200);

    let lora = &out["diffusers_lora_file"];
    assert_eq!(lora["content_type"], "application/octet-stream");
    assert_eq!(lora["file_name"], "pytorch_lora_weights.safetensors");
    let (_, st) = download(lora["url"].as_str().unwrap()).await;
    assert_eq!(lora["file_size"].as_u64(), Some(st.len() as u64));
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&st[8..8 + n]).unwrap();
    assert_eq!(header["__metadata__"]["trigger_phrase"], "TOK");
    for (name, t) in header.as_object().unwrap() {
        if name != "__metadata__" {
            let end = t["data_offsets"][1].as_u64().unwrap() as usize;
            assert!(8 + n + end <= st.len());
        }
    }

    let config = &out["config_file"];
    assert_eq!(config["content_type"], "application/json");
    assert_eq!(config["file_name"], "config.json");
    let (ct, bytes) = download(config["url"].as_str().unwrap()).await;
    assert_eq!(ct, "application/json");
    assert_eq!(config["file_size"].as_u64(), Some(bytes.len() as u64));
    let cfg: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(cfg["input"], input);

    // An archive on the mock CDN that is not a ZIP fails on its field.
    let bad_url = upload(
        &mock,
        "photos.zip",
        "application/zip",
        b"not a zip".to_vec(),
    )
    .await;
    let sub = submit(
        &mock,
        "fal-ai/flux-lora-portrait-trainer",
        json!({"images_data_url": bad_url}),
    )
    .await;
    let done = completed(&mock, &sub).await;
    assert_eq!(done["error"], "Invalid status code: 422");
    let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "images_data_url"]));
    assert_eq!(body["detail"][0]["type"], "value_error");
    assert!(body["detail"][0]["msg"].as_str().unwrap().contains("ZIP"));

    // A URL elsewhere is taken as-is.
    let sub = submit(
        &mock,
        "fal-ai/flux-lora-portrait-trainer",
        json!({"images_data_url": "https://example.com/x.zip"}),
    )
    .await;
    assert!(completed(&mock, &sub).await.get("error").is_none());
}

#[tokio::test]
async fn pro_trainer_returns_a_finetune_id() {
    let mock = fast_mock().await;
    mock.restore_endpoint("fal-ai/flux-pro-trainer"); // removed by default, like on fal
    let zip_url = upload(&mock, "data.zip", "application/zip", tiny_zip()).await;
    let sub = submit(
        &mock,
        "fal-ai/flux-pro-trainer",
        json!({"data_url": zip_url, "finetune_comment": "anna", "mode": "character", "iterations": 300, "lora_rank": 16}),
    )
    .await;
    completed(&mock, &sub).await;
    let (code, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    let id = out["finetune_id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(out.as_object().unwrap().len(), 1);

    // Missing finetune_comment and a data_url of the wrong kind.
    let sub = submit(
        &mock,
        "fal-ai/flux-pro-trainer",
        json!({"images_data_url": zip_url}),
    )
    .await;
    completed(&mock, &sub).await;
    let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 422);
    let fields: Vec<&Value> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["loc"][1])
        .collect();
    assert_eq!(fields, [&json!("data_url"), &json!("finetune_comment")]);
}

// ---------------------------------------------------------------------------------------------
// failure injection

#[tokio::test]
async fn fail_next_http_answers_the_submit_directly() {
    let mock = fast_mock().await;
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::Http {
            status: 503,
            body: json!({"detail": "Service Unavailable"}),
            headers: vec![("x-fal-retryable".into(), "true".into())],
        },
    );
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::http(429, json!({"detail": "Too many requests"})),
    );
    let url = format!("{}fal-ai/flux-lora", mock.queue_url());
    let send = || {
        http()
            .post(&url)
            .header("authorization", auth(&mock))
            .json(&json!({"prompt": "p"}))
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-fal-retryable"], "true");
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"],
        "Service Unavailable"
    );
    assert_eq!(send().await.unwrap().status(), 429);
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 0);
    assert_eq!(send().await.unwrap().status(), 200);
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 1);

    // On sync run too; other endpoints are not affected.
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::http(502, json!({"detail": "Bad Gateway"})),
    );
    let r = http()
        .post(format!("{}fal-ai/x", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.run_url()))
        .header("authorization", auth(&mock))
        .json(&json!({"prompt": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn fail_next_validation_and_completed_with_error() {
    let mock = fast_mock().await;
    let endpoint = "fal-ai/flux-lora-portrait-trainer";
    mock.fail_next(
        endpoint,
        MockFailure::Validation(vec![(
            "images_data_url".into(),
            "The archive contains no images".into(),
            "image_load_error".into(),
        )]),
    );
    mock.fail_next(
        endpoint,
        MockFailure::completed_with_error("Runner disconnected", "runner_disconnected"),
    );
    let input = json!({"images_data_url": "https://example.com/a.zip"});

    let sub = submit(&mock, endpoint, input.clone()).await;
    let done = completed(&mock, &sub).await;
    assert_eq!(done["error"], "Invalid status code: 422");
    let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 422);
    assert_eq!(
        body,
        json!({"detail": [{"loc": ["body", "images_data_url"], "msg": "The archive contains no images", "type": "image_load_error"}]})
    );

    let sub = submit(&mock, endpoint, input.clone()).await;
    let done = completed(&mock, &sub).await;
    assert_eq!(done["error"], "Runner disconnected");
    assert_eq!(done["error_type"], "runner_disconnected");
    let r = http()
        .get(sub["response_url"].as_str().unwrap())
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-fal-error-type"], "runner_disconnected");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Runner disconnected", "error_type": "runner_disconnected"})
    );

    // Consumed: the third submit succeeds.
    let sub = submit(&mock, endpoint, input).await;
    assert!(completed(&mock, &sub).await.get("error").is_none());
    assert_eq!(mock.submissions(endpoint), 3);

    // A sync run answers the injected error directly.
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::validation("prompt", "too long", "value_error"),
    );
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::completed_with_error("boom", "internal_error"),
    );
    let run = || {
        http()
            .post(format!("{}fal-ai/flux-lora", mock.run_url()))
            .header("authorization", auth(&mock))
            .json(&json!({"prompt": "p"}))
            .send()
    };
    let r = run().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["detail"][0]["type"],
        "value_error"
    );
    let r = run().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-fal-error-type"], "internal_error");
}

// ---------------------------------------------------------------------------------------------
// client wiring, scale, shutdown

#[tokio::test]
async fn client_and_env_point_at_the_mock() {
    let mock = fast_mock().await;
    let client = mock.client().unwrap();
    assert_eq!(client.config().queue_url().as_str(), mock.queue_url());
    assert_eq!(client.config().run_url().as_str(), mock.run_url());
    assert_eq!(client.config().rest_url().as_str(), mock.rest_url());
    assert!(client.has_key());
    let env = mock.env_vars();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "FAL_KEY",
            "FAL_QUEUE_URL",
            "FAL_RUN_URL",
            "FAL_REST_URL",
            "FAL_CDN_URL",
            "FAL_JWKS_URL",
            "FAL_API_URL"
        ]
    );
    assert_eq!(
        client.config().api_url().as_str().trim_end_matches('/'),
        mock.api_url()
    );
    assert_eq!(env[0].1, "mock-key");
    assert!(
        mock.queue_url().starts_with("http://127.0.0.1:") && mock.queue_url().ends_with("/queue/")
    );
    assert!(mock.cdn_url().starts_with("http://127.0.0.1:") && mock.cdn_url().ends_with('/'));
    let built = mock
        .client_builder()
        .read_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(built.config().queue_url().as_str(), mock.queue_url());
    assert_eq!(built.config().jwks_url().as_str(), mock.jwks_url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_a_thousand_concurrent_jobs() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_millis(100))
        .processing_time(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let client = http();
    let subs: Vec<Value> = futures::stream::iter(0..1000)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}someone/app", mock.queue_url());
            let key = auth(&mock);
            async move {
                let r = client
                    .post(url)
                    .header("authorization", key)
                    .json(&json!({"i": i}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(mock.submissions("someone/app"), 1000);
    let outs: Vec<Value> = futures::stream::iter(subs)
        .map(|sub| {
            let mock = &mock;
            async move {
                completed(mock, &sub).await;
                let (code, out) = get(mock, sub["response_url"].as_str().unwrap()).await;
                assert_eq!(code, 200);
                out
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut seen: Vec<u64> = outs
        .iter()
        .map(|o| o["echo"]["i"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_stops_both_servers() {
    let mock = fast_mock().await;
    let queue = mock.queue_url();
    let cdn = mock.cdn_url();
    let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(
        client
            .get(format!("{cdn}files/x"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // An open status stream does not hold the shutdown up.
    let sub = submit(&mock, "fal-ai/x", json!({})).await;
    let stream = client
        .get(format!("{}/stream", sub["status_url"].as_str().unwrap()))
        .header("authorization", auth(&mock))
        .send()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), mock.shutdown())
        .await
        .expect("shutdown is prompt");
    drop(stream);
    assert!(client
        .get(format!("{queue}fal-ai/x/requests/x/status"))
        .send()
        .await
        .is_err());
    assert!(client.get(format!("{cdn}files/x")).send().await.is_err());

    let dropped = fast_mock().await;
    let url = dropped.queue_url();
    drop(dropped);
    let mut closed = false;
    for _ in 0..100 {
        if client
            .get(format!("{url}a/b/requests/x/status"))
            .send()
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "dropping the mock stops its servers");
}

#[tokio::test]
async fn zero_timings_complete_at_once() {
    let mock = FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::ZERO)
        .log_lines(0)
        .start()
        .await
        .unwrap();
    let sub = submit(&mock, "fal-ai/x", json!({"k": "v"})).await;
    assert_eq!(sub["status"], "IN_QUEUE");
    assert_eq!(sub["queue_position"], 0);
    let (code, status) = get(
        &mock,
        &format!("{}?logs=1", sub["status_url"].as_str().unwrap()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(status["logs"], json!([]));
    assert_eq!(status["metrics"], json!({}));
    let (code, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(out, json!({"echo": {"k": "v"}}));
}

// ---------------------------------------------------------------------------------------------
// endpoints from fal's documents, archives per trainer, removed endpoints

/// A ZIP of `n` tiny PNGs; `captions` of them captioned.
fn zip_of(n: usize, captions: usize) -> Vec<u8> {
    let mut b = fal_client::archive::ArchiveBuilder::new().min_images(1);
    for i in 0..n {
        b = b.image(format!("p{i:02}.png"), common::PNG_1X1);
        if i < captions {
            b = b.caption(format!("p{i:02}.png"), "a photo of TOK");
        }
    }
    b.build().unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn trainers_fail_on_archives_they_cannot_train_on() {
    let mock = fast_mock().await;
    // (endpoint, archive field, images, captioned, extra input, expected problem)
    let cases = [
        (
            "fal-ai/flux-lora-fast-training",
            "images_data_url",
            3,
            0,
            json!({}),
            Some("found 3, need at least 4"),
        ),
        (
            "fal-ai/flux-lora-fast-training",
            "images_data_url",
            4,
            0,
            json!({}),
            None,
        ),
        (
            "fal-ai/flux-2-trainer",
            "image_data_url",
            10,
            9,
            json!({}),
            Some("`p09.png` has no caption"),
        ),
        (
            "fal-ai/flux-2-trainer",
            "image_data_url",
            10,
            9,
            json!({"default_caption": "a photo of TOK"}),
            None,
        ),
        (
            "fal-ai/z-image-trainer",
            "image_data_url",
            10,
            10,
            json!({}),
            None,
        ),
        (
            "fal-ai/qwen-image-2512-trainer",
            "image_data_url",
            10,
            0,
            json!({}),
            Some("`p00.png` has no caption"),
        ),
        (
            "fal-ai/flux-lora-portrait-trainer",
            "images_data_url",
            9,
            0,
            json!({}),
            Some("found 9, need at least 10"),
        ),
    ];
    for (endpoint, field, n, captions, extra, problem) in cases {
        let url = upload(&mock, "set.zip", "application/zip", zip_of(n, captions)).await;
        let mut input = extra.clone();
        input[field] = json!(url);
        let sub = submit(&mock, endpoint, input).await;
        let done = completed(&mock, &sub).await;
        let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
        match problem {
            None => {
                assert!(done.get("error").is_none(), "{endpoint}: {done}");
                assert_eq!(code, 200, "{endpoint}: {body}");
                let lora = body["diffusers_lora_file"]["url"].as_str().unwrap();
                let downloaded = http().get(lora).send().await.unwrap().status();
                assert_eq!(downloaded, 200, "{endpoint}: the LoRA downloads");
            }
            Some(text) => {
                // The way fal reports a failed run: COMPLETED with `error`, the result is the 422.
                assert_eq!(
                    done["error"], "Invalid status code: 422",
                    "{endpoint}: {done}"
                );
                assert_eq!(code, 422, "{endpoint}");
                let d = &body["detail"][0];
                assert_eq!(d["loc"], json!(["body", field]), "{endpoint}");
                assert!(d["msg"].as_str().unwrap().contains(text), "{endpoint}: {d}");
            }
        }
    }
}

#[tokio::test]
async fn new_endpoints_validate_like_fal_from_their_documents() {
    let mock = fast_mock().await;
    let sub = submit(
        &mock,
        "fal-ai/flux-2-trainer",
        json!({"image_data_url": "https://example.com/x.zip", "steps": 150, "output_lora_format": "ckpt"}),
    )
    .await;
    completed(&mock, &sub).await;
    let (code, body) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    assert_eq!(code, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "steps"]));
    assert_eq!(body["detail"][0]["type"], "value_error.number.not_multiple");
    assert_eq!(
        body["detail"][1]["loc"],
        json!(["body", "output_lora_format"])
    );

    // Generators answer in their own image shape and default format, with real files.
    for (endpoint, status_prefix, png) in [
        ("fal-ai/flux-2/lora", "/queue/fal-ai/flux-2/requests/", true),
        (
            "fal-ai/z-image/turbo/lora",
            "/queue/fal-ai/z-image/requests/",
            true,
        ),
        (
            "fal-ai/flux-lora",
            "/queue/fal-ai/flux-lora/requests/",
            false,
        ),
    ] {
        let sub = submit(&mock, endpoint, json!({"prompt": "a fox", "num_images": 2})).await;
        assert!(
            sub["status_url"].as_str().unwrap().contains(status_prefix),
            "{sub}"
        );
        completed(&mock, &sub).await;
        let (code, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
        assert_eq!(code, 200, "{endpoint}: {out}");
        assert_eq!(out["images"].as_array().unwrap().len(), 2);
        let image = &out["images"][0];
        let bytes = http()
            .get(image["url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.starts_with(b"\x89PNG"), png, "{endpoint}");
        assert_eq!(
            image["file_name"].is_string(),
            png,
            "{endpoint}: ImageFile shape"
        );
    }
    let sub = submit(
        &mock,
        "fal-ai/flux-2/lora",
        json!({"prompt": "a fox", "output_format": "webp"}),
    )
    .await;
    completed(&mock, &sub).await;
    let (_, out) = get(&mock, sub["response_url"].as_str().unwrap()).await;
    let bytes = http()
        .get(out["images"][0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let webp = image_webp::WebPDecoder::new(std::io::Cursor::new(&bytes[..])).unwrap();
    assert_eq!(webp.dimensions(), (512, 384));
}

#[tokio::test]
async fn removed_endpoints_answer_404_like_an_app_fal_does_not_serve() {
    let mock = fast_mock().await;
    for (route, url) in [
        (
            "queue",
            format!("{}fal-ai/flux-pro-trainer", mock.queue_url()),
        ),
        ("run", format!("{}fal-ai/flux-pro-trainer", mock.run_url())),
    ] {
        let r = http()
            .post(&url)
            .header("authorization", auth(&mock))
            .json(&json!({"data_url": "u", "finetune_comment": "c"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{route}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["detail"],
            "Application 'fal-ai/flux-pro-trainer' not found"
        );
    }
    assert_eq!(mock.submissions("fal-ai/flux-pro-trainer"), 0);
    mock.restore_endpoint("fal-ai/flux-pro-trainer");
    let url = upload(&mock, "set.zip", "application/zip", tiny_zip()).await;
    submit(
        &mock,
        "fal-ai/flux-pro-trainer",
        json!({"data_url": url, "finetune_comment": "c"}),
    )
    .await;
    assert_eq!(mock.submissions("fal-ai/flux-pro-trainer"), 1);
}

// ---------------------------------------------------------------------------------------------
// The CDN v3 upload flow and object lifecycles

async fn cdn_token(mock: &FalMock) -> (String, Value) {
    let r = http()
        .post(format!(
            "{}storage/auth/token?storage_type=fal-cdn-v3",
            mock.rest_url()
        ))
        .header("authorization", auth(mock))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["base_url"].as_str().unwrap(),
        mock.cdn_url().trim_end_matches('/')
    );
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'), "{v}");
    (format!("Bearer {}", v["token"].as_str().unwrap()), v)
}

#[tokio::test]
async fn cdn_v3_single_upload_with_a_token_and_a_lifecycle() {
    let mock = fast_mock().await;
    // The token needs the key.
    let r = http()
        .post(format!(
            "{}storage/auth/token?storage_type=fal-cdn-v3",
            mock.rest_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (token, _) = cdn_token(&mock).await;
    assert_eq!(mock.cdn_token_fetches(), 1);
    let cdn = mock.cdn_url();
    let upload = |auth: Option<String>, lifecycle: Option<&str>| {
        let mut rb = http()
            .post(format!("{cdn}files/upload"))
            .header("content-type", "image/png")
            .header("x-fal-file-name", "face.png")
            .body(common::PNG_1X1.to_vec());
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        if let Some(l) = lifecycle {
            rb = rb.header("x-fal-object-lifecycle", l);
        }
        rb.send()
    };
    // No token, a key instead of a token, a wrong token: 401.
    for bad in [None, Some(auth(&mock)), Some("Bearer nope".to_owned())] {
        assert_eq!(upload(bad, None).await.unwrap().status(), 401);
    }
    // A lifecycle that is not fal's shape: 400 naming it.
    let r = upload(
        Some(token.clone()),
        Some(r#"{"expiration_duration_seconds": "1d"}"#),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("expiration_duration_seconds"));

    let lifecycle = r#"{"expiration_duration_seconds":1,"initial_acl":{"default":"hide"}}"#;
    let r = upload(Some(token.clone()), Some(lifecycle)).await.unwrap();
    assert_eq!(r.status(), 200);
    let url = r.json::<Value>().await.unwrap()["access_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(&format!("{cdn}files/")) && url.ends_with("/face.png"),
        "{url}"
    );
    assert_eq!(
        mock.file_lifecycle(&url),
        Some(json!({"expiration_duration_seconds": 1, "initial_acl": {"default": "hide"}}))
    );
    let (ct, bytes) = download(&url).await;
    assert_eq!((ct.as_str(), &bytes[..]), ("image/png", common::PNG_1X1));
    // Past its expiry the file is gone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
    assert!(mock.uploaded(&url).is_none());
}

#[tokio::test]
async fn cdn_v3_multipart_accepts_parts_listed_in_any_order() {
    let mock = fast_mock().await;
    let (token, _) = cdn_token(&mock).await;
    let r = http()
        .post(format!("{}files/upload/multipart", mock.cdn_url()))
        .header("authorization", &token)
        .header("content-type", "application/zip")
        .header("x-fal-file-name", "set.zip")
        .header(
            "x-fal-object-lifecycle",
            r#"{"expiration_duration_seconds":86400}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let access = created["access_url"].as_str().unwrap().to_owned();
    let id = created["uploadId"].as_str().unwrap().to_owned();
    let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
    let mut parts = Vec::new();
    for (n, chunk) in data.chunks(10).enumerate().rev() {
        let n = n + 1;
        let r = http()
            .put(format!("{access}/multipart/{id}/{n}"))
            .header("authorization", &token)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        parts.push(json!({"partNumber": n, "etag": etag}));
    }
    // Without the token a part is refused.
    let r = http()
        .put(format!("{access}/multipart/{id}/1"))
        .body(vec![0u8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Listed 3, 2, 1 (as the parts finished): accepted.
    let r = http()
        .post(format!("{access}/multipart/{id}/complete"))
        .header("authorization", &token)
        .json(&json!({ "parts": parts }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (ct, bytes) = download(&access).await;
    assert_eq!((ct.as_str(), bytes.to_vec()), ("application/zip", data));
    assert_eq!(
        mock.file_lifecycle(&access),
        Some(json!({"expiration_duration_seconds": 86400}))
    );
    assert_eq!(
        mock.multipart_upload(&access).unwrap().part_sizes,
        [10, 10, 5]
    );
}

#[tokio::test]
async fn cdn_tokens_expire() {
    let mock = FalMock::builder()
        .cdn_token_ttl(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let (token, v) = cdn_token(&mock).await;
    assert!(!v["expires_at"].as_str().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http()
        .post(format!("{}files/upload", mock.cdn_url()))
        .header("authorization", token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_output_lifecycle_preference_applies_to_output_files() {
    let mock = fast_mock().await;
    let preference = r#"{"expiration_duration_seconds":3600}"#;
    // Sync run.
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.run_url()))
        .header("authorization", auth(&mock))
        .header("x-fal-object-lifecycle-preference", preference)
        .json(&json!({"prompt": "a fox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let url = out["images"][0]["url"].as_str().unwrap();
    assert_eq!(
        mock.file_lifecycle(url),
        Some(json!({"expiration_duration_seconds": 3600}))
    );
    // Queue.
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.queue_url()))
        .header("authorization", auth(&mock))
        .header("x-fal-object-lifecycle-preference", preference)
        .json(&json!({"prompt": "a fox"}))
        .send()
        .await
        .unwrap();
    let submitted: Value = r.json().await.unwrap();
    let id = submitted["request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        mock.job(&id).unwrap().object_lifecycle,
        Some(json!({"expiration_duration_seconds": 3600}))
    );
    completed(&mock, &submitted).await;
    let (_, out) = get(&mock, submitted["response_url"].as_str().unwrap()).await;
    let url = out["images"][0]["url"].as_str().unwrap();
    assert_eq!(
        mock.file_lifecycle(url),
        Some(json!({"expiration_duration_seconds": 3600}))
    );
    // Not fal's shape: 422 naming the header, nothing queued.
    let r = http()
        .post(format!("{}fal-ai/flux-lora", mock.queue_url()))
        .header("authorization", auth(&mock))
        .header("x-fal-object-lifecycle-preference", "1d")
        .json(&json!({"prompt": "a fox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("x-fal-object-lifecycle-preference"));
}
