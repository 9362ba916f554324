//! The CDN v3 upload flow against wiremock (exact requests), its token cache, the fallback to
//! the initiate flow, and object lifecycles (uploads and requests' outputs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fal_client::models::{FluxLora, FluxLoraInput};
use fal_client::retry::RetryPolicy;
use fal_client::storage::{Acl, AclDecision, Expiry, ObjectLifecycle, UploadFlow};
use fal_client::{Error, FalClient, FalClientBuilder, StatusCode};
use fal_mock::FalMock;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "cdn-test-key";
const TOKEN: &str = "t0k3n";

fn in_secs(secs: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn builder(rest: &MockServer, cdn: &MockServer) -> FalClientBuilder {
    FalClient::builder()
        .key(KEY)
        .rest_url(rest.uri())
        .queue_url(rest.uri())
        .run_url(rest.uri())
        .cdn_url(cdn.uri())
        .retry(
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        )
}

/// A token route answering a token good for `secs`, counting its calls.
struct TokenRoute {
    base_url: String,
    secs: i64,
    calls: Arc<AtomicUsize>,
    delay: Duration,
}

impl Respond for TokenRoute {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_delay(self.delay)
            .set_body_json(json!({
                "token": TOKEN,
                "token_type": "Bearer",
                "base_url": self.base_url,
                "expires_at": in_secs(self.secs),
            }))
    }
}

async fn mount_token(
    rest: &MockServer,
    cdn: &MockServer,
    secs: i64,
    delay: Duration,
) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/storage/auth/token"))
        .and(query_param("storage_type", "fal-cdn-v3"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .and(body_json(json!({})))
        .respond_with(TokenRoute {
            base_url: cdn.uri(),
            secs,
            calls: calls.clone(),
            delay,
        })
        .mount(rest)
        .await;
    calls
}

async fn mount_upload(cdn: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/files/upload"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(move |r: &Request| {
            let name = r
                .headers
                .get("x-fal-file-name")
                .map_or("upload.bin", |v| v.to_str().unwrap())
                .to_owned();
            ResponseTemplate::new(200).set_body_json(json!({
                "access_url": format!("https://v3.fal.media/files/abc/{name}"),
            }))
        })
        .mount(cdn)
        .await;
}

#[tokio::test]
async fn a_small_upload_is_one_post_with_the_token_and_the_lifecycle() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    let calls = mount_token(&rest, &cdn, 3600, Duration::ZERO).await;
    mount_upload(&cdn).await;
    let fal = builder(&rest, &cdn).build().unwrap();
    let url = fal
        .storage()
        .upload_bytes(b"\x89PNG face".to_vec())
        .content_type("image/png")
        .file_name("face.png")
        .lifecycle(ObjectLifecycle::expiring(Expiry::OneDay).with_acl(Acl::new(AclDecision::Hide)))
        .await
        .unwrap();
    assert_eq!(url.as_str(), "https://v3.fal.media/files/abc/face.png");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let sent = cdn.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.body, b"\x89PNG face");
    let h = |n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("content-type").as_deref(), Some("image/png"));
    assert_eq!(h("x-fal-file-name").as_deref(), Some("face.png"));
    let lifecycle = r#"{"expiration_duration_seconds":86400,"initial_acl":{"default":"hide"}}"#;
    assert_eq!(h("x-fal-object-lifecycle").as_deref(), Some(lifecycle));
    assert_eq!(
        h("x-fal-object-lifecycle-preference").as_deref(),
        Some(lifecycle)
    );
    // The CDN gets the token, never the key.
    assert!(!format!("{:?}", r.headers).contains(KEY));
}

#[tokio::test]
async fn one_token_per_validity_window_shared_by_concurrent_uploads() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    let calls = mount_token(&rest, &cdn, 3600, Duration::from_millis(200)).await;
    mount_upload(&cdn).await;
    let fal = builder(&rest, &cdn).build().unwrap();
    let uploads = (0..8).map(|i| {
        let fal = fal.clone();
        async move {
            fal.storage()
                .upload_bytes(vec![i as u8; 100])
                .await
                .unwrap()
        }
    });
    futures::future::join_all(uploads).await;
    fal.storage().upload_bytes(vec![9u8]).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one token for nine uploads"
    );
    assert_eq!(cdn.received_requests().await.unwrap().len(), 9);
}

#[tokio::test]
async fn a_token_is_fetched_again_shortly_before_it_expires() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    // Good for 2 s: used for 1.5 s (the last quarter is not used).
    let calls = mount_token(&rest, &cdn, 2, Duration::ZERO).await;
    mount_upload(&cdn).await;
    let fal = builder(&rest, &cdn).build().unwrap();
    fal.storage().upload_bytes(vec![1u8]).await.unwrap();
    fal.storage().upload_bytes(vec![2u8]).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    fal.storage().upload_bytes(vec![3u8]).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn mount_initiate(rest: &MockServer, cdn: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/put/here?sig=1", cdn.uri()),
            "file_url": format!("{}/files/via-initiate.bin", cdn.uri()),
        })))
        .expect(1)
        .mount(rest)
        .await;
    Mock::given(method("PUT"))
        .and(path("/put/here"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(cdn)
        .await;
}

#[tokio::test]
async fn a_failing_token_route_falls_back_to_initiate_at_once() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/storage/auth/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("token service down"))
        .expect(1) // not retried: the next flow is tried at once
        .mount(&rest)
        .await;
    mount_initiate(&rest, &cdn).await;
    let fal = builder(&rest, &cdn).build().unwrap();
    let url = fal.storage().upload_bytes(vec![7u8; 10]).await.unwrap();
    assert!(url.as_str().ends_with("/files/via-initiate.bin"), "{url}");
}

#[tokio::test]
async fn a_cdn_answering_503_falls_back_and_a_refused_file_does_not() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    mount_token(&rest, &cdn, 3600, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path("/files/upload"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&cdn)
        .await;
    mount_initiate(&rest, &cdn).await;
    let fal = builder(&rest, &cdn)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let url = fal.storage().upload_bytes(vec![1u8]).await.unwrap();
    assert!(url.as_str().ends_with("/files/via-initiate.bin"), "{url}");

    // A file the CDN refuses (415) is refused: no fallback, the CDN's answer is the error.
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    mount_token(&rest, &cdn, 3600, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path("/files/upload"))
        .respond_with(
            ResponseTemplate::new(415).set_body_json(json!({"detail": "unsupported type"})),
        )
        .mount(&cdn)
        .await;
    let fal = builder(&rest, &cdn).build().unwrap();
    let err = fal.storage().upload_bytes(vec![1u8]).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        "{err:?}"
    );
    let initiated = rest
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path().contains("initiate"));
    assert!(!initiated);
}

#[tokio::test]
async fn with_one_flow_there_is_no_fallback() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/storage/auth/token"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&rest)
        .await;
    let fal = builder(&rest, &cdn)
        .upload_flows([UploadFlow::CdnV3])
        .build()
        .unwrap();
    let err = fal.storage().upload_bytes(vec![1u8]).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(matches!(
        FalClient::builder().upload_flows([]).build(),
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn a_large_upload_is_multipart_on_the_tokens_base_url() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    let base = MockServer::start().await; // the token's base_url, not the configured CDN
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/storage/auth/token"))
        .respond_with(TokenRoute {
            base_url: base.uri(),
            secs: 3600,
            calls: calls.clone(),
            delay: Duration::ZERO,
        })
        .mount(&rest)
        .await;
    let access = format!("{}/files/xyz/big.bin", base.uri());
    Mock::given(method("POST"))
        .and(path("/files/upload/multipart"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("x-fal-file-name", "big.bin"))
        .and(header(
            "x-fal-object-lifecycle",
            r#"{"expiration_duration_seconds":60}"#,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_url": access, "uploadId": "u-1",
        })))
        .expect(1)
        .mount(&base)
        .await;
    for n in 1..=3 {
        Mock::given(method("PUT"))
            .and(path(format!("/files/xyz/big.bin/multipart/u-1/{n}")))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(
                ResponseTemplate::new(200).insert_header("etag", format!("\"e{n}\"").as_str()),
            )
            .expect(1)
            .mount(&base)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/files/xyz/big.bin/multipart/u-1/complete"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"parts": [
            {"partNumber": 1, "etag": "\"e1\""},
            {"partNumber": 2, "etag": "\"e2\""},
            {"partNumber": 3, "etag": "\"e3\""},
        ]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&base)
        .await;
    let fal = builder(&rest, &cdn).build().unwrap();
    let url = fal
        .storage()
        .upload_bytes(vec![3u8; 25])
        .file_name("big.bin")
        .multipart_threshold(20)
        .part_size(10)
        .lifecycle(ObjectLifecycle::expiring(Expiry::Immediate))
        .await
        .unwrap();
    assert_eq!(url.as_str(), access);
    assert!(cdn.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn lifecycles_default_per_client_and_are_overridden_per_call() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    mount_token(&rest, &cdn, 3600, Duration::ZERO).await;
    mount_upload(&cdn).await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [], "seed": 1, "prompt": "x", "has_nsfw_concepts": [],
        })))
        .mount(&rest)
        .await;
    let fal = builder(&rest, &cdn)
        .upload_lifecycle(ObjectLifecycle::expiring(Expiry::SevenDays))
        .output_lifecycle(ObjectLifecycle::expiring(Expiry::OneHour))
        .build()
        .unwrap();
    fal.storage().upload_bytes(vec![1u8]).await.unwrap();
    fal.storage()
        .upload_bytes(vec![2u8])
        .lifecycle(ObjectLifecycle::keep())
        .await
        .unwrap();
    fal.run::<FluxLora>(&FluxLoraInput::new("x")).await.unwrap();
    fal.run::<FluxLora>(&FluxLoraInput::new("x"))
        .output_lifecycle(ObjectLifecycle::keep())
        .await
        .unwrap();
    let header = |r: &Request, n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let uploads = cdn.received_requests().await.unwrap();
    assert_eq!(
        header(&uploads[0], "x-fal-object-lifecycle").as_deref(),
        Some(r#"{"expiration_duration_seconds":604800}"#)
    );
    // Kept: nothing to say on an upload.
    assert_eq!(header(&uploads[1], "x-fal-object-lifecycle"), None);
    let runs: Vec<Request> = rest
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/fal-ai/flux-lora")
        .collect();
    assert_eq!(
        header(&runs[0], "x-fal-object-lifecycle-preference").as_deref(),
        Some(r#"{"expiration_duration_seconds":3600}"#)
    );
    // Kept: `null` overrides the account's expiry for the outputs.
    assert_eq!(
        header(&runs[1], "x-fal-object-lifecycle-preference").as_deref(),
        Some(r#"{"expiration_duration_seconds":null}"#)
    );
    // An invalid lifecycle fails before anything is sent.
    let before = rest.received_requests().await.unwrap().len();
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .output_lifecycle(ObjectLifecycle::expiring(Expiry::After(Duration::ZERO)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(rest.received_requests().await.unwrap().len(), before);
}

/// Against the mock: the v3 flow is the default, the lifecycle is recorded, and a file past its
/// expiry is gone.
#[tokio::test]
async fn falmock_keeps_a_file_until_its_expiry() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let url = fal
        .storage()
        .upload_bytes(b"selfie".to_vec())
        .content_type("image/jpeg")
        .lifecycle(ObjectLifecycle::expiring(Expiry::After(
            Duration::from_secs(1),
        )))
        .await
        .unwrap();
    assert_eq!(
        mock.file_lifecycle(&url),
        Some(json!({"expiration_duration_seconds": 1}))
    );
    assert_eq!(mock.cdn_token_fetches(), 1);
    assert!(mock
        .requests()
        .iter()
        .any(|r| r.path == "/files/upload" && r.method == "POST"));
    assert_eq!(&fal.storage().download(&url).await.unwrap()[..], b"selfie");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = fal.storage().download(&url).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
}

/// Training archives (people's photos) expire after a day unless the client or the upload says
/// otherwise.
#[tokio::test]
async fn training_archives_expire_after_a_day_by_default() {
    let mock = FalMock::start().await.unwrap();
    let mut builder = fal_client::archive::ArchiveBuilder::new().min_images(1);
    builder = builder.image("face.png", crate::common::PNG_1X1);
    let archive = builder.build().unwrap();
    let day = Some(json!({"expiration_duration_seconds": 86400}));

    let fal = mock.client().unwrap();
    let url = fal.storage().upload_archive(&archive).await.unwrap();
    assert!(url.as_str().ends_with("/archive.zip"), "{url}");
    assert_eq!(mock.file_lifecycle(&url), day);
    assert_eq!(mock.uploaded(&url).unwrap().0, "application/zip");
    // Per upload.
    let url = fal
        .storage()
        .upload_archive(&archive)
        .lifecycle(ObjectLifecycle::expiring(Expiry::SevenDays))
        .await
        .unwrap();
    assert_eq!(
        mock.file_lifecycle(&url),
        Some(json!({"expiration_duration_seconds": 604800}))
    );
    // Client-wide: keeping uploads keeps archives too.
    let keep = mock
        .client_builder()
        .upload_lifecycle(ObjectLifecycle::keep())
        .build()
        .unwrap();
    let url = keep.storage().upload_archive(&archive).await.unwrap();
    assert_eq!(mock.file_lifecycle(&url), None);
    assert_eq!(fal_client::storage::DEFAULT_ARCHIVE_EXPIRY, Expiry::OneDay);
}

/// Without a configured CDN URL, small files go to the token's `base_url` (with its path).
#[tokio::test]
async fn without_a_cdn_url_the_tokens_base_url_is_used() {
    let rest = MockServer::start().await;
    let base = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/storage/auth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token": TOKEN, "token_type": "Bearer",
            "base_url": format!("{}/cdn", base.uri()), "expires_at": in_secs(3600),
        })))
        .mount(&rest)
        .await;
    Mock::given(method("POST"))
        .and(path("/cdn/files/upload"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_url": format!("{}/cdn/files/x/upload.bin", base.uri()),
        })))
        .expect(1)
        .mount(&base)
        .await;
    let fal = FalClient::builder()
        .key(KEY)
        .rest_url(rest.uri())
        .build()
        .unwrap();
    assert!(fal.config().cdn_url().is_none());
    let url = fal.storage().upload_bytes(vec![1u8]).await.unwrap();
    assert!(url.as_str().ends_with("/cdn/files/x/upload.bin"), "{url}");
}

/// A v3 upload the CDN answered 2xx stored the file: a body that does not read is an error,
/// never a second upload (no retry, no fallback: no second copy of someone's photos).
#[tokio::test]
async fn a_v3_upload_answered_2xx_is_never_sent_again() {
    for body in ["not json", r#"{"access_url": "ftp://nowhere"}"#] {
        let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
        mount_token(&rest, &cdn, 3600, Duration::ZERO).await;
        Mock::given(method("POST"))
            .and(path("/files/upload"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .expect(1)
            .mount(&cdn)
            .await;
        let fal = builder(&rest, &cdn).build().unwrap();
        let err = fal.storage().upload_bytes(vec![1u8]).await.unwrap_err();
        assert!(
            matches!(err, Error::Decode { .. } | Error::Upload(_)),
            "{body}: {err:?}"
        );
        let initiated = rest
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.url.path().contains("initiate"));
        assert!(!initiated, "{body}: fell back");
    }
}

/// A token route that hangs: the first upload falls back after the request timeout, the others
/// at once (the failure is remembered), instead of each waiting in turn.
#[tokio::test]
async fn a_hanging_token_route_does_not_hold_uploads_in_turn() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    let calls = mount_token(&rest, &cdn, 3600, Duration::from_secs(5)).await;
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/put/here", cdn.uri()),
            "file_url": format!("{}/files/f.bin", cdn.uri()),
        })))
        .mount(&rest)
        .await;
    Mock::given(method("PUT"))
        .and(path("/put/here"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cdn)
        .await;
    let fal = builder(&rest, &cdn)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let uploads = (0..4).map(|i| {
        let fal = fal.clone();
        async move { fal.storage().upload_bytes(vec![i as u8]).await.unwrap() }
    });
    futures::future::join_all(uploads).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one token fetch for four uploads"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

/// A client-wide output lifecycle does not replace the header a call set itself.
#[tokio::test]
async fn a_callers_own_lifecycle_header_stays() {
    let (rest, cdn) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/fal-ai/flux-lora"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "images": [], "seed": 1, "prompt": "x", "has_nsfw_concepts": [],
        })))
        .mount(&rest)
        .await;
    let fal = builder(&rest, &cdn)
        .output_lifecycle(ObjectLifecycle::expiring(Expiry::OneHour))
        .build()
        .unwrap();
    fal.run::<FluxLora>(&FluxLoraInput::new("x"))
        .header(
            "x-fal-object-lifecycle-preference".parse().unwrap(),
            r#"{"expiration_duration_seconds":120}"#.parse().unwrap(),
        )
        .await
        .unwrap();
    let sent = &rest.received_requests().await.unwrap()[0];
    assert_eq!(
        sent.headers["x-fal-object-lifecycle-preference"],
        r#"{"expiration_duration_seconds":120}"#
    );
}
