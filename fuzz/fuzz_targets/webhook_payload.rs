//! `WebhookPayload::from_slice` on arbitrary bytes, untyped and typed.
#![no_main]

use fal_client::webhook::{WebhookOutcome, WebhookPayload};
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Output {
    images: Vec<Image>,
    seed: Option<u64>,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Image {
    url: String,
    width: Option<u32>,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = WebhookPayload::<serde_json::Value>::from_slice(data) {
        let _ = p.field_errors();
        let _ = p.error_message();
        match &p.outcome {
            WebhookOutcome::Success(_) => assert!(p.is_success()),
            _ => assert!(p.error_message().is_some()),
        }
        // Serializing back gives a body that parses to the same payload.
        let again = serde_json::to_vec(&p).expect("serializes");
        let p2 = WebhookPayload::<serde_json::Value>::from_slice(&again).expect("round trip");
        assert_eq!(p2.request_id, p.request_id);
    }
    if let Err(e) = WebhookPayload::<Output>::from_slice(data) {
        let _ = e.to_string();
        let _ = e.status_code();
        let _ = e.request_id();
    }
});
