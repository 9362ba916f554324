//! Where the key goes: the `Authorization` header is sent only to the configured fal base URLs,
//! never to an upload URL, a file download, a webhook, a URL an answer points at on another host,
//! or across a redirect to another host.
//!
//! The JWKS fetch sending no credentials is `tests/webhook.rs::jwks_fetch_sends_no_credentials`.

use std::path::PathBuf;
use std::time::Duration;

use fal_client::archive::ArchiveBuilder;
use fal_client::models::{FluxLora, FluxLoraInput, PortraitTrainer, PortraitTrainerInput};
use fal_client::queue::RequestHandle;
use fal_client::retry::RetryPolicy;
use fal_client::FalClient;
use fal_mock::{FalMock, HostKind};
use futures::StreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sk-live-5f1e0b9c-THE-REAL-KEY-d41d8cd98f00";

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/portrait")
}

/// Upload (both flows), train, download through the mock: the CDN (a second address) never
/// sees the key (the v3 flow sends it a CDN token instead); the API server always does.
#[tokio::test]
async fn the_cdn_never_receives_the_key() {
    let mock = FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let archive = ArchiveBuilder::new().build_from_dir(photos()).unwrap();
    let url = fal
        .storage()
        .upload_bytes(archive.bytes().clone())
        .content_type("application/zip")
        .await
        .unwrap();
    let initiate = mock
        .client_builder()
        .upload_flows([fal_client::storage::UploadFlow::Initiate])
        .build()
        .unwrap();
    initiate
        .storage()
        .upload_bytes(archive.into_bytes())
        .content_type("application/zip")
        .await
        .unwrap();
    let out = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(url.as_str()))
        .await
        .unwrap()
        .wait()
        .poll_interval(Duration::from_millis(5))
        .await
        .unwrap();
    fal.storage()
        .download(&out.diffusers_lora_file.url)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    fal.storage()
        .download_to_file(&out.config_file.url, dir.path().join("config.json"))
        .await
        .unwrap();
    // A file URL on the API host itself is a download too: no key.
    let requests = mock.requests();
    let cdn: Vec<_> = requests
        .iter()
        .filter(|r| r.host_kind == HostKind::Cdn)
        .collect();
    assert!(cdn.len() >= 4, "two uploads and two downloads: {cdn:?}");
    assert!(
        cdn.iter().any(|r| r.method == "PUT"),
        "the initiate flow's PUT"
    );
    assert!(
        cdn.iter()
            .any(|r| r.method == "POST" && r.path == "/files/upload" && r.authorization_present),
        "the v3 upload, with its CDN token"
    );
    assert!(cdn.iter().filter(|r| r.method == "GET").count() >= 2);
    for r in &cdn {
        assert!(!r.key_sent, "the key reached the CDN: {r:?}");
        assert!(
            !r.authorization_present || r.path == "/files/upload",
            "credentials where none belong: {r:?}"
        );
    }
    for r in requests.iter().filter(|r| r.host_kind == HostKind::Api) {
        assert!(
            r.authorization_present,
            "an API call without the key: {r:?}"
        );
    }
}

fn client(server: &MockServer) -> FalClient {
    FalClient::builder()
        .key(SECRET)
        .queue_url(server.uri())
        .run_url(server.uri())
        .rest_url(server.uri())
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

/// A submit answer whose URLs point at another host, and a webhook on that host: status, the
/// status stream, result, cancel and a whole wait all go to the configured host, with the key;
/// the other host receives nothing.
#[tokio::test]
async fn urls_a_response_points_at_get_no_key() {
    let fal_server = MockServer::start().await;
    let evil = MockServer::start().await;
    let base = format!("{}/fal-ai/flux-lora/requests/r1", evil.uri());
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "IN_QUEUE",
            "request_id": "r1",
            "response_url": base,
            "status_url": format!("{base}/status"),
            "cancel_url": format!("{base}/cancel"),
        })))
        .mount(&fal_server)
        .await;
    let auth = format!("Key {SECRET}");
    let answer = |p: &str, t: ResponseTemplate| {
        Mock::given(path(format!("/fal-ai/flux-lora/requests/r1{p}")))
            .and(header("authorization", auth.as_str()))
            .respond_with(t)
    };
    answer(
        "/status/stream",
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string("data: {\"status\":\"COMPLETED\"}\n\n"),
    )
    .mount(&fal_server)
    .await;
    answer(
        "/status",
        ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED"})),
    )
    .mount(&fal_server)
    .await;
    answer(
        "/cancel",
        ResponseTemplate::new(400).set_body_json(json!({"status": "ALREADY_COMPLETED"})),
    )
    .mount(&fal_server)
    .await;
    answer(
        "",
        ResponseTemplate::new(200).set_body_json(
            json!({"images": [], "seed": 1, "prompt": "p", "timings": {}, "has_nsfw_concepts": []}),
        ),
    )
    .mount(&fal_server)
    .await;

    let fal = client(&fal_server);
    let hook: url::Url = format!("{}/webhook", evil.uri()).parse().unwrap();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .webhook(hook)
        .await
        .unwrap();
    assert!(job.status_url().as_str().starts_with(&fal_server.uri()));
    let events: Vec<_> = job.events(false).collect().await;
    assert!(events[0].as_ref().unwrap().is_completed());
    assert!(job.status(false).await.unwrap().is_completed());
    assert_eq!(
        job.cancel().await.unwrap(),
        fal_client::queue::CancelOutcome::AlreadyCompleted
    );
    assert_eq!(job.result().await.unwrap().seed, 1);
    assert_eq!(
        job.wait()
            .poll_interval(Duration::from_millis(5))
            .await
            .unwrap()
            .seed,
        1
    );

    assert!(
        evil.received_requests().await.unwrap().is_empty(),
        "nothing reached the other host"
    );
    let sent = fal_server.received_requests().await.unwrap();
    // submit, stream, status, cancel, result, and the wait's stream and result.
    assert_eq!(sent.len(), 7);
    for r in &sent {
        assert_eq!(
            r.headers.get("authorization").map(|v| v.to_str().unwrap()),
            Some(auth.as_str()),
            "{} {}",
            r.method,
            r.url
        );
    }
}

/// A configured host that redirects elsewhere: the redirected request carries no key (reqwest
/// drops `Authorization` when a redirect changes host or port), and the answer still arrives.
#[tokio::test]
async fn a_redirect_to_another_host_loses_the_key() {
    let fal_server = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fal-ai/x/requests/r1"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/elsewhere/r1", other.uri()).as_str()),
        )
        .mount(&fal_server)
        .await;
    Mock::given(method("GET"))
        .and(path("/elsewhere/r1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"moved": true})))
        .mount(&other)
        .await;
    let fal = client(&fal_server);
    let h: RequestHandle<Value> = fal.resume("fal-ai/x", "r1").unwrap();
    assert_eq!(h.result().await.unwrap(), json!({"moved": true}));
    let first = &fal_server.received_requests().await.unwrap()[0];
    assert!(first.headers.get("authorization").is_some());
    let moved = other.received_requests().await.unwrap();
    assert_eq!(moved.len(), 1);
    assert!(
        moved[0].headers.get("authorization").is_none(),
        "the key followed a redirect to another host"
    );
}

/// Uploads go to the pre-signed URL of the initiate answer, downloads to any URL: no key, even
/// when such a URL is on the configured host itself (a pre-signed URL needs no key, and a
/// download URL may be shared).
#[tokio::test]
async fn upload_and_download_urls_get_no_key_even_on_the_fal_host() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/put-here?sig=1", server.uri()),
            "file_url": format!("{}/files/f.png", server.uri()),
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/put-here"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/f.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"png".to_vec()))
        .mount(&server)
        .await;
    let fal = client(&server);
    let url = fal
        .storage()
        .upload_bytes(b"png".to_vec())
        .content_type("image/png")
        .await
        .unwrap();
    assert_eq!(&fal.storage().download(&url).await.unwrap()[..], b"png");
    for r in server.received_requests().await.unwrap() {
        let has_key = r.headers.get("authorization").is_some();
        // The CDN token route (answered 404 here: the upload falls back to initiate) and the
        // initiate call are fal's own calls; the PUT and the download are not.
        assert_eq!(
            has_key,
            matches!(
                r.url.path(),
                "/storage/upload/initiate" | "/storage/auth/token"
            ),
            "{} {}",
            r.method,
            r.url
        );
    }
}
