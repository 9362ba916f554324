//! 1,000 jobs waited on at once: peak RSS and CPU time of the client process, with the mock in
//! a child process (its memory and CPU are not counted).
//!
//! ```text
//! cargo run --release --example bench_waits                 # 1000 jobs through the crate (SSE)
//! cargo run --release --example bench_waits -- 1000 poll    # the crate, polling every 500 ms
//! cargo run --release --example bench_waits -- 1000 bare    # bare reqwest, the same 3 calls
//! ```
//!
//! Each job (submit, wait, typed result) runs in its own task, all started at once; the mock
//! keeps each job `IN_PROGRESS` for 3 s, so every wait is in flight at the same time. With SSE
//! each wait holds one connection (one socket) for those 3 s: the harness raises its soft
//! open-files limit to 4096 + jobs (`setrlimit`, never above the hard limit), and says so when
//! it cannot (then run it under `ulimit -n 4096` or more). Peak RSS is the process's `VmHWM`,
//! so each variant needs its own process (one run per command).

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::jobs::{Setup, Variant};
use support::{fmt_dur, ServerConfig};

const PROCESSING: Duration = Duration::from_secs(3);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Many jobs waited on at once through the crate (status stream or polling) or bare reqwest;
/// prints peak RSS, client CPU and open files.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_waits")]
struct Args {
    /// Number of jobs, all in flight at once.
    #[arg(default_value_t = 1000)]
    jobs: u64,
    /// `crate` (status stream), `poll` (the crate, polling) or `bare`.
    #[arg(default_value = "crate", value_parser = ["crate", "poll", "bare"])]
    mode: String,
}

fn main() {
    support::serve_if_requested();
    let args = <Args as clap::Parser>::parse();
    let jobs = args.jobs;
    let mode = args.mode.as_str();
    let (variant, label) = match mode {
        "poll" => (Variant::Crate, "crate, polling every 500 ms"),
        "bare" => (Variant::Bare, "bare reqwest, SSE status stream"),
        _ => (Variant::Crate, "crate, SSE status stream"),
    };

    let want = 4096 + jobs;
    let limit = support::raise_nofile(want);
    if limit < jobs + 64 {
        eprintln!(
            "open-files limit {limit} is too low for {jobs} held streams; run under `ulimit -n {want}`"
        );
    }
    let mut setup = Setup::with_server(ServerConfig {
        processing: PROCESSING,
        ..ServerConfig::default()
    });
    if mode == "poll" {
        setup.poll = Some(fal_client::queue::DEFAULT_POLL_INTERVAL);
    }
    let rss_before = support::rss_mib();
    let fds_before = open_fds();

    let peak_fds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak_fds.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(open_fds(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (wall, cpu) = setup.run(variant, jobs, jobs as usize);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peak = support::peak_rss_mib();

    println!(
        "{jobs} jobs waited on at once ({label}; processing {}):",
        fmt_dur(PROCESSING)
    );
    println!(
        "  wall {} ({} beyond the processing time)",
        fmt_dur(wall),
        fmt_dur(wall.saturating_sub(PROCESSING))
    );
    println!(
        "  client CPU {} in all, {} per job",
        fmt_dur(cpu),
        fmt_dur(cpu / jobs.max(1) as u32)
    );
    println!(
        "  peak RSS {peak:.1} MiB (VmHWM; {rss_before:.1} MiB before the jobs); target < 64 MiB: {}",
        if peak < 64.0 { "met" } else { "NOT met" }
    );
    println!(
        "  open files: peak {} (sampled every 50 ms; {fds_before} before); soft limit {limit}",
        peak_fds.load(Ordering::Relaxed)
    );
}
