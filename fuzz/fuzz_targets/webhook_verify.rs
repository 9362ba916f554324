//! Webhook verification with arbitrary header values and body: never panics, and only the real
//! signature of the exact message verifies. The verifier checks timestamps against the system
//! clock, so the oracle signs at (a little before) the current time.
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use fal_client::webhook::{Jwk, Jwks, WebhookError, WebhookHeaders, WebhookVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, String, Vec<u8>, u16, u8)| {
    let (request_id, user_id, timestamp, signature, body, skew, zeros) = input;
    let key = SigningKey::from_bytes(&[7; 32]);
    let jwks = Jwks::new([Jwk::ed25519(&key.verifying_key().to_bytes())]);
    let verifier = WebhookVerifier::from_jwks(&jwks);
    // `None` when the values cannot even be header values. A fixed key set needs no runtime.
    let verify = |h: &WebhookHeaders, body: &[u8]| -> Option<Result<(), WebhookError>> {
        let map = h.to_header_map().ok()?;
        Some(futures::executor::block_on(verifier.verify(&map, body)).map(drop))
    };

    // The fuzzer's own signature: it can never verify unless it is the real one.
    let headers = WebhookHeaders {
        request_id,
        user_id,
        timestamp,
        signature,
    };
    let real = key.sign(headers.signed_message(&body).as_bytes()).to_bytes();
    match verify(&headers, &body) {
        Some(Ok(())) => assert_eq!(
            hex::decode(&headers.signature).ok().as_deref(),
            Some(&real[..])
        ),
        Some(Err(e)) => {
            let _ = (e.to_string(), e.status_code(), e.is_signature_error());
        }
        None => {}
    }
    // The same headers through an `http::HeaderMap`, when they are valid header values.
    if let Ok(map) = headers.to_header_map() {
        if let Ok(again) = WebhookHeaders::from_header_map(&map) {
            assert_eq!(again, headers);
        }
    }

    // The real signature of a delivery signed up to four minutes ago (inside the default
    // leeway of five), its timestamp with up to two leading zeros (signed as sent), verifies
    // exactly when the headers read back as they were written; any change to the body breaks
    // it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut signed = WebhookHeaders {
        timestamp: format!(
            "{}{}",
            "0".repeat(usize::from(zeros % 3)),
            now.saturating_sub(u64::from(skew % 240))
        ),
        ..headers
    };
    signed.signature = hex::encode(key.sign(signed.signed_message(&body).as_bytes()).to_bytes());
    let Some(outcome) = verify(&signed, &body) else {
        return;
    };
    let readable = signed
        .to_header_map()
        .ok()
        .and_then(|map| WebhookHeaders::from_header_map(&map).ok())
        .is_some_and(|again| again == signed);
    assert_eq!(outcome.is_ok(), readable, "{outcome:?}");
    if readable {
        let mut other = body.clone();
        other.push(b' ');
        assert!(verify(&signed, &other).is_some_and(|r| r.is_err()));
    }
});
