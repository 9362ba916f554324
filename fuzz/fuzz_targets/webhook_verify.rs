//! Webhook verification with arbitrary header values and body: never panics, and only the real
//! signature of the exact message verifies.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use fal_client::webhook::{verify_headers, Jwk, Jwks, WebhookHeaders, DEFAULT_LEEWAY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, String, Vec<u8>, u64)| {
    let (request_id, user_id, timestamp, signature, body, now) = input;
    let key = SigningKey::from_bytes(&[7; 32]);
    let jwks = Jwks::new([Jwk::ed25519(&key.verifying_key().to_bytes())]);
    let now = UNIX_EPOCH + Duration::from_secs(now % 4_000_000_000);

    // The fuzzer's own signature: it can never verify unless it is the real one.
    let headers = WebhookHeaders {
        request_id,
        user_id,
        timestamp,
        signature,
    };
    let message = headers.signed_message(&body);
    let real = key.sign(message.as_bytes()).to_bytes();
    let outcome = verify_headers(&headers, &body, &jwks, now, DEFAULT_LEEWAY);
    if outcome.is_ok() {
        assert_eq!(
            hex::decode(&headers.signature).ok().as_deref(),
            Some(&real[..])
        );
    } else if let Err(e) = &outcome {
        let _ = (e.to_string(), e.status_code(), e.is_signature_error());
    }
    // The same headers through an `http::HeaderMap`, when they are valid header values.
    if let Ok(map) = headers.to_header_map() {
        let again = WebhookHeaders::from_header_map(&map);
        if let Ok(again) = again {
            assert_eq!(again, headers);
        }
    }

    // The real signature verifies exactly when every part is present, the timestamp is decimal
    // and the delivery is inside the leeway.
    let signed = WebhookHeaders {
        signature: hex::encode(real),
        ..headers.clone()
    };
    let ts_ok = !signed.timestamp.is_empty()
        && signed.timestamp.bytes().all(|b| b.is_ascii_digit())
        && signed.timestamp.parse::<u64>().is_ok();
    let at = if ts_ok {
        // A timestamp too far out for `SystemTime` cannot be "now": skip the oracle.
        match signed
            .timestamp
            .parse::<u64>()
            .ok()
            .and_then(|t| UNIX_EPOCH.checked_add(Duration::from_secs(t)))
        {
            Some(at) => at,
            None => return,
        }
    } else {
        now
    };
    let outcome = verify_headers(&signed, &body, &jwks, at, DEFAULT_LEEWAY);
    let parts_ok = !signed.request_id.is_empty() && !signed.user_id.is_empty() && ts_ok;
    assert_eq!(outcome.is_ok(), parts_ok, "{outcome:?}");
    // Any change to the body breaks it.
    if parts_ok {
        let mut other = body.clone();
        other.push(b' ');
        assert!(verify_headers(&signed, &other, &jwks, at, DEFAULT_LEEWAY).is_err());
    }
});
