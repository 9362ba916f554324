//! Webhooks end to end: `FalMock` delivers signed completions to an in-test axum receiver that
//! verifies them with the client's `WebhookVerifier` on the mock's key set, the way a real service receives fal's.
//!
//! Every wait is bounded (`WAIT`); nothing sleeps for a fixed time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use fal_client::error::LocItem;
use fal_client::models::{LoraTrainingOutput, PortraitTrainer, PortraitTrainerInput};
use fal_client::webhook::{
    DeliveryDeduper, MemoryDeduper, WebhookOutcome, WebhookPayload, WebhookVerifier,
};
use fal_mock::{sign_webhook, FalMock, MockFailure, WebhookSigner};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use url::Url;

const PORTRAIT: &str = "fal-ai/flux-lora-portrait-trainer";
/// Upper bound of every wait; a passing run takes milliseconds.
const WAIT: Duration = Duration::from_secs(10);

async fn mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_millis(20))
        .log_lines(1)
        .webhook_retry_backoff(Duration::from_millis(10))
        .start()
        .await
        .unwrap()
}

/// What the receiver saw of one request, before acting on it.
#[derive(Debug, Clone)]
struct Raw {
    headers: HeaderMap,
    body: Bytes,
}

/// The receiver's state: the handler shape of `examples/webhook_receiver.rs`, with knobs.
struct Hook<T> {
    keys: WebhookVerifier,
    seen: MemoryDeduper,
    /// Verified, first-time deliveries (the "act" of the handler).
    acted: mpsc::UnboundedSender<WebhookPayload<T>>,
    /// Answer 500 after acting this many more times (a crash after the effect).
    fail_after_acting: AtomicU32,
    /// Every request, and the status it got.
    log: Mutex<Vec<(Raw, StatusCode)>>,
}

struct Receiver<T> {
    url: Url,
    hook: Arc<Hook<T>>,
    acted: mpsc::UnboundedReceiver<WebhookPayload<T>>,
}

impl<T> Receiver<T> {
    async fn next(&mut self) -> WebhookPayload<T> {
        tokio::time::timeout(WAIT, self.acted.recv())
            .await
            .expect("no delivery within the deadline")
            .expect("receiver stopped")
    }

    fn statuses(&self) -> Vec<u16> {
        let log = self.hook.log.lock().unwrap();
        log.iter().map(|(_, s)| s.as_u16()).collect()
    }

    fn raw(&self, i: usize) -> Raw {
        self.hook.log.lock().unwrap()[i].0.clone()
    }
}

async fn receive<T: DeserializeOwned + Send + 'static>(
    State(hook): State<Arc<Hook<T>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let raw = Raw {
        headers: headers.clone(),
        body: body.clone(),
    };
    let verified = match hook.keys.verify(&headers, &body).await {
        Ok(delivery) => delivery.parse::<T>(),
        Err(e) => Err(e),
    };
    let status = match verified {
        Err(e) => e.status_code(),
        Ok(delivery) => {
            if hook.seen.first_time(&delivery.request_id).await.unwrap() {
                hook.acted.send(delivery).unwrap();
                let fail = hook
                    .fail_after_acting
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            } else {
                StatusCode::OK // a re-delivery of something already acted on
            }
        }
    };
    hook.log.lock().unwrap().push((raw, status));
    status
}

/// An axum receiver on `127.0.0.1:0` at `/webhook/fal/status`.
async fn receiver<T: DeserializeOwned + Send + Sync + 'static>(
    keys: WebhookVerifier,
) -> Receiver<T> {
    let (tx, rx) = mpsc::unbounded_channel();
    let hook = Arc::new(Hook {
        keys,
        seen: MemoryDeduper::new(100),
        acted: tx,
        fail_after_acting: AtomicU32::new(0),
        log: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/webhook/fal/status", post(receive::<T>))
        .with_state(Arc::clone(&hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/webhook/fal/status").parse().unwrap(),
        hook,
        acted: rx,
    }
}

/// A training archive as a data URI (the mock checks it like a trainer would).
fn zip_data_uri() -> String {
    let zip = crate::common::training_zip();
    format!(
        "data:application/zip;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(zip)
    )
}

fn jwks_fetches(mock: &FalMock) -> Vec<fal_mock::RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/.well-known/jwks.json")
        .collect()
}

/// Check a delivery with nothing but fal's documented algorithm and the served JWKS: sha256 hex of the raw
/// body, the four-line message, a hex signature, a base64url key.
fn verify_by_the_spec(raw: &Raw, jwks: &Value) {
    let h = |n: &str| raw.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let message = format!(
        "{}\n{}\n{}\n{}",
        h("X-Fal-Webhook-Request-Id"),
        h("X-Fal-Webhook-User-Id"),
        h("X-Fal-Webhook-Timestamp"),
        hex::encode(Sha256::digest(&raw.body))
    );
    let sig: [u8; 64] = hex::decode(h("X-Fal-Webhook-Signature"))
        .unwrap()
        .try_into()
        .unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    key.verify_strict(message.as_bytes(), &Signature::from_bytes(&sig))
        .unwrap();
}

#[tokio::test]
async fn a_finished_training_is_delivered_once_signed_and_typed() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let mut hook = receiver::<LoraTrainingOutput>(fal.webhooks()).await;

    let job = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip_data_uri()))
        .webhook(hook.url.clone())
        .await
        .unwrap();
    let result = job.wait().timeout(WAIT).await.unwrap();

    let delivery = hook.next().await;
    assert_eq!(delivery.request_id(), job.request_id());
    assert_eq!(delivery.gateway_request_id(), Some(job.request_id()));
    let output = delivery.output().expect("a successful delivery");
    assert_eq!(output, &result);
    assert!(output
        .diffusers_lora_file
        .url
        .ends_with("/pytorch_lora_weights.safetensors"));

    // One attempt, accepted; nothing else arrives.
    let attempts = mock.wait_for_webhook_deliveries(1, WAIT).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].url, hook.url.as_str());
    assert_eq!(attempts[0].request_id, job.request_id());
    assert_eq!(
        (attempts[0].status_code, attempts[0].attempt),
        (Some(200), 1)
    );
    assert_eq!(hook.statuses(), [200]);
    assert!(hook.acted.try_recv().is_err());

    // The keys came from the mock's JWKS, fetched once, without credentials.
    let fetches = jwks_fetches(&mock);
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert_eq!(fetches[0].method, "GET");
    assert!(!fetches[0].authorization_present);

    // The wire: JSON body per §6.1, no Authorization header, a signature per §6.2.
    let raw = hook.raw(0);
    assert!(raw.headers.get("authorization").is_none());
    assert_eq!(raw.headers["content-type"], "application/json");
    assert_eq!(raw.headers["x-fal-webhook-user-id"], "mock-user");
    let body: Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(body["request_id"], job.request_id());
    assert_eq!(body["status"], "OK");
    assert_eq!(body["error"], Value::Null);
    assert_eq!(
        body["payload"]["diffusers_lora_file"]["url"],
        result.diffusers_lora_file.url.as_str()
    );
    let served: Value = reqwest::get(mock.jwks_url())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, serde_json::to_value(mock.jwks()).unwrap());
    verify_by_the_spec(&raw, &served);
}

#[tokio::test]
async fn a_failed_job_delivers_error_with_field_details() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let mut hook = receiver::<LoraTrainingOutput>(fal.webhooks()).await;
    mock.fail_next(
        PORTRAIT,
        MockFailure::validation(
            "steps",
            "ensure this value is less than or equal to 10000",
            "value_error.number.not_le",
        ),
    );

    let job = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip_data_uri()))
        .webhook(hook.url.clone())
        .await
        .unwrap();
    let err = job.wait().timeout(WAIT).await.unwrap_err();
    assert_eq!(err.request_id(), Some(job.request_id()));

    let delivery = hook.next().await;
    assert_eq!(delivery.request_id(), job.request_id());
    assert!(!delivery.is_success());
    assert_eq!(delivery.error_message(), Some("Invalid status code: 422"));
    let fields = delivery.field_errors();
    assert_eq!(fields.len(), 1, "{delivery:?}");
    assert_eq!(
        fields[0].loc,
        [LocItem::Name("body".into()), LocItem::Name("steps".into())]
    );
    assert_eq!(fields[0].kind, "value_error.number.not_le");
    assert!(matches!(
        &delivery.outcome,
        WebhookOutcome::Error { payload, .. } if payload["detail"][0]["msg"] == "ensure this value is less than or equal to 10000"
    ));
    let body: Value = serde_json::from_slice(&hook.raw(0).body).unwrap();
    assert_eq!(body["status"], "ERROR");
    assert_eq!(hook.statuses(), [200]);
}

#[tokio::test]
async fn tampered_forged_and_undecodable_deliveries_are_refused() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let mut hook = receiver::<Value>(fal.webhooks()).await;
    let http = reqwest::Client::new();
    let post = |headers: HeaderMap, body: Vec<u8>| {
        let req = http.post(hook.url.clone()).headers(headers).body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let body = br#"{"request_id":"req-1","gateway_request_id":"req-1","status":"OK","payload":{"finetune_id":"ft-1"},"error":null}"#;
    let signed = sign_webhook(mock.webhook_signer(), "req-1", body).unwrap();

    // One byte changed after signing.
    let mut tampered = body.to_vec();
    let at = tampered.iter().position(|&b| b == b'1').unwrap();
    tampered[at] = b'2';
    assert_eq!(post(signed.clone(), tampered).await, 401);
    // Signed by a key that is not in the mock's JWKS.
    let stranger = WebhookSigner::from_seed([42; 32]).with_user_id("mock-user");
    let forged = sign_webhook(&stranger, "req-1", body).unwrap();
    assert_eq!(post(forged, body.to_vec()).await, 401);
    // No signature at all.
    assert_eq!(post(HeaderMap::new(), body.to_vec()).await, 401);
    // Genuinely signed, but not a delivery body.
    let junk = b"{\"request_id\":".to_vec();
    let junk_headers = sign_webhook(mock.webhook_signer(), "req-1", &junk).unwrap();
    assert_eq!(post(junk_headers, junk).await, 400);
    assert!(
        hook.acted.try_recv().is_err(),
        "nothing refused was acted on"
    );

    // The untouched delivery goes through, once.
    assert_eq!(post(signed.clone(), body.to_vec()).await, 200);
    assert_eq!(post(signed, body.to_vec()).await, 200);
    let delivery = hook.next().await;
    assert_eq!(delivery.output().unwrap()["finetune_id"], "ft-1");
    assert!(hook.acted.try_recv().is_err());
    assert_eq!(hook.statuses(), [401, 401, 401, 400, 200, 200]);
}

#[tokio::test]
async fn a_500_gets_a_redelivery_and_the_handler_acts_once() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let mut hook = receiver::<LoraTrainingOutput>(fal.webhooks()).await;
    hook.hook.fail_after_acting.store(1, Ordering::SeqCst);

    let job = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip_data_uri()))
        .webhook(hook.url.clone())
        .await
        .unwrap();
    let attempts = mock.wait_for_webhook_deliveries(2, WAIT).await;
    let seen: Vec<_> = attempts
        .iter()
        .map(|d| (d.attempt, d.status_code, d.request_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some(500), job.request_id()),
            (2, Some(200), job.request_id())
        ]
    );
    assert_eq!(hook.statuses(), [500, 200]);
    // Each attempt is signed afresh over the same body.
    assert_eq!(hook.raw(0).body, hook.raw(1).body);

    let delivery = hook.next().await;
    assert_eq!(delivery.request_id(), job.request_id());
    assert!(hook.acted.try_recv().is_err(), "acted more than once");
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_then_given_up() {
    let mock = FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_millis(10))
        .webhook_retries(2)
        .webhook_retry_backoff(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    // A port that was just free: connections are refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url: Url = format!("http://{closed}/hook").parse().unwrap();
    let job = fal
        .submit_json("fal-ai/any/app", &serde_json::json!({"x": 0}))
        .webhook(url.clone())
        .await
        .unwrap();
    let attempts = mock.wait_for_webhook_deliveries(3, WAIT).await;
    let seen: Vec<_> = attempts
        .iter()
        .map(|d| (d.attempt, d.status_code, d.url.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, None, url.as_str()),
            (2, None, url.as_str()),
            (3, None, url.as_str())
        ]
    );
    assert!(attempts.iter().all(|d| d.request_id == job.request_id()));
    assert!(!attempts[0].is_success());
}

#[tokio::test]
async fn only_loopback_webhooks_are_delivered_by_default() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let hook = receiver::<Value>(fal.webhooks()).await;
    let remote = fal
        .submit_json("fal-ai/any/app", &serde_json::json!({"x": 1}))
        .webhook("https://example.com/hook".parse().unwrap())
        .await
        .unwrap();
    remote.wait().timeout(WAIT).await.unwrap();
    let local = fal
        .submit_json("fal-ai/any/app", &serde_json::json!({"x": 2}))
        .webhook(hook.url.clone())
        .await
        .unwrap();
    let attempts = mock.wait_for_webhook_deliveries(1, WAIT).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].request_id, local.request_id());
    assert_eq!(
        mock.job(remote.request_id())
            .unwrap()
            .webhook_url
            .as_deref(),
        Some("https://example.com/hook")
    );
}

#[tokio::test]
async fn the_key_set_is_public_and_follows_the_seed() {
    let seed = *b"fal-client mock webhook seed 001";
    let a = FalMock::builder().webhook_seed(seed).start().await.unwrap();
    let b = FalMock::builder().webhook_seed(seed).start().await.unwrap();
    let c = FalMock::start().await.unwrap();
    assert_eq!(a.jwks(), b.jwks());
    assert_ne!(a.jwks(), c.jwks());
    assert_eq!(
        a.jwks(),
        WebhookSigner::from_seed(seed)
            .with_kid("fal-mock-webhook")
            .jwks()
    );

    // Served without a key, like fal's.
    let r = reqwest::get(a.jwks_url()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: fal_client::webhook::Jwks = r.json().await.unwrap();
    assert_eq!(served, a.jwks());
    let jwk = &served.keys[0];
    assert_eq!(
        (jwk.kty.as_str(), jwk.crv.as_deref()),
        ("OKP", Some("Ed25519"))
    );
    assert!(a
        .env_vars()
        .contains(&("FAL_JWKS_URL".to_owned(), a.jwks_url())));
    // Everything else still needs the key.
    let queue = reqwest::get(format!(
        "{}fal-ai/flux-lora/requests/x/status",
        a.queue_url()
    ))
    .await
    .unwrap();
    assert_eq!(queue.status(), 401);
}
