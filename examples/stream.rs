//! Stream an endpoint's output: one JSON line per event as it arrives, then the final output.
//!
//! ```text
//! cargo run --example stream -- --endpoint fal-ai/flux-lora --prompt "a red fox in the snow"
//! cargo run --example stream -- --cut-after 2     # the mock cuts the stream: a typed error, exit 1
//! ```
//!
//! Without `FAL_KEY` it starts the bundled `FalMock` and runs offline. With `FAL_KEY` it posts to
//! `{FAL_RUN_URL}/{endpoint}/stream` (fal by default). Each line is
//! `{"type":"event","request_id":…,"data":…}`, the last one `{"type":"output",…}`; a stream that
//! breaks, goes silent or ends early exits non-zero with the error and the request id.

use std::process::ExitCode;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use fal_client::stream::StreamEvent;
use fal_client::Error;
use fal_mock::{FalMock, MockFailure};
use futures::StreamExt;
use serde_json::json;

/// Stream an endpoint's output (offline on the bundled mock unless FAL_KEY is set).
#[derive(Parser)]
struct Args {
    /// The endpoint id (its `/stream` path is added).
    #[arg(long, default_value = "fal-ai/flux-lora")]
    endpoint: String,
    /// The prompt.
    #[arg(long, default_value = "a red fox in the snow, photo")]
    prompt: String,
    /// The longest silence between two events, in seconds.
    #[arg(long, default_value_t = 120)]
    idle_timeout: u64,
    /// Against the mock only: cut the stream after this many events.
    #[arg(long)]
    cut_after: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(id) = e.request_id() {
                eprintln!("request id: {id}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let (fal, mock) =
        common::client_or_mock(FalMock::builder().processing_time(Duration::from_secs(2))).await?;
    if let (Some(mock), Some(n)) = (&mock, args.cut_after) {
        mock.fail_next(&args.endpoint, MockFailure::stream_cut(n));
    }
    let mut events = fal
        .stream_json(&args.endpoint, &json!({"prompt": args.prompt}))
        .idle_timeout(Duration::from_secs(args.idle_timeout))
        .await?;
    let request_id = events.request_id().map(str::to_owned);
    while let Some(item) = events.next().await {
        let line = match item? {
            StreamEvent::Partial(data) => {
                json!({"type": "event", "request_id": request_id, "data": data})
            }
            StreamEvent::Output(data) => {
                json!({"type": "output", "request_id": request_id, "data": data})
            }
        };
        println!("{line}");
    }
    Ok(())
}
