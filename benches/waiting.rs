//! Waiting latency: the time from the mock marking a job `COMPLETED` to the typed result in the
//! caller's hands, with the SSE status stream and with polling (50 ms and the 500 ms default),
//! plus the HTTP requests each wait costs.
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
use fal_mock::FalMock;
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

/// `poll`: `None` waits on the status stream, `Some(interval)` polls only.
async fn run(poll: Option<Duration>) -> Outcome {
    let mock = Arc::new(
        FalMock::builder()
            .queue_time(Duration::ZERO)
            .processing_time(PROCESSING)
            .log_lines(0)
            .initial_queue_position(0)
            .start()
            .await
            .expect("mock"),
    );
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
    let variants = [
        ("SSE status stream", None),
        ("polling every 50 ms", Some(Duration::from_millis(50))),
        (
            "polling every 500 ms (default)",
            Some(fal_client::queue::DEFAULT_POLL_INTERVAL),
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
    for (name, poll) in variants {
        let mut o = rt.block_on(run(poll));
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
        if name.starts_with("SSE") {
            let met = o.requests_per_job == 3.0 && p50 <= Duration::from_millis(5);
            println!(
                "  target (SSE): 3 requests per job and median <= 5 ms: {}",
                if met { "met" } else { "NOT met" }
            );
        }
    }
}
