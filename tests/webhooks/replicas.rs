//! Two webhook receiver replicas sharing one real Redis (`redis-server`, started by the test on
//! a free port): a delivery sent to both, and replayed, is acted on once; with Redis stopped
//! both answer 503 and nothing is acted on twice. Deliveries are signed here with
//! ed25519-dalek by fal's documented algorithm (not with the mock's signer).
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use fal_client::webhook::{DeliveryDeduper, Jwks, RedisDeduper, WebhookVerifier};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A `redis-server` of the test's own, on a free loopback port, without persistence; killed
/// when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (apt-get install redis-server); .ci/run does")
            });
        let server = Self { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not listen on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// fal's signing, done here: the four-line message, Ed25519, hex; the key set as a JWKS.
struct FalSigner {
    key: SigningKey,
}

impl FalSigner {
    fn new() -> Self {
        Self {
            key: SigningKey::from_bytes(&[7u8; 32]),
        }
    }

    fn jwks(&self) -> Jwks {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.key.verifying_key().as_bytes());
        serde_json::from_value(
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "test"}]}),
        )
        .unwrap()
    }

    fn sign(&self, request_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let message = format!(
            "{request_id}\nuser-1\n{timestamp}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let signature = hex::encode(self.key.sign(message.as_bytes()).to_bytes());
        vec![
            ("x-fal-webhook-request-id", request_id.to_owned()),
            ("x-fal-webhook-user-id", "user-1".to_owned()),
            ("x-fal-webhook-timestamp", timestamp),
            ("x-fal-webhook-signature", signature),
        ]
    }
}

struct Replica {
    keys: WebhookVerifier,
    seen: RedisDeduper,
    /// How many deliveries every replica acted on, together.
    acted: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Arc<Replica>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delivery = match r.keys.verify(&headers, &body).await {
        Ok(d) => match d.parse::<serde_json::Value>() {
            Ok(d) => d,
            Err(e) => return e.status_code(),
        },
        Err(e) => return e.status_code(),
    };
    match r.seen.first_time(delivery.request_id()).await {
        Ok(true) => {
            r.acted.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
        Ok(false) => StatusCode::OK,
        Err(e) => e.status_code(),
    }
}

/// A replica on its own port; its URL.
async fn replica(redis: &RedisServer, signer: &FalSigner, acted: &Arc<AtomicUsize>) -> String {
    let state = Arc::new(Replica {
        keys: WebhookVerifier::from_jwks(&signer.jwks()),
        seen: RedisDeduper::connect(&redis.url())
            .await
            .unwrap()
            .key_prefix("test:replicas:"),
        acted: Arc::clone(acted),
    });
    let app = Router::new()
        .route("/webhook/fal/status", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/webhook/fal/status")
}

async fn deliver(http: &reqwest::Client, url: &str, signer: &FalSigner, request_id: &str) -> u16 {
    let body = serde_json::to_vec(&json!({
        "request_id": request_id, "gateway_request_id": request_id,
        "status": "OK", "payload": {"images": []}
    }))
    .unwrap();
    let mut req = http.post(url).body(body.clone());
    for (name, value) in signer.sign(request_id, &body) {
        req = req.header(name, value);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn two_replicas_on_one_redis_act_once_on_a_delivery_sent_to_both() {
    let redis = RedisServer::start();
    let signer = FalSigner::new();
    let acted = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        replica(&redis, &signer, &acted).await,
        replica(&redis, &signer, &acted).await,
    );
    let http = reqwest::Client::new();
    let id = "7c1f1a3e-0000-4000-8000-000000000001";
    // The same delivery at both replicas at once, then replayed at each.
    let (sa, sb) = tokio::join!(
        deliver(&http, &a, &signer, id),
        deliver(&http, &b, &signer, id)
    );
    assert_eq!((sa, sb), (200, 200));
    for url in [&a, &b, &a, &b] {
        assert_eq!(deliver(&http, url, &signer, id).await, 200);
    }
    assert_eq!(acted.load(Ordering::SeqCst), 1);
    // Another request is acted on once too, wherever it lands.
    let other = "7c1f1a3e-0000-4000-8000-000000000002";
    for url in [&b, &a, &b] {
        assert_eq!(deliver(&http, url, &signer, other).await, 200);
    }
    assert_eq!(acted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn with_redis_stopped_replicas_answer_503_and_act_on_nothing() {
    let mut redis = RedisServer::start();
    let signer = FalSigner::new();
    let acted = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        replica(&redis, &signer, &acted).await,
        replica(&redis, &signer, &acted).await,
    );
    let http = reqwest::Client::new();
    let id = "7c1f1a3e-0000-4000-8000-000000000003";
    assert_eq!(deliver(&http, &a, &signer, id).await, 200);
    assert_eq!(acted.load(Ordering::SeqCst), 1);

    redis.stop();
    let new = "7c1f1a3e-0000-4000-8000-000000000004";
    for url in [&a, &b] {
        // A new delivery and a replay of the acted one: neither is acted on, both are refused
        // with 503 so that fal delivers them again.
        assert_eq!(deliver(&http, url, &signer, new).await, 503);
        assert_eq!(deliver(&http, url, &signer, id).await, 503);
    }
    assert_eq!(acted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_released_claim_lets_the_next_delivery_through_and_claims_expire() {
    let redis = RedisServer::start();
    let seen = RedisDeduper::connect(&redis.url())
        .await
        .unwrap()
        .key_prefix("test:claims:")
        .ttl(Duration::from_secs(1));
    assert!(seen.first_time("r1").await.unwrap());
    assert!(!seen.first_time("r1").await.unwrap());
    assert!(seen.forget("r1").await.unwrap());
    assert!(!seen.forget("r1").await.unwrap());
    assert!(seen.first_time("r1").await.unwrap());
    // The claim expires with its TTL (Redis's own clock): poll, bounded.
    for _ in 0..100 {
        if seen.first_time("r1").await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the claim never expired");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_503_error_at_connect() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisDeduper::connect(&format!("redis://127.0.0.1:{port}/0"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 503, "{err}");
}
