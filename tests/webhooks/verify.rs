//! Webhook deliveries: signature verification, key caching, parsing, deduplication.
//!
//! Test vectors are generated with fixed Ed25519 seeds (below) and committed under
//! `tests/fixtures/webhook/`; `fixtures_match_the_generator` checks they are current, and the
//! crate's unit tests check their verdicts at the fixtures' fixed time. Regenerate
//! them with `FAL_UPDATE_FIXTURES=1 cargo test --test webhooks fixtures_match_the_generator`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use fal_client::error::{ErrorDetail, LocItem};
use fal_client::webhook::{
    DeliveryDeduper, Jwk, Jwks, MemoryDeduper, VerifiedDelivery, WebhookError, WebhookHeaders,
    WebhookOutcome, WebhookPayload, WebhookVerifier, DEFAULT_LEEWAY, HEADER_REQUEST_ID,
    HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_USER_ID,
};
use fal_client::{FalClient, FalClientBuilder};
use fal_mock::WebhookSigner;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Fixed test material
// ---------------------------------------------------------------------------------------------

/// fal's (test) signing key before a rotation.
const OLD_SEED: [u8; 32] = *b"fal-client webhook test key 0001";
/// fal's (test) signing key after a rotation.
const NEW_SEED: [u8; 32] = *b"fal-client webhook test key 0002";
/// A key fal never published (an attacker's, or another service's).
const STRANGER_SEED: [u8; 32] = *b"fal-client webhook test key 0003";

/// The verifier's time in the committed fixtures (the crate's unit tests check their verdicts at
/// this time); the tests here verify at the current time.
const FIXTURE_NOW: u64 = 1_752_019_770;
const REQUEST_ID: &str = "5057fca7-2eb3-468f-b95d-cefe92b0b9d4";
const GATEWAY_ID: &str = "9a1c5a4e-0d7b-4c55-8f7e-3a2f1b0c9d8e";
const USER_ID: &str = "user-7f3a9c";
const JWKS_PATH: &str = "/.well-known/jwks.json";

fn signer(seed: [u8; 32], kid: &str) -> WebhookSigner {
    WebhookSigner::from_seed(seed)
        .with_user_id(USER_ID)
        .with_kid(kid)
}

fn old_key() -> WebhookSigner {
    signer(OLD_SEED, "fal-2025-01")
}

fn new_key() -> WebhookSigner {
    signer(NEW_SEED, "fal-2025-07")
}

fn stranger() -> WebhookSigner {
    signer(STRANGER_SEED, "stranger")
}

/// The current time, Unix seconds.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ok_body(request_id: &str) -> Vec<u8> {
    // Written by hand (not re-serialized) so the bytes are exactly what is signed: the key
    // order, spacing and the non-ASCII prompt must survive untouched.
    format!(
        r#"{{"request_id": "{request_id}", "gateway_request_id": "{request_id}", "status": "OK", "payload": {{"images": [{{"url": "https://v3.fal.media/files/penguin/a1b2c3.jpeg", "width": 1024, "height": 768, "content_type": "image/jpeg"}}, {{"url": "https://v3.fal.media/files/koala/d4e5f6.jpeg", "width": 1024, "height": 768, "content_type": "image/jpeg"}}], "seed": 42, "prompt": "portrait of TOK in a café, 35mm"}}, "error": null}}"#
    )
    .into_bytes()
}

fn error_422_body(request_id: &str) -> Vec<u8> {
    format!(
        r#"{{"request_id":"{request_id}","gateway_request_id":"{request_id}","status":"ERROR","payload":{{"detail":[{{"loc":["body","prompt"],"msg":"field required","type":"value_error.missing"}},{{"loc":["body","loras",0,"scale"],"msg":"ensure this value is less than or equal to 4","type":"value_error.number.not_le","ctx":{{"limit_value":4}}}}]}},"error":"Invalid status code: 422"}}"#
    )
    .into_bytes()
}

fn payload_error_body(request_id: &str) -> Vec<u8> {
    format!(
        r#"{{"request_id":"{request_id}","gateway_request_id":"{request_id}","status":"OK","payload":null,"error":null,"payload_error":"Object of type bytes is not JSON serializable"}}"#
    )
    .into_bytes()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Image {
    url: String,
    width: u32,
    height: u32,
    content_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Output {
    images: Vec<Image>,
    seed: u64,
    prompt: String,
}

/// Verify now with the default leeway, with a fixed key set (nothing is fetched, so no runtime
/// is needed).
fn verify_now<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    jwks: &Jwks,
) -> Result<VerifiedDelivery<'a>, WebhookError> {
    futures::executor::block_on(WebhookVerifier::from_jwks(jwks).verify(headers, body))
}

/// Verify now and parse.
fn check(headers: &HeaderMap, body: &[u8], jwks: &Jwks) -> Result<WebhookPayload, WebhookError> {
    verify_now(headers, body, jwks)?.parse::<Value>()
}

fn signed(signer: &WebhookSigner, request_id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
    signer.headers(request_id, timestamp, body).unwrap()
}

fn map(headers: &WebhookHeaders) -> HeaderMap {
    headers.to_header_map().unwrap()
}

/// A valid delivery signed now by the old key.
fn valid_delivery() -> (HeaderMap, Vec<u8>) {
    let body = ok_body(REQUEST_ID);
    (signed(&old_key(), REQUEST_ID, now(), &body), body)
}

// ---------------------------------------------------------------------------------------------
// Committed vectors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Fixture {
    description: String,
    /// The verifier's current time, Unix seconds.
    now: u64,
    leeway_secs: u64,
    jwks: Jwks,
    headers: BTreeMap<String, String>,
    /// The raw body, exactly as delivered.
    body: String,
    /// `accepted`, or the `WebhookError` variant name.
    expected: String,
}

fn fixture(
    description: &str,
    jwks: Jwks,
    headers: &WebhookHeaders,
    body: &[u8],
    expected: &str,
) -> Fixture {
    // Mixed-case names, as a server would send them.
    let headers = BTreeMap::from([
        (
            "X-Fal-Webhook-Request-Id".to_owned(),
            headers.request_id.clone(),
        ),
        ("X-Fal-Webhook-User-Id".to_owned(), headers.user_id.clone()),
        (
            "X-Fal-Webhook-Timestamp".to_owned(),
            headers.timestamp.clone(),
        ),
        (
            "X-Fal-Webhook-Signature".to_owned(),
            headers.signature.clone(),
        ),
    ]);
    Fixture {
        description: description.to_owned(),
        now: FIXTURE_NOW,
        leeway_secs: DEFAULT_LEEWAY.as_secs(),
        jwks,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
        expected: expected.to_owned(),
    }
}

fn generate_fixtures() -> Vec<(&'static str, Fixture)> {
    let old = old_key();
    let body = ok_body(REQUEST_ID);
    let ok = old.sign(REQUEST_ID, FIXTURE_NOW, &body);
    let tampered_body = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"seed\": 42", "\"seed\": 43")
        .into_bytes();
    assert_ne!(tampered_body, body);
    let both = Jwks::new([stranger().jwk(), old.jwk()]);
    let mismatch_body = ok_body("00000000-0000-0000-0000-000000000000");
    let gateway_body = format!(
        r#"{{"request_id":"{REQUEST_ID}","gateway_request_id":"{GATEWAY_ID}","status":"OK","payload":{{"seed":7}},"error":null}}"#
    )
    .into_bytes();
    let err = error_422_body(REQUEST_ID);
    let perr = payload_error_body(REQUEST_ID);
    vec![
        (
            "accepted_ok.json",
            fixture("a valid OK delivery", old.jwks(), &ok, &body, "accepted"),
        ),
        (
            "accepted_error_422.json",
            fixture(
                "a valid ERROR delivery with a 422 detail list",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW, &err),
                &err,
                "accepted",
            ),
        ),
        (
            "accepted_payload_error.json",
            fixture(
                "a valid delivery whose output fal could not serialize",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW, &perr),
                &perr,
                "accepted",
            ),
        ),
        (
            "accepted_second_key.json",
            fixture(
                "two keys in the set; the second one verifies",
                both,
                &ok,
                &body,
                "accepted",
            ),
        ),
        (
            "accepted_gateway_request_id_header.json",
            fixture(
                "the header names the body's gateway_request_id",
                old.jwks(),
                &old.sign(GATEWAY_ID, FIXTURE_NOW, &gateway_body),
                &gateway_body,
                "accepted",
            ),
        ),
        (
            "accepted_leeway_edge.json",
            fixture(
                "signed exactly 300 s before now",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW - 300, &body),
                &body,
                "accepted",
            ),
        ),
        (
            "rejected_tampered_body.json",
            fixture(
                "one byte of the body changed after signing",
                old.jwks(),
                &ok,
                &tampered_body,
                "SignatureMismatch",
            ),
        ),
        (
            "rejected_wrong_key.json",
            fixture(
                "signed by a key not in the set",
                old.jwks(),
                &stranger().sign(REQUEST_ID, FIXTURE_NOW, &body),
                &body,
                "SignatureMismatch",
            ),
        ),
        (
            "rejected_stale.json",
            fixture(
                "signed 301 s before now",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW - 301, &body),
                &body,
                "StaleTimestamp",
            ),
        ),
        (
            "rejected_future.json",
            fixture(
                "signed 301 s after now",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW + 301, &body),
                &body,
                "FutureTimestamp",
            ),
        ),
        (
            "rejected_request_id_mismatch.json",
            fixture(
                "correctly signed, but the body names another request",
                old.jwks(),
                &old.sign(REQUEST_ID, FIXTURE_NOW, &mismatch_body),
                &mismatch_body,
                "RequestIdMismatch",
            ),
        ),
    ]
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook")
}

#[test]
fn fixtures_match_the_generator() {
    let dir = fixture_dir();
    let update = std::env::var_os("FAL_UPDATE_FIXTURES").is_some();
    for (name, generated) in generate_fixtures() {
        let file = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(&file, text).unwrap();
        }
        let committed: Fixture = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            committed, generated,
            "{name} is out of date (see the file's header)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Accepted
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_delivery_is_accepted() {
    let (headers, body) = valid_delivery();
    let delivery = verify_now(&headers, &body, &old_key().jwks()).unwrap();
    assert_eq!(delivery.request_id(), REQUEST_ID);
    assert_eq!(delivery.user_id(), USER_ID);
    assert!(delivery.timestamp().abs_diff(now()) <= 5);
    assert_eq!(
        delivery.signed_at(),
        UNIX_EPOCH + Duration::from_secs(delivery.timestamp())
    );
    assert_eq!(delivery.key_id(), Some("fal-2025-01"));
    assert_eq!(delivery.body(), body.as_slice());
    let payload = delivery.parse::<Output>().unwrap();
    assert_eq!(payload.request_id(), REQUEST_ID);
    assert_eq!(payload.output().unwrap().seed, 42);
}

#[test]
fn signer_follows_the_documented_algorithm() {
    // Recompute fal's message and check the signature with ed25519-dalek directly, so the
    // signer and the verifier cannot share a mistake.
    let (headers, body) = valid_delivery();
    let h = WebhookHeaders::from_header_map(&headers).unwrap();
    let body_hash = hex::encode(Sha256::digest(&body));
    let message = format!("{REQUEST_ID}\n{USER_ID}\n{}\n{body_hash}", h.timestamp);
    assert_eq!(h.signed_message(&body), message);
    let x = old_key().jwk().x.unwrap();
    assert!(!x.contains('='), "x must be base64url without padding");
    let x: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap()
        .try_into()
        .unwrap();
    let signature: [u8; 64] = hex::decode(&h.signature).unwrap().try_into().unwrap();
    assert_eq!(h.signature, h.signature.to_lowercase());
    VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify_strict(message.as_bytes(), &Signature::from_bytes(&signature))
        .unwrap();
}

#[test]
fn header_names_are_case_insensitive() {
    let h = old_key().sign(REQUEST_ID, now(), &ok_body(REQUEST_ID));
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("X-FAL-WEBHOOK-REQUEST-ID", &h.request_id),
        ("x-Fal-Webhook-User-Id", &h.user_id),
        ("X-Fal-Webhook-Timestamp", &h.timestamp),
        ("x-fal-webhook-signature", &h.signature),
    ] {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    assert!(check(&headers, &ok_body(REQUEST_ID), &old_key().jwks()).is_ok());
}

#[test]
fn second_key_of_two_verifies() {
    let (headers, body) = valid_delivery();
    let jwks = Jwks::new([stranger().jwk(), old_key().jwk()]);
    let delivery = verify_now(&headers, &body, &jwks).unwrap();
    assert_eq!(delivery.key_id(), Some("fal-2025-01"));
}

#[test]
fn keys_of_other_types_are_ignored() {
    let (headers, body) = valid_delivery();
    let jwks: Jwks = serde_json::from_value(json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "n": "0vx7agoebGcQSuuPiLJXZpt", "e": "AQAB", "alg": "RS256"},
        {"kty": "OKP", "crv": "Ed25519", "x": "dG9vIHNob3J0", "kid": "short-x"},
        old_key().jwk(),
    ]}))
    .unwrap();
    assert_eq!(jwks.ed25519_keys().len(), 1);
    assert!(check(&headers, &body, &jwks).is_ok());
}

#[test]
fn plain_header_values_are_verified_too() {
    let body = ok_body(REQUEST_ID);
    let h = old_key().sign(REQUEST_ID, now(), &body);
    let delivery = verify_now(&map(&h), &body, &old_key().jwks()).unwrap();
    assert_eq!(delivery.request_id(), REQUEST_ID);
}

#[test]
fn timestamp_is_used_exactly_as_sent() {
    // Leading zeros are signed as sent; re-formatting the number would break the signature.
    let body = ok_body(REQUEST_ID);
    let h = old_key().sign_raw(REQUEST_ID, USER_ID, &format!("00{}", now()), &body);
    let delivery = check(&map(&h), &body, &old_key().jwks());
    assert!(delivery.is_ok(), "{delivery:?}");
}

#[test]
fn leeway_is_configurable() {
    let body = ok_body(REQUEST_ID);
    let headers = signed(&old_key(), REQUEST_ID, now() - 30, &body);
    let verifier = WebhookVerifier::from_jwks(&old_key().jwks()).leeway(Duration::from_secs(10));
    let err = futures::executor::block_on(verifier.verify(&headers, &body)).unwrap_err();
    assert!(
        matches!(err, WebhookError::StaleTimestamp { age, leeway }
            if age >= Duration::from_secs(30) && leeway == Duration::from_secs(10)),
        "{err:?}"
    );
    let verifier = verifier.leeway(Duration::from_secs(60));
    let delivery = futures::executor::block_on(verifier.verify(&headers, &body)).unwrap();
    assert!(delivery.parse::<Output>().is_ok());
}

#[test]
fn header_request_id_may_be_the_gateway_request_id() {
    let body = format!(
        r#"{{"request_id":"{REQUEST_ID}","gateway_request_id":"{GATEWAY_ID}","status":"OK","payload":{{}},"error":null}}"#
    );
    let headers = signed(&old_key(), GATEWAY_ID, now(), body.as_bytes());
    let payload = check(&headers, body.as_bytes(), &old_key().jwks()).unwrap();
    assert_eq!(payload.request_id(), REQUEST_ID);
    assert_eq!(payload.gateway_request_id(), Some(GATEWAY_ID));
}

// ---------------------------------------------------------------------------------------------
// Rejected
// ---------------------------------------------------------------------------------------------

fn assert_mismatch(r: Result<WebhookPayload, WebhookError>) {
    match r {
        Err(e @ WebhookError::SignatureMismatch { .. }) => {
            assert!(e.is_signature_error());
            assert_eq!(e.status_code(), StatusCode::UNAUTHORIZED);
            assert_eq!(e.request_id(), None, "an unverified id is not reported");
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    }
}

#[test]
fn tampered_body_is_rejected() {
    let (headers, mut body) = valid_delivery();
    let body_str = String::from_utf8(body.clone()).unwrap();
    body = body_str
        .replace("\"seed\": 42", "\"seed\": 43")
        .into_bytes();
    assert_mismatch(check(&headers, &body, &old_key().jwks()));
}

#[test]
fn reserialized_body_is_rejected() {
    // Verifying a re-serialized body instead of the raw bytes fails: whitespace is signed.
    let (headers, body) = valid_delivery();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let compact = serde_json::to_vec(&v).unwrap();
    assert_ne!(compact, body);
    assert_mismatch(check(&headers, &compact, &old_key().jwks()));
}

#[test]
fn tampered_request_id_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.request_id = GATEWAY_ID.to_owned();
    assert_mismatch(check(&map(&h), &body, &old_key().jwks()));
}

#[test]
fn tampered_user_id_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.user_id = "someone-else".to_owned();
    assert_mismatch(check(&map(&h), &body, &old_key().jwks()));
}

#[test]
fn tampered_timestamp_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let mut h = old_key().sign(REQUEST_ID, now() - 100, &body);
    h.timestamp = now().to_string(); // still within the leeway, but not what was signed
    assert_mismatch(check(&map(&h), &body, &old_key().jwks()));
}

#[test]
fn wrong_key_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let headers = signed(&stranger(), REQUEST_ID, now(), &body);
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert_eq!(err, WebhookError::SignatureMismatch { keys_tried: 1 });
}

#[test]
fn signature_of_the_wrong_length_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.signature.truncate(126); // 63 bytes
    let err = check(&map(&h), &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(&err, WebhookError::InvalidSignatureEncoding { reason } if reason.contains("63 bytes")),
        "{err:?}"
    );
    assert_eq!(err.status_code(), StatusCode::UNAUTHORIZED);
    h.signature.push_str("abab"); // 65 bytes
    let err = check(&map(&h), &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(err, WebhookError::InvalidSignatureEncoding { .. }),
        "{err:?}"
    );
}

#[test]
fn signature_that_is_not_hex_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.signature.replace_range(0..2, "zz");
    let err = check(&map(&h), &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(&err, WebhookError::InvalidSignatureEncoding { reason } if reason.contains("not hex")),
        "{err:?}"
    );
    // A base64 signature of the right bytes is not accepted either.
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.signature =
        base64::engine::general_purpose::STANDARD.encode(hex::decode(&h.signature).unwrap());
    let err = check(&map(&h), &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(err, WebhookError::InvalidSignatureEncoding { .. }),
        "{err:?}"
    );
}

fn assert_missing(header: &'static str) {
    let (mut headers, body) = valid_delivery();
    assert!(headers.remove(header).is_some());
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert_eq!(err, WebhookError::MissingHeader(header));
    assert!(err.is_signature_error());
    assert!(err.to_string().contains(header), "{err}");
}

#[test]
fn missing_request_id_header_is_rejected() {
    assert_missing(HEADER_REQUEST_ID);
}

#[test]
fn missing_user_id_header_is_rejected() {
    assert_missing(HEADER_USER_ID);
}

#[test]
fn missing_timestamp_header_is_rejected() {
    assert_missing(HEADER_TIMESTAMP);
}

#[test]
fn missing_signature_header_is_rejected() {
    assert_missing(HEADER_SIGNATURE);
}

#[test]
fn empty_header_counts_as_missing() {
    let (mut headers, body) = valid_delivery();
    headers.insert(HEADER_USER_ID, HeaderValue::from_static(""));
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert_eq!(err, WebhookError::MissingHeader(HEADER_USER_ID));
    // The same through plain values.
    let mut h = old_key().sign(REQUEST_ID, now(), &body);
    h.signature.clear();
    let err = verify_now(&map(&h), &body, &old_key().jwks()).unwrap_err();
    assert_eq!(err, WebhookError::MissingHeader(HEADER_SIGNATURE));
}

#[test]
fn repeated_header_is_rejected() {
    let (mut headers, body) = valid_delivery();
    headers.append(HEADER_REQUEST_ID, HeaderValue::from_static("other-request"));
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(err, WebhookError::InvalidHeader { name, .. } if name == HEADER_REQUEST_ID),
        "{err:?}"
    );
}

#[test]
fn non_numeric_timestamp_is_rejected() {
    let body = ok_body(REQUEST_ID);
    for ts in [
        "1752019770.5",
        "-1752019770",
        "+1752019770",
        "soon",
        "0x6870",
    ] {
        // Signed correctly, so only the format can be the reason.
        let h = old_key().sign_raw(REQUEST_ID, USER_ID, ts, &body);
        let err = check(&map(&h), &body, &old_key().jwks()).unwrap_err();
        assert_eq!(err, WebhookError::InvalidTimestamp(ts.to_owned()));
        assert_eq!(err.status_code(), StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn stale_timestamp_is_rejected() {
    let body = ok_body(REQUEST_ID);
    // The exact edge of the leeway is checked at a fixed time by the crate's unit tests.
    let headers = signed(&old_key(), REQUEST_ID, now() - 400, &body);
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(err, WebhookError::StaleTimestamp { age, leeway }
            if age >= Duration::from_secs(400) && leeway == DEFAULT_LEEWAY),
        "{err:?}"
    );
    assert!(err.is_signature_error());
}

#[test]
fn future_timestamp_is_rejected() {
    let body = ok_body(REQUEST_ID);
    let headers = signed(&old_key(), REQUEST_ID, now() + 400, &body);
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert!(
        matches!(err, WebhookError::FutureTimestamp { ahead, leeway }
            if ahead > DEFAULT_LEEWAY && ahead <= Duration::from_secs(400) && leeway == DEFAULT_LEEWAY),
        "{err:?}"
    );
}

#[test]
fn empty_key_set_is_its_own_error() {
    let (headers, body) = valid_delivery();
    let err = check(&headers, &body, &Jwks::default()).unwrap_err();
    assert_eq!(err, WebhookError::NoKeys);
    assert!(!err.is_signature_error());
    assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    // A set with only unusable keys is just as empty.
    let rsa: Jwks =
        serde_json::from_value(json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]})).unwrap();
    assert_eq!(
        check(&headers, &body, &rsa).unwrap_err(),
        WebhookError::NoKeys
    );
}

#[test]
fn body_naming_another_request_is_rejected_after_verification() {
    let body = ok_body("00000000-0000-0000-0000-000000000000");
    let headers = signed(&old_key(), REQUEST_ID, now(), &body);
    let err = check(&headers, &body, &old_key().jwks()).unwrap_err();
    assert_eq!(
        err,
        WebhookError::RequestIdMismatch {
            header: REQUEST_ID.to_owned(),
            body: "00000000-0000-0000-0000-000000000000".to_owned()
        }
    );
    assert!(!err.is_signature_error());
    assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
}

#[test]
fn undecodable_verified_body_answers_400_with_the_request_id() {
    let body = br#"{"request_id": 5, "status": "OK"}"#;
    let headers = signed(&old_key(), REQUEST_ID, now(), body);
    let err = check(&headers, body, &old_key().jwks()).unwrap_err();
    match &err {
        WebhookError::Json {
            path, request_id, ..
        } => {
            assert_eq!(path, "request_id");
            // The body's id is unreadable; the verified header id stands in.
            assert_eq!(request_id.as_deref(), Some(REQUEST_ID));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
    let crate_err: fal_client::Error = err.into();
    assert_eq!(crate_err.request_id(), Some(REQUEST_ID));
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn ok_payload_parses_as_a_struct() {
    let p = WebhookPayload::<Output>::from_slice(&ok_body(REQUEST_ID)).unwrap();
    assert!(p.is_success());
    assert_eq!(p.request_id(), REQUEST_ID);
    assert_eq!(p.gateway_request_id(), Some(REQUEST_ID));
    assert_eq!(p.error_message(), None);
    let out = p.output().unwrap();
    assert_eq!(out.images.len(), 2);
    assert_eq!(
        out.images[0].url,
        "https://v3.fal.media/files/penguin/a1b2c3.jpeg"
    );
    assert_eq!(out.images[1].width, 1024);
    assert_eq!(out.prompt, "portrait of TOK in a café, 35mm");
    assert_eq!(p.into_output().unwrap().seed, 42);
}

#[test]
fn ok_payload_parses_as_json_value() {
    let p = WebhookPayload::<Value>::from_slice(&ok_body(REQUEST_ID)).unwrap();
    let out = p.output().unwrap();
    assert_eq!(
        out["images"][1]["url"],
        "https://v3.fal.media/files/koala/d4e5f6.jpeg"
    );
    assert_eq!(out["seed"], 42);
}

#[test]
fn error_payload_carries_the_422_details() {
    let p = WebhookPayload::<Output>::from_slice(&error_422_body(REQUEST_ID)).unwrap();
    assert!(!p.is_success());
    assert_eq!(p.output(), None);
    assert_eq!(p.error_message(), Some("Invalid status code: 422"));
    let fields = p.field_errors();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0].field_path(), "prompt");
    assert_eq!(fields[0].kind, "value_error.missing");
    assert_eq!(fields[1].field_path(), "loras.0.scale");
    assert_eq!(fields[1].loc[2], LocItem::Index(0));
    match &p.outcome {
        WebhookOutcome::Error {
            message,
            detail: ErrorDetail::Validation(v),
            error_type,
            payload,
        } => {
            assert_eq!(message, "Invalid status code: 422");
            assert_eq!(v[0].msg, "field required");
            assert_eq!(*error_type, None);
            assert_eq!(payload["detail"][1]["ctx"]["limit_value"], 4);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn error_payload_with_a_string_detail() {
    let body = br#"{"request_id":"r","gateway_request_id":"r","status":"ERROR","payload":{"detail":"Request timed out","error_type":"request_timeout"},"error":"Request timed out"}"#;
    let p = WebhookPayload::<Output>::from_slice(body).unwrap();
    match p.outcome {
        WebhookOutcome::Error {
            detail, error_type, ..
        } => {
            assert_eq!(detail, ErrorDetail::Message("Request timed out".into()));
            assert_eq!(error_type.as_deref(), Some("request_timeout"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn payload_error_is_its_own_outcome() {
    let p = WebhookPayload::<Output>::from_slice(&payload_error_body(REQUEST_ID)).unwrap();
    assert!(!p.is_success());
    assert_eq!(
        p.outcome,
        WebhookOutcome::PayloadError {
            message: "Object of type bytes is not JSON serializable".into()
        }
    );
    assert_eq!(
        p.error_message(),
        Some("Object of type bytes is not JSON serializable")
    );
}

#[test]
fn bad_field_type_names_the_json_path() {
    let body = String::from_utf8(ok_body(REQUEST_ID))
        .unwrap()
        .replacen("\"width\": 1024", "\"width\": \"wide\"", 1)
        .replacen("\"width\": 1024", "\"width\": \"wide\"", 1);
    let err = WebhookPayload::<Output>::from_slice(body.as_bytes()).unwrap_err();
    match &err {
        WebhookError::Json {
            path,
            message,
            request_id,
        } => {
            assert_eq!(path, "payload.images[0].width");
            assert!(message.contains("invalid type"), "{message}");
            assert_eq!(request_id.as_deref(), Some(REQUEST_ID));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("payload.images[0].width"), "{err}");
}

#[test]
fn missing_output_field_names_the_json_path() {
    let body = String::from_utf8(ok_body(REQUEST_ID))
        .unwrap()
        .replace(r#""seed": 42, "#, "");
    let err = WebhookPayload::<Output>::from_slice(body.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, WebhookError::Json { path, message, .. } if path == "payload" && message.contains("seed")),
        "{err:?}"
    );
}

#[test]
fn unknown_status_is_an_error() {
    let body = br#"{"request_id":"r1","status":"completed","payload":{}}"#;
    let err = WebhookPayload::<Value>::from_slice(body).unwrap_err();
    assert_eq!(
        err,
        WebhookError::UnknownStatus {
            status: "completed".into(),
            request_id: "r1".into()
        }
    );
    assert_eq!(err.request_id(), Some("r1"));
}

#[test]
fn body_that_is_not_json_is_a_json_error_at_the_root() {
    let err = WebhookPayload::<Value>::from_slice(b"request_id=1&status=OK").unwrap_err();
    assert!(
        matches!(&err, WebhookError::Json { path, request_id: None, .. } if path == "."),
        "{err:?}"
    );
}

#[test]
fn payload_serializes_back_to_the_wire_shape() {
    for body in [
        ok_body(REQUEST_ID),
        error_422_body(REQUEST_ID),
        payload_error_body(REQUEST_ID),
    ] {
        let p = WebhookPayload::<Value>::from_slice(&body).unwrap();
        let wire: Value = serde_json::to_value(&p).unwrap();
        let original: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(wire, original);
        let again = WebhookPayload::<Value>::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }
}

// ---------------------------------------------------------------------------------------------
// Fetched keys: `FalClient::webhooks` against a wiremock JWKS server
// ---------------------------------------------------------------------------------------------

fn jwks_response(jwks: &Jwks) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(jwks)
}

/// A client whose webhook key set is `url`; no fal key (a webhook receiver needs none).
fn client_with_jwks(url: &str) -> FalClient {
    FalClient::builder().jwks_url(url).build().unwrap()
}

/// The verifier of a client whose key set is on `server`.
fn verifier_for(server: &MockServer) -> WebhookVerifier {
    client_with_jwks(&format!("{}{JWKS_PATH}", server.uri())).webhooks()
}

/// Verify now and parse as `T`.
async fn verify_as<T: serde::de::DeserializeOwned>(
    verifier: &WebhookVerifier,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<WebhookPayload<T>, WebhookError> {
    verifier.verify(headers, body).await?.parse::<T>()
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn delivery_from(signer: &WebhookSigner) -> (HeaderMap, Vec<u8>) {
    let body = ok_body(REQUEST_ID);
    (signed(signer, REQUEST_ID, now(), &body), body)
}

#[tokio::test]
async fn keys_are_fetched_once_and_verify() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .expect(1)
        .mount(&server)
        .await;
    let verifier = verifier_for(&server);
    let (headers, body) = delivery_from(&old_key());
    for _ in 0..3 {
        let d = verifier.verify(&headers, &body).await.unwrap();
        assert_eq!(d.key_id(), Some("fal-2025-01"));
        assert_eq!(d.parse::<Output>().unwrap().output().unwrap().seed, 42);
    }
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn verifiers_of_one_client_and_its_clones_share_the_keys() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .mount(&server)
        .await;
    let fal = client_with_jwks(&format!("{}{JWKS_PATH}", server.uri()));
    let (headers, body) = delivery_from(&old_key());
    fal.webhooks().verify(&headers, &body).await.unwrap();
    fal.clone()
        .webhooks()
        .verify(&headers, &body)
        .await
        .unwrap();
    // Settings are per verifier; the keys are not.
    fal.webhooks()
        .leeway(Duration::from_secs(600))
        .verify(&headers, &body)
        .await
        .unwrap();
    assert_eq!(hits(&server).await, 1);
    // Another client has its own keys.
    client_with_jwks(&format!("{}{JWKS_PATH}", server.uri()))
        .webhooks()
        .refresh()
        .await
        .unwrap();
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn jwks_fetch_sends_no_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .mount(&server)
        .await;
    // Even a client with a key, whose fal hosts are this server, sends none to the key set.
    let fal = FalClient::builder()
        .key("secret-key")
        .queue_url(server.uri())
        .rest_url(server.uri())
        .jwks_url(format!("{}{JWKS_PATH}", server.uri()))
        .build()
        .unwrap();
    fal.webhooks().refresh().await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].headers.get("authorization").is_none());
    assert_eq!(
        requests[0]
            .headers
            .get("accept")
            .map(|v| v.to_str().unwrap()),
        Some("application/json")
    );
}

#[tokio::test]
async fn rotated_key_is_picked_up_by_one_refresh() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&Jwks::new([
            old_key().jwk(),
            new_key().jwk(),
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let verifier = verifier_for(&server);
    verifier.refresh().await.unwrap();
    let (headers, body) = delivery_from(&new_key());
    let d = verifier.verify(&headers, &body).await.unwrap();
    assert_eq!(d.key_id(), Some("fal-2025-07"));
    assert_eq!(d.request_id(), REQUEST_ID);
    assert_eq!(hits(&server).await, 2);
    // Both keys now verify without another fetch.
    let (headers, body) = delivery_from(&old_key());
    assert!(verify_as::<Value>(&verifier, &headers, &body).await.is_ok());
    let (headers, body) = delivery_from(&new_key());
    assert!(verify_as::<Value>(&verifier, &headers, &body).await.is_ok());
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_share_one_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let verifier = verifier_for(&server);
    let (headers, body) = delivery_from(&old_key());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let verifier = verifier.clone();
            let headers = headers.clone();
            let body = body.clone();
            tokio::spawn(async move { verify_as::<Output>(&verifier, &headers, &body).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn failing_refresh_keeps_the_old_keys() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream down"))
        .mount(&server)
        .await;
    // No minimum interval, so that every step below may fetch.
    let verifier = verifier_for(&server).min_refresh_interval(Duration::ZERO);
    let (old_headers, old_body) = delivery_from(&old_key());
    assert!(verify_as::<Value>(&verifier, &old_headers, &old_body)
        .await
        .is_ok());
    assert_eq!(hits(&server).await, 1);

    // An unknown key triggers a refresh, which fails: the delivery is rejected...
    let (headers, body) = delivery_from(&new_key());
    let err = verify_as::<Value>(&verifier, &headers, &body)
        .await
        .unwrap_err();
    assert_eq!(err, WebhookError::SignatureMismatch { keys_tried: 1 });
    assert_eq!(hits(&server).await, 2);

    // ...and the old key keeps working, without another fetch.
    let d = verifier.verify(&old_headers, &old_body).await.unwrap();
    assert_eq!(d.key_id(), Some("fal-2025-01"));
    assert_eq!(hits(&server).await, 2);

    // An explicit refresh reports the failure and still keeps the keys.
    let err = verifier.refresh().await.unwrap_err();
    assert!(
        matches!(&err, WebhookError::JwksFetch { message, .. } if message.contains("500")),
        "{err:?}"
    );
    assert_eq!(hits(&server).await, 3);
    assert!(verify_as::<Value>(&verifier, &old_headers, &old_body)
        .await
        .is_ok());
}

#[tokio::test]
async fn forged_deliveries_refresh_at_most_once_per_interval() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .mount(&server)
        .await;
    let verifier = verifier_for(&server).min_refresh_interval(Duration::from_secs(3600));
    let (headers, body) = delivery_from(&stranger());
    for _ in 0..5 {
        let err = verify_as::<Value>(&verifier, &headers, &body)
            .await
            .unwrap_err();
        assert!(
            matches!(err, WebhookError::SignatureMismatch { .. }),
            "{err:?}"
        );
    }
    // The first fetch, and one refresh for the first unknown signature.
    assert_eq!(hits(&server).await, 2);

    // With no minimum interval every forged delivery refreshes once.
    let verifier = verifier.min_refresh_interval(Duration::ZERO);
    for _ in 0..2 {
        assert!(verify_as::<Value>(&verifier, &headers, &body)
            .await
            .is_err());
    }
    assert_eq!(hits(&server).await, 4);
}

#[tokio::test]
async fn malformed_deliveries_never_fetch_keys() {
    let server = MockServer::start().await;
    let verifier = verifier_for(&server);
    let (mut headers, body) = delivery_from(&old_key());
    let stale = signed(&old_key(), REQUEST_ID, now() - 3600, &body);
    assert!(matches!(
        verify_as::<Value>(&verifier, &stale, &body).await,
        Err(WebhookError::StaleTimestamp { .. })
    ));
    headers.remove(HEADER_SIGNATURE);
    assert_eq!(
        verify_as::<Value>(&verifier, &headers, &body)
            .await
            .unwrap_err(),
        WebhookError::MissingHeader(HEADER_SIGNATURE)
    );
    assert_eq!(hits(&server).await, 0);
}

#[tokio::test]
async fn unreachable_jwks_with_an_empty_cache_is_a_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let verifier = verifier_for(&server).min_refresh_interval(Duration::from_secs(3600));
    let (headers, body) = delivery_from(&old_key());
    let err = verify_as::<Value>(&verifier, &headers, &body)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::JwksFetch { url, message } if url.ends_with(JWKS_PATH) && message.contains("503")),
        "{err:?}"
    );
    assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    // A failed fetch is neither retried nor repeated within the minimum interval.
    let again = verify_as::<Value>(&verifier, &headers, &body)
        .await
        .unwrap_err();
    assert_eq!(again, err);
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn jwks_without_ed25519_keys_does_not_replace_good_keys() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]})),
        )
        .mount(&server)
        .await;
    let verifier = verifier_for(&server).min_refresh_interval(Duration::ZERO);
    verifier.refresh().await.unwrap();
    let err = verifier.refresh().await.unwrap_err();
    assert!(
        matches!(&err, WebhookError::JwksFetch { message, .. } if message.contains("no usable Ed25519 key")),
        "{err:?}"
    );
    let (headers, body) = delivery_from(&old_key());
    assert!(verify_as::<Value>(&verifier, &headers, &body).await.is_ok());
}

#[tokio::test]
async fn expired_keys_are_fetched_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .mount(&server)
        .await;
    let verifier = verifier_for(&server).ttl(Duration::ZERO);
    let (headers, body) = delivery_from(&old_key());
    for _ in 0..3 {
        assert!(verify_as::<Value>(&verifier, &headers, &body).await.is_ok());
    }
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn the_key_set_url_comes_from_the_environment() {
    // The only test that touches FAL_JWKS_URL.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .expect(1)
        .mount(&server)
        .await;
    std::env::set_var("FAL_JWKS_URL", "ftp://example.com/jwks.json");
    assert!(matches!(
        FalClientBuilder::from_env().build(),
        Err(fal_client::Error::Config(_))
    ));
    std::env::set_var("FAL_JWKS_URL", format!("{}{JWKS_PATH}", server.uri()));
    let fal = FalClientBuilder::from_env().build().unwrap();
    std::env::remove_var("FAL_JWKS_URL");
    assert!(fal.config().jwks_url().as_str().ends_with(JWKS_PATH));
    fal.webhooks().refresh().await.unwrap();
    assert_eq!(
        FalClientBuilder::from_env()
            .build()
            .unwrap()
            .config()
            .jwks_url()
            .as_str(),
        fal_client::config::DEFAULT_JWKS_URL
    );
}

// ---------------------------------------------------------------------------------------------
// Signer and deduper
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_signers_have_distinct_keys_and_verify() {
    let a = WebhookSigner::generate();
    let b = WebhookSigner::generate();
    assert_ne!(a.jwk(), b.jwk());
    let body = ok_body(REQUEST_ID);
    let headers = a.headers(REQUEST_ID, now(), &body).unwrap();
    assert!(check(&headers, &body, &a.jwks()).is_ok());
    assert!(check(&headers, &body, &b.jwks()).is_err());
    assert!(!format!("{a:?}").contains("SigningKey"), "{a:?}");
}

#[test]
fn jwk_round_trips_through_json() {
    let jwk = old_key().jwk();
    let v = serde_json::to_value(&jwk).unwrap();
    assert_eq!(v["kty"], "OKP");
    assert_eq!(v["crv"], "Ed25519");
    assert_eq!(v["kid"], "fal-2025-01");
    let back: Jwk = serde_json::from_value(v).unwrap();
    assert_eq!(back, jwk);
    assert_eq!(back.to_ed25519().unwrap(), old_key().verifying_key());
}

#[tokio::test]
async fn deduper_reports_first_and_repeated_deliveries() {
    let seen = MemoryDeduper::new(100);
    assert!(seen.is_empty());
    assert!(seen.first_time(REQUEST_ID).await.unwrap());
    assert!(!seen.first_time(REQUEST_ID).await.unwrap());
    assert!(!seen.first_time(REQUEST_ID).await.unwrap());
    assert!(seen.first_time(GATEWAY_ID).await.unwrap());
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn deduper_evicts_the_oldest_at_capacity() {
    let seen = MemoryDeduper::new(3);
    for id in ["a", "b", "c"] {
        assert!(seen.first_time(id).await.unwrap());
    }
    assert!(seen.first_time("d").await.unwrap()); // evicts "a"
    assert_eq!(seen.len(), 3);
    assert!(!seen.contains("a"));
    for id in ["b", "c", "d"] {
        assert!(!seen.first_time(id).await.unwrap());
    }
    assert!(seen.first_time("a").await.unwrap()); // forgotten, so new again (evicts "b")
    assert!(seen.first_time("b").await.unwrap());
}

#[test]
fn deduper_lets_exactly_one_thread_win() {
    let seen = MemoryDeduper::new(10);
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                if futures::executor::block_on(seen.first_time(REQUEST_ID)).unwrap() {
                    winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);
}

/// A JWKS body over 256 KiB is refused whether or not it declares its length (a chunked body
/// is cut at the cap, never buffered whole).
#[tokio::test]
async fn an_oversized_key_set_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Declared length (wiremock sets content-length).
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string(" ".repeat(300 * 1024)))
        .mount(&server)
        .await;
    let err = verifier_for(&server).refresh().await.unwrap_err();
    assert!(
        matches!(&err, WebhookError::JwksFetch { message, .. } if message.contains("larger than")),
        "{err:?}"
    );

    // Chunked, no length: an endless body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        for _ in 0..64 {
            if sock.write_all(chunk.as_bytes()).await.is_err() {
                return; // the client hung up, as it should
            }
        }
    });
    let err = client_with_jwks(&format!("http://{addr}{JWKS_PATH}"))
        .webhooks()
        .refresh()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::JwksFetch { message, .. } if message.contains("larger than")),
        "{err:?}"
    );
}

/// A verifier of fetched keys takes its own leeway (the key cache is shared, the leeway not).
#[tokio::test]
async fn a_fetched_verifier_applies_its_own_leeway() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(jwks_response(&old_key().jwks()))
        .mount(&server)
        .await;
    let fal = client_with_jwks(&format!("{}{JWKS_PATH}", server.uri()));
    let body = ok_body(REQUEST_ID);
    let headers = signed(&old_key(), REQUEST_ID, now() - 30, &body);
    assert!(fal.webhooks().verify(&headers, &body).await.is_ok());
    let strict = fal.webhooks().leeway(Duration::from_secs(10));
    let err = strict.verify(&headers, &body).await.unwrap_err();
    assert!(
        matches!(err, WebhookError::StaleTimestamp { leeway, .. } if leeway == Duration::from_secs(10)),
        "{err:?}"
    );
    // The default verifier is unchanged.
    assert!(fal.webhooks().verify(&headers, &body).await.is_ok());
    assert_eq!(hits(&server).await, 1);
}
