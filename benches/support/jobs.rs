//! The job of the lifecycle benchmark, through the crate and through bare `reqwest`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fal_client::models::{FluxLora, FluxLoraInput, GenerationOutput};
use fal_client::FalClient;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use serde::Deserialize;

use super::{cpu_time, ServerConfig, ServerProcess};

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
        let body = Bytes::from(serde_json::to_vec(input).expect("encode"));
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
        let sub: Submitted = serde_json::from_slice(&sub).expect("submit answer");
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
    let job = fal.submit::<FluxLora>(input).await.expect("submit");
    let wait = job.wait();
    let wait = match poll {
        None => wait,
        Some(every) => wait.stream(false).poll_interval(every),
    };
    wait.await.expect("wait")
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
    _server: ServerProcess,
}

impl Setup {
    pub fn new() -> Self {
        Self::with_server(ServerConfig::default())
    }

    pub fn with_server(cfg: ServerConfig) -> Self {
        let server = ServerProcess::spawn(cfg).expect("start the server");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fal = server.client_builder().build().expect("client");
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
            _server: server,
        }
    }

    /// Run `n` jobs with `concurrency` tasks; returns (wall, client CPU).
    pub fn run(&self, variant: Variant, n: u64, concurrency: usize) -> (Duration, Duration) {
        let next = Arc::new(AtomicU64::new(0));
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        self.rt.block_on(async {
            let workers: Vec<_> = (0..concurrency.min(n as usize).max(1))
                .map(|_| {
                    let next = next.clone();
                    let fal = self.fal.clone();
                    let bare = self.bare.clone();
                    let input = self.input.clone();
                    let poll = self.poll;
                    tokio::spawn(async move {
                        while next.fetch_add(1, Ordering::Relaxed) < n {
                            let out = match variant {
                                Variant::Crate => crate_job(&fal, &input, poll).await,
                                Variant::Bare => bare.job(&input).await,
                            };
                            assert_eq!(out.images.len(), 1);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.expect("worker");
            }
        });
        (t0.elapsed(), cpu_time() - cpu0)
    }
}
