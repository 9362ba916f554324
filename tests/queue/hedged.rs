//! Hedged waits: while the status stream is silent for the quiet period (`Wait::hedge_after`,
//! 1 s by default), the wait also polls status, one poll per poll interval; the first of the
//! stream and a poll to see `COMPLETED` wins, polls stop when the stream speaks again, and each
//! log line is reported once.
//!
//! Real time: the mock and the scripted server are reached over loopback TCP, and tokio's paused
//! clock advances on every wait for I/O (it would fire the quiet period before the first event
//! arrives). So the tests use the default timings (1 s quiet period, 500 ms polls) and assert
//! request counts between bounds that follow from the schedule (poll `k` of a silence cannot start
//! before `quiet + k * interval`), and elapsed times only against generous limits far below the
//! 15 s idle timeout that a wait without hedging would sit out.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fal_client::models::{FluxLora, FluxLoraInput};
use fal_client::queue::{RequestHandle, WaitEvent};
use fal_client::{Endpoint, FalClient};
use fal_mock::{FalMock, FalMockBuilder, FaultKind, Faults, MockRoute, RecordedRequest};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The default poll interval.
const POLL: Duration = Duration::from_millis(500);
/// The default quiet period.
const QUIET: Duration = Duration::from_secs(1);
/// What a loaded machine may add to an elapsed time.
const SLACK: Duration = Duration::from_millis(1500);

/// The most polls a wait can make on a stream silent from its start until the job completes,
/// `silence` later: poll `k` (from 0) starts no earlier than `QUIET + k * POLL`, and one
/// starting at or after completion sees `COMPLETED`.
fn polls_before(silence: Duration) -> usize {
    let span = silence.saturating_sub(QUIET).as_millis();
    span.div_ceil(POLL.as_millis()) as usize + 1
}

// ---------------------------------------------------------------------------------------------
// against FalMock

fn mock(processing: Duration, log_lines: usize) -> FalMockBuilder {
    FalMock::builder()
        .queue_time(Duration::ZERO)
        .initial_queue_position(0)
        .processing_time(processing)
        .log_lines(log_lines)
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    submits: usize,
    streams: usize,
    polls: usize,
    results: usize,
}

fn counts(requests: &[RecordedRequest]) -> Counts {
    let mut c = Counts::default();
    for r in requests {
        let p = r.path.trim_end_matches('/');
        match r.method.as_str() {
            "POST" if p.starts_with("/queue/") => c.submits += 1,
            "GET" if p.ends_with("/status/stream") => c.streams += 1,
            "GET" if p.ends_with("/status") => c.polls += 1,
            "GET" if p.contains("/requests/") => c.results += 1,
            _ => {}
        }
    }
    c
}

/// What a wait reported, one line per event.
fn recorder() -> (Arc<Mutex<Vec<String>>>, impl FnMut(WaitEvent<'_>) + Send) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |e: WaitEvent<'_>| {
        let line = match e {
            WaitEvent::Queued { position } => format!("queued {position}"),
            WaitEvent::Started => "started".into(),
            WaitEvent::Log(l) => format!("log {}", l.message),
            WaitEvent::Completed => "completed".into(),
            WaitEvent::PollingFallback => "polling".into(),
            _ => "other".into(),
        };
        s.lock().unwrap().push(line);
    })
}

fn logs_of(seen: &[String]) -> Vec<String> {
    seen.iter()
        .filter_map(|l| l.strip_prefix("log ").map(str::to_owned))
        .collect()
}

/// The full log of a completed job, as a poll sees it.
async fn full_log(job: &RequestHandle<impl Send + 'static>) -> Vec<String> {
    job.status(true)
        .await
        .unwrap()
        .logs()
        .iter()
        .map(|l| l.message.clone())
        .collect()
}

#[tokio::test]
async fn a_stalled_stream_costs_about_one_poll_interval_not_the_idle_timeout() {
    // Every status stream sends its first event, then stays open and silent; the job runs 2 s
    // and logs 10 lines. Without hedging the wait would sit out the 15 s idle timeout.
    let processing = Duration::from_secs(2);
    let mock = mock(processing, 10)
        .faults(Faults::new(7).rate(MockRoute::Stream, FaultKind::StalledStream, 1.0))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    let t = Instant::now();
    let (seen, cb) = recorder();
    let out = job.wait().on_event(cb).await.unwrap();
    let waited = t.elapsed();
    assert_eq!(out.images.len(), 1);
    assert_eq!(mock.fault_counts().get(FaultKind::StalledStream), 1);

    // Completed at 2 s, seen by the first poll after it: one poll interval later at most (the
    // limit leaves a loaded machine a second and a half; the idle timeout is 15 s).
    assert!(waited >= processing, "{waited:?}");
    assert!(waited < processing + POLL + SLACK, "{waited:?}");
    // One stream (kept open, never reopened), polls from the quiet period on, one per interval
    // (1.0, 1.5, 2.0 s: the third cannot start before the job completed), the result once, and
    // never a second submit.
    let c = counts(&mock.requests());
    assert_eq!((c.submits, c.streams, c.results), (1, 1, 1), "{c:?}");
    assert!((1..=polls_before(processing)).contains(&c.polls), "{c:?}");
    assert_eq!(mock.submissions(FluxLora::ID), 1);

    // Reported once each: the stream's first line, then the polls' new lines.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|l| *l == "polling").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(seen.first().map(String::as_str), Some("started"));
    assert_eq!(seen.last().map(String::as_str), Some("completed"));
    let logs = logs_of(&seen);
    assert_eq!(logs, full_log(&job).await);
    assert_eq!(logs.len(), 10);
    mock.shutdown().await;
}

#[tokio::test]
async fn a_healthy_stream_makes_exactly_three_requests_per_job() {
    // The mock's own default job (queued 300 ms from position 2, running 1 s with 5 log lines):
    // an event at least every 200 ms, well within the quiet period.
    let mock = FalMock::start().await.unwrap();
    let fal = mock.client().unwrap();
    let jobs = 20;
    let waits = (0..jobs).map(|i| {
        let fal = fal.clone();
        async move {
            let job = fal
                .submit::<FluxLora>(&FluxLoraInput::new(format!("fox {i}")))
                .await
                .unwrap();
            let (seen, cb) = recorder();
            job.wait().on_event(cb).await.unwrap();
            let seen = seen.lock().unwrap().clone();
            (job, seen)
        }
    });
    let done = futures::future::join_all(waits).await;
    let c = counts(&mock.requests());
    assert_eq!(
        c,
        Counts {
            submits: jobs,
            streams: jobs,
            polls: 0,
            results: jobs
        }
    );
    assert_eq!(mock.requests().len(), 3 * jobs);
    for (job, seen) in &done {
        assert!(!seen.iter().any(|l| l == "polling"), "{seen:?}");
        assert_eq!(
            seen[..3],
            ["queued 2", "queued 1", "queued 0"].map(String::from)
        );
        assert_eq!(logs_of(seen), full_log(job).await);
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn a_silent_healthy_stream_is_hedged_unless_the_quiet_period_covers_the_silence() {
    // No log lines: IN_PROGRESS at once, then nothing until COMPLETED 2 s later. That silence is
    // healthy, but the wait cannot tell it from a stall: past the quiet period it polls (the
    // cost of hedging); a quiet period longer than the silence makes no poll.
    let processing = Duration::from_secs(2);
    let mock = mock(processing, 0).start().await.unwrap();
    let fal = mock.client().unwrap();

    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    job.wait().logs(false).await.unwrap();
    let c = counts(&mock.requests());
    // Polls at 1.0 and 1.5 s (one at 2.0 s races the COMPLETED event).
    assert!((2..=polls_before(processing)).contains(&c.polls), "{c:?}");
    assert_eq!((c.submits, c.streams, c.results), (1, 1, 1), "{c:?}");

    let before = mock.requests().len();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("another fox"))
        .await
        .unwrap();
    job.wait()
        .logs(false)
        .hedge_after(Duration::from_secs(4))
        .await
        .unwrap();
    assert_eq!(mock.requests().len() - before, 3, "submit, stream, result");
    mock.shutdown().await;
}

#[tokio::test]
async fn a_broken_stream_leaves_polling_alone_and_polling_is_reported_once() {
    // Truncated streams end after their first event: the wait polls alone from then on.
    let mock = mock(Duration::from_secs(2), 4)
        .faults(Faults::new(7).rate(MockRoute::Stream, FaultKind::TruncatedStream, 1.0))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    let t = Instant::now();
    let (seen, cb) = recorder();
    job.wait().on_event(cb).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2) + POLL + SLACK,
        "{:?}",
        t.elapsed()
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|l| *l == "polling").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(logs_of(&seen), full_log(&job).await);
    let c = counts(&mock.requests());
    assert_eq!((c.submits, c.streams, c.results), (1, 1, 1), "{c:?}");
    // Polls right after the stream ended (0 s), then every interval up to 2.0 s at most (the
    // last poll counted is the log read above).
    assert!((3..=5).contains(&(c.polls - 1)), "{c:?}");
    mock.shutdown().await;
}

#[tokio::test]
async fn polling_only_waits_and_a_huge_quiet_period_are_unchanged() {
    let mock = mock(Duration::from_secs(1), 2).start().await.unwrap();
    let fal = mock.client().unwrap();
    // Polling only: no stream, no polling event, polls at 0, 0.5 and 1.0 s at most.
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
        .await
        .unwrap();
    let (seen, cb) = recorder();
    job.wait().stream(false).on_event(cb).await.unwrap();
    assert!(!seen.lock().unwrap().iter().any(|l| l == "polling"));
    let c = counts(&mock.requests());
    assert_eq!((c.streams, c.results), (0, 1), "{c:?}");
    assert!((2..=3).contains(&c.polls), "{c:?}");
    // A quiet period too large to add to an instant: never hedged.
    mock.set_processing_time(Duration::from_millis(1200));
    let before = mock.requests().len();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("another fox"))
        .await
        .unwrap();
    job.wait()
        .logs(false)
        .hedge_after(Duration::MAX)
        .await
        .unwrap();
    assert_eq!(mock.requests().len() - before, 3);
    mock.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// against a scripted server: a stream that goes quiet, then speaks again

/// One stream event: sent after `after` of silence.
struct Step {
    after: Duration,
    status: Value,
}

#[derive(Clone)]
struct Script {
    steps: Arc<Vec<(Duration, String)>>,
    poll_answer: Arc<Value>,
    polls: Arc<Mutex<Vec<Instant>>>,
    streams: Arc<Mutex<usize>>,
    results: Arc<Mutex<usize>>,
}

async fn stream_route(State(s): State<Script>) -> Response {
    *s.streams.lock().unwrap() += 1;
    let steps = s.steps.clone();
    let body = futures::stream::unfold(0usize, move |i| {
        let steps = steps.clone();
        async move {
            let (after, data) = steps.get(i)?.clone();
            tokio::time::sleep(after).await;
            Some((Ok::<_, Infallible>(Bytes::from(data)), i + 1))
        }
    });
    (
        [(CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn status_route(State(s): State<Script>) -> Json<Value> {
    s.polls.lock().unwrap().push(Instant::now());
    Json((*s.poll_answer).clone())
}

async fn result_route(State(s): State<Script>) -> Json<Value> {
    *s.results.lock().unwrap() += 1;
    Json(json!({"ok": true}))
}

/// A server for request `r` of `fal-ai/x` whose status stream follows `steps`, and whose status
/// polls answer `poll_answer`.
async fn scripted(steps: Vec<Step>, poll_answer: Value) -> (Script, FalClient) {
    let script = Script {
        steps: Arc::new(
            steps
                .into_iter()
                .map(|s| (s.after, format!("data: {}\n\n", s.status)))
                .collect(),
        ),
        poll_answer: Arc::new(poll_answer),
        polls: Arc::default(),
        streams: Arc::default(),
        results: Arc::default(),
    };
    let app = Router::new()
        .route("/fal-ai/x/requests/r/status/stream", get(stream_route))
        .route("/fal-ai/x/requests/r/status", get(status_route))
        .route("/fal-ai/x/requests/r", get(result_route))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fal = FalClient::builder()
        .key("k")
        .queue_url(format!("http://{addr}"))
        .build()
        .unwrap();
    (script, fal)
}

fn log(m: &str) -> Value {
    json!({"message": m, "level": "INFO", "source": "USER", "timestamp": "2026-11-29T10:00:00Z"})
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn polls_stop_when_the_stream_speaks_again_and_logs_are_reported_once() {
    // The stream brings line a, is silent 2.4 s (polls at 1.0, 1.5, 2.0 s bring a, b, c), then
    // brings b, c, d (new since its own last event) and, 0.6 s later, e with COMPLETED.
    let steps = vec![
        Step {
            after: ms(0),
            status: json!({"status": "IN_PROGRESS", "logs": [log("a")]}),
        },
        Step {
            after: ms(2400),
            status: json!({"status": "IN_PROGRESS", "logs": [log("b"), log("c"), log("d")]}),
        },
        Step {
            after: ms(600),
            status: json!({"status": "COMPLETED", "logs": [log("e")]}),
        },
    ];
    let polled = json!({"status": "IN_PROGRESS", "logs": [log("a"), log("b"), log("c")]});
    let (script, fal) = scripted(steps, polled).await;
    let h: RequestHandle = fal.resume("fal-ai/x", "r").unwrap();
    let t = Instant::now();
    let (seen, cb) = recorder();
    let out = h.wait().on_event(cb).await.unwrap();
    assert_eq!(out, json!({"ok": true}));
    // The polls never say COMPLETED: the stream's event ended the wait.
    let waited = t.elapsed();
    assert!(
        waited >= ms(3000) && waited < ms(3000) + SLACK,
        "{waited:?}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "started",
            "log a",
            "polling",
            "log b",
            "log c",
            "log d",
            "log e",
            "completed"
        ]
    );
    // No poll after the stream spoke again at 2.4 s (the next would have started at 2.5 s): its
    // next silence (0.6 s) is shorter than the quiet period.
    let polls = script.polls.lock().unwrap().clone();
    assert!((1..=3).contains(&polls.len()), "{polls:?}");
    assert!(polls[0] - t >= QUIET, "{:?}", polls[0] - t);
    assert_eq!(*script.streams.lock().unwrap(), 1);
    assert_eq!(*script.results.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_late_stream_event_still_counts_while_polls_run() {
    // The stream is silent 3.2 s after its first event, then sends COMPLETED; polls (every
    // 500 ms from 1 s) keep answering IN_PROGRESS. The stream's late event ends the wait at
    // once, and the result is fetched once.
    let steps = vec![
        Step {
            after: ms(0),
            status: json!({"status": "IN_QUEUE", "queue_position": 0}),
        },
        Step {
            after: ms(3200),
            status: json!({"status": "COMPLETED", "logs": [log("done")]}),
        },
    ];
    let (script, fal) = scripted(steps, json!({"status": "IN_PROGRESS", "logs": []})).await;
    let h: RequestHandle = fal.resume("fal-ai/x", "r").unwrap();
    let t = Instant::now();
    let (seen, cb) = recorder();
    h.wait().on_event(cb).await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= ms(3200) && waited < ms(3200) + SLACK,
        "{waited:?}"
    );
    // From 1.0 s, one per 500 ms: at most 1.0 to 3.0 s.
    let polls = script.polls.lock().unwrap().len();
    assert!((3..=5).contains(&polls), "{polls}");
    assert_eq!(*script.results.lock().unwrap(), 1);
    assert_eq!(
        *seen.lock().unwrap(),
        ["queued 0", "polling", "started", "log done", "completed"]
    );
}

#[tokio::test]
async fn the_quiet_period_and_poll_interval_are_configurable() {
    // Quiet period 300 ms (not 1 s), polls every 200 ms: the stream is silent after its first
    // event, and the first poll, at 0.3 s, sees COMPLETED; the stream's own (5 s later) is not
    // waited for.
    let steps = vec![
        Step {
            after: ms(0),
            status: json!({"status": "IN_PROGRESS"}),
        },
        Step {
            after: ms(5000),
            status: json!({"status": "COMPLETED"}),
        },
    ];
    let (script, fal) = scripted(steps, json!({"status": "COMPLETED"})).await;
    let h: RequestHandle = fal.resume("fal-ai/x", "r").unwrap();
    let t = Instant::now();
    h.wait()
        .logs(false)
        .hedge_after(ms(300))
        .poll_interval(ms(200))
        .await
        .unwrap();
    let waited = t.elapsed();
    assert!(waited >= ms(300), "{waited:?}");
    assert!(
        waited < ms(5000),
        "the first poll sees COMPLETED: {waited:?}"
    );
    assert_eq!(script.polls.lock().unwrap().len(), 1);
    assert_eq!(*script.results.lock().unwrap(), 1);
}
