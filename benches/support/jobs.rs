//! The job of the lifecycle benchmark, through the crate and through bare `reqwest`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fal_client::models::{FluxLora, FluxLoraInput, GenerationOutput};
use fal_client::FalClient;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use serde::Deserialize;

use super::{cpu_time, ServerConfig, ServerProcess, ServerStats};

/// Waits in flight now, and the most at once (between a job's submit answer and the end of its
/// wait).
#[derive(Default)]
pub struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
    /// At most this many submits at a time (`None`: no limit).
    submits: Option<tokio::sync::Semaphore>,
}

impl InFlight {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }

    /// The most waits in flight at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// A permit to submit (always granted without a limit).
    async fn submit_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.submits {
            Some(s) => s.acquire().await.ok(),
            None => None,
        }
    }
}

/// The bare `reqwest` loop: the three calls, nothing else.
pub struct Bare {
    http: reqwest::Client,
    auth: HeaderValue,
    submit_url: String,
}

#[derive(Deserialize)]
struct Submitted {
    status_url: String,
    response_url: String,
}

impl Bare {
    pub async fn job(&self, input: &FluxLoraInput) -> GenerationOutput {
        self.job_counted(input, &InFlight::default()).await
    }

    async fn job_counted(&self, input: &FluxLoraInput, in_flight: &InFlight) -> GenerationOutput {
        let body = Bytes::from(serde_json::to_vec(input).expect("encode"));
        let permit = in_flight.submit_permit().await;
        let sub = self
            .http
            .post(&self.submit_url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("submit")
            .bytes()
            .await
            .expect("submit body");
        drop(permit);
        let sub: Submitted = serde_json::from_slice(&sub).expect("submit answer");
        in_flight.enter();
        let mut events = self
            .http
            .get(format!("{}/stream?logs=1", sub.status_url))
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("status stream")
            .bytes_stream();
        while let Some(chunk) = events.next().await {
            chunk.expect("status stream body");
        }
        in_flight.leave();
        let out = self
            .http
            .get(&sub.response_url)
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("result")
            .bytes()
            .await
            .expect("result body");
        serde_json::from_slice(&out).expect("result decode")
    }
}

/// Submit and wait through the crate: status stream first when `poll` is `None`, else polling
/// only, every `poll`.
pub async fn crate_job(
    fal: &FalClient,
    input: &FluxLoraInput,
    poll: Option<Duration>,
) -> GenerationOutput {
    let how = WaitHow {
        poll,
        hedge_after: None,
    };
    crate_job_counted(fal, input, how, &InFlight::default())
        .await
        .expect("job")
}

/// How the crate variant waits.
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitHow {
    /// `None` (the default): status stream first; `Some(interval)`: polling only.
    pub poll: Option<Duration>,
    /// The wait's quiet period before it hedges a silent stream (`None`: the default, 1 s).
    pub hedge_after: Option<Duration>,
}

async fn crate_job_counted(
    fal: &FalClient,
    input: &FluxLoraInput,
    how: WaitHow,
    in_flight: &InFlight,
) -> fal_client::Result<GenerationOutput> {
    let permit = in_flight.submit_permit().await;
    let job = fal.submit::<FluxLora>(input).await?;
    drop(permit);
    let mut wait = job.wait();
    if let Some(every) = how.poll {
        wait = wait.stream(false).poll_interval(every);
    }
    if let Some(quiet) = how.hedge_after {
        wait = wait.hedge_after(quiet);
    }
    in_flight.enter();
    let out = wait.await;
    in_flight.leave();
    out
}

/// What [`Setup::run_counted`] measured.
pub struct RunOutcome {
    pub wall: Duration,
    /// Client CPU (user + system) of the whole process during the run.
    pub cpu: Duration,
    /// Jobs whose submit or wait failed (each error printed once, the first ten).
    pub failed: u64,
    /// The most waits in flight at once.
    pub peak_in_flight: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    Crate,
    Bare,
}

impl Variant {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crate" => Some(Variant::Crate),
            "bare" | "bare_reqwest" => Some(Variant::Bare),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Crate => "crate",
            Variant::Bare => "bare_reqwest",
        }
    }
}

pub struct Setup {
    rt: tokio::runtime::Runtime,
    fal: FalClient,
    bare: Arc<Bare>,
    input: Arc<FluxLoraInput>,
    /// How the crate variant waits: `None` (the default) status stream first, `Some(interval)`
    /// polling only.
    pub poll: Option<Duration>,
    /// The crate variant's quiet period before hedging a silent stream (`None`: the default).
    pub hedge_after: Option<Duration>,
    /// At most this many submits in flight at once, in both variants (`None`: no limit); the
    /// waits are not limited.
    pub submit_limit: Option<usize>,
    server: ServerProcess,
}

impl Setup {
    pub fn new() -> Self {
        Self::with_server(ServerConfig::default())
    }

    pub fn with_server(cfg: ServerConfig) -> Self {
        Self::with_client(cfg, |b| b)
    }

    /// [`with_server`](Self::with_server), with the crate's client built from `client`'s
    /// changes to the builder pointed at the server.
    pub fn with_client(
        cfg: ServerConfig,
        client: impl FnOnce(fal_client::FalClientBuilder) -> fal_client::FalClientBuilder,
    ) -> Self {
        let server = ServerProcess::spawn(cfg).expect("start the server");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fal = client(server.client_builder()).build().expect("client");
        let bare = Arc::new(Bare {
            http: reqwest::Client::new(),
            auth: HeaderValue::from_str(&format!("Key {}", server.var("FAL_KEY"))).expect("key"),
            submit_url: format!("{}fal-ai/flux-lora", server.var("FAL_QUEUE_URL")),
        });
        Self {
            rt,
            fal,
            bare,
            input: Arc::new(FluxLoraInput::new("a red fox in the snow")),
            poll: None,
            hedge_after: None,
            submit_limit: None,
            server,
        }
    }

    /// What the mock saw so far.
    pub fn server_stats(&mut self) -> ServerStats {
        self.server.stats().expect("server stats")
    }

    /// CPU time (user + system) of the server process so far.
    pub fn server_cpu(&self) -> Duration {
        self.server.cpu_time()
    }

    /// Run `n` jobs with `concurrency` tasks; returns (wall, client CPU). Panics when a job
    /// fails.
    pub fn run(&self, variant: Variant, n: u64, concurrency: usize) -> (Duration, Duration) {
        let o = self.run_counted(variant, n, concurrency);
        assert_eq!(o.failed, 0, "jobs failed");
        (o.wall, o.cpu)
    }

    /// Run `n` jobs with `concurrency` tasks, counting the crate's failed jobs (bare reqwest
    /// jobs panic on any failure).
    pub fn run_counted(&self, variant: Variant, n: u64, concurrency: usize) -> RunOutcome {
        let next = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(InFlight {
            submits: self.submit_limit.map(tokio::sync::Semaphore::new),
            ..InFlight::default()
        });
        let how = WaitHow {
            poll: self.poll,
            hedge_after: self.hedge_after,
        };
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        self.rt.block_on(async {
            let workers: Vec<_> = (0..concurrency.min(n as usize).max(1))
                .map(|_| {
                    let next = next.clone();
                    let failed = failed.clone();
                    let in_flight = in_flight.clone();
                    let fal = self.fal.clone();
                    let bare = self.bare.clone();
                    let input = self.input.clone();
                    tokio::spawn(async move {
                        while next.fetch_add(1, Ordering::Relaxed) < n {
                            let out = match variant {
                                Variant::Crate => {
                                    crate_job_counted(&fal, &input, how, &in_flight).await
                                }
                                Variant::Bare => Ok(bare.job_counted(&input, &in_flight).await),
                            };
                            match out {
                                Ok(out) => assert_eq!(out.images.len(), 1),
                                Err(e) => {
                                    if failed.fetch_add(1, Ordering::Relaxed) < 10 {
                                        eprintln!("job failed: {e}");
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.expect("worker");
            }
        });
        RunOutcome {
            wall: t0.elapsed(),
            cpu: cpu_time() - cpu0,
            failed: failed.load(Ordering::Relaxed),
            peak_in_flight: in_flight.peak(),
        }
    }
}
