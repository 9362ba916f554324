//! Bad input, never a panic: every invalid model input is refused before anything is sent, naming
//! the wire field; every malformed, truncated, mistyped or oversized server answer becomes a typed
//! error with a body excerpt (and the request id when one is known).
//!
//! `tests/models.rs` checks each range's boundaries (the last good and first bad value); this
//! file sweeps every validated field of the four inputs with the values a careless caller or a
//! bad config file produces (blank and whitespace-only strings, NaN, infinities, zero, `MAX`).
//! `tests/archive.rs` covers the training-archive rejections (empty folder, non-images, corrupt
//! images, unpaired / oversized / non-UTF-8 / empty captions, duplicate names, oversized images).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fal_client::models::*;
use fal_client::queue::{CancelOutcome, QueueStatus, RequestHandle};
use fal_client::retry::RetryPolicy;
use fal_client::{Endpoint, Error, FalClient};
use fal_mock::FalMock;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Model inputs: a table of every validated field and the values that must be refused.

/// Blank required strings: empty, spaces, tabs and newlines, a no-break and an ideographic space.
const BLANKS: [&str; 6] = ["", " ", "\t", "\r\n \t", "\u{a0}", "\u{3000}"];

/// A float that is never in any range: NaN and both infinities.
const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

struct Case<I> {
    label: String,
    input: I,
    field: String,
}

fn case<I>(label: impl Into<String>, input: I, field: &str) -> Case<I> {
    Case {
        label: label.into(),
        input,
        field: field.to_owned(),
    }
}

fn portrait_cases() -> Vec<Case<PortraitTrainerInput>> {
    let base = PortraitTrainerInput::new("https://x/photos.zip");
    let mut cases = Vec::new();
    for b in BLANKS {
        cases.push(case(
            format!("images_data_url {b:?}"),
            PortraitTrainerInput::new(b),
            "images_data_url",
        ));
    }
    let lr =
        NON_FINITE
            .into_iter()
            .chain([0.0, -1e-5, 9.99e-7, 1.0001e-3, 1.0, f64::MAX, f64::MIN]);
    for v in lr {
        cases.push(case(
            format!("learning_rate {v}"),
            PortraitTrainerInput {
                learning_rate: Some(v),
                ..base.clone()
            },
            "learning_rate",
        ));
    }
    for v in [0, 10_001, u32::MAX] {
        cases.push(case(
            format!("steps {v}"),
            PortraitTrainerInput {
                steps: Some(v),
                ..base.clone()
            },
            "steps",
        ));
    }
    cases
}

fn pro_cases() -> Vec<Case<ProTrainerInput>> {
    let base = ProTrainerInput::new("https://x/photos.zip", "anna v1");
    let mut cases = Vec::new();
    for b in BLANKS {
        cases.push(case(
            format!("data_url {b:?}"),
            ProTrainerInput::new(b, "c"),
            "data_url",
        ));
        cases.push(case(
            format!("finetune_comment {b:?}"),
            ProTrainerInput::new("https://x/photos.zip", b),
            "finetune_comment",
        ));
    }
    for v in [0, 1, 99, 1001, u32::MAX] {
        cases.push(case(
            format!("iterations {v}"),
            ProTrainerInput {
                iterations: Some(v),
                ..base.clone()
            },
            "iterations",
        ));
    }
    for v in NON_FINITE
        .into_iter()
        .chain([0.0, -1e-4, 9.99e-7, 5.0001e-3, f64::MAX])
    {
        cases.push(case(
            format!("learning_rate {v}"),
            ProTrainerInput {
                learning_rate: Some(v),
                ..base.clone()
            },
            "learning_rate",
        ));
    }
    for v in [0, 1, 8, 15, 17, 24, 31, 33, 64, u32::MAX] {
        cases.push(case(
            format!("lora_rank {v}"),
            ProTrainerInput {
                lora_rank: Some(v),
                ..base.clone()
            },
            "lora_rank",
        ));
    }
    cases
}

fn ultra_cases() -> Vec<Case<UltraFinetunedInput>> {
    let base = UltraFinetunedInput::new("TOK portrait", "ft-1", 1.0);
    let mut cases = Vec::new();
    for b in BLANKS {
        cases.push(case(
            format!("prompt {b:?}"),
            UltraFinetunedInput::new(b, "ft-1", 1.0),
            "prompt",
        ));
        cases.push(case(
            format!("finetune_id {b:?}"),
            UltraFinetunedInput::new("p", b, 1.0),
            "finetune_id",
        ));
        cases.push(case(
            format!("aspect_ratio {b:?}"),
            UltraFinetunedInput {
                aspect_ratio: Some(AspectRatio::from(b)),
                ..base.clone()
            },
            "aspect_ratio",
        ));
    }
    for v in NON_FINITE
        .into_iter()
        .chain([-0.01, 2.01, f64::MAX, f64::MIN])
    {
        cases.push(case(
            format!("finetune_strength {v}"),
            UltraFinetunedInput::new("p", "ft-1", v),
            "finetune_strength",
        ));
    }
    for v in [0, 5, u32::MAX] {
        cases.push(case(
            format!("num_images {v}"),
            UltraFinetunedInput {
                num_images: Some(v),
                ..base.clone()
            },
            "num_images",
        ));
    }
    for v in NON_FINITE.into_iter().chain([-0.01, 1.01, f64::MAX]) {
        cases.push(case(
            format!("image_prompt_strength {v}"),
            UltraFinetunedInput {
                image_prompt_strength: Some(v),
                ..base.clone()
            },
            "image_prompt_strength",
        ));
    }
    cases
}

fn flux_lora_cases() -> Vec<Case<FluxLoraInput>> {
    let base = FluxLoraInput::new("TOK portrait");
    let two = || {
        base.clone()
            .with_lora("https://x/a.safetensors", 1.0)
            .with_lora("https://x/b.safetensors", 0.5)
    };
    let mut cases = Vec::new();
    for b in BLANKS {
        cases.push(case(
            format!("prompt {b:?}"),
            FluxLoraInput::new(b),
            "prompt",
        ));
        cases.push(case(
            format!("loras[0].path {b:?}"),
            base.clone().with_lora(b, 1.0),
            "loras[0].path",
        ));
        cases.push(case(
            format!("loras[2].path {b:?}"),
            two().with_lora(b, 1.0),
            "loras[2].path",
        ));
    }
    for v in NON_FINITE.into_iter().chain([-0.01, 4.01, f64::MAX]) {
        cases.push(case(
            format!("loras[0].scale {v}"),
            base.clone().with_lora("https://x/a.safetensors", v),
            "loras[0].scale",
        ));
        cases.push(case(
            format!("loras[2].scale {v}"),
            two().with_lora("https://x/c.safetensors", v),
            "loras[2].scale",
        ));
    }
    for (w, h, field) in [
        (0, 512, "image_size.width"),
        (14_143, 512, "image_size.width"),
        (u32::MAX, 512, "image_size.width"),
        (512, 0, "image_size.height"),
        (512, 14_143, "image_size.height"),
        (512, u32::MAX, "image_size.height"),
        (0, 0, "image_size.width"),
    ] {
        cases.push(case(
            format!("image_size {w}x{h}"),
            FluxLoraInput {
                image_size: Some(ImageSize::custom(w, h)),
                ..base.clone()
            },
            field,
        ));
    }
    for v in [0, 51, u32::MAX] {
        cases.push(case(
            format!("num_inference_steps {v}"),
            FluxLoraInput {
                num_inference_steps: Some(v),
                ..base.clone()
            },
            "num_inference_steps",
        ));
    }
    for v in NON_FINITE.into_iter().chain([-0.1, 35.1, f64::MAX]) {
        cases.push(case(
            format!("guidance_scale {v}"),
            FluxLoraInput {
                guidance_scale: Some(v),
                ..base.clone()
            },
            "guidance_scale",
        ));
    }
    for v in [0, 5, u32::MAX] {
        cases.push(case(
            format!("num_images {v}"),
            FluxLoraInput {
                num_images: Some(v),
                ..base.clone()
            },
            "num_images",
        ));
    }
    cases
}

/// `validate()` and `Endpoint::validate` refuse the case with `InvalidInput` naming its field,
/// and the message says what is wrong.
fn assert_refused<E: Endpoint>(
    c: &Case<E::Input>,
    validate: impl Fn(&E::Input) -> fal_client::Result<()>,
) {
    for (how, result) in [
        ("validate()", validate(&c.input)),
        ("Endpoint::validate", E::validate(&c.input)),
    ] {
        match result {
            Err(Error::InvalidInput {
                ref field,
                ref message,
            }) => {
                assert_eq!(field, &c.field, "{}: {how} named the wrong field", c.label);
                assert!(!message.trim().is_empty(), "{}: empty message", c.label);
                let shown = result.as_ref().unwrap_err().to_string();
                assert!(
                    shown.contains(&c.field),
                    "{}: {shown:?} does not name the field",
                    c.label
                );
            }
            other => panic!("{}: {how} gave {other:?}, expected InvalidInput", c.label),
        }
    }
}

#[test]
fn every_validated_field_refuses_blank_non_finite_and_out_of_range_values() {
    let (p, pro, u, f) = (
        portrait_cases(),
        pro_cases(),
        ultra_cases(),
        flux_lora_cases(),
    );
    for c in &p {
        assert_refused::<PortraitTrainer>(c, PortraitTrainerInput::validate);
    }
    for c in &pro {
        assert_refused::<ProTrainer>(c, ProTrainerInput::validate);
    }
    for c in &u {
        assert_refused::<UltraFinetuned>(c, UltraFinetunedInput::validate);
    }
    for c in &f {
        assert_refused::<FluxLora>(c, FluxLoraInput::validate);
    }
    // Every field a validate() doc lists is in the table.
    let fields = |v: Vec<String>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        fields(p.iter().map(|c| c.field.clone()).collect()),
        fields(
            ["images_data_url", "learning_rate", "steps"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(
        fields(pro.iter().map(|c| c.field.clone()).collect()),
        fields(
            [
                "data_url",
                "finetune_comment",
                "iterations",
                "learning_rate",
                "lora_rank"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(
        fields(u.iter().map(|c| c.field.clone()).collect()),
        fields(
            [
                "prompt",
                "finetune_id",
                "aspect_ratio",
                "finetune_strength",
                "num_images",
                "image_prompt_strength"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(
        fields(f.iter().map(|c| c.field.clone()).collect()),
        fields(
            [
                "prompt",
                "loras[0].path",
                "loras[2].path",
                "loras[0].scale",
                "loras[2].scale",
                "image_size.width",
                "image_size.height",
                "num_inference_steps",
                "guidance_scale",
                "num_images"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

#[test]
fn non_finite_values_are_named_in_the_message() {
    for (v, shown) in [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        let err = PortraitTrainerInput {
            learning_rate: Some(v),
            ..PortraitTrainerInput::new("https://x/a.zip")
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains(shown), "{err}");
    }
}

#[test]
fn safety_tolerance_outside_one_to_six_is_refused() {
    for level in [0u8, 7, 255] {
        match SafetyTolerance::try_from(level) {
            Err(Error::InvalidInput { field, message }) => {
                assert_eq!(field, "safety_tolerance");
                assert!(message.contains(&level.to_string()), "{message}");
            }
            other => panic!("{level}: {other:?}"),
        }
    }
    for s in [
        "",
        " ",
        "0",
        "7",
        "-1",
        "1.5",
        "six",
        "\u{663}",
        "99999999999",
    ] {
        match s.parse::<SafetyTolerance>() {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "safety_tolerance"),
            other => panic!("{s:?}: {other:?}"),
        }
    }
    for wire in [
        json!("0"),
        json!("7"),
        json!(0),
        json!(7),
        json!(-1),
        json!(1.5),
        json!(null),
        json!([1]),
    ] {
        assert!(
            serde_json::from_value::<SafetyTolerance>(wire.clone()).is_err(),
            "{wire}"
        );
    }
}

#[test]
fn inputs_missing_a_required_field_or_mistyped_do_not_deserialize() {
    fn refused<T: serde::de::DeserializeOwned>(v: Value, needle: &str) {
        match serde_json::from_value::<T>(v.clone()) {
            Ok(_) => panic!("{v} decoded into {}", std::any::type_name::<T>()),
            Err(e) => assert!(e.to_string().contains(needle), "{v}: {e}"),
        }
    }
    refused::<PortraitTrainerInput>(json!({}), "images_data_url");
    refused::<PortraitTrainerInput>(json!({"images_data_url": 5}), "invalid type");
    refused::<PortraitTrainerInput>(
        json!({"images_data_url": "u", "steps": -1}),
        "invalid value",
    );
    refused::<PortraitTrainerInput>(
        json!({"images_data_url": "u", "steps": 1.5}),
        "invalid type",
    );
    refused::<PortraitTrainerInput>(
        json!({"images_data_url": "u", "steps": 4294967296u64}),
        "invalid value",
    );
    refused::<PortraitTrainerInput>(
        json!({"images_data_url": "u", "learning_rate": "fast"}),
        "invalid type",
    );
    refused::<ProTrainerInput>(json!({"data_url": "u"}), "finetune_comment");
    refused::<ProTrainerInput>(json!({"finetune_comment": "c"}), "data_url");
    refused::<ProTrainerInput>(
        json!({"data_url": "u", "finetune_comment": "c", "mode": "wat"}),
        "unknown variant",
    );
    refused::<UltraFinetunedInput>(
        json!({"prompt": "p", "finetune_id": "f"}),
        "finetune_strength",
    );
    refused::<UltraFinetunedInput>(
        json!({"prompt": "p", "finetune_strength": 1.0}),
        "finetune_id",
    );
    refused::<UltraFinetunedInput>(
        json!({"prompt": "p", "finetune_id": "f", "finetune_strength": "1"}),
        "invalid type",
    );
    refused::<FluxLoraInput>(json!({}), "prompt");
    refused::<FluxLoraInput>(json!({"prompt": "p", "loras": [{"scale": 1.0}]}), "path");
    refused::<FluxLoraInput>(json!({"prompt": "p", "image_size": "huge"}), "image_size");
    refused::<FluxLoraInput>(
        json!({"prompt": "p", "image_size": {"width": -1}}),
        "variant",
    );
    refused::<FluxLoraInput>(
        json!({"prompt": "p", "loras": {"path": "x"}}),
        "invalid type",
    );
}

/// Whatever the input, an invalid one never reaches the server: not through `submit`, not
/// through `run`.
#[tokio::test]
async fn invalid_inputs_are_never_sent() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let mut refused = 0;
    macro_rules! sweep {
        ($endpoint:ty, $cases:expr) => {
            for c in $cases {
                let err = fal
                    .submit::<$endpoint>(&c.input)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, Error::InvalidInput { field, .. } if *field == c.field),
                    "{}: {err:?}",
                    c.label
                );
                let err = fal
                    .run::<$endpoint>(&c.input)
                    .await
                    .unwrap_err();
                assert!(matches!(err, Error::InvalidInput { .. }), "{}", c.label);
                refused += 1;
            }
        };
    }
    sweep!(PortraitTrainer, portrait_cases());
    sweep!(ProTrainer, pro_cases());
    sweep!(UltraFinetuned, ultra_cases());
    sweep!(FluxLora, flux_lora_cases());
    let total =
        portrait_cases().len() + pro_cases().len() + ultra_cases().len() + flux_lora_cases().len();
    assert_eq!(refused, total);
    assert!(total > 130, "{total} cases");
    assert!(
        mock.requests().is_empty(),
        "nothing was sent: {:?}",
        mock.requests()
    );
}

// ---------------------------------------------------------------------------------------------
// Server answers: empty, truncated, not JSON, the wrong shape, the wrong types, or huge.

const KEY: &str = "bad-input-key";
const APP: &str = "fal-ai/echo";
const RID: &str = "r-1";

thread_local! {
    /// One connection pool per test (each test runs on its own thread and runtime): building a
    /// `reqwest::Client` loads the TLS roots, which is slow in debug builds.
    static HTTP: reqwest::Client = reqwest::Client::new();
}

fn client_with(server: &str, max_response_bytes: Option<u64>) -> FalClient {
    let mut b = FalClient::builder()
        .http_client(HTTP.with(Clone::clone))
        .key(KEY)
        .queue_url(server)
        .run_url(server)
        .rest_url(server)
        .retry(RetryPolicy::none())
        .sse_idle_timeout(Duration::from_secs(5));
    if let Some(n) = max_response_bytes {
        b = b.max_response_bytes(n);
    }
    b.build().unwrap()
}

fn client(server: &MockServer) -> FalClient {
    client_with(&server.uri(), None)
}

/// A client whose base URLs are `server` + `prefix`: many cases share one server.
fn client_at(server: &MockServer, prefix: &str) -> FalClient {
    client_with(&format!("{}{prefix}", server.uri()), None)
}

fn handle(fal: &FalClient) -> RequestHandle {
    fal.resume(APP, RID).unwrap()
}

/// Answer every control and result path of one request, and the upload initiation, under
/// `prefix` with `template`.
async fn answer_everything_with(server: &MockServer, prefix: &str, template: ResponseTemplate) {
    for (m, p) in [
        ("POST", format!("{prefix}/{APP}")),
        ("GET", format!("{prefix}/{APP}/requests/{RID}/status")),
        ("GET", format!("{prefix}/{APP}/requests/{RID}")),
        ("PUT", format!("{prefix}/{APP}/requests/{RID}/cancel")),
        ("POST", format!("{prefix}/storage/upload/initiate")),
    ] {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(template.clone())
            .mount(server)
            .await;
    }
}

/// A typed result, so that JSON of the wrong shape fails to decode.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Output {
    images: Vec<Value>,
    pad: Option<String>,
}

/// The five calls, each giving its error (cancel gives its outcome in `Ok`).
async fn call_everything(fal: &FalClient) -> Vec<(&'static str, Result<String, Error>)> {
    let h = handle(fal);
    vec![
        (
            "submit",
            fal.submit_json(APP, &json!({"prompt": "p"}))
                .await
                .map(|h| h.request_id().to_owned()),
        ),
        ("status", h.status(false).await.map(|s| format!("{s:?}"))),
        (
            "result",
            h.clone()
                .with_output::<Output>()
                .result()
                .await
                .map(|o| format!("{o:?}")),
        ),
        ("cancel", h.cancel().await.map(|o| format!("{o:?}"))),
        (
            "initiate",
            fal.storage()
                .upload_bytes(vec![1u8, 2, 3])
                .content_type("image/png")
                .await
                .map(String::from),
        ),
    ]
}

/// The request id an error should carry: the one the handle knows (status, result, cancel).
fn expected_request_id(op: &str) -> Option<&'static str> {
    matches!(op, "status" | "result" | "cancel").then_some(RID)
}

#[tokio::test]
async fn malformed_success_answers_are_decode_errors_with_an_excerpt() {
    let bodies: [(&str, &[u8]); 9] = [
        ("empty", b""),
        ("whitespace", b" \r\n\t "),
        ("truncated", br#"{"status":"IN_QUEUE","request_id":"r-"#),
        (
            "html",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        ("array", b"[1, 2, 3]"),
        ("null", b"null"),
        ("string", br#""IN_QUEUE""#),
        (
            "wrong types",
            br#"{"status": 5, "request_id": 7, "upload_url": 1, "file_url": []}"#,
        ),
        ("not utf-8", b"{\"status\":\"\xff\xfe\"}"),
    ];
    let server = MockServer::start().await;
    for (i, (label, body)) in bodies.into_iter().enumerate() {
        let prefix = format!("/case{i}");
        answer_everything_with(
            &server,
            &prefix,
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_bytes(body.to_vec()),
        )
        .await;
        for (op, outcome) in call_everything(&client_at(&server, &prefix)).await {
            if op == "cancel" {
                // fal's clients ignore the cancel body: any 2xx means the cancel was accepted.
                assert_eq!(
                    outcome.unwrap(),
                    format!("{:?}", CancelOutcome::CancellationRequested),
                    "{label}"
                );
                continue;
            }
            let err = outcome.expect_err(label);
            match &err {
                Error::Decode {
                    what,
                    message,
                    body_excerpt,
                    request_id,
                    ..
                } => {
                    assert!(!what.is_empty() && !message.is_empty(), "{label} {op}");
                    assert_eq!(body_excerpt, &String::from_utf8_lossy(body), "{label} {op}");
                    assert_eq!(
                        request_id.as_deref(),
                        expected_request_id(op),
                        "{label} {op}"
                    );
                }
                other => panic!("{label} {op}: expected Decode, got {other:?}"),
            }
            assert_eq!(err.request_id(), expected_request_id(op), "{label} {op}");
            assert!(!err.is_retryable());
            let shown = err.to_string();
            assert!(shown.contains("could not decode"), "{label} {op}: {shown}");
        }
    }
}

#[tokio::test]
async fn malformed_error_answers_are_api_errors_with_an_excerpt() {
    let long = format!("{{\"detail\": \"{}\"}}", "x".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("html", b"<html>nginx: 502 Bad Gateway</html>".to_vec()),
        ("truncated", br#"{"detail":[{"loc":["body","pro"#.to_vec()),
        ("detail number", br#"{"detail": 42}"#.to_vec()),
        (
            "detail object",
            br#"{"detail": {"why": "no"}, "error_type": 5}"#.to_vec(),
        ),
        (
            "detail junk list",
            br#"{"detail": [1, "x", null, {"loc": "nope"}]}"#.to_vec(),
        ),
        (
            "detail loc junk",
            br#"{"detail": [{"loc": [true, 1.5, {}], "msg": 3}]}"#.to_vec(),
        ),
        ("not utf-8", b"\xff\xfe\xfd error".to_vec()),
        ("100 KB", long.clone().into_bytes()),
    ];
    let server = MockServer::start().await;
    for status in [400u16, 401, 404, 422, 500, 503] {
        for (i, (label, body)) in bodies.iter().enumerate() {
            let prefix = format!("/{status}/case{i}");
            answer_everything_with(
                &server,
                &prefix,
                ResponseTemplate::new(status).set_body_bytes(body.clone()),
            )
            .await;
            for (op, outcome) in call_everything(&client_at(&server, &prefix)).await {
                let err = outcome.expect_err(label);
                let api = err
                    .as_api()
                    .unwrap_or_else(|| panic!("{status} {label} {op}: expected Api, got {err:?}"));
                assert_eq!(api.status, status);
                assert_eq!(
                    err.request_id(),
                    expected_request_id(op),
                    "{status} {label} {op}"
                );
                assert!(
                    api.body_excerpt.len() <= 512 + '…'.len_utf8(),
                    "{label}: excerpt bounded"
                );
                let lossy = String::from_utf8_lossy(body);
                let head: String = lossy.chars().take(100).collect();
                assert!(
                    api.body_excerpt.starts_with(&head),
                    "{status} {label} {op}: {:?}",
                    api.body_excerpt
                );
                let _ = api.message();
                let _ = api.field_errors();
                let shown = err.to_string();
                assert!(shown.contains(&status.to_string()), "{shown}");
                assert!(
                    shown.len() < 2_000,
                    "{label}: Display stays short ({} bytes)",
                    shown.len()
                );
            }
        }
    }
}

/// A `status` answer of 9 MiB (over the fixed 8 MiB control limit) is refused without reading
/// it further; a result of the same size is fine (results have the 256 MiB default limit).
#[tokio::test]
async fn control_answers_over_8_mib_are_refused_results_are_not() {
    let server = MockServer::start().await;
    let big = format!(
        "{{\"status\":\"IN_QUEUE\",\"images\":[],\"pad\":\"{}\"}}",
        "x".repeat(9 * 1024 * 1024)
    );
    answer_everything_with(
        &server,
        "",
        ResponseTemplate::new(200).set_body_string(big.clone()),
    )
    .await;
    let fal = client(&server);
    for (op, outcome) in call_everything(&fal).await {
        if op == "result" {
            let out = outcome.unwrap();
            assert!(out.len() > 9 * 1024 * 1024, "the whole result was read");
            continue;
        }
        match outcome.expect_err(op) {
            Error::ResponseTooLarge {
                what,
                limit,
                declared,
                body_excerpt,
                request_id,
                ..
            } => {
                assert_eq!(limit, 8 * 1024 * 1024, "{op}");
                assert_eq!(declared, Some(big.len() as u64), "{op}");
                assert!(
                    body_excerpt.starts_with(r#"{"status":"IN_QUEUE""#),
                    "{op}: {body_excerpt}"
                );
                assert_eq!(request_id.as_deref(), expected_request_id(op), "{op}");
                assert!(!what.is_empty());
            }
            other => panic!("{op}: expected ResponseTooLarge, got {other:?}"),
        }
    }
}

/// With a small configured `max_response_bytes`, every answer read into memory obeys it:
/// control answers, results and in-memory downloads; streamed downloads to a file do not.
#[tokio::test]
async fn max_response_bytes_caps_every_in_memory_answer() {
    let server = MockServer::start().await;
    let body = format!(
        "{{\"status\":\"IN_QUEUE\",\"pad\":\"{}\"}}",
        "y".repeat(3 * 1024 * 1024)
    );
    answer_everything_with(
        &server,
        "",
        ResponseTemplate::new(200).set_body_string(body.clone()),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/files/big.bin"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body.clone()))
        .mount(&server)
        .await;
    let limit = 256 * 1024;
    let fal = client_with(&server.uri(), Some(limit));
    for (op, outcome) in call_everything(&fal).await {
        let err = outcome.expect_err(op);
        assert!(
            matches!(err, Error::ResponseTooLarge { limit: l, .. } if l == limit),
            "{op}: {err:?}"
        );
        assert_eq!(err.request_id(), expected_request_id(op), "{op}");
        let shown = err.to_string();
        assert!(shown.contains("262144-byte limit"), "{shown}");
    }
    let url = format!("{}/files/big.bin", server.uri());
    let err = fal.storage().download(&url).await.unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { what, .. } if what == "download"));
    // Streaming to disk is not limited: memory stays bounded whatever the size.
    let dir = tempfile::tempdir().unwrap();
    let n = fal
        .storage()
        .download_to_file(&url, dir.path().join("big.bin"))
        .await
        .unwrap();
    assert_eq!(n, body.len() as u64);
    // Answers under the limit are read as before.
    let small = MockServer::start().await;
    answer_everything_with(
        &small,
        "",
        ResponseTemplate::new(200)
            .set_body_json(json!({"status": "IN_QUEUE", "queue_position": 4})),
    )
    .await;
    let fal = client_with(&small.uri(), Some(limit));
    assert_eq!(
        handle(&fal).status(false).await.unwrap(),
        QueueStatus::InQueue { queue_position: 4 }
    );
}

// A tiny HTTP/1.1 server for answers wiremock cannot give: bodies without an end.

#[derive(Clone)]
enum Reply {
    /// A complete answer (status line, headers and body), then the connection closes.
    Fixed(&'static str, String),
    /// `prefix`, then `filler` forever, chunked (no length) or under a declared length.
    Endless {
        content_type: &'static str,
        prefix: &'static str,
        filler: u8,
        declared: Option<u64>,
    },
}

/// Serve `route(request line)` on 127.0.0.1; the counter holds the body bytes written to
/// endless answers (the client stops them by closing the connection).
async fn raw_server(route: fn(&str) -> Reply) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or_default().to_owned();
                match route(&line) {
                    Reply::Fixed(status, body) => {
                        let out = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(out.as_bytes()).await;
                    }
                    Reply::Endless {
                        content_type,
                        prefix,
                        filler,
                        declared,
                    } => {
                        let framing = match declared {
                            Some(n) => format!("content-length: {n}"),
                            None => "transfer-encoding: chunked".to_owned(),
                        };
                        let out = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{framing}\r\n\r\n"
                        );
                        if sock.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut data = prefix.as_bytes().to_vec();
                        data.resize(64 * 1024, filler);
                        loop {
                            let frame = match declared {
                                Some(_) => data.clone(),
                                None => {
                                    let mut f = format!("{:x}\r\n", data.len()).into_bytes();
                                    f.extend_from_slice(&data);
                                    f.extend_from_slice(b"\r\n");
                                    f
                                }
                            };
                            if sock.write_all(&frame).await.is_err() {
                                return;
                            }
                            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                            data.fill(filler);
                        }
                    }
                }
            });
        }
    });
    (base, written)
}

/// A body without an end (chunked, or declaring 300 MiB) is cut at the limit: the client never
/// buffers it whole. The test would hang (bounded by its timeout) if the client read on.
#[tokio::test]
async fn endless_answers_are_cut_at_the_limit() {
    fn route(line: &str) -> Reply {
        Reply::Endless {
            content_type: "application/json",
            prefix: r#"{"status":"IN_QUEUE","pad":""#,
            filler: b' ',
            declared: line.contains("declared").then_some(300 * 1024 * 1024),
        }
    }
    let (base, written) = raw_server(route).await;
    let fal = client_with(&base, None);
    let h: RequestHandle = fal.resume("fal-ai/endless", RID).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), h.status(false))
        .await
        .expect("the client stopped reading")
        .unwrap_err();
    match &err {
        Error::ResponseTooLarge {
            limit,
            declared,
            body_excerpt,
            request_id,
            ..
        } => {
            assert_eq!(*limit, 8 * 1024 * 1024);
            assert_eq!(*declared, None);
            assert!(
                body_excerpt.starts_with(r#"{"status":"IN_QUEUE""#),
                "{body_excerpt}"
            );
            assert_eq!(request_id.as_deref(), Some(RID));
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    // A declared length over the limit fails before the body is read.
    let h: RequestHandle = fal.resume("fal-ai/declared", RID).unwrap();
    let before = written.load(Ordering::Relaxed);
    let err = tokio::time::timeout(Duration::from_secs(30), h.result())
        .await
        .expect("the client stopped reading")
        .unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { declared: Some(d), limit, .. } if d == 300 * 1024 * 1024 && limit == 256 * 1024 * 1024),
        "{err:?}"
    );
    // Far less than the declared 300 MiB left the server before the client hung up.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = written.load(Ordering::Relaxed) - before;
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes sent");
}

// ---------------------------------------------------------------------------------------------
// Status and status-stream answers with odd values.

#[tokio::test]
async fn odd_status_fields_are_decode_errors_naming_the_field() {
    let cases = [
        (
            json!({"status": "IN_QUEUE", "queue_position": -1}),
            "queue_position",
        ),
        (
            json!({"status": "IN_QUEUE", "queue_position": 1.5}),
            "queue_position",
        ),
        (
            json!({"status": "IN_QUEUE", "queue_position": "3"}),
            "queue_position",
        ),
        (
            json!({"status": "IN_QUEUE", "queue_position": [3]}),
            "queue_position",
        ),
        (json!({"status": "IN_PROGRESS", "logs": "step 1"}), "logs"),
        (json!({"status": "IN_PROGRESS", "logs": 5}), "logs"),
        (
            json!({"status": "IN_PROGRESS", "logs": {"message": "m"}}),
            "logs",
        ),
        (json!({"status": "IN_PROGRESS", "logs": [1, 2]}), "logs[0]"),
        (
            json!({"status": "IN_PROGRESS", "logs": [{"message": 5}]}),
            "logs[0].message",
        ),
        (
            json!({"status": "IN_PROGRESS", "logs": [{"message": "m", "level": []}]}),
            "logs[0].level",
        ),
        (json!({"status": "COMPLETED", "metrics": "fast"}), "metrics"),
        (
            json!({"status": "COMPLETED", "metrics": {"inference_time": "1s"}}),
            "metrics",
        ),
        (json!({"status": "COMPLETED", "error": 5}), "error"),
        (
            json!({"status": "COMPLETED", "error_type": {}}),
            "error_type",
        ),
        (json!({"status": null}), "status"),
        (json!({"status": 5}), "status"),
        (json!({"queue_position": 1}), "."),
    ];
    // Raw bodies serde_json cannot even represent as a `Value`.
    let raw = [
        (
            r#"{"status":"IN_QUEUE","queue_position":18446744073709551616}"#,
            "queue_position",
        ),
        (
            r#"{"status":"IN_QUEUE","queue_position":1e400}"#,
            "queue_position",
        ),
        (
            r#"{"status":"IN_QUEUE","queue_position":-9223372036854775809}"#,
            "queue_position",
        ),
    ];
    let bodies = cases
        .iter()
        .map(|(v, p)| (v.to_string(), *p))
        .chain(raw.iter().map(|(b, p)| (b.to_string(), *p)));
    let server = MockServer::start().await;
    for (i, (body, field)) in bodies.enumerate() {
        Mock::given(method("GET"))
            .and(path(format!("/case{i}/{APP}/requests/{RID}/status")))
            .respond_with(ResponseTemplate::new(200).set_body_string(body.clone()))
            .mount(&server)
            .await;
        let err = handle(&client_at(&server, &format!("/case{i}")))
            .status(true)
            .await
            .unwrap_err();
        match &err {
            Error::Decode {
                path,
                body_excerpt,
                request_id,
                ..
            } => {
                assert!(
                    path.starts_with(field) || (field == "." && path == "."),
                    "{body}: path {path}"
                );
                assert_eq!(body_excerpt, &body);
                assert_eq!(request_id.as_deref(), Some(RID));
            }
            other => panic!("{body}: expected Decode, got {other:?}"),
        }
    }
    // A status string this crate does not know is its own error, naming the status.
    for (i, status) in ["", "in_queue", "FAILED"].into_iter().enumerate() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/unknown{i}/{APP}/requests/{RID}/status")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": status})))
            .mount(&server)
            .await;
        let err = handle(&client_at(&server, &format!("/unknown{i}")))
            .status(true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnknownQueueStatus { status: s, request_id }
                if s == status && request_id.as_deref() == Some(RID)),
            "{status:?}: {err:?}"
        );
    }
    // `null` for an optional field is its absence.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "IN_QUEUE", "queue_position": null, "logs": null, "unknown": {"x": [1]}}),
        ))
        .mount(&server)
        .await;
    assert_eq!(
        handle(&client(&server)).status(true).await.unwrap(),
        QueueStatus::InQueue { queue_position: 0 }
    );
    // The largest u64 is a position like any other.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            r#"{{"status":"IN_QUEUE","queue_position":{}}}"#,
            u64::MAX
        )))
        .mount(&server)
        .await;
    assert_eq!(
        handle(&client(&server)).status(true).await.unwrap(),
        QueueStatus::InQueue {
            queue_position: u64::MAX
        }
    );
}

/// SSE bodies with garbage: each stream yields one typed error carrying the request id, then
/// ends; none panics or hangs.
#[tokio::test]
async fn status_streams_with_garbage_end_with_a_typed_error() {
    let bodies: [(&str, &[u8]); 8] = [
        ("not json", b"data: hello\n\n"),
        ("unknown status", b"data: {\"status\":\"WAT\"}\n\n"),
        ("array", b"data: [1,2]\n\n"),
        (
            "wrong type",
            b"data: {\"status\":\"IN_QUEUE\",\"queue_position\":-4}\n\n",
        ),
        ("nul", b"data: \0\n\n"),
        ("invalid utf-8", b"data: {\"status\":\"\xff\xfe\"}\n\n"),
        ("garbage bytes", b"\xde\xad\xbe\xef\x00\x01\r\r\n\n"),
        (
            "json then garbage",
            b"data: {\"status\":\"IN_PROGRESS\"}\n\ndata: }{\n\n",
        ),
    ];
    let server = MockServer::start().await;
    for (i, (label, body)) in bodies.into_iter().enumerate() {
        let prefix = format!("/case{i}");
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/{APP}/requests/{RID}/status/stream")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/event-stream")
                    .set_body_bytes(body.to_vec()),
            )
            .mount(&server)
            .await;
        let items: Vec<_> = tokio::time::timeout(
            Duration::from_secs(10),
            handle(&client_at(&server, &prefix)).events(false).collect(),
        )
        .await
        .expect(label);
        let last = items.last().unwrap_or_else(|| panic!("{label}: no item"));
        let err = last.as_ref().expect_err(label);
        if label == "unknown status" {
            assert!(
                matches!(err, Error::UnknownQueueStatus { status, .. } if status == "WAT"),
                "{label}: {err:?}"
            );
        } else {
            assert!(matches!(err, Error::Decode { .. }), "{label}: {err:?}");
        }
        assert_eq!(err.request_id(), Some(RID), "{label}");
        assert!(
            items[..items.len() - 1].iter().all(Result::is_ok),
            "{label}"
        );
    }
}

/// A status stream whose event never ends is cut at 1 MiB, and a wait falls back to polling
/// and completes.
#[tokio::test]
async fn an_endless_status_event_is_cut_and_the_wait_polls_instead() {
    fn route(line: &str) -> Reply {
        if line.contains("/status/stream") {
            Reply::Endless {
                content_type: "text/event-stream",
                prefix: "data: {\"status\":\"IN_QUEUE\",\"x\":\"",
                filler: b'x',
                declared: None,
            }
        } else if line.contains("/status") {
            Reply::Fixed("200 OK", r#"{"status":"COMPLETED","logs":null}"#.to_owned())
        } else {
            Reply::Fixed("200 OK", r#"{"ok":true}"#.to_owned())
        }
    }
    let (base, _) = raw_server(route).await;
    let fal = client_with(&base, None);
    let h: RequestHandle = fal.resume("fal-ai/endless", RID).unwrap();
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(30), h.events(false).collect())
        .await
        .expect("the stream ended");
    assert_eq!(items.len(), 1);
    let err = items[0].as_ref().unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit, .. } if *limit == 1024 * 1024),
        "{err:?}"
    );
    assert_eq!(err.request_id(), Some(RID));
    // The wait cuts the stream too (here at a smaller configured limit, to keep the test fast),
    // then polls.
    let h: RequestHandle = client_with(&base, Some(64 * 1024))
        .resume("fal-ai/endless", RID)
        .unwrap();
    let out: Value = tokio::time::timeout(
        Duration::from_secs(30),
        h.wait().poll_interval(Duration::from_millis(5)),
    )
    .await
    .expect("the wait ended")
    .unwrap();
    assert_eq!(out, json!({"ok": true}));
}

/// A wait whose stream sends garbage falls back to polling and gets the result.
#[tokio::test]
async fn a_wait_survives_a_garbage_stream() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{APP}/requests/{RID}/status/stream")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_bytes(
                    b"data: {\"status\":\"IN_QUEUE\",\"queue_position\":2}\n\ndata: <html>\n\n"
                        .to_vec(),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{APP}/requests/{RID}/status")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETED"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{APP}/requests/{RID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"done": 1})))
        .expect(1)
        .mount(&server)
        .await;
    let out: Value = handle(&client(&server))
        .wait()
        .poll_interval(Duration::from_millis(5))
        .await
        .unwrap();
    assert_eq!(out, json!({"done": 1}));
}
