//! A webhook receiver for fal: verifies each delivery, answers at once, and hands the typed
//! payload to a background task that prints one JSON line per accepted delivery.
//!
//! ```text
//! cargo run --example webhook_receiver                          # http://127.0.0.1:8787/webhook/fal/status
//! cargo run --example webhook_receiver -- --addr 0.0.0.0:9000
//! cargo run --features redis --example webhook_receiver -- --redis redis://127.0.0.1:6379/0
//! FAL_JWKS_URL=http://127.0.0.1:8788/.well-known/jwks.json cargo run --example webhook_receiver
//! ```
//!
//! - Deliveries: `POST /webhook/fal/status`, verified against the raw body with the Ed25519 keys
//!   from `FAL_JWKS_URL` (default fal's, `https://rest.alpha.fal.ai/.well-known/jwks.json`),
//!   fetched when first needed and cached.
//! - Answers: `200` as soon as a delivery is verified and queued (or is a re-delivery of one
//!   already accepted), `401` when the signature, a header or the timestamp does not check out,
//!   `400` for a verified body that does not decode, `503` when the keys cannot be fetched, the
//!   queue is full or Redis is unreachable (fal delivers again later).
//! - Replicas: with `--redis URL` every replica records handled request ids in one Redis
//!   (`SET … NX EX`), so a delivery that reaches two replicas is acted on once.
//! - stdout: one JSON line per accepted request id, e.g.
//!   `{"request_id":"…","endpoint_kind":"lora_trainer","outcome":"ok","model_url":"https://…","finetune_id":null,"error":null}`.
//!   Logs go to stderr (`RUST_LOG=debug` for more).
//!
//! With the bundled mock: start this receiver pointed at the mock's key set, then the avatar
//! example with the mock on that port and the webhook URL:
//!
//! ```text
//! FAL_JWKS_URL=http://127.0.0.1:8788/.well-known/jwks.json cargo run --example webhook_receiver
//! cargo run --example avatar -- --mock-addr 127.0.0.1:8788 --webhook http://127.0.0.1:8787/webhook/fal/status
//! ```

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use clap::Parser;
use fal_client::models::{GenerationOutput, LoraTrainingOutput, ProTrainerOutput};
use fal_client::webhook::{
    DeliveryDeduper, MemoryDeduper, WebhookOutcome, WebhookPayload, WebhookVerifier,
};
use fal_client::FalClientBuilder;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

const PATH: &str = "/webhook/fal/status";
/// Accepted deliveries waiting for the background task; beyond that, answer 503.
const QUEUE: usize = 1024;
/// Request ids remembered for deduplication (more than 2 hours of deliveries, fal's retry span).
const REMEMBERED: usize = 100_000;
/// Largest delivery body accepted (outputs with inline data URIs can be large).
const MAX_BODY: usize = 32 * 1024 * 1024;

#[derive(Clone)]
struct App {
    keys: WebhookVerifier,
    seen: Arc<dyn DeliveryDeduper>,
    work: mpsc::Sender<WebhookPayload>,
}

/// The line printed for an accepted delivery.
#[derive(Debug, Serialize, PartialEq)]
struct Report {
    request_id: String,
    endpoint_kind: &'static str,
    outcome: &'static str,
    model_url: Option<String>,
    finetune_id: Option<String>,
    error: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A webhook receiver for fal deliveries (keys from FAL_JWKS_URL, default fal's).
#[derive(Debug, Parser)]
#[command(name = "webhook_receiver")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// Share the record of handled deliveries with other replicas through this Redis
    /// (`redis://host:6379/0`; needs the `redis` feature). Default: in memory, this process only.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// The record of handled deliveries: Redis when asked (shared by replicas), else memory.
async fn deduper(
    redis: Option<&str>,
) -> Result<Arc<dyn DeliveryDeduper>, Box<dyn std::error::Error>> {
    match redis {
        None => Ok(Arc::new(MemoryDeduper::new(REMEMBERED))),
        #[cfg(feature = "redis")]
        Some(url) => {
            let seen = fal_client::webhook::RedisDeduper::connect(url).await?;
            tracing::info!("deduplicating deliveries on Redis ({seen:?})");
            Ok(Arc::new(seen))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("--redis needs the redis feature: cargo run --features redis --example webhook_receiver".into()),
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let addr = args.addr;
    // No fal key is needed to receive webhooks: the key set is public (FAL_JWKS_URL, default
    // fal's).
    let fal = FalClientBuilder::from_env().build()?;
    // Refresh at most once a second on an unknown signature: a rotated key is picked up at
    // once, and concurrent unknown signatures still share one fetch.
    let keys = fal.webhooks().min_refresh_interval(Duration::from_secs(1));
    let (work, queue) = mpsc::channel(QUEUE);
    let app = App {
        keys,
        seen: deduper(args.redis.as_deref()).await?,
        work,
    };
    let router = Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "listening on http://{local}{PATH}, verifying with the keys at {}",
        fal.config().jwks_url()
    );

    let worker = tokio::spawn(process(queue));
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            // If the signal cannot be installed, run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    // The router (and its senders) is gone: the worker drains the queue and stops.
    worker.await?;
    Ok(())
}

/// `POST /webhook/fal/status`: verify, deduplicate, queue, answer.
async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    // The raw bytes, exactly as received, are what fal signed.
    let verified = match app.keys.verify(&headers, &body).await {
        Ok(d) => d.parse::<Value>(),
        Err(e) => Err(e),
    };
    let delivery = match verified {
        Ok(d) => d,
        Err(e) => {
            let status = e.status_code(); // 401 forged, 400 undecodable, 5xx no keys
            tracing::warn!(status = status.as_u16(), error = %e, "delivery rejected");
            return status;
        }
    };
    let id = delivery.request_id.clone();
    match app.seen.first_time(&id).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(request_id = %id, "re-delivery of an accepted request; ignored");
            return StatusCode::OK;
        }
        Err(e) => {
            // Neither acted on nor recorded: fal delivers it again later.
            tracing::warn!(request_id = %id, error = %e, "cannot check for a re-delivery");
            return e.status_code();
        }
    }
    match app.work.try_send(delivery) {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            // Not processed: let fal's next attempt through.
            if let Err(forget) = app.seen.forget(&id).await {
                tracing::warn!(request_id = %id, error = %forget, "cannot release the claim");
            }
            tracing::warn!(request_id = %id, error = %e, "cannot queue the delivery");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The background task: one JSON line on stdout per accepted delivery.
async fn process(mut queue: mpsc::Receiver<WebhookPayload>) {
    while let Some(delivery) = queue.recv().await {
        let report = report(&delivery);
        let line = match serde_json::to_string(&report) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(request_id = %report.request_id, error = %e, "cannot encode the report");
                continue;
            }
        };
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::error!(error = %e, "cannot write to stdout; stopping the worker");
            return;
        }
    }
}

fn report(delivery: &WebhookPayload) -> Report {
    let mut r = Report {
        request_id: delivery.request_id.clone(),
        endpoint_kind: "unknown",
        outcome: "error",
        model_url: None,
        finetune_id: None,
        error: None,
    };
    match &delivery.outcome {
        WebhookOutcome::Success(output) => {
            r.outcome = "ok";
            (r.endpoint_kind, r.model_url, r.finetune_id) = inspect(&delivery.request_id, output);
        }
        WebhookOutcome::PayloadError { message } => {
            r.outcome = "payload_error";
            r.error = Some(message.clone());
        }
        WebhookOutcome::Error { message, .. } => r.error = Some(message.clone()),
        // An outcome a later version of the crate may add.
        _ => {
            r.error = Some(
                delivery
                    .error_message()
                    .unwrap_or("unknown outcome")
                    .to_owned(),
            )
        }
    }
    r
}

/// The endpoint kind from the output's shape, with the trained model's URL or finetune id.
/// The typed output is tried first; a field that is there but does not match the type is still
/// reported from the raw JSON (with a warning).
fn inspect(request_id: &str, output: &Value) -> (&'static str, Option<String>, Option<String>) {
    let raw = |a: &str, b: Option<&str>| {
        let v = &output[a];
        b.map_or(v, |b| &v[b]).as_str().map(str::to_owned)
    };
    if output.get("diffusers_lora_file").is_some() {
        let url = typed::<LoraTrainingOutput>(request_id, output)
            .map(|o| o.diffusers_lora_file.url)
            .or_else(|| raw("diffusers_lora_file", Some("url")));
        ("lora_trainer", url, None)
    } else if output.get("finetune_id").is_some() {
        let id = typed::<ProTrainerOutput>(request_id, output)
            .map(|o| o.finetune_id)
            .or_else(|| raw("finetune_id", None));
        ("finetune_trainer", None, id)
    } else if output.get("images").is_some() {
        if let Some(out) = typed::<GenerationOutput>(request_id, output) {
            tracing::info!(request_id, images = out.images.len(), "generation done");
        }
        ("generator", None, None)
    } else {
        ("unknown", None, None)
    }
}

fn typed<T: DeserializeOwned>(request_id: &str, output: &Value) -> Option<T> {
    T::deserialize(output)
        .inspect_err(|e| {
            tracing::warn!(
                request_id,
                error = %e,
                "output does not match {}",
                std::any::type_name::<T>()
            );
        })
        .ok()
}
