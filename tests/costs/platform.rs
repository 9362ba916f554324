//! The Platform API client against wiremock: base URL, paging, fal's error format, estimates,
//! idempotent payload deletion, and the adapter's estimate and budget.

use fal_client::avatar::{AvatarKind, Budget, Preset, TriggerPhrase};
use fal_client::error::ErrorDetail;
use fal_client::platform::Estimate;
use fal_client::{Error, FalClient};
use futures::TryStreamExt;
use serde_json::json;
use wiremock::matchers::{body_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key("admin-key")
        .api_url(format!("{}/v1", server.uri()))
        .queue_url(server.uri())
        .rest_url(server.uri())
        .build()
        .unwrap()
}

fn record(id: u32) -> serde_json::Value {
    json!({"request_id": format!("00000000-0000-0000-0000-{id:012}"), "endpoint_id": "fal-ai/flux-lora",
           "started_at": "2026-11-29T10:00:00Z", "sent_at": "2026-11-29T10:00:00Z",
           "ended_at": "2026-11-29T10:00:05Z", "status_code": 200, "duration": 5.0})
}

#[tokio::test]
async fn a_listing_that_spans_pages_comes_back_whole() {
    let server = MockServer::start().await;
    let page = |ids: &[u32], next: Option<&str>| {
        ResponseTemplate::new(200).set_body_json(json!({
            "items": ids.iter().map(|i| record(*i)).collect::<Vec<_>>(),
            "next_cursor": next, "has_more": next.is_some()
        }))
    };
    Mock::given(method("GET"))
        .and(path("/v1/models/requests/by-endpoint"))
        .and(query_param("cursor", "Mg=="))
        .respond_with(page(&[4, 5, 6], Some("Mw==")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models/requests/by-endpoint"))
        .and(query_param("cursor", "Mw=="))
        .respond_with(page(&[7], None))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models/requests/by-endpoint"))
        .and(query_param("endpoint_id", "fal-ai/flux-lora"))
        .and(query_param("expand", "payloads"))
        .and(query_param("limit", "3"))
        .and(header("authorization", "Key admin-key"))
        .respond_with(page(&[1, 2, 3], Some("Mg==")))
        .with_priority(10)
        .mount(&server)
        .await;
    let all: Vec<_> = client(&server)
        .platform()
        .requests("fal-ai/flux-lora")
        .with_payloads()
        .page_size(3)
        .stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<String> = all.iter().map(|r| r.request_id[32..].to_owned()).collect();
    assert_eq!(
        ids,
        ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn platform_errors_are_typed_in_their_own_format() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models/pricing"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "type": "authorization_error", "message": "Admin key required",
            "docs_url": "https://docs.fal.ai/platform-apis", "request_id": "plat-1"
        }})))
        .mount(&server)
        .await;
    let err = client(&server)
        .platform()
        .pricing(["fal-ai/flux-lora"])
        .await
        .unwrap_err();
    let api = err.as_api().expect("an API error");
    assert_eq!(api.status, fal_client::StatusCode::FORBIDDEN);
    assert_eq!(api.error_type.as_deref(), Some("authorization_error"));
    assert_eq!(api.message(), "Admin key required");
    assert_eq!(err.request_id(), Some("plat-1"));
    match &api.detail {
        ErrorDetail::Platform(p) => {
            assert_eq!(
                p.docs_url.as_deref(),
                Some("https://docs.fal.ai/platform-apis")
            )
        }
        other => panic!("{other:?}"),
    }
    let none: [&str; 0] = [];
    assert!(matches!(
        client(&server).platform().pricing(none).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn estimates_send_fal_s_body_forms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/models/pricing/estimate"))
        .and(body_json(json!({"estimate_type": "unit_price", "endpoints": {"fal-ai/flux-lora": {"unit_quantity": 1.5}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"estimate_type": "unit_price", "total_cost": 0.0525, "currency": "USD"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/models/pricing/estimate"))
        .and(body_json(json!({"estimate_type": "historical_api_price", "endpoints": {"fal-ai/flux-lora": {"call_quantity": 3}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"estimate_type": "historical_api_price", "total_cost": 0.1, "currency": "USD"})))
        .mount(&server)
        .await;
    let platform = client(&server).platform();
    let by_units = platform
        .estimate(&Estimate::units([("fal-ai/flux-lora", 1.5)]))
        .await
        .unwrap();
    assert_eq!(by_units.total_cost, 0.0525);
    let by_calls = platform
        .estimate(&Estimate::calls([("fal-ai/flux-lora", 3)]))
        .await
        .unwrap();
    assert_eq!(by_calls.estimate_type, "historical_api_price");
    assert!(matches!(
        platform
            .estimate(&Estimate::units([("fal-ai/flux-lora", 0.0)]))
            .await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn payload_deletion_always_carries_an_idempotency_key() {
    let server = MockServer::start().await;
    let id = "a1b2c3d4-e5f6-7890-abcd-ef1234567890";
    Mock::given(method("DELETE"))
        .and(path(format!("/v1/models/requests/{id}/payloads")))
        .and(header_exists("idempotency-key"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"cdn_delete_results": [
                {"link": "https://v3.fal.media/files/x/out.jpg", "exception": null}
            ]})),
        )
        .mount(&server)
        .await;
    let platform = client(&server).platform();
    let results = platform
        .delete_payloads(id)
        .idempotency_key("delete-1")
        .await
        .unwrap();
    assert_eq!(results[0].link, "https://v3.fal.media/files/x/out.jpg");
    assert!(results[0].exception.is_none());
    platform.delete_payloads(id).await.unwrap();
    let sent: Vec<Request> = server.received_requests().await.unwrap();
    let keys: Vec<String> = sent
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys[0], "delete-1");
    assert!(
        keys[1].starts_with("fal-client-") && keys[1].len() > 20,
        "{keys:?}"
    );
    assert!(matches!(
        platform.delete_payloads("../x").await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn a_plan_over_its_budget_is_refused_before_any_upload_or_submit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models/pricing"))
        .and(query_param("endpoint_id", "fal-ai/flux-lora-portrait-trainer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"prices": [
            {"endpoint_id": "fal-ai/flux-lora-portrait-trainer", "unit_price": 2.4, "unit": "training", "currency": "USD"}
        ], "next_cursor": null, "has_more": false})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/models/pricing/estimate"))
        .and(body_json(json!({"estimate_type": "unit_price", "endpoints": {"fal-ai/flux-lora-portrait-trainer": {"unit_quantity": 1.0}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"estimate_type": "unit_price", "total_cost": 2.4, "currency": "USD"})))
        .mount(&server)
        .await;
    let fal = client(&server);
    let trigger = TriggerPhrase::new("TOK_anna").unwrap();
    let zip = fal_client::storage::FileInput::bytes(vec![0u8; 64], "photos.zip");
    let mut plan = AvatarKind::Portrait.plan(Preset::Fast, zip, trigger);
    assert_eq!(plan.estimate(&fal).await.unwrap().total_cost, 2.4);
    plan.set_budget(Some(Budget::usd(2.0)));
    let err = plan.submit(&fal).await.unwrap_err();
    match &err {
        Error::OverBudget {
            estimate,
            budget,
            currency,
            endpoint,
        } => {
            assert_eq!((*estimate, *budget, currency.as_str()), (2.4, 2.0, "USD"));
            assert_eq!(endpoint, "fal-ai/flux-lora-portrait-trainer");
        }
        other => panic!("{other:?}"),
    }
    // Only the Platform API was asked: no upload, no submit.
    let sent: Vec<Request> = server.received_requests().await.unwrap();
    assert!(
        sent.iter().all(|r| r.url.path().starts_with("/v1/")),
        "{sent:?}"
    );
}
