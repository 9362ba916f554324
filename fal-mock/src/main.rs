//! `fal-mock`: a standalone fake of fal for any language's client.
//!
//! ```text
//! cargo run -p fal-mock -- --port 8788
//! eval "$(cargo run -q -p fal-mock -- --port 8788 | grep ^export)"   # in another shell: the URLs
//! ```
//!
//! On start it prints one `export NAME=value` line per setting a client needs (`FAL_KEY`,
//! `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`, `FAL_CDN_URL`, `FAL_JWKS_URL`,
//! `FAL_API_URL`), then one JSON line with the same values and the bound addresses, and serves
//! until SIGINT or SIGTERM. Logs go to stderr (`RUST_LOG=fal_mock=debug` for every request).
//! Streaming runs are at `$FAL_RUN_URL<endpoint>/stream`, realtime apps at
//! `$FAL_RUN_URL<endpoint>/realtime` with `ws` for `http`, realtime tokens at
//! `$FAL_REST_URL/tokens/`, and fal's Platform API (models, pricing, usage, request listing,
//! payload deletion) under `$FAL_API_URL` (`http://<host>:<port>/v1`).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fal_mock::{FalMock, Faults, TokenShape};

/// A fake of fal.ai: the queue (submit, status, status stream, result, cancel), sync runs,
/// streaming runs (POST $FAL_RUN_URL<endpoint>/stream, server-sent events), realtime apps over
/// WebSocket (ws://<host>:<port>/run/fal-ai/fast-lcm-diffusion/realtime, msgpack frames), realtime
/// tokens (POST $FAL_REST_URL/tokens/), storage uploads and files, signed webhooks, faults on
/// demand, and fal's Platform API under $FAL_API_URL (http://<host>:<port>/v1): GET /models,
/// GET /models/pricing, POST /models/pricing/estimate, GET /models/usage, GET
/// /models/requests/by-endpoint, DELETE /models/requests/<id>/payloads, GET /meta, from the
/// requests the mock ran and its fixed price table. Results of priced endpoints carry
/// x-fal-billable-units (trainers 1, generators the megapixels of their images,
/// fal-ai/flux-pro/v1.1-ultra-finetuned its number of images). Prints the URLs to point a client
/// at, then serves until SIGINT or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "fal-mock", version)]
struct Args {
    /// Address to listen on (both servers).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the API server (queue, run, REST, JWKS, Platform API); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Port of the CDN server (uploads and files); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// The key the mock accepts (`Authorization: Key <key>`).
    #[arg(long, default_value = "mock-key", env = "FAL_MOCK_KEY")]
    key: String,
    /// How long a job stays IN_QUEUE (e.g. 300ms, 2s).
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    queue_time: Duration,
    /// How long a job stays IN_PROGRESS, and how long a sync run takes.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    processing_time: Duration,
    /// Log lines a job emits while in progress.
    #[arg(long, default_value_t = 5)]
    log_lines: usize,
    /// Queue position right after submit (counts down to 0 during the queue time).
    #[arg(long, default_value_t = 2)]
    queue_position: u32,
    /// Fault about this share (0..=1) of the answers, with the mix a careful client must
    /// survive (429 with Retry-After, 500, ingress 503, dropped connections, slow answers, cut or
    /// stalled status streams, broken JSON).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    fault_rate: f64,
    /// Seed of the fault plan.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// An endpoint to answer 404 as fal answers an app it does not serve (repeatable). Default:
    /// the endpoints fal deprecated (fal-ai/flux-pro-trainer).
    #[arg(long = "removed", value_name = "ENDPOINT_ID")]
    removed: Vec<String>,
    /// Serve every endpoint, the deprecated ones too.
    #[arg(long, conflicts_with = "removed")]
    serve_all: bool,
    /// Sign webhook deliveries with the key of this 32-byte seed (64 hex digits), for a stable
    /// key set across runs. Default: a random key.
    #[arg(long, value_parser = parse_seed)]
    webhook_seed: Option<[u8; 32]>,
    /// Also deliver webhooks to hosts that are not loopback.
    #[arg(long)]
    webhook_allow_remote: bool,
    /// Re-deliveries of a webhook after a non-2xx answer or a connection failure.
    #[arg(long, default_value_t = 3)]
    webhook_retries: u32,
    /// How long a CDN token of the v3 upload flow is good for (e.g. 1h, 30s).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    cdn_token_ttl: Duration,
    /// Partial events a streaming run sends before its final event (spread over the processing
    /// time).
    #[arg(long, default_value_t = 3)]
    stream_events: usize,
    /// Abort every streaming run's connection after this many events (a broken body), to see a
    /// client fail.
    #[arg(long, value_name = "N")]
    stream_cut_after: Option<usize>,
    /// How POST /rest/tokens/ answers the token: bare ("<jwt>"), detail ({"detail": "<jwt>"}) or
    /// token ({"token": "<jwt>"}).
    #[arg(long, default_value = "bare", value_parser = parse_token_shape)]
    token_shape: TokenShape,
    /// How long a realtime app takes per input (e.g. 0s, 50ms).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    realtime_processing_time: Duration,
    /// Close a realtime session (TIMEOUT message, close code 1000) after this long without input.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    realtime_session_timeout: Duration,
    /// Follow each realtime result with an x-fal-message timings text frame.
    #[arg(long)]
    realtime_timings: bool,
}

fn parse_token_shape(s: &str) -> Result<TokenShape, String> {
    TokenShape::parse(s).ok_or_else(|| format!("{s:?} is not bare, detail or token"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 300ms, 2s, 1m or 1h: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{s:?} is not a number in 0..=1"))
}

fn parse_seed(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the seed is 32 bytes (64 hex digits), not {}", b.len()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("fal_mock=info")),
        )
        .init();
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fal-mock: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let mut builder = FalMock::builder()
        .key(&args.key)
        .api_addr(SocketAddr::new(args.host, args.port))
        .cdn_addr(SocketAddr::new(args.host, args.cdn_port))
        .queue_time(args.queue_time)
        .processing_time(args.processing_time)
        .log_lines(args.log_lines)
        .initial_queue_position(args.queue_position)
        .webhook_retries(args.webhook_retries)
        .webhook_allow_remote(args.webhook_allow_remote)
        .cdn_token_ttl(args.cdn_token_ttl)
        .stream_events(args.stream_events)
        .stream_cut_after(args.stream_cut_after)
        .token_response_shape(args.token_shape)
        .realtime_processing_time(args.realtime_processing_time)
        .realtime_session_timeout(args.realtime_session_timeout)
        .realtime_timings(args.realtime_timings);
    if args.fault_rate > 0.0 {
        builder = builder.faults(Faults::uniform(args.fault_seed, args.fault_rate));
    }
    if args.serve_all {
        builder = builder.removed_endpoints(Vec::<String>::new());
    } else if !args.removed.is_empty() {
        builder = builder.removed_endpoints(args.removed.clone());
    }
    if let Some(seed) = args.webhook_seed {
        builder = builder.webhook_seed(seed);
    }
    let mock = builder.start().await?;
    let vars = mock.env_vars();
    for (name, value) in &vars {
        println!("export {name}={value}");
    }
    let mut line = serde_json::Map::new();
    for (name, value) in &vars {
        line.insert(name.clone(), value.clone().into());
    }
    line.insert("api_addr".into(), mock.api_addr().to_string().into());
    line.insert("cdn_addr".into(), mock.cdn_addr().to_string().into());
    println!("{}", serde_json::Value::Object(line));
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tracing::info!(api = %mock.api_addr(), cdn = %mock.cdn_addr(), "fal-mock serving; SIGINT or SIGTERM stops it");

    stop_signal().await?;
    tracing::info!("stopping");
    mock.shutdown().await;
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
