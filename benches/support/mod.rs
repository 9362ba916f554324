//! Shared by the benchmarks (`benches/*.rs`) and the harnesses (`examples/bench_*.rs`, which
//! include this file with `#[path]`): a `FalMock` in a **separate process** (so that the
//! client's CPU and memory figures exclude the server's), and the process measurements.
//!
//! The server is this same executable started again with `FAL_BENCH_SERVER` set: every bench
//! or harness calls [`serve_if_requested`] first thing in `main`. The child prints the mock's
//! environment (`FAL_KEY=...`, `FAL_QUEUE_URL=...`, ...) on stdout, then `READY`, and serves
//! until its stdin closes (so it never outlives the parent). A `STATS` line on its stdin makes it
//! answer one `STATS ...` line with what the mock saw ([`ServerProcess::stats`]).

#![allow(dead_code)]

pub mod jobs;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use fal_mock::{FaultKind, Faults, MockRoute};

const ROLE: &str = "FAL_BENCH_SERVER";

/// How the server process runs the mock.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Time a job spends `IN_PROGRESS` (queue time is always 0).
    pub processing: Duration,
    /// Tokio worker threads of the server.
    pub workers: usize,
    /// Keep uploaded bytes (`false`: the mock's discard mode, only sizes and hashes).
    pub store_uploads: bool,
    /// Log lines per job, spread evenly over the processing time (0: none, so the status stream
    /// sends `IN_PROGRESS` at once and then nothing until `COMPLETED`).
    pub log_lines: usize,
    /// Inject the fault plan of the hedged-wait measurement ([`wait_faults`]) with this seed.
    pub fault_seed: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            processing: Duration::ZERO,
            workers: 2,
            store_uploads: true,
            log_lines: 0,
            fault_seed: None,
        }
    }
}

/// The fault plan of the hedged-wait measurement (issue 13): on every queue route 8% `429`
/// (with `Retry-After` 0 or 1 s) and 8% ingress `503`; on the idempotent ones (status, status
/// stream, result) also 6% dropped connections; and on the status stream also 30% truncated
/// streams (the first event, then a clean end) and 20% stalled ones (the first event, then
/// silence with the connection open). Submits are never dropped: a dropped submit is ambiguous
/// (fal may have queued the job) and the client rightly does not repeat it.
pub fn wait_faults(seed: u64) -> Faults {
    let all = [
        MockRoute::Submit,
        MockRoute::Status,
        MockRoute::Stream,
        MockRoute::Result,
    ];
    let idempotent = [MockRoute::Status, MockRoute::Stream, MockRoute::Result];
    Faults::new(seed)
        .rate_on(&all, FaultKind::TooManyRequests, 0.08)
        .rate_on(&all, FaultKind::IngressUnavailable, 0.08)
        .rate_on(&idempotent, FaultKind::Reset, 0.06)
        .rate(MockRoute::Stream, FaultKind::TruncatedStream, 0.30)
        .rate(MockRoute::Stream, FaultKind::StalledStream, 0.20)
        .retry_after(0..=1)
}

/// What the mock in the server process saw, from [`ServerProcess::stats`].
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Every request received (faulted ones included).
    pub requests: u64,
    /// `POST /queue/...` (submits, accepted or not).
    pub submits: u64,
    /// `GET .../status/stream`.
    pub streams: u64,
    /// `GET .../status`.
    pub polls: u64,
    /// `GET .../requests/{id}`.
    pub results: u64,
    /// Jobs the mock accepted (queue submits it answered with a request id).
    pub jobs_created: u64,
    /// Injected faults per kind.
    pub faults: BTreeMap<String, u64>,
}

impl ServerStats {
    fn line(&self) -> String {
        let mut l = format!(
            "STATS requests={} submits={} streams={} polls={} results={} jobs_created={}",
            self.requests, self.submits, self.streams, self.polls, self.results, self.jobs_created
        );
        for (k, v) in &self.faults {
            l.push_str(&format!(" fault.{k}={v}"));
        }
        l
    }

    fn parse(line: &str) -> Option<Self> {
        let mut s = Self::default();
        for field in line.strip_prefix("STATS")?.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "requests" => s.requests = v,
                "submits" => s.submits = v,
                "streams" => s.streams = v,
                "polls" => s.polls = v,
                "results" => s.results = v,
                "jobs_created" => s.jobs_created = v,
                other => {
                    s.faults.insert(other.strip_prefix("fault.")?.to_owned(), v);
                }
            }
        }
        Some(s)
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            requests: self.requests - before.requests,
            submits: self.submits - before.submits,
            streams: self.streams - before.streams,
            polls: self.polls - before.polls,
            results: self.results - before.results,
            jobs_created: self.jobs_created - before.jobs_created,
            faults: self
                .faults
                .iter()
                .map(|(k, v)| (k.clone(), v - before.faults.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect(),
        }
    }

    fn of(mock: &fal_mock::FalMock) -> Self {
        let mut s = Self::default();
        for r in mock.requests() {
            s.requests += 1;
            let p = r.path.trim_end_matches('/');
            if !p.starts_with("/queue/") {
                continue;
            }
            match r.method.as_str() {
                "POST" => s.submits += 1,
                "GET" if p.ends_with("/status/stream") => s.streams += 1,
                "GET" if p.ends_with("/status") => s.polls += 1,
                "GET" if p.contains("/requests/") => s.results += 1,
                _ => {}
            }
        }
        s.jobs_created = mock.submissions(BENCH_ENDPOINT) as u64;
        s.faults = mock
            .fault_counts()
            .by_kind
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        s
    }
}

/// The endpoint every bench job is submitted to.
pub const BENCH_ENDPOINT: &str = "fal-ai/flux-lora";

/// The mock running in a child process. Dropping it closes the child's stdin (it exits) and
/// reaps it.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// `FAL_KEY`, `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`, as the mock reports them.
    pub env: Vec<(String, String)>,
}

impl ServerProcess {
    /// Start the server (this executable again) and wait until it serves.
    pub fn spawn(cfg: ServerConfig) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .env(
                ROLE,
                format!(
                    "{}:{}:{}:{}:{}",
                    cfg.processing.as_micros(),
                    cfg.workers,
                    u8::from(cfg.store_uploads),
                    cfg.log_lines,
                    cfg.fault_seed
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                ),
            )
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| other("no stdout"))?;
        let mut env = Vec::new();
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while stdout.read_line(&mut line)? > 0 {
            let l = line.trim_end();
            if l == "READY" {
                return Ok(Self {
                    child,
                    stdin,
                    stdout,
                    env,
                });
            }
            if let Some((k, v)) = l.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
            line.clear();
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(other("the server process exited before READY"))
    }

    /// The value of one of the server's environment variables.
    pub fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// A `FalClientBuilder` pointed at the server.
    pub fn client_builder(&self) -> fal_client::FalClientBuilder {
        fal_client::FalClient::builder()
            .key(self.var("FAL_KEY"))
            .queue_url(self.var("FAL_QUEUE_URL"))
            .run_url(self.var("FAL_RUN_URL"))
            .rest_url(self.var("FAL_REST_URL"))
            .cdn_url(self.var("FAL_CDN_URL"))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) of the server process so far (`/proc/{pid}/stat`; zero when
    /// it cannot be read).
    pub fn cpu_time(&self) -> Duration {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return Duration::ZERO;
        };
        // Fields after the command name (which may hold spaces, so split after its `)`):
        // state is field 3, utime and stime are fields 14 and 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return Duration::ZERO;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // SAFETY: plain libc call without pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let t = ticks(11) + ticks(12);
        Duration::from_micros(t * 1_000_000 / hz)
    }

    /// What the mock saw so far (requests by route, jobs created, faults injected).
    pub fn stats(&mut self) -> std::io::Result<ServerStats> {
        let stdin = self.stdin.as_mut().ok_or_else(|| other("no stdin"))?;
        stdin.write_all(b"STATS\n")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        ServerStats::parse(line.trim_end()).ok_or_else(|| other("unreadable STATS answer"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the server shuts down
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn other(msg: &str) -> std::io::Error {
    std::io::Error::other(msg.to_owned())
}

/// When this process was started as the server, run the mock until stdin closes, then exit.
/// Otherwise return at once.
pub fn serve_if_requested() {
    let Ok(spec) = std::env::var(ROLE) else {
        return;
    };
    let mut fields = spec.split(':');
    let mut next = |default: u64| {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or(default)
    };
    let processing = Duration::from_micros(next(0));
    let workers = next(2).max(1) as usize;
    let store_uploads = next(1) != 0;
    let log_lines = next(0) as usize;
    let faults = fields
        .next()
        .and_then(|f| f.parse().ok())
        .map_or_else(Faults::none, wait_faults);
    // Many held status streams need many sockets.
    raise_nofile(65536);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async move {
        let mock = fal_mock::FalMock::builder()
            .queue_time(Duration::ZERO)
            .processing_time(processing)
            .log_lines(log_lines)
            .initial_queue_position(0)
            .store_uploads(store_uploads)
            .faults(faults)
            .start()
            .await
            .expect("start the mock");
        let mut out = std::io::stdout().lock();
        for (k, v) in mock.env_vars() {
            writeln!(out, "{k}={v}").expect("stdout");
        }
        writeln!(out, "CDN_URL={}", mock.cdn_url()).expect("stdout");
        writeln!(out, "READY").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        // Serve until the parent closes our stdin (or dies), answering its `STATS` lines.
        let mock = std::sync::Arc::new(mock);
        let shared = mock.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim() == "STATS" {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", ServerStats::of(&shared).line());
                    let _ = out.flush();
                }
            }
        })
        .await;
        if let Ok(mock) = std::sync::Arc::try_unwrap(mock) {
            mock.shutdown().await;
        }
    });
    std::process::exit(0);
}

/// CPU time (user + system) of this whole process, all threads, including finished ones
/// (`getrusage(RUSAGE_SELF)`).
pub fn cpu_time() -> Duration {
    let (user, sys) = cpu_times();
    user + sys
}

/// User and system CPU time of this whole process (`getrusage(RUSAGE_SELF)`).
pub fn cpu_times() -> (Duration, Duration) {
    // SAFETY: `getrusage` only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// A field of `/proc/self/status` in KiB (`VmHWM`: peak RSS, `VmRSS`: current RSS).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM").unwrap_or(0) as f64 / 1024.0
}

/// Current resident set size of this process in MiB (`VmRSS`).
pub fn rss_mib() -> f64 {
    proc_status_kib("VmRSS").unwrap_or(0) as f64 / 1024.0
}

/// Soft and hard limits on open files (`RLIMIT_NOFILE`).
pub fn nofile_limit() -> (u64, u64) {
    // SAFETY: `getrlimit` only writes into the zeroed struct we pass.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return (0, 0);
    }
    (rl.rlim_cur as u64, rl.rlim_max as u64)
}

/// Raise the soft open-files limit towards `want` (never above the hard limit). Returns the
/// soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = nofile_limit();
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    let rl = libc::rlimit {
        rlim_cur: new as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } == 0 {
        new
    } else {
        soft
    }
}

/// Median, 90th percentile and maximum of `v` (sorted in place).
pub fn percentiles(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), v[v.len() - 1])
}

/// `1.234 ms`-style formatting with three significant decimals.
pub fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
