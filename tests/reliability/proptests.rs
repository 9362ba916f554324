//! Property tests: the parsers never panic on arbitrary input, and accept what they should.
//!
//! Parsers covered: endpoint ids, status bodies, the SSE status stream (end to end through a
//! wiremock server), webhook payloads, webhook signature headers, API error bodies (end to end:
//! arbitrary bytes as a non-success answer), training zips, and the models' range checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fal_client::models::{PortraitTrainerInput, UltraFinetunedInput};
use fal_client::queue::{QueueStatus, RequestHandle};
use fal_client::retry::RetryPolicy;
use fal_client::webhook::{
    Jwks, WebhookError, WebhookHeaders, WebhookOutcome, WebhookPayload, WebhookVerifier,
};
use fal_client::{EndpointId, Error, FalClient};
use fal_mock::WebhookSigner;
use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `cases` cases from a fixed seed, so that runs are deterministic; set `PROPTEST_RNG_SEED` (a
/// number) to explore other inputs. Failures found are kept in `proptests.proptest-regressions`
/// and replayed first.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        default.rng_seed
    } else {
        proptest::test_runner::RngSeed::Fixed(0x00fa_1c11)
    };
    ProptestConfig {
        cases,
        rng_seed,
        // Next to this file: `proptests.proptest-regressions`.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..default
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,15}"
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn endpoint_id_parsing_never_panics(s in "\\PC{0,40}") {
        let _ = EndpointId::parse(&s);
    }

    #[test]
    fn owner_alias_path_ids_round_trip(owner in segment(), alias in segment(), path in proptest::collection::vec(segment(), 0..3)) {
        prop_assume!(owner != "workflows" && owner != "comfy");
        let mut id = format!("{owner}/{alias}");
        for p in &path {
            id.push('/');
            id.push_str(p);
        }
        let parsed = EndpointId::parse(&id).unwrap();
        prop_assert_eq!(parsed.as_str(), id.as_str());
        prop_assert_eq!(parsed.owner(), owner.as_str());
        prop_assert_eq!(parsed.alias(), alias.as_str());
        prop_assert_eq!(parsed.app_id(), format!("{owner}/{alias}"));
        let joined = path.join("/");
        prop_assert_eq!(parsed.path(), (!path.is_empty()).then_some(joined.as_str()));
    }

    #[test]
    fn legacy_ids_are_normalized(num in 1u64..u64::MAX, alias in "[a-zA-Z0-9][a-zA-Z0-9-]{0,12}") {
        let parsed = EndpointId::parse(&format!("{num}-{alias}")).unwrap();
        prop_assert_eq!(parsed.as_str(), format!("{num}/{alias}"));
    }

    #[test]
    fn ids_without_a_slash_or_legacy_form_are_rejected(s in "[a-zA-Z_]{1,20}") {
        let rejected = matches!(EndpointId::parse(&s), Err(Error::InvalidEndpointId { .. }));
        prop_assert!(rejected);
    }

    #[test]
    fn status_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = QueueStatus::from_slice(&bytes);
    }

    #[test]
    fn status_parsing_handles_json_shapes(
        status in prop_oneof![Just("IN_QUEUE".to_string()), Just("IN_PROGRESS".to_string()), Just("COMPLETED".to_string()), "[A-Z_]{1,12}"],
        pos in proptest::option::of(any::<u64>()),
        with_logs in any::<bool>(),
        error in proptest::option::of("\\PC{0,20}"),
    ) {
        let mut body = serde_json::json!({"status": status});
        if let Some(p) = pos { body["queue_position"] = p.into(); }
        if with_logs { body["logs"] = serde_json::json!([{"message": "m"}]); }
        if let Some(e) = &error { body["error"] = e.clone().into(); }
        let parsed = QueueStatus::from_slice(body.to_string().as_bytes());
        match status.as_str() {
            "IN_QUEUE" => prop_assert_eq!(parsed.unwrap(), QueueStatus::InQueue { queue_position: pos.unwrap_or(0) }),
            "IN_PROGRESS" => prop_assert_eq!(parsed.unwrap().logs().len(), usize::from(with_logs)),
            "COMPLETED" => {
                let s = parsed.unwrap();
                prop_assert_eq!(s.failure().map(|f| f.0.to_owned()), error.filter(|e| !e.is_empty()));
            }
            _ => {
                let rejected = matches!(parsed, Err(Error::UnknownQueueStatus { status: ref s, .. }) if *s == status);
                prop_assert!(rejected);
            }
        }
    }

    #[test]
    fn wrong_types_in_status_are_decode_errors(v in prop_oneof![Just(serde_json::json!("x")), Just(serde_json::json!(-1)), Just(serde_json::json!([1]))]) {
        let body = serde_json::json!({"status": "IN_QUEUE", "queue_position": v});
        let parsed = QueueStatus::from_slice(body.to_string().as_bytes());
        let named = matches!(parsed, Err(Error::Decode { ref path, .. }) if path == "queue_position");
        prop_assert!(named);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared strategies

/// Object keys that matter to fal's parsers, plus arbitrary ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("detail".to_owned()),
        Just("loc".to_owned()),
        Just("msg".to_owned()),
        Just("type".to_owned()),
        Just("error_type".to_owned()),
        Just("status".to_owned()),
        Just("request_id".to_owned()),
        Just("payload".to_owned()),
        Just("error".to_owned()),
        Just("logs".to_owned()),
        Just("queue_position".to_owned()),
        "[a-z_]{0,8}",
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("OK".to_owned()),
            Just("ERROR".to_owned()),
            Just("IN_QUEUE".to_owned()),
            Just("COMPLETED".to_owned()),
            Just("body".to_owned()),
            "\\PC{0,12}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// End to end through wiremock: one runtime and one server for all cases.

struct Server {
    rt: tokio::runtime::Runtime,
    server: MockServer,
    fal: FalClient,
    next: AtomicU64,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(MockServer::start());
        let fal = FalClient::builder()
            .key("prop-key")
            .queue_url(server.uri())
            .rest_url(server.uri())
            .run_url(server.uri())
            .retry(RetryPolicy::none())
            .sse_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Server {
            rt,
            server,
            fal,
            next: AtomicU64::new(0),
        }
    })
}

impl Server {
    /// A fresh request id whose status stream, status and result paths answer with `template`.
    fn handle_answering(&self, tail: &str, template: ResponseTemplate) -> RequestHandle {
        let id = format!("p{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.rt.block_on(
            Mock::given(path(format!("/fal-ai/prop/requests/{id}{tail}")))
                .respond_with(template)
                .mount(&self.server),
        );
        self.fal.resume("fal-ai/prop", id).unwrap()
    }

    fn stream(&self, body: Vec<u8>) -> (String, Vec<Result<QueueStatus, Error>>) {
        let h = self.handle_answering(
            "/status/stream",
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_bytes(body),
        );
        let items = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), h.events(false).collect::<Vec<_>>())
                .await
                .expect("the stream ends")
        });
        (h.request_id().to_owned(), items)
    }
}

/// A status as a stream would send it: a real one, or garbage.
fn sse_data() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1000).prop_map(|p| json!({"status": "IN_QUEUE", "queue_position": p}).to_string()),
        "\\PC{0,10}"
            .prop_map(|m| json!({"status": "IN_PROGRESS", "logs": [{"message": m}]}).to_string()),
        json_value().prop_map(|v| v.to_string()),
        "[^\r\n]{0,30}",
    ]
}

/// Each stream item as a stream of `data` values should give it: a stream that closes before
/// `COMPLETED` ends with an error.
fn expected(datas: &[String]) -> Vec<Result<QueueStatus, ()>> {
    let mut out = expected_items(datas);
    if !matches!(
        out.last(),
        Some(Err(())) | Some(Ok(QueueStatus::Completed { .. }))
    ) {
        out.push(Err(()));
    }
    out
}

fn expected_items(datas: &[String]) -> Vec<Result<QueueStatus, ()>> {
    let mut out = Vec::new();
    for d in datas {
        if d.trim().is_empty() {
            continue; // a keep-alive
        }
        match QueueStatus::from_slice(d.as_bytes()) {
            Ok(s) => {
                let done = s.is_completed();
                out.push(Ok(s));
                if done {
                    break;
                }
            }
            Err(_) => {
                out.push(Err(()));
                break;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(config(96))]

    /// Arbitrary bytes as an SSE body: the stream ends, errors come last and carry the request id.
    #[test]
    fn status_stream_of_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let (id, items) = server().stream(body);
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = item {
                prop_assert_eq!(i, items.len() - 1, "an error ends the stream");
                prop_assert_eq!(e.request_id(), Some(id.as_str()));
                prop_assert!(matches!(e, Error::Decode { .. }), "{e:?}");
            }
        }
    }

    /// Well-framed events with arbitrary `data`: the stream yields exactly what `from_slice` makes
    /// of each, up to the first error or `COMPLETED`.
    #[test]
    fn status_stream_yields_each_data_line(datas in prop::collection::vec(sse_data(), 0..6), crlf in any::<bool>()) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let body: String = datas.iter().map(|d| format!("data: {d}{nl}{nl}")).collect();
        let (_, items) = server().stream(body.into_bytes());
        let got: Vec<Result<QueueStatus, ()>> = items.into_iter().map(|r| r.map_err(|_| ())).collect();
        // `data:` values lose one leading space and trailing whitespace is not stripped, as SSE says.
        let datas: Vec<String> = datas.iter().map(|d| d.to_string()).collect();
        prop_assert_eq!(got, expected(&datas));
    }

    /// Arbitrary bytes as a non-success answer: an `Error::Api` whose excerpt is the body's start.
    #[test]
    fn error_bodies_of_arbitrary_bytes_become_api_errors(
        status in prop_oneof![Just(400u16), Just(401), Just(404), Just(409), Just(422), Just(501)],
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..700),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            json_value().prop_map(|v| json!({"detail": v}).to_string().into_bytes()),
        ],
    ) {
        let s = server();
        let h = s.handle_answering("/status", ResponseTemplate::new(status).set_body_bytes(body.clone()));
        let err = s.rt.block_on(h.status(false)).unwrap_err();
        let api = err.as_api().expect("an API error");
        prop_assert_eq!(api.status, status);
        prop_assert_eq!(err.request_id(), Some(h.request_id()));
        // The excerpt is the start of the body, at most 512 bytes (+ `…`) even when invalid
        // bytes decode to 3-byte U+FFFD.
        let lossy = String::from_utf8_lossy(&body).into_owned();
        let e = &api.body_excerpt;
        prop_assert!(e.len() <= 512 + '…'.len_utf8());
        prop_assert!(lossy.starts_with(e.strip_suffix('…').unwrap_or(e)));
        if lossy.len() <= 512 {
            prop_assert_eq!(e, &lossy);
        }
        prop_assert!(!api.is_retryable());
        let _ = (api.message(), api.field_errors(), err.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn signer() -> WebhookSigner {
    WebhookSigner::from_seed([42; 32])
}

/// Verify `headers` and `body` with a verifier for `jwks`, at the current time (a fixed key set:
/// nothing is fetched, so no runtime is needed).
fn verify(headers: &WebhookHeaders, body: &[u8], jwks: &Jwks) -> Result<(), WebhookError> {
    let map = headers.to_header_map()?;
    futures::executor::block_on(WebhookVerifier::from_jwks(jwks).verify(&map, body)).map(drop)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn webhook_payload_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = WebhookPayload::<Value>::from_slice(&bytes) {
            prop_assert!(!e.is_signature_error());
            let _ = (e.to_string(), e.status_code(), e.request_id());
        }
    }

    #[test]
    fn webhook_payload_of_arbitrary_json_is_classified(v in json_value()) {
        let bytes = v.to_string().into_bytes();
        match WebhookPayload::<Value>::from_slice(&bytes) {
            // serde also reads a struct from an array of its fields in order (`["r", "g", "OK"]`);
            // only objects are checked field by field.
            Ok(_) if v.is_array() => {}
            Ok(p) => {
                prop_assert_eq!(Some(p.request_id.as_str()), v["request_id"].as_str());
                let status = v["status"].as_str();
                match &p.outcome {
                    WebhookOutcome::Error { .. } => prop_assert_eq!(status, Some("ERROR")),
                    _ => prop_assert_eq!(status, Some("OK")),
                }
            }
            Err(WebhookError::UnknownStatus { status, .. }) => {
                prop_assert!(status != "OK" && status != "ERROR");
            }
            Err(e) => prop_assert!(matches!(e, WebhookError::Json { .. }), "{e:?}"),
        }
    }

    /// Envelopes of the right shape with arbitrary payloads, errors and statuses.
    #[test]
    fn webhook_envelopes_parse_by_status(
        request_id in "\\PC{1,20}",
        status in prop_oneof![Just("OK".to_owned()), Just("ERROR".to_owned()), "[A-Z]{0,6}"],
        payload in proptest::option::of(json_value()),
        error in proptest::option::of(json_value()),
        payload_error in proptest::option::of("\\PC{0,10}"),
    ) {
        let mut body = json!({"request_id": request_id, "status": status});
        if let Some(p) = &payload { body["payload"] = p.clone(); }
        if let Some(e) = &error { body["error"] = e.clone(); }
        if let Some(pe) = &payload_error { body["payload_error"] = pe.clone().into(); }
        let parsed = WebhookPayload::<Value>::from_slice(body.to_string().as_bytes());
        match status.as_str() {
            "OK" | "ERROR" => {
                // Only `error` / `payload_error` of the wrong type can fail the envelope.
                if let Ok(p) = &parsed {
                    prop_assert_eq!(&p.request_id, &request_id);
                    prop_assert_eq!(p.is_success(), status == "OK" && !matches!(p.outcome, WebhookOutcome::PayloadError { .. }));
                    if status == "ERROR" {
                        prop_assert!(p.error_message().is_some());
                    }
                }
            }
            _ => {
                let unknown = matches!(parsed, Err(WebhookError::UnknownStatus { .. }) | Err(WebhookError::Json { .. }));
                prop_assert!(unknown);
            }
        }
    }

    /// Arbitrary header values never panic and never verify.
    #[test]
    fn arbitrary_webhook_headers_never_verify(
        // Mostly values that pass the header checks (visible ASCII) and timestamps inside the
        // leeway, so that the signature check itself is what refuses them.
        request_id in prop_oneof![3 => "[!-~]{1,40}", 1 => "\\PC{0,40}"],
        user_id in prop_oneof![3 => "[!-~]{1,40}", 1 => "\\PC{0,40}"],
        timestamp in prop_oneof![
            3 => (0u64..600).prop_map(|ago| (now_secs() - ago).to_string()),
            1 => "[0-9]{1,12}",
            1 => "\\PC{0,20}",
            1 => (0u64..u64::MAX).prop_map(|t| t.to_string()),
        ],
        signature in prop_oneof!["[0-9a-fA-F]{128}", "[0-9a-f]{0,130}", "\\PC{0,140}"],
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let headers = WebhookHeaders { request_id, user_id, timestamp, signature };
        let r = verify(&headers, &body, &signer().jwks());
        prop_assert!(r.is_err());
        let e = r.unwrap_err();
        prop_assert!(e.is_signature_error(), "{e:?}");
        prop_assert_eq!(e.status_code(), http::StatusCode::UNAUTHORIZED);
    }

    /// Raw header bytes (not necessarily ASCII) never panic the header reader.
    #[test]
    fn raw_header_bytes_never_panic(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 4)) {
        let mut map = http::HeaderMap::new();
        for (name, v) in [
            fal_client::webhook::HEADER_REQUEST_ID,
            fal_client::webhook::HEADER_USER_ID,
            fal_client::webhook::HEADER_TIMESTAMP,
            fal_client::webhook::HEADER_SIGNATURE,
        ].into_iter().zip(&values) {
            if let Ok(v) = http::HeaderValue::from_bytes(v) {
                map.append(name, v);
            }
        }
        let verifier = WebhookVerifier::from_jwks(&signer().jwks());
        let r = futures::executor::block_on(verifier.verify(&map, b"{}"));
        prop_assert!(r.is_err());
    }

}

proptest! {
    // Ed25519 in a debug build costs milliseconds per operation: fewer cases.
    #![proptest_config(config(32))]

    /// Only the real signature verifies: any flipped bit of the signature, any changed body byte,
    /// any other signed part fails.
    #[test]
    fn only_the_right_signature_verifies(
        request_id in "[ -~]{1,30}",
        user_id in "[ -~]{1,30}",
        skew in 0u64..120,
        body in prop::collection::vec(any::<u8>(), 0..256),
        bit in 0usize..512,
        byte in any::<prop::sample::Index>(),
    ) {
        // Signed up to two minutes ago: inside the default leeway of 300 s.
        let ts = now_secs() - skew;
        let s = signer();
        let jwks = s.jwks();
        let good = s.sign_raw(&request_id, &user_id, &ts.to_string(), &body);
        prop_assert!(verify(&good, &body, &jwks).is_ok());

        let mut sig = hex::decode(&good.signature).unwrap();
        sig[bit / 8] ^= 1 << (bit % 8);
        let flipped = WebhookHeaders { signature: hex::encode(sig), ..good.clone() };
        prop_assert!(verify(&flipped, &body, &jwks).is_err());

        let mut other = body.clone();
        if other.is_empty() { other.push(0) } else { let i = byte.index(other.len()); other[i] ^= 0x01; }
        prop_assert!(verify(&good, &other, &jwks).is_err());

        let moved = WebhookHeaders { timestamp: (ts + 1).to_string(), ..good.clone() };
        prop_assert!(verify(&moved, &body, &jwks).is_err());
        let renamed = WebhookHeaders { request_id: format!("{request_id}x"), ..good.clone() };
        prop_assert!(verify(&renamed, &body, &jwks).is_err());
        let other_user = WebhookHeaders { user_id: format!("{user_id}x"), ..good.clone() };
        prop_assert!(verify(&other_user, &body, &jwks).is_err());
        let stranger = WebhookSigner::from_seed([43; 32]).jwks();
        prop_assert!(verify(&good, &body, &stranger).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Training zips and model ranges

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn training_zip_validation_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = fal_client::archive::validate_zip(&bytes, 1);
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&bytes);
        let _ = fal_client::archive::validate_zip(&zip, 1);
    }

    #[test]
    fn portrait_trainer_ranges_are_exact(lr in any::<f64>(), steps in any::<u32>()) {
        let input = PortraitTrainerInput {
            learning_rate: Some(lr),
            steps: Some(steps),
            ..PortraitTrainerInput::new("https://x/a.zip")
        };
        let ok = lr.is_finite() && (1e-6..=1e-3).contains(&lr) && (1..=10_000).contains(&steps);
        prop_assert_eq!(input.validate().is_ok(), ok);
    }

    #[test]
    fn ultra_finetuned_ranges_are_exact(fs in any::<f64>(), ips in any::<f64>(), n in any::<u32>(), prompt in "\\PC{0,8}") {
        let input = UltraFinetunedInput {
            num_images: Some(n),
            image_prompt_strength: Some(ips),
            ..UltraFinetunedInput::new(prompt.clone(), "ft", fs)
        };
        let ok = !prompt.trim().is_empty()
            && (0.0..=2.0).contains(&fs)
            && (1..=4).contains(&n)
            && (0.0..=1.0).contains(&ips);
        prop_assert_eq!(input.validate().is_ok(), ok);
    }
}
