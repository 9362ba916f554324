//! Many jobs waited on at once (peak RSS, open files and CPU time of the client process), and
//! waits under faults (wall time and requests per job), with the mock in a child process (its
//! memory and CPU are not counted).
//!
//! ```text
//! cargo run --release --example bench_waits                  # 1,000 jobs at once through the crate (SSE)
//! cargo run --release --example bench_waits -- 10000         # 10,000 jobs at once
//! cargo run --release --example bench_waits -- 10000 bare    # bare reqwest, the same 3 calls
//! cargo run --release --example bench_waits -- 10000 poll    # the crate, polling every 500 ms
//!
//! # 300 jobs, 16 at a time, under the fault plan of issue 13, with the status stream and with
//! # polling only; then without faults (3 requests per job with the stream)
//! cargo run --release --example bench_waits -- 300 crate --concurrency 16 --faults 13
//! cargo run --release --example bench_waits -- 300 poll --concurrency 16 --faults 13
//! cargo run --release --example bench_waits -- 300 crate --concurrency 16
//! ```
//!
//! Each job (submit, wait, typed result) runs in a task; by default all jobs start at once
//! (`--concurrency` = jobs). The mock keeps each job `IN_PROGRESS` for `--processing-ms`
//! (default 10 s, so that the 10,000 waits overlap: submitting them all takes a few seconds
//! here) and sends a log line every `--processing-ms / --log-lines` (default 20 lines: one event
//! per 500 ms, half the wait's 1 s quiet period, so that a healthy stream is never hedged with
//! polls; `--log-lines 0` shows what a stream silent for the whole run costs). With the stream
//! each wait holds one connection (one socket) until its job completes: the harness raises its
//! soft open-files limit to 4096 + jobs (`setrlimit`, never above the hard limit), and says so
//! when it cannot (then run it under `ulimit -n` with more). Peak RSS is the process's `VmHWM`,
//! so each variant needs its own process (one run per command).
//!
//! `--faults SEED` makes the mock inject the plan of `support::wait_faults` (8% 429 with
//! `Retry-After`, 8% ingress 503, 6% dropped connections, 30% truncated and 20% stalled status
//! streams); its defaults here are the mock's default job shape (1 s processing, 5 log lines)
//! unless given. The harness reports what the mock saw: requests per job by route, jobs created
//! (must equal the jobs: a wait never submits), and the faults injected.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::jobs::{Setup, Variant};
use support::{fmt_dur, ServerConfig};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// CPU time (user + system) of the calling thread (`getrusage(RUSAGE_THREAD)`).
fn thread_cpu() -> Duration {
    // SAFETY: `getrusage` only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Many jobs waited on through the crate (status stream or polling) or bare reqwest; prints
/// peak RSS, client CPU, open files, and what the mock saw.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_waits")]
struct Args {
    /// Number of jobs.
    #[arg(default_value_t = 1000)]
    jobs: u64,
    /// `crate` (status stream, hedged by polls while silent), `poll` (the crate, polling only)
    /// or `bare`.
    #[arg(default_value = "crate", value_parser = ["crate", "poll", "bare"])]
    mode: String,
    /// Jobs in flight at once (default: all of them).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Inject the fault plan of issue 13 with this seed (`crate` and `poll` only).
    #[arg(long)]
    faults: Option<u64>,
    /// Time a job spends `IN_PROGRESS`, in ms (default 10000; 1000 with `--faults`).
    #[arg(long)]
    processing_ms: Option<u64>,
    /// Log lines per job, spread over the processing time (default 20; 5 with `--faults`).
    #[arg(long)]
    log_lines: Option<usize>,
    /// The crate's quiet period before it polls alongside a silent stream, in ms (default: the
    /// crate's, 1000).
    #[arg(long)]
    hedge_after_ms: Option<u64>,
    /// At most this many submits in flight at once (default: no limit, every job submits at
    /// once); the waits are not limited.
    #[arg(long)]
    submit_concurrency: Option<usize>,
    /// Print RSS and open files every 500 ms of the run.
    #[arg(long)]
    timeline: bool,
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
    if args.faults.is_some() && variant == Variant::Bare {
        eprintln!("--faults: the bare loop does not survive faults (it has no retries)");
        std::process::exit(2);
    }
    let concurrency = args.concurrency.unwrap_or(jobs as usize).max(1);
    let faulted = args.faults.is_some();
    let processing =
        Duration::from_millis(
            args.processing_ms
                .unwrap_or(if faulted { 1000 } else { 10_000 }),
        );
    let log_lines = args.log_lines.unwrap_or(if faulted { 5 } else { 20 });

    // A held stream per wait, and at worst a hedged poll or a result call beside it.
    let want = 4096 + 2 * concurrency as u64;
    let limit = support::raise_nofile(want);
    let (_, hard) = support::nofile_limit();
    if limit < concurrency as u64 + 64 {
        eprintln!(
            "open-files limit {limit} (hard {hard}) is too low for {concurrency} held streams; \
             run under `ulimit -n {want}` (raising the hard limit needs root)"
        );
    }
    let mut setup = Setup::with_server(ServerConfig {
        processing,
        log_lines,
        fault_seed: args.faults,
        ..ServerConfig::default()
    });
    if mode == "poll" {
        setup.poll = Some(fal_client::queue::DEFAULT_POLL_INTERVAL);
    }
    setup.hedge_after = args.hedge_after_ms.map(Duration::from_millis);
    setup.submit_limit = args.submit_concurrency;
    let stats0 = setup.server_stats();
    let server_cpu0 = setup.server_cpu();
    let rss_before = support::rss_mib();
    let fds_before = open_fds();

    // Open files, sampled every 100 ms on a thread of its own, whose CPU time is not counted
    // as the client's (a 10,000-entry /proc/self/fd takes a few ms to list).
    let peak_fds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let timeline = args.timeline;
    let sampler = {
        let (peak, stop) = (peak_fds.clone(), stop.clone());
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let fds = open_fds();
                peak.fetch_max(fds, Ordering::Relaxed);
                if timeline && i.is_multiple_of(5) {
                    eprintln!(
                        "  t={:>5.1}s rss={:>6.1} MiB open files={fds}",
                        t0.elapsed().as_secs_f64(),
                        support::rss_mib()
                    );
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            thread_cpu()
        })
    };
    let run = setup.run_counted(variant, jobs, concurrency);
    stop.store(true, Ordering::Relaxed);
    let sampler_cpu = sampler.join().unwrap_or_default();
    let peak = support::peak_rss_mib();
    let seen = setup.server_stats().since(&stats0);
    let server_cpu = setup.server_cpu().saturating_sub(server_cpu0);
    let cpu = run.cpu.saturating_sub(sampler_cpu);

    let per_job = |n: u64| n as f64 / jobs.max(1) as f64;
    println!(
        "{jobs} jobs, {concurrency} at a time{} ({label}; processing {}, {log_lines} log lines{}):",
        match args.submit_concurrency {
            Some(n) => format!(", at most {n} submits at a time"),
            None => String::new(),
        },
        fmt_dur(processing),
        match args.faults {
            Some(seed) => format!(", fault plan of issue 13, seed {seed}"),
            None => String::new(),
        }
    );
    println!(
        "  wall {}; {} jobs failed; most waits in flight at once: {}",
        fmt_dur(run.wall),
        run.failed,
        run.peak_in_flight
    );
    println!(
        "  requests per job {:.2} (submit {:.2}, status stream {:.2}, status poll {:.2}, result {:.2})",
        per_job(seen.requests),
        per_job(seen.submits),
        per_job(seen.streams),
        per_job(seen.polls),
        per_job(seen.results)
    );
    println!(
        "  jobs created on the mock: {} (of {jobs}: {})",
        seen.jobs_created,
        if seen.jobs_created == jobs {
            "none twice, none lost"
        } else {
            "NOT one per job"
        }
    );
    if !seen.faults.is_empty() {
        let list: Vec<String> = seen
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  faults injected: {}", list.join(", "));
    }
    println!(
        "  client CPU {} in all, {} per job (the open-files sampler's {} excluded)",
        fmt_dur(cpu),
        fmt_dur(cpu / jobs.max(1) as u32),
        fmt_dur(sampler_cpu)
    );
    println!(
        "  the mock's CPU (its own process) {} in all, {} per job",
        fmt_dur(server_cpu),
        fmt_dur(server_cpu / jobs.max(1) as u32)
    );
    let target = if jobs >= 10_000 { 400.0 } else { 64.0 };
    println!(
        "  peak RSS {peak:.1} MiB (VmHWM; {rss_before:.1} MiB before the jobs); target < {target} MiB: {}",
        if peak < target { "met" } else { "NOT met" }
    );
    println!(
        "  open files: peak {} (sampled every 100 ms; {fds_before} before); soft limit {limit}, hard {hard}",
        peak_fds.load(Ordering::Relaxed)
    );
}
