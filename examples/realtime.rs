//! A realtime session: send prompts over one WebSocket and print each result as a JSON line.
//!
//! ```text
//! cargo run --example realtime -- --endpoint fal-ai/fast-lcm-diffusion --count 5
//! cargo run --example realtime -- --token                # a short-lived token instead of the key
//! cargo run --example realtime -- --close-after 2        # the mock drops the session: it reconnects
//! ```
//!
//! Without `FAL_KEY` it starts the bundled `FalMock` and runs offline. With `FAL_KEY` it connects
//! to the realtime path under `FAL_RUN_URL` (`https` becomes `wss`; fal by default). Inputs go
//! out as msgpack; each result prints as `{"n":…,"result":…}` with data-URI images shortened. An
//! abnormal close is reported on stderr and the prompt is sent again, which reconnects; any other
//! failure exits non-zero.

use std::process::ExitCode;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use fal_client::realtime::{RealtimeFailure, RealtimeSession};
use fal_client::Error;
use fal_mock::{FalMock, MockFailure};
use serde_json::{json, Value};

/// Send prompts to a realtime app and print the results (offline on the bundled mock unless
/// FAL_KEY is set).
#[derive(Parser)]
struct Args {
    /// The realtime app's endpoint id.
    #[arg(long, default_value = "fal-ai/fast-lcm-diffusion")]
    endpoint: String,
    /// How many prompts to send.
    #[arg(long, default_value_t = 5)]
    count: usize,
    /// The prompt (numbered per send).
    #[arg(long, default_value = "a lighthouse at dusk, oil painting")]
    prompt: String,
    /// Authenticate with a short-lived token (`POST {rest}/tokens/`) instead of the key.
    #[arg(long)]
    token: bool,
    /// `max_buffering`, 1 to 60.
    #[arg(long)]
    max_buffering: Option<u8>,
    /// Against the mock only: close the session abnormally after this many results.
    #[arg(long)]
    close_after: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (fal, mock) = common::client_or_mock(FalMock::builder()).await?;
    if let (Some(mock), Some(n)) = (&mock, args.close_after) {
        mock.fail_next(&args.endpoint, MockFailure::realtime_close(n));
    }
    let mut builder = fal.realtime::<Value, Value>(&args.endpoint);
    if args.token {
        builder = builder.token_auth(fal.clone());
    }
    if let Some(n) = args.max_buffering {
        builder = builder.max_buffering(n);
    }
    let mut session = builder.build()?;
    for n in 1..=args.count {
        let input = json!({"prompt": format!("{} #{n}", args.prompt), "request_id": n.to_string()});
        let result = match round_trip(&mut session, &input).await? {
            Err(Error::Realtime {
                failure: failure @ RealtimeFailure::Closed { .. },
                ..
            }) => {
                eprintln!("{failure}; sending #{n} again reconnects");
                round_trip(&mut session, &input).await??
            }
            other => other?,
        };
        let result = result.ok_or("the session ended before a result")?;
        println!("{}", json!({"n": n, "result": shorten(result)}));
    }
    session.close().await?;
    Ok(())
}

/// Send one input and wait for its result, at most 60 s (so a silent app cannot hang the run).
async fn round_trip(
    session: &mut RealtimeSession<Value, Value>,
    input: &Value,
) -> Result<Result<Option<Value>, Error>, &'static str> {
    let exchange = async {
        session.send(input).await?;
        session.recv().await
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| "no result within 60 s")
}

/// Data-URI images shortened to their size, so a line stays readable.
fn shorten(mut result: Value) -> Value {
    if let Some(images) = result.get_mut("images").and_then(Value::as_array_mut) {
        for image in images {
            if let Some(url) = image.get_mut("url") {
                if let Some(s) = url.as_str().filter(|s| s.starts_with("data:")) {
                    let head = s.split(',').next().unwrap_or("data:");
                    *url = json!(format!("{head},… ({} bytes)", s.len()));
                }
            }
        }
    }
    result
}
