//! What submits and runs send (platform headers, tags, max queue length) and what they read
//! back (billed units).

use std::time::Duration;

use fal_client::billing::{Retries, ServerRetries, UsageTags};
use fal_client::{Error, FalClient};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key("k-1")
        .queue_url(server.uri())
        .run_url(format!("{}/run", server.uri()))
        .build()
        .unwrap()
}

fn submit_answer(server: &MockServer, id: &str) -> serde_json::Value {
    let base = format!("{}/fal-ai/x/requests/{id}", server.uri());
    json!({"request_id": id, "response_url": base, "status_url": format!("{base}/status"), "cancel_url": format!("{base}/cancel")})
}

#[tokio::test]
async fn a_submit_sends_every_platform_option_it_was_given() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(query_param("fal_max_queue_length", "25"))
        .and(header("x-fal-store-io", "0"))
        .and(header("x-fal-no-retry", "1"))
        .and(header("x-fal-retry-config", r#"{"timeout":{"retries":2}}"#))
        .and(header("x-app-fal-disable-fallback", "true"))
        .and(header("x-fal-disable-fallbacks", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(submit_answer(&server, "r1")))
        .expect(1)
        .mount(&server)
        .await;
    let job = client(&server)
        .submit_json("fal-ai/x", &json!({}))
        .tags(
            UsageTags::new()
                .tag("avatar", "a-1")
                .tag("Customer", "acme"),
        )
        .store_io(false)
        .no_retry()
        .retry_config(ServerRetries {
            timeout: Some(Retries { retries: 2 }),
            ..ServerRetries::default()
        })
        .disable_fallbacks()
        .max_queue_length(25)
        .await
        .unwrap();
    assert_eq!(job.request_id(), "r1");
    // (wiremock's header matcher splits values at commas: the packed tags are read whole here.)
    let sent: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(sent[0].headers["x-fal-tags"], "avatar=a-1,customer=acme");
}

#[tokio::test]
async fn bad_tags_fail_before_anything_is_sent() {
    let server = MockServer::start().await;
    let fal = client(&server);
    let err = fal
        .submit_json("fal-ai/x", &json!({}))
        .tags(UsageTags::new().tag("fal.owner", "me"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref field, .. } if field == "tags"),
        "{err:?}"
    );
    let err = fal
        .run_json("fal-ai/x", &json!({}))
        .tags(UsageTags::new().tag("k", "a,b"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn billed_units_come_with_results_and_runs() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/run/fal-ai/x"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fal-billable-units", "3.008")
                .insert_header("x-fal-request-id", "run-1")
                .set_body_json(json!({"images": []})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/q1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-fal-billable-units", "1")
                .set_body_json(json!({"ok": true})),
        )
        .mount(&server)
        .await;
    let fal = client(&server);
    let billed = fal
        .run_json("fal-ai/x", &json!({}))
        .tags(UsageTags::new().tag("avatar", "a-1"))
        .billed()
        .await
        .unwrap();
    let units = billed.billable_units.unwrap();
    assert_eq!((units.raw.as_str(), units.value), ("3.008", Some(3.008)));
    assert_eq!(billed.request_id.as_deref(), Some("run-1"));
    assert_eq!(billed.output, json!({"images": []}));
    let sent: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(sent[0].headers["x-fal-tags"], "avatar=a-1");
    // Without billing, the same run is just the output.
    let plain: serde_json::Value = fal.run_json("fal-ai/x", &json!({})).await.unwrap();
    assert_eq!(plain, json!({"images": []}));

    let handle: fal_client::queue::RequestHandle = fal.resume("fal-ai/x", "q1").unwrap();
    let result = handle.billed_result().await.unwrap();
    assert_eq!(result.billable_units.unwrap().value, Some(1.0));
    assert_eq!(result.request_id.as_deref(), Some("q1"));
}

#[tokio::test]
async fn a_full_queue_refusal_is_a_429_with_the_limit_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"detail": "queue is full"})))
        .mount(&server)
        .await;
    let fal = FalClient::builder()
        .key("k-1")
        .queue_url(server.uri())
        .retry(
            fal_client::retry::RetryPolicy::default()
                .with_max_retries(1)
                .with_delays(Duration::from_millis(1), Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    let err = fal
        .submit_json("fal-ai/x", &json!({}))
        .max_queue_length(0)
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(fal_client::StatusCode::TOO_MANY_REQUESTS)
    );
    let sent: Vec<Request> = server.received_requests().await.unwrap();
    assert!(sent
        .iter()
        .all(|r| r.url.query() == Some("fal_max_queue_length=0")));
}
