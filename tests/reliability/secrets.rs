//! Secret hygiene: the key never shows up in `Debug`, `Display`, errors or `tracing` output.
//! (Where the key is sent: `tests/hosts.rs`.)
//!
//! The `tracing` capture runs on a current-thread runtime with a thread-local subscriber at
//! TRACE level (span fields included) that also receives the `log` records of the HTTP stack
//! (reqwest, hyper) through `tracing-log`, so every line the client, the HTTP stack and the mock
//! emit during a whole flow is searched. It is the only test of this binary: `tracing` caches
//! per-callsite interest process-wide, and a test registering callsites on another thread at
//! the same moment could make the capture miss lines.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_client::archive::ArchiveBuilder;
use fal_client::models::{FluxLora, FluxLoraInput, PortraitTrainer, PortraitTrainerInput};
use fal_client::queue::{RequestHandle, WaitEvent};
use fal_client::retry::RetryPolicy;
use fal_client::{Endpoint, Error, FalClient};
use fal_mock::{FalMock, MockFailure};
use futures::StreamExt;
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

const SECRET: &str = "sk-live-5f1e0b9c-THE-REAL-KEY-d41d8cd98f00";
const WRONG: &str = "sk-live-0000-A-WRONG-KEY-ffff";

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Install the capture for this thread: every event and span (with fields) at TRACE, and the
/// `log` records of the HTTP stack.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let _ = tracing_log::LogTracer::init();
    let cap = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(cap.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_target(true)
        .finish();
    (cap, tracing::subscriber::set_default(subscriber))
}

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/portrait")
}

fn assert_no_secret(what: &str, text: &str) {
    for key in [SECRET, WRONG] {
        assert!(!text.contains(key), "{what} contains a key:\n{text}");
        // Nor any long piece of it.
        assert!(
            !text.contains(&key[8..key.len() - 4]),
            "{what} contains part of a key"
        );
    }
}

/// Every error's `Display`, `Debug` and source chain.
fn error_texts(e: &Error) -> String {
    let mut out = format!("{e}\n{e:?}\n");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!("{s}\n{s:?}\n"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn the_key_never_appears_in_logs_debug_or_errors() {
    let (cap, guard) = capture();
    let mock = FalMock::builder()
        .key(SECRET)
        .queue_time(Duration::from_millis(30))
        .processing_time(Duration::from_millis(120))
        .log_lines(3)
        .start()
        .await
        .unwrap();
    let fal = mock
        .client_builder()
        .retry(
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    let mut texts = vec![
        format!("{fal:?}"),
        format!("{:?}", FalClient::builder().key(SECRET)),
        format!("{:?}", mock.client_builder()),
        format!("{mock:?}"),
    ];
    let mut errors = Vec::new();

    // Upload a training archive; train with logs; get the result; download the LoRA.
    let archive = ArchiveBuilder::new().build_from_dir(photos()).unwrap();
    let zip_url = fal
        .storage()
        .upload_bytes(archive.into_bytes())
        .content_type("application/zip")
        .file_name("anna.zip")
        .await
        .unwrap();
    let job = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput {
            trigger_phrase: Some("TOK_anna".into()),
            ..PortraitTrainerInput::new(zip_url)
        })
        .await
        .unwrap();
    texts.push(format!("{job:?}"));
    let mut log_lines = 0;
    let out = job
        .wait()
        .on_event(|e| {
            if let WaitEvent::Log(_) = e {
                log_lines += 1;
            }
        })
        .await
        .unwrap();
    assert!(log_lines > 0, "runner logs were streamed");
    texts.push(format!("{out:?}"));
    let lora = fal
        .storage()
        .download(&out.diffusers_lora_file.url)
        .await
        .unwrap();
    assert!(!lora.is_empty());
    // Its status stream and status, explicitly.
    let events: Vec<_> = job.events(true).collect().await;
    texts.extend(events.iter().map(|e| format!("{e:?}")));
    texts.push(format!("{:?}", job.status(true).await.unwrap()));

    // A retried submit (an ingress 503), then a cancel.
    mock.fail_next(
        FluxLora::ID,
        MockFailure::http(503, json!({"detail": "upstream"})),
    );
    mock.set_queue_time(Duration::from_secs(30));
    let queued = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    texts.push(format!("{:?}", queued.cancel().await.unwrap()));
    mock.set_queue_time(Duration::from_millis(30));

    // A 422 (sync run and through the queue), a 401 with a wrong key, a timeout, a 404.
    mock.fail_next(
        FluxLora::ID,
        MockFailure::validation("prompt", "too long", "string_too_long"),
    );
    errors.push(
        fal.run::<FluxLora>(&FluxLoraInput::new("a fox"))
            .await
            .unwrap_err(),
    );
    mock.fail_next(
        FluxLora::ID,
        MockFailure::validation("prompt", "too long", "string_too_long"),
    );
    let failing = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    errors.push(failing.wait().await.unwrap_err());
    let wrong = mock.client_builder().key(WRONG).build().unwrap();
    texts.push(format!("{wrong:?}"));
    errors.push(
        wrong
            .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
            .await
            .unwrap_err(),
    );
    errors.push(
        wrong
            .storage()
            .upload_bytes(vec![1u8])
            .content_type("image/png")
            .await
            .unwrap_err(),
    );
    let slow = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    mock.set_processing_time(Duration::from_secs(30));
    let slow2 = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a slow fox"))
        .await
        .unwrap();
    errors.push(
        slow2
            .wait()
            .timeout(Duration::from_millis(100))
            .await
            .unwrap_err(),
    );
    drop(slow);
    let unknown: RequestHandle = fal.resume("fal-ai/flux-lora", "no-such-request").unwrap();
    errors.push(unknown.status(false).await.unwrap_err());

    let kinds: Vec<String> = errors.iter().map(|e| format!("{:?}", e.status())).collect();
    assert_eq!(
        kinds,
        [
            "Some(422)",
            "Some(422)",
            "Some(401)",
            "Some(401)",
            "None",
            "Some(404)"
        ],
        "{errors:#?}"
    );
    assert!(matches!(errors[4], Error::Timeout { .. }));
    drop(guard);

    for t in &texts {
        assert_no_secret("a Debug output", t);
    }
    for e in &errors {
        assert_no_secret("an error", &error_texts(e));
    }
    let logged = cap.text();
    assert_no_secret("the tracing capture", &logged);
    // The capture is real: spans with fields, the retry, the HTTP stack's own records.
    for needle in [
        "fal.submit",
        "fal.wait",
        "fal.upload",
        "request_id=",
        "retrying fal call",
        "TRACE",
        job.request_id(),
    ] {
        assert!(logged.contains(needle), "the capture lacks {needle:?}");
    }
    assert!(logged.len() > 10_000, "{} bytes captured", logged.len());
}
