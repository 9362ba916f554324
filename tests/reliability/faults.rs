//! The client against a FalMock that misbehaves on purpose: seeded fault plans (429 with
//! `Retry-After`, 500, nginx 503, connection resets, slow answers, truncated and stalled status
//! streams, malformed JSON, HTML pages), the ambiguous-submit rules, retry traces, and dropped
//! waits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fal_client::archive::ArchiveBuilder;
use fal_client::avatar::{AvatarKind, AvatarModel, Preset, TriggerPhrase};
use fal_client::models::{
    FluxLora, FluxLoraFastTraining, FluxLoraInput, GenerationOutput, PortraitTrainer,
};
use fal_client::queue::{RequestHandle, WaitEvent};
use fal_client::retry::RetryPolicy;
use fal_client::{Endpoint, Error, FalClient};
use fal_mock::{FalMock, FalMockBuilder, FaultKind, Faults, MockRoute};
use futures::StreamExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const SEED: u64 = 0x5eed_fa17;

/// Short mock timings: a job is queued for 5 ms and runs for 20 ms.
fn fast_mock() -> FalMockBuilder {
    FalMock::builder()
        .queue_time(Duration::from_millis(5))
        .processing_time(Duration::from_millis(20))
        .log_lines(2)
        .initial_queue_position(1)
}

/// A patient client with short delays: 10 retries from 1 ms to 20 ms, `Retry-After` capped at
/// 100 ms, a status stream silent for 200 ms is given up.
fn patient_client(mock: &FalMock) -> FalClient {
    patient_builder(mock).build().unwrap()
}

fn patient_builder(mock: &FalMock) -> fal_client::FalClientBuilder {
    mock.client_builder()
        .retry(
            RetryPolicy::default()
                .with_max_retries(10)
                .with_delays(Duration::from_millis(1), Duration::from_millis(20))
                .with_max_retry_after(Duration::from_millis(100)),
        )
        .sse_idle_timeout(Duration::from_millis(200))
}

/// Every wait of these tests gives up after a minute ...
const WAIT: Duration = Duration::from_secs(60);
/// ... and polls every 20 ms.
const POLL: Duration = Duration::from_millis(20);

fn submits(mock: &FalMock) -> usize {
    mock.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/queue/"))
        .count()
}

// ---------------------------------------------------------------------------------------------
// 500 jobs under a third of the answers faulted

#[derive(Debug)]
enum Done {
    Generated,
    Lora,
}

async fn generate(fal: FalClient, i: usize) -> Result<Done, String> {
    let prompt = format!("job {i}: a red fox in the snow, watercolour");
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new(prompt.clone()))
        .await
        .map_err(|e| format!("generation {i}: submit: {e}"))?;
    let out = job
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .await
        .map_err(|e| format!("generation {i}: wait: {e}"))?;
    if out.prompt != prompt || out.images.is_empty() {
        return Err(format!("generation {i}: wrong output {out:?}"));
    }
    Ok(Done::Generated)
}

async fn train(fal: FalClient, i: usize, archive: Bytes) -> Result<Done, String> {
    let kind = if i.is_multiple_of(2) {
        AvatarKind::Portrait
    } else {
        AvatarKind::Style
    };
    let url = fal
        .storage()
        .upload_bytes(archive)
        .content_type("application/zip")
        .file_name(format!("set-{i}.zip"))
        .await
        .map_err(|e| format!("training {i}: upload: {e}"))?;
    let trigger = TriggerPhrase::new(format!("TOK_{i}")).unwrap();
    let job = kind
        .plan(Preset::Fast, url, trigger)
        .submit(&fal)
        .await
        .map_err(|e| format!("training {i}: submit: {e}"))?;
    let avatar = job
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .await
        .map_err(|e| format!("training {i}: wait: {e}"))?;
    match avatar.model() {
        AvatarModel::Lora { url, .. } => {
            let weights = fal
                .storage()
                .download(&url)
                .await
                .map_err(|e| format!("training {i}: LoRA download: {e}"))?;
            let needle = format!("TOK_{i}\"");
            if !weights
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return Err(format!("training {i}: the LoRA is not this training's"));
            }
            Ok(Done::Lora)
        }
        other => Err(format!("training {i}: unexpected model {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_jobs_complete_exactly_once_with_a_third_of_answers_faulted() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/portrait");
    let archive = ArchiveBuilder::new()
        .build_from_dir_async(&folder)
        .await
        .unwrap()
        .into_bytes();
    // Every route: 35% of answers faulted with the kinds a careful client must survive there
    // (resets, 500s and broken bodies only on idempotent routes; see `Faults::uniform`).
    let mock = fast_mock()
        .faults(Faults::uniform(SEED, 0.35).slow(Duration::from_millis(100)))
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    // Half the trainings upload through the initiate flow only, half through the default order
    // (CDN v3, falling back to initiate when the token route fails).
    let initiate_only = patient_builder(&mock)
        .upload_flows([fal_client::storage::UploadFlow::Initiate])
        .build()
        .unwrap();
    let started = Instant::now();
    let outcomes = tokio::time::timeout(Duration::from_secs(120), async {
        futures::stream::iter(0..500usize)
            .map(|i| {
                let fal = if i % 20 == 19 {
                    initiate_only.clone()
                } else {
                    fal.clone()
                };
                let archive = archive.clone();
                async move {
                    // One training every tenth job: 50 trainings, 450 generations.
                    if i % 10 == 9 {
                        train(fal, i / 10, archive).await
                    } else {
                        generate(fal, i).await
                    }
                }
            })
            .buffer_unordered(50)
            .collect::<Vec<_>>()
            .await
    })
    .await
    .expect("500 jobs did not finish within 120 s");
    let elapsed = started.elapsed();

    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} jobs failed: {failures:#?}",
        failures.len()
    );
    let count = |f: fn(&Done) -> bool| outcomes.iter().flatten().filter(|d| f(d)).count();
    assert_eq!(count(|d| matches!(d, Done::Generated)), 450);
    assert_eq!(count(|d| matches!(d, Done::Lora)), 50);

    // Nothing was queued twice, and every job was queued.
    assert_eq!(mock.duplicate_submissions(), 0);
    assert_eq!(mock.submissions(FluxLora::ID), 450);
    assert_eq!(mock.submissions(PortraitTrainer::ID), 25);
    assert_eq!(mock.submissions(FluxLoraFastTraining::ID), 25);

    // At least 30% of all requests were faulted, with every kind of the mix.
    let counts = mock.fault_counts();
    eprintln!(
        "500 jobs in {elapsed:?}: {} requests, {} faults ({:.1}%): {:?}",
        counts.requests,
        counts.total(),
        counts.ratio() * 100.0,
        counts.by_kind
    );
    assert_eq!(counts.requests as usize, mock.requests().len());
    assert!(
        counts.total() * 10 >= counts.requests * 3,
        "only {} faults in {} requests",
        counts.total(),
        counts.requests
    );
    for kind in [
        FaultKind::TooManyRequests,
        FaultKind::ServerError,
        FaultKind::IngressUnavailable,
        FaultKind::Reset,
        FaultKind::Slow,
        FaultKind::TruncatedStream,
        FaultKind::StalledStream,
        FaultKind::MalformedJson,
        FaultKind::HtmlPage,
    ] {
        assert!(counts.get(kind) > 0, "no {kind} was injected");
    }
    assert_eq!(counts.get(FaultKind::ResetAfterAccept), 0);
    let faults_on = |route| counts.faults_by_route.get(&route).copied().unwrap_or(0);
    for route in [
        MockRoute::Submit,
        MockRoute::UploadInitiate,
        MockRoute::UploadPut,
    ] {
        assert!(faults_on(route) > 0, "no fault on {route}");
    }
    // The CDN v3 flow was faulted too (its token, or its uploads: after a failed token fetch
    // the client sends uploads to the initiate flow for 30 s).
    assert!(
        faults_on(MockRoute::CdnToken) + faults_on(MockRoute::CdnUpload) > 0,
        "no fault on the CDN v3 flow"
    );
    mock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// submits: what is retried and what is ambiguous

#[tokio::test]
async fn a_reset_after_the_job_was_accepted_is_an_ambiguous_submit_and_not_retried() {
    let mock = fast_mock()
        .faults(Faults::new(SEED).rate(MockRoute::Submit, FaultKind::ResetAfterAccept, 1.0))
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap_err();
    let Error::AmbiguousSubmit { endpoint, .. } = &err else {
        panic!("expected AmbiguousSubmit, got {err:?}");
    };
    assert_eq!(endpoint, FluxLora::ID);
    let text = err.to_string();
    assert!(text.contains("fal-ai/flux-lora"), "{text}");
    assert!(text.contains("may or may not have reached fal"), "{text}");
    assert!(text.contains("not retried"), "{text}");
    assert!(!err.is_retryable());
    // The job exists on the mock, once; the client did not send the submit again.
    assert_eq!(mock.submissions(FluxLora::ID), 1);
    assert_eq!(submits(&mock), 1);
    assert_eq!(mock.fault_counts().get(FaultKind::ResetAfterAccept), 1);
}

#[tokio::test]
async fn a_reset_before_the_job_was_accepted_is_ambiguous_too() {
    // The server dropped the connection before queuing anything, but the client cannot know
    // that: the request had been sent. Only a failure to connect proves nothing arrived.
    let mock = fast_mock()
        .faults(Faults::new(SEED).rate(MockRoute::Submit, FaultKind::Reset, 1.0))
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AmbiguousSubmit { ref endpoint, .. } if endpoint == FluxLora::ID),
        "{err:?}"
    );
    assert_eq!(mock.submissions(FluxLora::ID), 0);
    assert_eq!(submits(&mock), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_submit() {
    // A port that is bound (so no other test can take it) but not listening: every attempt is
    // refused, so nothing was ever sent.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let fal = FalClient::builder()
        .key("k")
        .queue_url(format!("http://127.0.0.1:{port}/queue/"))
        .retry(
            RetryPolicy::default()
                .with_max_retries(3)
                .with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    let (events, _guard) = capture_retries();
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap_err();
    match &err {
        Error::Transport { source, .. } => assert!(source.is_connect(), "{source:?}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    let retries: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.get("op").map(String::as_str) == Some("submit"))
        .cloned()
        .collect();
    assert_eq!(retries.len(), 3, "{retries:?}");
}

#[tokio::test]
async fn an_ingress_503_on_submit_is_retried_and_queues_one_job() {
    let mock = fast_mock()
        .faults(
            Faults::new(SEED)
                .rate(MockRoute::Submit, FaultKind::IngressUnavailable, 1.0)
                .limit(2),
        )
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let out = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap()
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .await
        .unwrap();
    assert_eq!(out.prompt, "a fox");
    assert_eq!(submits(&mock), 3);
    assert_eq!(mock.submissions(FluxLora::ID), 1);
    assert_eq!(mock.duplicate_submissions(), 0);
}

#[tokio::test]
async fn a_500_on_submit_is_not_retried() {
    let mock = fast_mock()
        .faults(Faults::new(SEED).rate(MockRoute::Submit, FaultKind::ServerError, 1.0))
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Api(e) if e.status == 500), "{err:?}");
    assert_eq!(submits(&mock), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_and_capped() {
    // Honoured: a 429 saying "1 second" delays the retry by (at least) a second.
    let mock = fast_mock()
        .faults(
            Faults::new(SEED)
                .rate(MockRoute::Submit, FaultKind::TooManyRequests, 1.0)
                .retry_after(1..=1)
                .limit(1),
        )
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
    let t = Instant::now();
    fal.submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(submits(&mock), 2);

    // Capped: "an hour" is cut to the policy's 10 ms.
    mock.set_faults(
        Faults::new(SEED)
            .rate(MockRoute::Submit, FaultKind::TooManyRequests, 1.0)
            .retry_after(3600..=3600)
            .limit(2),
    );
    let fal = mock
        .client_builder()
        .retry(
            RetryPolicy::default()
                .with_delays(Duration::from_millis(1), Duration::from_millis(2))
                .with_max_retry_after(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let t = Instant::now();
    fal.submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(submits(&mock), 5);
    assert_eq!(mock.fault_counts().get(FaultKind::TooManyRequests), 3);
}

// ---------------------------------------------------------------------------------------------
// waiting through broken answers

async fn one_job(fal: &FalClient) -> RequestHandle<GenerationOutput> {
    fal.submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_malformed_or_html_result_is_fetched_again() {
    for kind in [FaultKind::MalformedJson, FaultKind::HtmlPage] {
        let mock = fast_mock()
            .faults(
                Faults::new(SEED)
                    .rate(MockRoute::Result, kind, 1.0)
                    .limit(3),
            )
            .start()
            .await
            .unwrap();
        let fal = patient_client(&mock);
        let out = one_job(&fal)
            .await
            .wait()
            .timeout(WAIT)
            .poll_interval(POLL)
            .await;
        assert_eq!(
            out.map(|o| o.prompt).ok().as_deref(),
            Some("a fox"),
            "{kind}"
        );
        assert_eq!(mock.fault_counts().get(kind), 3, "{kind}");
    }
}

#[tokio::test]
async fn a_result_that_never_parses_is_a_decode_error_after_the_retries() {
    let mock = fast_mock()
        .faults(Faults::new(SEED).rate(MockRoute::Result, FaultKind::MalformedJson, 1.0))
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let job = one_job(&fal).await;
    let err = job
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(err.request_id(), Some(job.request_id()));
    assert_eq!(mock.fault_counts().get(FaultKind::MalformedJson), 11);
}

#[tokio::test]
async fn broken_status_answers_are_missed_polls() {
    let mock = fast_mock()
        .faults(
            Faults::new(SEED)
                .rate(MockRoute::Status, FaultKind::MalformedJson, 0.3)
                .rate(MockRoute::Status, FaultKind::HtmlPage, 0.3)
                .rate(MockRoute::Status, FaultKind::Reset, 0.2),
        )
        .start()
        .await
        .unwrap();
    mock.set_processing_time(Duration::from_millis(300));
    let fal = patient_client(&mock);
    let out = one_job(&fal)
        .await
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .stream(false)
        .await
        .unwrap();
    assert_eq!(out.prompt, "a fox");
    assert!(mock.fault_counts().total() > 0);
}

#[tokio::test]
async fn truncated_and_stalled_streams_fall_back_to_polling() {
    for kind in [FaultKind::TruncatedStream, FaultKind::StalledStream] {
        let mock = fast_mock()
            .faults(Faults::new(SEED).rate(MockRoute::Stream, kind, 1.0))
            .start()
            .await
            .unwrap();
        mock.set_processing_time(Duration::from_millis(100));
        let fal = patient_client(&mock);
        let job = one_job(&fal).await;
        let mut fell_back = false;
        let t = Instant::now();
        let out = job
            .wait()
            .timeout(WAIT)
            .poll_interval(POLL)
            .on_event(|e| {
                if matches!(e, WaitEvent::PollingFallback) {
                    fell_back = true;
                }
            })
            .await
            .unwrap();
        assert_eq!(out.prompt, "a fox", "{kind}");
        assert!(fell_back, "{kind}: no polling fallback");
        assert_eq!(mock.fault_counts().get(kind), 1, "{kind}");
        // Generous: the stalled stream is given up after the 200 ms idle timeout, not 15 s.
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{kind}: {:?}",
            t.elapsed()
        );
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn a_status_stream_that_never_answers_falls_back_within_the_idle_timeout() {
    // The stream's answer head is held back for up to 60 s: the idle timeout (200 ms) must cover
    // the opening of the stream too, not only the gaps between events.
    let mock = fast_mock()
        .faults(
            Faults::new(SEED)
                .rate(MockRoute::Stream, FaultKind::Slow, 1.0)
                .slow(Duration::from_secs(60)),
        )
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let job = one_job(&fal).await;
    let t = Instant::now();
    let mut fell_back = false;
    let out = job
        .wait()
        .timeout(WAIT)
        .poll_interval(POLL)
        .on_event(|e| fell_back |= matches!(e, WaitEvent::PollingFallback))
        .await
        .unwrap();
    assert_eq!(out.prompt, "a fox");
    assert!(fell_back);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    mock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// traces

type Fields = BTreeMap<String, String>;

/// A layer keeping the fields of every `retrying fal call` event.
struct RetryEvents(Arc<Mutex<Vec<Fields>>>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for RetryEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        if fields.get("message").map(String::as_str) == Some("retrying fal call") {
            fields.insert("level".into(), event.metadata().level().to_string());
            self.0.lock().unwrap().push(fields);
        }
    }
}

/// Capture retry events on this thread (the tests using it run on a current-thread runtime).
fn capture_retries() -> (Arc<Mutex<Vec<Fields>>>, tracing::subscriber::DefaultGuard) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(RetryEvents(events.clone()));
    (events, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn each_retry_emits_a_trace_event_with_op_and_attempt() {
    let mock = fast_mock()
        .faults(
            Faults::new(SEED)
                .rate(MockRoute::Result, FaultKind::ServerError, 1.0)
                .limit(2),
        )
        .start()
        .await
        .unwrap();
    let fal = patient_client(&mock);
    let job = one_job(&fal).await;
    let (events, _guard) = capture_retries();
    job.wait().timeout(WAIT).poll_interval(POLL).await.unwrap();
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:#?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["level"], "WARN");
        assert_eq!(e["op"], "result");
        assert_eq!(e["attempt"], (i + 1).to_string());
        assert_eq!(e["endpoint"], FluxLora::ID);
        assert_eq!(e["request_id"], job.request_id());
        assert!(e.contains_key("delay_ms"));
        assert!(e["error"].contains("500"), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// dropping a wait

#[tokio::test]
async fn a_dropped_wait_sends_nothing_more() {
    for stream in [true, false] {
        let mock = fast_mock().start().await.unwrap();
        mock.set_processing_time(Duration::from_secs(30));
        let fal = patient_client(&mock);
        let job = one_job(&fal).await;
        let id = job.request_id().to_owned();
        let about = |mock: &FalMock| {
            mock.requests()
                .iter()
                .filter(|r| r.path.contains(&id) && r.method == "GET")
                .count()
        };
        let waited = tokio::time::timeout(
            Duration::from_millis(150),
            job.wait().stream(stream).poll_interval(POLL),
        )
        .await;
        assert!(waited.is_err(), "the job cannot have finished");
        // A request already on the wire when the future was dropped may still be recorded by
        // the mock a moment later; let it land before counting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = about(&mock);
        assert!(before > 0, "the wait asked nothing");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            about(&mock),
            before,
            "stream={stream}: requests after the drop"
        );
        // And the job was not cancelled: dropping a wait is not a cancel.
        assert!(!mock.job(&id).unwrap().cancelled);
    }
}
