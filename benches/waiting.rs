//! Waiting latency: the time from the mock marking a job `COMPLETED` to the typed result in the
//! caller's hands, with the SSE status stream (healthy with log lines, healthy but silent, and
//! stalled after its first event: the wait's hedged polls) and with polling (50 ms and the
//! 500 ms default), plus the HTTP requests each wait costs.
//!
//! ```text
//! cargo bench --bench waiting
//! ```
//!
//! Not a criterion benchmark: criterion times the loop it drives and plans its iterations from
//! those times, whereas this latency is a fraction of each job's duration (the job runs for its
//! processing time first). The mock runs in-process (a latency, not a CPU figure); each variant
//! gets its own mock, so its request log counts that variant's requests only. Jobs start at
//! random offsets so that completions do not bunch up.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fal_client::models::{FluxLora, FluxLoraInput};
use fal_mock::{FalMock, FaultKind, Faults, MockRoute};
use support::{fmt_dur, percentiles};

const JOBS: usize = 100;
/// Processing time of a job: at least this, plus a random part, so that completions fall at a
/// random phase of the poll interval (a fixed multiple of it would flatter or punish polling).
const PROCESSING: Duration = Duration::from_millis(200);
const PROCESSING_RANDOM_MS: u64 = 1000;
/// Jobs start at a random offset within this window.
const SPREAD_MS: u64 = 1000;

struct Outcome {
    latencies: Vec<Duration>,
    requests_per_job: f64,
    wall: Duration,
}

/// How the jobs of a variant run and are waited on.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// `None` waits on the status stream, `Some(interval)` polls only.
    poll: Option<Duration>,
    /// Log lines per job, spread over its processing time (one stream event each).
    log_lines: usize,
    /// Every status stream stalls after its first event.
    stalled: bool,
}

async fn run(v: Variant) -> Outcome {
    let mut faults = Faults::none();
    if v.stalled {
        faults = Faults::new(1).rate(MockRoute::Stream, FaultKind::StalledStream, 1.0);
    }
    let mock = Arc::new(
        FalMock::builder()
            .queue_time(Duration::ZERO)
            .processing_time(PROCESSING)
            .log_lines(v.log_lines)
            .initial_queue_position(0)
            .faults(faults)
            .start()
            .await
            .expect("mock"),
    );
    let poll = v.poll;
    let fal = mock.client().expect("client");
    let start = Instant::now();
    let tasks: Vec<_> = (0..JOBS)
        .map(|_| {
            let fal = fal.clone();
            let mock = mock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..SPREAD_MS))).await;
                // Captured per job at submit (a racing task may take another random value).
                mock.set_processing_time(
                    PROCESSING + Duration::from_millis(fastrand::u64(0..PROCESSING_RANDOM_MS)),
                );
                let job = fal
                    .submit::<FluxLora>(&FluxLoraInput::new("a fox"))
                    .await
                    .expect("submit");
                let wait = match poll {
                    None => job.wait(),
                    Some(every) => job.wait().stream(false).poll_interval(every),
                };
                let out = wait.await.expect("wait");
                let in_hand = SystemTime::now();
                assert_eq!(out.images.len(), 1);
                (job.request_id().to_owned(), in_hand)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(JOBS);
    for t in tasks {
        let (id, in_hand) = t.await.expect("task");
        let completed = mock
            .job(&id)
            .and_then(|j| j.completed_at)
            .expect("the mock knows when the job completed");
        latencies.push(in_hand.duration_since(completed).unwrap_or_default());
    }
    let wall = start.elapsed();
    let requests = mock.requests().len();
    if let Ok(mock) = Arc::try_unwrap(mock) {
        mock.shutdown().await;
    }
    Outcome {
        latencies,
        requests_per_job: requests as f64 / JOBS as f64,
        wall,
    }
}

fn main() {
    support::serve_if_requested();
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing criterion-like to list
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = |name, log_lines, stalled| Variant {
        name,
        poll: None,
        log_lines,
        stalled,
    };
    let polling = |name, every| Variant {
        name,
        poll: Some(every),
        log_lines: 5,
        stalled: false,
    };
    let variants = [
        // A log line every processing/5 (at most 240 ms): never silent for the 1 s quiet period.
        stream("SSE status stream", 5, false),
        // IN_PROGRESS at once, then nothing until COMPLETED: silences of 0.2-1.2 s, the longer
        // ones hedged with polls.
        stream("SSE, silent (no log lines)", 0, false),
        // The first event, then silence: COMPLETED comes from a hedged poll.
        stream("SSE, stalled after 1 event", 5, true),
        polling("polling every 50 ms", Duration::from_millis(50)),
        polling(
            "polling every 500 ms (default)",
            fal_client::queue::DEFAULT_POLL_INTERVAL,
        ),
    ];
    println!(
        "{JOBS} jobs per variant, processing time {} + random 0..{PROCESSING_RANDOM_MS} ms, started \
         over {SPREAD_MS} ms;\nlatency = result in hand - the mock marking the job COMPLETED",
        fmt_dur(PROCESSING)
    );
    println!(
        "{:<32} {:>13} {:>12} {:>12} {:>12} {:>10}",
        "variant", "requests/job", "median", "p90", "max", "wall"
    );
    for v in variants {
        let name = v.name;
        let mut o = rt.block_on(run(v));
        let (p50, p90, max) = percentiles(&mut o.latencies);
        println!(
            "{:<32} {:>13.2} {:>12} {:>12} {:>12} {:>10}",
            name,
            o.requests_per_job,
            fmt_dur(p50),
            fmt_dur(p90),
            fmt_dur(max),
            fmt_dur(o.wall)
        );
        if name == "SSE status stream" {
            let met = o.requests_per_job == 3.0 && p50 <= Duration::from_millis(5);
            println!(
                "  target (SSE): 3 requests per job and median <= 5 ms: {}",
                if met { "met" } else { "NOT met" }
            );
        }
        if name.starts_with("SSE, stalled") {
            // The stall costs the quiet period (from the first event) at most, then one poll
            // interval: never the 15 s idle timeout.
            let met = max < Duration::from_millis(1500);
            println!(
                "  target (stalled): every wait within the 1 s quiet period + one 500 ms poll interval: {}",
                if met { "met" } else { "NOT met" }
            );
        }
    }
}
