//! `POST {rest}/tokens/`: the request fal's clients send, and the three answer shapes.

use std::time::{Duration, SystemTime};

use fal_client::{Error, FalClient};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key("k-1")
        .rest_url(server.uri())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_token_is_asked_for_the_apps_aliases_and_read_from_each_answer_shape() {
    let server = MockServer::start().await;
    let answers = [
        json!("jwt-bare"),
        json!({"detail": "jwt-detail"}),
        json!({"token": "jwt-token"}),
    ];
    for (i, answer) in answers.iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/tokens/"))
            .and(header("authorization", "Key k-1"))
            .and(body_json(json!({
                "allowed_apps": ["fast-lcm-diffusion", "flux-pro"],
                "token_expiration": 300,
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .up_to_n_times(1)
            .with_priority(u8::try_from(i + 1).unwrap())
            .mount(&server)
            .await;
    }
    let fal = client(&server);
    let mut got = Vec::new();
    for _ in 0..3 {
        let before = SystemTime::now();
        let token = fal
            .create_token([
                "fal-ai/fast-lcm-diffusion",
                "fal-ai/flux-pro/v1.1-ultra-finetuned",
            ])
            .expiration(Duration::from_millis(299_500))
            .await
            .unwrap();
        assert_eq!(token.allowed_apps(), ["fast-lcm-diffusion", "flux-pro"]);
        let lives = token.expires_at().duration_since(before).unwrap();
        assert!(lives >= Duration::from_secs(300) && lives < Duration::from_secs(301));
        assert!(!format!("{token:?}").contains("jwt"), "{token:?}");
        got.push(token.secret().to_owned());
    }
    assert_eq!(got, ["jwt-bare", "jwt-detail", "jwt-token"]);
}

#[tokio::test]
async fn bad_token_requests_fail_before_sending_and_odd_answers_are_decode_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tokens/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"jwt": "x"})))
        .mount(&server)
        .await;
    let fal = client(&server);
    let none: [&str; 0] = [];
    assert!(matches!(
        fal.create_token(none).await,
        Err(Error::InvalidInput { ref field, .. }) if field == "allowed_apps"
    ));
    assert!(matches!(
        fal.create_token(["fal-ai/x"]).expiration(Duration::from_millis(500)).await,
        Err(Error::InvalidInput { ref field, .. }) if field == "token_expiration"
    ));
    assert!(matches!(
        fal.create_token(["not an id"]).await,
        Err(Error::InvalidEndpointId { .. })
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
    let err = fal.create_token(["fal-ai/x"]).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_refused_token_request_is_an_api_error_with_fal_s_details() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tokens/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Invalid key"})))
        .mount(&server)
        .await;
    let err = client(&server)
        .create_token(["fal-ai/x"])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(fal_client::StatusCode::UNAUTHORIZED));
    assert!(err.to_string().contains("Invalid key"), "{err}");
}
