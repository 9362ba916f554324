//! Queue paths against wiremock: the exact requests the client sends and how it reads answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_client::queue::{CancelOutcome, Priority, QueueStatus, RequestHandle, WaitEvent};
use fal_client::retry::RetryPolicy;
use fal_client::StatusCode;
use fal_client::{Endpoint, Error, FalClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "test-key-123";

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key(KEY)
        .queue_url(server.uri())
        .run_url(format!("{}/run", server.uri()))
        .rest_url(server.uri())
        .retry(
            RetryPolicy::default()
                .with_max_retries(3)
                .with_delays(Duration::from_millis(1), Duration::from_millis(5)),
        )
        .build()
        .unwrap()
}

/// Status polls in these tests are 5 ms apart.
const POLL: Duration = Duration::from_millis(5);

fn submit_answer(server: &MockServer, app: &str, id: &str) -> Value {
    let base = format!("{}/{app}/requests/{id}", server.uri());
    json!({
        "status": "IN_QUEUE",
        "request_id": id,
        "response_url": base,
        "status_url": format!("{base}/status"),
        "cancel_url": format!("{base}/cancel"),
        "queue_position": 3,
        "gateway_request_id": id,
    })
}

#[derive(Clone, Serialize)]
struct EchoInput {
    prompt: String,
}
#[derive(Debug, Deserialize, PartialEq)]
struct EchoOutput {
    images: Vec<Img>,
    seed: u64,
}
#[derive(Debug, Deserialize, PartialEq)]
struct Img {
    url: String,
    width: u32,
}
struct Echo;
impl Endpoint for Echo {
    const ID: &'static str = "fal-ai/flux-pro/v1.1-ultra-finetuned";
    type Input = EchoInput;
    type Output = EchoOutput;
    fn validate(input: &EchoInput) -> fal_client::Result<()> {
        if input.prompt.is_empty() {
            return Err(Error::invalid_input("prompt", "must not be empty"));
        }
        Ok(())
    }
}

fn input() -> EchoInput {
    EchoInput {
        prompt: "a fox".into(),
    }
}

async fn mount_submit(server: &MockServer, id: &str) {
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-pro/v1.1-ultra-finetuned"))
        .respond_with(ResponseTemplate::new(200).set_body_json(submit_answer(
            server,
            "fal-ai/flux-pro",
            id,
        )))
        .mount(server)
        .await;
}

#[tokio::test]
async fn submit_sends_full_id_key_and_body_and_reads_the_urls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-pro/v1.1-ultra-finetuned"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"prompt": "a fox"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(submit_answer(
            &server,
            "fal-ai/flux-pro",
            "req-1",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let job = client(&server).submit::<Echo>(&input()).await.unwrap();
    assert_eq!(job.request_id(), "req-1");
    assert_eq!(job.queue_position(), Some(3));
    assert_eq!(job.gateway_request_id(), Some("req-1"));
    assert_eq!(
        job.status_url().path(),
        "/fal-ai/flux-pro/requests/req-1/status"
    );
    assert_eq!(job.response_url().path(), "/fal-ai/flux-pro/requests/req-1");
    assert_eq!(
        job.cancel_url().path(),
        "/fal-ai/flux-pro/requests/req-1/cancel"
    );
    // Default options send no priority, hint or timeout header (fal's defaults apply).
    let req = &server.received_requests().await.unwrap()[0];
    for h in [
        "x-fal-queue-priority",
        "x-fal-runner-hint",
        "x-fal-request-timeout",
    ] {
        assert!(req.headers.get(h).is_none(), "{h} sent");
    }
    assert!(req.url.query().is_none());
}

#[tokio::test]
async fn submit_options_become_query_and_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-pro/v1.1-ultra-finetuned"))
        .and(query_param(
            "fal_webhook",
            "https://hooks.example.com/webhook/fal/status?avatar=1",
        ))
        .and(header("x-fal-queue-priority", "low"))
        .and(header("x-fal-runner-hint", "lora:a"))
        .and(header("x-fal-request-timeout", "30"))
        .and(header("x-custom", "kept"))
        .respond_with(ResponseTemplate::new(200).set_body_json(submit_answer(
            &server,
            "fal-ai/flux-pro",
            "req-2",
        )))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .submit::<Echo>(&input())
        .webhook(
            "https://hooks.example.com/webhook/fal/status?avatar=1"
                .parse()
                .unwrap(),
        )
        .priority(Priority::Low)
        .runner_hint("lora:a")
        .start_timeout(Duration::from_secs(30))
        .header("x-custom".parse().unwrap(), "kept".parse().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_input_and_start_timeout_fail_before_any_request() {
    let server = MockServer::start().await;
    let fal = client(&server);
    let err = fal
        .submit::<Echo>(&EchoInput {
            prompt: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "prompt"));
    let err = fal
        .submit::<Echo>(&input())
        .start_timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref field, .. } if field == "start_timeout"),
        "{err}"
    );
    let err = fal.submit_json("just-an-id", &json!({})).await.unwrap_err();
    assert!(matches!(err, Error::InvalidEndpointId { .. }));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_422_keeps_status_request_id_and_field_details() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(422)
                .insert_header("x-fal-request-id", "req-422")
                .set_body_json(json!({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .submit_json("fal-ai/flux-lora", &json!({}))
        .await
        .unwrap_err();
    let api = err.as_api().expect("api error");
    assert_eq!(api.status, 422);
    assert_eq!(err.request_id(), Some("req-422"));
    assert_eq!(api.field_errors().len(), 1);
    assert_eq!(api.field_errors()[0].field(), Some("prompt"));
    assert_eq!(api.field_errors()[0].kind, "value_error.missing");
    assert!(err.to_string().contains("prompt: field required"), "{err}");
}

#[tokio::test]
async fn error_type_comes_from_the_body_else_the_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/a/status"))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header("x-fal-error-type", "internal_error")
                .set_body_json(json!({"detail": "not found", "error_type": "bad_request"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/b/status"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-fal-error-type", "request_timeout")
                .set_body_string("oops"),
        )
        .mount(&server)
        .await;
    let fal = client(&server);
    let a: RequestHandle = fal.resume("fal-ai/x", "a").unwrap();
    let err = a.status(false).await.unwrap_err();
    assert_eq!(
        err.as_api().unwrap().error_type.as_deref(),
        Some("bad_request")
    );
    assert_eq!(err.as_api().unwrap().message(), "not found");
    assert_eq!(err.request_id(), Some("a"));
    let b: RequestHandle = fal.resume("fal-ai/x", "b").unwrap();
    let err = b.status(false).await.unwrap_err();
    assert_eq!(
        err.as_api().unwrap().error_type.as_deref(),
        Some("request_timeout")
    );
    assert_eq!(err.as_api().unwrap().body_excerpt, "oops");
}

#[tokio::test]
async fn status_sends_logs_flag_and_parses_each_state() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .and(query_param("logs", "1"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"status": "IN_PROGRESS", "logs": [{"message": "step 1", "level": "INFO", "source": "USER", "timestamp": "2026-11-21T10:00:00Z"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .and(query_param("logs", "0"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"status": "IN_QUEUE", "queue_position": 7})),
        )
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let s = h.status(true).await.unwrap();
    assert_eq!(s.logs()[0].message, "step 1");
    assert_eq!(s.logs()[0].level.as_deref(), Some("INFO"));
    assert_eq!(
        h.status(false).await.unwrap(),
        QueueStatus::InQueue { queue_position: 7 }
    );
}

#[tokio::test]
async fn result_decodes_typed_output_and_names_the_path_on_mismatch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"images": [{"url": "https://cdn/x.jpg", "width": 64}], "seed": 7}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/bad"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"images": [{"url": "https://cdn/x.jpg", "width": "wide"}], "seed": 7}),
        ))
        .mount(&server)
        .await;
    let fal = client(&server);
    let ok = fal.resume::<EchoOutput>(Echo::ID, "ok").unwrap();
    let out = ok.result().await.unwrap();
    assert_eq!(
        out,
        EchoOutput {
            images: vec![Img {
                url: "https://cdn/x.jpg".into(),
                width: 64
            }],
            seed: 7
        }
    );
    let bad = fal.resume::<EchoOutput>(Echo::ID, "bad").unwrap();
    match bad.result().await.unwrap_err() {
        Error::Decode {
            path,
            request_id,
            body_excerpt,
            ..
        } => {
            assert_eq!(path, "images[0].width");
            assert_eq!(request_id.as_deref(), Some("bad"));
            assert!(body_excerpt.contains("wide"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn cancel_outcomes_are_typed() {
    let server = MockServer::start().await;
    for (id, status, body) in [
        ("q", 202, json!({"status": "CANCELLATION_REQUESTED"})),
        ("done", 400, json!({"status": "ALREADY_COMPLETED"})),
        ("gone", 404, json!({"status": "NOT_FOUND"})),
        ("weird", 403, json!({"detail": "Forbidden"})),
    ] {
        Mock::given(method("PUT"))
            .and(path(format!("/fal-ai/x/requests/{id}/cancel")))
            .and(header("authorization", format!("Key {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let fal = client(&server);
    let h = |id: &str| fal.resume::<Value>("fal-ai/x", id).unwrap();
    assert_eq!(
        h("q").cancel().await.unwrap(),
        CancelOutcome::CancellationRequested
    );
    assert_eq!(
        h("done").cancel().await.unwrap(),
        CancelOutcome::AlreadyCompleted
    );
    assert_eq!(h("gone").cancel().await.unwrap(), CancelOutcome::NotFound);
    assert_eq!(
        h("weird").cancel().await.unwrap_err().status(),
        Some(StatusCode::FORBIDDEN)
    );
}

#[tokio::test]
async fn idempotent_calls_retry_transient_failures() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED", "logs": null})),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    assert!(h.status(false).await.unwrap().is_completed());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn submit_is_not_retried_when_fal_may_have_taken_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("x-fal-request-id", "maybe"))
        .mount(&server)
        .await;
    let err = client(&server).submit::<Echo>(&input()).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.request_id(), Some("maybe"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn submit_is_retried_on_429_and_ingress_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>nginx</html>"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    mount_submit(&server, "r3").await;
    let job = client(&server).submit::<Echo>(&input()).await.unwrap();
    assert_eq!(job.request_id(), "r3");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_user_start_timeout_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(504)
                .insert_header("x-fal-request-timeout-type", "user")
                .set_body_json(
                    json!({"detail": "Request timed out", "error_type": "request_timeout"}),
                ),
        )
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let err = h.result().await.unwrap_err();
    assert!(err.as_api().unwrap().is_user_timeout());
    assert!(!err.is_retryable());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn record() -> (Arc<Mutex<Vec<String>>>, impl FnMut(WaitEvent<'_>) + Send) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |e: WaitEvent<'_>| {
        let line = match e {
            WaitEvent::Queued { position } => format!("queued {position}"),
            WaitEvent::Started => "started".into(),
            WaitEvent::Log(l) => format!("log {}", l.message),
            WaitEvent::Completed => "completed".into(),
            WaitEvent::PollingFallback => "polling".into(),
            _ => "other".into(),
        };
        s.lock().unwrap().push(line);
    })
}

#[tokio::test]
async fn wait_uses_the_stream_and_makes_three_requests() {
    let server = MockServer::start().await;
    mount_submit(&server, "s1").await;
    let log = |m: &str| json!({"message": m, "level": "INFO", "source": "USER", "timestamp": "2026-11-21T10:00:00Z"});
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/s1/status/stream"))
        .and(query_param("logs", "1"))
        .and(header("accept", "text/event-stream"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(sse(&[
            json!({"status": "IN_QUEUE", "queue_position": 2}),
            json!({"status": "IN_QUEUE", "queue_position": 1}),
            json!({"status": "IN_PROGRESS", "logs": [log("a")]}),
            json!({"status": "IN_PROGRESS", "logs": [log("a"), log("b")]}),
            json!({"status": "COMPLETED", "logs": [log("a"), log("b"), log("c")], "metrics": {"inference_time": 1.0}}),
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/s1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"images": [{"url": "u", "width": 1}], "seed": 1})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let job = client(&server).submit::<Echo>(&input()).await.unwrap();
    let (seen, cb) = record();
    let out = job.wait().poll_interval(POLL).on_event(cb).await.unwrap();
    assert_eq!(out.seed, 1);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "queued 2",
            "queued 1",
            "started",
            "log a",
            "log b",
            "log c",
            "completed"
        ]
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "submit, stream, result"
    );
}

#[tokio::test]
async fn wait_falls_back_to_polling_when_the_stream_fails() {
    let server = MockServer::start().await;
    mount_submit(&server, "p1").await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/p1/status/stream"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/p1/status"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"status": "IN_PROGRESS", "logs": [{"message": "x"}]})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/p1/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "COMPLETED", "logs": [{"message": "x"}, {"message": "y"}]}),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"images": [], "seed": 2})))
        .mount(&server)
        .await;
    let job = client(&server).submit::<Echo>(&input()).await.unwrap();
    let (seen, cb) = record();
    assert_eq!(
        job.wait()
            .poll_interval(POLL)
            .on_event(cb)
            .await
            .unwrap()
            .seed,
        2
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["polling", "started", "log x", "log y", "completed"]
    );
}

#[tokio::test]
async fn polling_only_skips_the_stream() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED", "logs": null})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let out = h
        .wait()
        .poll_interval(POLL)
        .stream(false)
        .logs(false)
        .await
        .unwrap();
    assert_eq!(out, json!({"ok": true}));
}

#[tokio::test]
async fn completed_with_error_returns_the_models_field_details() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status/stream"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(sse(&[
            json!({"status": "COMPLETED", "logs": null, "error": "Invalid status code: 422"}),
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"detail": [{"loc": ["body", "steps"], "msg": "ensure this value is less than or equal to 10000", "type": "value_error.number.not_le", "ctx": {"limit_value": 10000}}]})))
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let err = h.wait().poll_interval(POLL).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(err.request_id(), Some("r"));
    assert_eq!(
        err.as_api().unwrap().field_errors()[0].field(),
        Some("steps")
    );
}

#[tokio::test]
async fn completed_with_error_is_a_failure_even_if_the_result_answers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED", "logs": null, "error": "Runner disconnected", "error_type": "runner_disconnected"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    match h
        .wait()
        .poll_interval(POLL)
        .stream(false)
        .await
        .unwrap_err()
    {
        Error::RequestFailed {
            request_id,
            message,
            error_type,
            ..
        } => {
            assert_eq!(request_id, "r");
            assert_eq!(message, "Runner disconnected");
            assert_eq!(error_type.as_deref(), Some("runner_disconnected"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_deadline_cancels_on_fal_and_says_how_to_resume() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/slow/status"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"status": "IN_QUEUE", "queue_position": 4})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/fal-ai/x/requests/slow/cancel"))
        .respond_with(
            ResponseTemplate::new(202).set_body_json(json!({"status": "CANCELLATION_REQUESTED"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "slow").unwrap();
    let err = h
        .wait()
        .poll_interval(POLL)
        .stream(false)
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    match &err {
        Error::Timeout {
            request_id,
            cancel_requested,
            ..
        } => {
            assert_eq!(request_id.as_deref(), Some("slow"));
            assert!(cancel_requested);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("resume"), "{err}");
}

#[tokio::test]
async fn a_deadline_without_cancel_leaves_the_job_running() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/slow/status"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"status": "IN_QUEUE", "queue_position": 4})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "slow").unwrap();
    let err = h
        .wait()
        .poll_interval(POLL)
        .stream(false)
        .timeout(Duration::from_millis(50))
        .cancel_on_timeout(false)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Timeout {
            cancel_requested: false,
            ..
        }
    ));
}

#[tokio::test]
async fn a_failed_poll_is_a_missed_poll() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>oops</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED"})))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(1)))
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    assert_eq!(
        h.wait().poll_interval(POLL).stream(false).await.unwrap(),
        json!(1)
    );
}

#[tokio::test]
async fn unknown_requests_fail_the_wait_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"detail": "Request not found"})),
        )
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "nope").unwrap();
    let err = h.wait().poll_interval(POLL).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "/fal-ai/x/requests/nope/status/stream",
            "/fal-ai/x/requests/nope/status"
        ],
        "the stream's 404 falls back to one poll, whose 404 ends the wait"
    );
}

#[tokio::test]
async fn events_stream_yields_each_status_then_ends() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status/stream"))
        .and(query_param("logs", "0"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(format!(
                    ": keep-alive\n\n{}",
                    sse(&[
                        json!({"status": "IN_QUEUE", "queue_position": 0}),
                        json!({"status": "COMPLETED"}),
                        json!({"status": "IN_QUEUE", "queue_position": 9})
                    ])
                )),
        )
        .mount(&server)
        .await;
    use futures::StreamExt;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let all: Vec<_> = h.events(false).collect().await;
    assert_eq!(all.len(), 2, "ends after COMPLETED");
    assert_eq!(
        all[0].as_ref().unwrap(),
        &QueueStatus::InQueue { queue_position: 0 }
    );
    assert!(all[1].as_ref().unwrap().is_completed());
}

#[tokio::test]
async fn run_posts_to_the_run_url_and_decodes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/run/fal-ai/flux-pro/v1.1-ultra-finetuned"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .and(header("x-fal-request-timeout", "2.5"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fal-request-id", "run-1")
                .set_body_json(json!({"images": [], "seed": 9})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let out = client(&server)
        .run::<Echo>(&input())
        .start_timeout(Duration::from_millis(2500))
        .await
        .unwrap();
    assert_eq!(out.seed, 9);
}

#[tokio::test]
async fn run_json_surfaces_validation_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/run/fal-ai/flux-lora"))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(json!({"detail": "prompt is required"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .run_json("fal-ai/flux-lora", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(err.as_api().unwrap().message(), "prompt is required");
}

#[tokio::test]
async fn resumed_handles_reach_the_owner_alias_urls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/old-job"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"images": [], "seed": 3})))
        .expect(1)
        .mount(&server)
        .await;
    let h = client(&server)
        .resume::<EchoOutput>(Echo::ID, "old-job")
        .unwrap();
    assert_eq!(h.result().await.unwrap().seed, 3);
}

#[tokio::test]
async fn urls_on_other_hosts_in_a_submit_answer_are_not_trusted() {
    let server = MockServer::start().await;
    let evil = MockServer::start().await;
    let mut answer = submit_answer(&evil, "fal-ai/flux-pro", "e1");
    answer["request_id"] = json!("e1");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/flux-pro/requests/e1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"images": [], "seed": 5})))
        .mount(&server)
        .await;
    let fal = client(&server);
    let job = fal.submit::<Echo>(&input()).await.unwrap();
    assert_eq!(
        job.response_url().port(),
        url::Url::parse(&server.uri()).unwrap().port()
    );
    assert_eq!(job.result().await.unwrap().seed, 5);
    assert!(
        evil.received_requests().await.unwrap().is_empty(),
        "nothing went to the other host"
    );
}

#[tokio::test]
async fn untyped_handles_can_be_typed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"images": [], "seed": 4})))
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let typed: RequestHandle<EchoOutput> = h.with_output();
    assert_eq!(typed.result().await.unwrap().seed, 4);
    let _ = |r: &Request| r.url.clone();
}

#[tokio::test]
async fn submit_keeps_fal_urls_and_rebuilds_missing_or_foreign_ones() {
    let server = MockServer::start().await;
    // fal's own URLs (here deliberately not the owner/alias form, to tell them apart) are used
    // as given; a URL on another host and a missing one are rebuilt from the endpoint id.
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-pro/v1.1-ultra-finetuned"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "IN_QUEUE",
            "request_id": "req-9",
            "response_url": format!("{}/elsewhere/req-9", server.uri()),
            "status_url": "https://evil.example/fal-ai/flux-pro/requests/req-9/status",
        })))
        .mount(&server)
        .await;
    let job = client(&server).submit::<Echo>(&input()).await.unwrap();
    assert_eq!(job.response_url().path(), "/elsewhere/req-9");
    assert_eq!(
        job.status_url().as_str(),
        format!("{}/fal-ai/flux-pro/requests/req-9/status", server.uri())
    );
    assert_eq!(
        job.cancel_url().as_str(),
        format!("{}/fal-ai/flux-pro/requests/req-9/cancel", server.uri())
    );

    // A request id that cannot be a path segment is refused, whatever URLs come with it.
    server.reset().await;
    let mut answer = submit_answer(&server, "fal-ai/flux-pro", "a/b");
    answer["request_id"] = json!("a/b");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let err = client(&server).submit::<Echo>(&input()).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode { ref path, .. } if path == "request_id"),
        "{err:?}"
    );
    assert_eq!(
        err.request_id(),
        Some("a/b"),
        "fal's id is kept even if unusable"
    );
}

#[tokio::test]
async fn status_and_cancel_urls_are_exactly_the_ones_fal_sent() {
    let server = MockServer::start().await;
    let base = format!("{}/fal-ai/flux-pro/requests/r%207", server.uri());
    let cases = [
        // The usual shape: result URL plus `/status`, `/cancel`.
        (
            base.clone(),
            format!("{base}/status"),
            format!("{base}/cancel"),
        ),
        // Anything else is taken as given.
        (
            format!("{base}?token=1"),
            format!("{base}/status?token=1"),
            format!("{base}/cancel?token=1"),
        ),
        (
            base.clone(),
            format!("{base}/state"),
            format!("{base}-cancel"),
        ),
    ];
    for (response_url, status_url, cancel_url) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "status": "IN_QUEUE",
                "request_id": "r7",
                "response_url": response_url,
                "status_url": status_url,
                "cancel_url": cancel_url,
            })))
            .mount(&server)
            .await;
        let job = client(&server).submit::<Echo>(&input()).await.unwrap();
        assert_eq!(job.response_url().as_str(), response_url);
        assert_eq!(job.status_url().as_str(), status_url);
        assert_eq!(job.cancel_url().as_str(), cancel_url);
    }
}

#[tokio::test]
async fn a_client_without_retries_resumes_the_same_request_and_asks_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let fal = client(&server); // 3 retries
    let h: RequestHandle = fal.resume("fal-ai/x", "r").unwrap();
    let err = h.status(false).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.request_id(), Some("r"));
    assert_eq!(server.received_requests().await.unwrap().len(), 4);

    let once = FalClient::builder()
        .key(KEY)
        .queue_url(server.uri())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let h: RequestHandle = once.resume(h.endpoint_id(), h.request_id()).unwrap();
    let err = h.status(false).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        5,
        "no retry"
    );
}

#[tokio::test]
async fn an_unknown_status_ends_the_wait_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r/status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "FAILED"})))
        .mount(&server)
        .await;
    let h: RequestHandle = client(&server).resume("fal-ai/x", "r").unwrap();
    let err = h
        .wait()
        .poll_interval(POLL)
        .stream(false)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap_err();
    match &err {
        Error::UnknownQueueStatus { status, request_id } => {
            assert_eq!(status, "FAILED");
            assert_eq!(request_id.as_deref(), Some("r"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.request_id(), Some("r"));
    assert!(!err.is_retryable());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_submit_answer_that_does_not_decode_keeps_the_request_id() {
    let server = MockServer::start().await;
    let mut answer = submit_answer(&server, "fal-ai/flux-pro", "r9");
    answer["queue_position"] = json!(-1);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).submit::<Echo>(&input()).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode { ref path, .. } if path == "queue_position"),
        "{err:?}"
    );
    assert_eq!(
        err.request_id(),
        Some("r9"),
        "the job exists: its id must not be lost"
    );

    let server = MockServer::start().await;
    let answer = json!({"status": "IN_QUEUE", "request_id": "../x"});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let err = client(&server).submit::<Echo>(&input()).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode { ref path, .. } if path == "request_id"),
        "{err:?}"
    );
    assert_eq!(err.request_id(), Some("../x"));
}

/// `is_retryable` gives the retry policy's decision for the call that failed: a status call's
/// 500 may be asked again, a submit's may not (fal may have the job); an ingress 503 (no
/// `x-fal-request-id`) is safe for both; a 504 from the caller's own start timeout is never
/// retried.
#[tokio::test]
async fn is_retryable_follows_the_call_that_failed() {
    let cases: [(&str, ResponseTemplate, bool, bool); 4] = [
        (
            "500 from fal",
            ResponseTemplate::new(500).insert_header("x-fal-request-id", "r"),
            false,
            true,
        ),
        ("ingress 503", ResponseTemplate::new(503), true, true),
        (
            "503 from fal",
            ResponseTemplate::new(503).insert_header("x-fal-request-id", "r"),
            false,
            true,
        ),
        (
            "user timeout",
            ResponseTemplate::new(504).insert_header("x-fal-request-timeout-type", "user"),
            false,
            false,
        ),
    ];
    for (label, answer, submit_retryable, status_retryable) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let fal = FalClient::builder()
            .key(KEY)
            .queue_url(server.uri())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let err = fal.submit::<Echo>(&input()).await.unwrap_err();
        assert_eq!(
            err.is_retryable(),
            submit_retryable,
            "submit, {label}: {err:?}"
        );
        let h: RequestHandle = fal.resume("fal-ai/x", "r").unwrap();
        let err = h.status(false).await.unwrap_err();
        assert_eq!(
            err.is_retryable(),
            status_retryable,
            "status, {label}: {err:?}"
        );
    }
}

/// A submit whose answer head came (2xx) but whose body stops: fal has the job, so the error is
/// `AmbiguousSubmit` with the head's request id, not retryable, and nothing is sent again.
#[tokio::test]
async fn a_submit_whose_answer_stalls_is_ambiguous_and_not_repeated() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nx-fal-request-id: req-9\r\ncontent-length: 200\r\n\r\n{\"request_id\":")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let fal = FalClient::builder()
        .key(KEY)
        .queue_url(format!("http://{addr}"))
        .read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = fal.submit::<Echo>(&input()).await.unwrap_err();
    assert!(
        matches!(&err, Error::AmbiguousSubmit { request_id, .. } if request_id.as_deref() == Some("req-9")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.request_id(), Some("req-9"));
    assert_eq!(requests.load(Ordering::SeqCst), 1, "never submitted twice");
}

/// Durations too large to add to a clock mean "no limit", never a panic.
#[tokio::test]
async fn the_largest_durations_are_no_limit() {
    let mock = fal_mock::FalMock::builder()
        .queue_time(Duration::from_millis(10))
        .processing_time(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let fal = mock
        .client_builder()
        .read_timeout(Duration::MAX)
        .request_timeout(Duration::MAX)
        .sse_idle_timeout(Duration::MAX)
        .retry(RetryPolicy::default().with_delays(Duration::MAX, Duration::MAX))
        .build()
        .unwrap();
    for stream in [true, false] {
        let job = fal
            .submit_json("fal-ai/any", &json!({"prompt": "x"}))
            .await
            .unwrap();
        let out: Value = job
            .wait()
            .stream(stream)
            .poll_interval(POLL)
            .timeout(Duration::MAX)
            .await
            .unwrap();
        assert_eq!(out["echo"]["prompt"], "x", "{out}");
    }
    assert!(
        RetryPolicy::default()
            .with_delays(Duration::MAX, Duration::MAX)
            .delay(3, None)
            .as_secs()
            > 0
    );
}
