//! Shared by the benchmarks (`benches/*.rs`) and the harnesses (`examples/bench_*.rs`, which
//! include this file with `#[path]`): a `FalMock` in a **separate process** (so that the
//! client's CPU and memory figures exclude the server's), and the process measurements.
//!
//! The server is this same executable started again with `FAL_BENCH_SERVER` set: every bench
//! or harness calls [`serve_if_requested`] first thing in `main`. The child prints the mock's
//! environment (`FAL_KEY=...`, `FAL_QUEUE_URL=...`, ...) on stdout, then `READY`, and serves
//! until its stdin closes (so it never outlives the parent).

#![allow(dead_code)]

pub mod jobs;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            processing: Duration::ZERO,
            workers: 2,
            store_uploads: true,
        }
    }
}

/// The mock running in a child process. Dropping it closes the child's stdin (it exits) and
/// reaps it.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
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
                    "{}:{}:{}",
                    cfg.processing.as_micros(),
                    cfg.workers,
                    u8::from(cfg.store_uploads)
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
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line == "READY" {
                return Ok(Self { child, stdin, env });
            }
            if let Some((k, v)) = line.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
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
            .log_lines(0)
            .initial_queue_position(0)
            .store_uploads(store_uploads)
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
        // Serve until the parent closes our stdin (or dies).
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await;
        mock.shutdown().await;
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
