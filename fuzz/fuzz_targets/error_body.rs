//! fal's error-body parser (`detail` as a field list, a string or anything else; `error_type`),
//! reached through the public path that uses it: the `payload` of an `ERROR` webhook delivery.
#![no_main]

use fal_client::webhook::{WebhookOutcome, WebhookPayload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = br#"{"request_id":"r","status":"ERROR","error":"e","payload":"#.to_vec();
    body.extend_from_slice(data);
    body.push(b'}');
    if let Ok(p) = WebhookPayload::<serde_json::Value>::from_slice(&body) {
        match &p.outcome {
            WebhookOutcome::Error { message, .. } => assert_eq!(message, "e"),
            other => panic!("an ERROR delivery became {other:?}"),
        }
        for d in p.field_errors() {
            let _ = d.field_path();
            let _ = d.field();
        }
    }
});
