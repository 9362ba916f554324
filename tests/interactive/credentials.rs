//! Credentials resolved at call time: asked per attempt, cached as the resolver says, dropped on
//! a 401, never sent to other hosts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fal_client::credentials::{BoxError, Credential};
use fal_client::retry::RetryPolicy;
use fal_client::{Error, FalClient};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn rotating(calls: Arc<AtomicUsize>, cache: Option<Duration>) -> FalClientBuilderFn {
    Box::new(move |b| {
        let calls = calls.clone();
        b.credentials(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let c = Credential::key(&format!("key-{n}"))?;
                Ok::<_, BoxError>(match cache {
                    Some(ttl) => c.cache_for(ttl),
                    None => c,
                })
            }
        })
    })
}

type FalClientBuilderFn =
    Box<dyn FnOnce(fal_client::FalClientBuilder) -> fal_client::FalClientBuilder>;

fn client(server: &MockServer, auth: FalClientBuilderFn) -> FalClient {
    auth(FalClient::builder())
        .run_url(server.uri())
        .retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_uncached_credential_is_asked_for_on_every_attempt() {
    let server = MockServer::start().await;
    // The first attempt gets a 503 from ingress (retried), the second succeeds.
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(header("authorization", "Key key-0"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(header("authorization", "Key key-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let fal = client(&server, rotating(calls.clone(), None));
    assert!(fal.has_key());
    let out = fal.run_json("fal-ai/x", &json!({})).await.unwrap();
    assert_eq!(out, json!({"ok": true}));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_cached_credential_is_reused_until_fal_refuses_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(header("authorization", "Key key-0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(1)))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(header("authorization", "Key key-0"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "revoked"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fal-ai/x"))
        .and(header("authorization", "Key key-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(2)))
        .mount(&server)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let fal = client(
        &server,
        rotating(calls.clone(), Some(Duration::from_secs(3600))),
    );
    for _ in 0..2 {
        assert_eq!(
            fal.run_json("fal-ai/x", &json!({})).await.unwrap(),
            json!(1)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The key was revoked: the 401 is the call's answer (not retried), and drops the cache.
    let err = fal.run_json("fal-ai/x", &json!({})).await.unwrap_err();
    assert_eq!(err.status(), Some(fal_client::StatusCode::UNAUTHORIZED));
    assert_eq!(
        fal.run_json("fal-ai/x", &json!({})).await.unwrap(),
        json!(2)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_resolver_sends_nothing() {
    let server = MockServer::start().await;
    let fal = client(
        &server,
        Box::new(|b| {
            b.credentials(|| async {
                Err::<Credential, _>(std::io::Error::other("secret store unreachable"))
            })
        }),
    );
    let err = fal.run_json("fal-ai/x", &json!({})).await.unwrap_err();
    assert!(matches!(err, Error::Credentials(_)), "{err:?}");
    assert!(err.to_string().contains("secret store unreachable"));
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}
