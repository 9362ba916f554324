//! Realtime round trips per second: a [`RealtimeSession`] against a bare tokio-tungstenite loop
//! making the same exchanges (msgpack input out, msgpack result in, decoded into the same type),
//! on one WebSocket each, against the mock's realtime app in a child process, in the same run.
//!
//! ```text
//! cargo run --release --example bench_realtime            # 5 alternating rounds of 2,000 round trips
//! cargo run --release --example bench_realtime -- 5000 7  # round trips per batch, rounds
//! ```
//!
//! The batches of the two variants alternate (the machine is shared; see BENCHMARKS.md), and the
//! figure is the ratio of their medians: crate round trips per second over bare ones.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use fal_client::realtime::RealtimeSession;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Realtime round trips per second, crate vs bare tokio-tungstenite, same mock, same run.
#[derive(Debug, Parser)]
#[command(name = "bench_realtime")]
struct Args {
    /// Round trips per batch.
    #[arg(default_value_t = 2000)]
    round_trips: u32,
    /// Batches of each variant (alternating).
    #[arg(default_value_t = 5)]
    rounds: u32,
}

const ENDPOINT: &str = "fal-ai/fast-lcm-diffusion";

#[derive(Serialize)]
struct Input<'a> {
    prompt: &'a str,
    request_id: String,
}

#[derive(Deserialize)]
struct Output {
    images: Vec<Image>,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct Image {
    url: String,
}

fn check(out: &Output, n: u32) {
    assert_eq!(out.request_id.as_deref(), Some(n.to_string().as_str()));
    assert!(out.images.first().is_some_and(|i| !i.url.is_empty()));
}

fn main() {
    support::serve_if_requested();
    let args = Args::parse();
    let server = support::ServerProcess::spawn(support::ServerConfig::default()).expect("server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fal = server.client_builder().build().expect("client");
        let mut session: RealtimeSession<Input<'static>, Output> =
            fal.realtime(ENDPOINT).build().expect("session");
        let ws_url = format!(
            "{}/{ENDPOINT}/realtime",
            server
                .var("FAL_RUN_URL")
                .trim_end_matches('/')
                .replacen("http", "ws", 1)
        );
        let mut request = ws_url.into_client_request().expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Key {}", server.var("FAL_KEY"))
                .parse()
                .expect("header"),
        );
        let (mut bare, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("bare connect");
        // Warm-up: both connections open, allocator and caches warm.
        crate_batch(&mut session, 200).await;
        bare_batch(&mut bare, 200).await;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            ours.push(per_second(
                args.round_trips,
                crate_batch(&mut session, args.round_trips).await,
            ));
            theirs.push(per_second(
                args.round_trips,
                bare_batch(&mut bare, args.round_trips).await,
            ));
        }
        let (m_ours, m_theirs) = (median(&mut ours), median(&mut theirs));
        println!(
            "realtime round trips/s over {} rounds of {}: crate median {m_ours:.0} ({}), bare \
             tokio-tungstenite median {m_theirs:.0} ({}); crate/bare {:.3}",
            args.rounds,
            args.round_trips,
            list(&ours),
            list(&theirs),
            m_ours / m_theirs
        );
    });
}

async fn crate_batch(session: &mut RealtimeSession<Input<'static>, Output>, n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let input = Input {
            prompt: "a lighthouse at dusk",
            request_id: i.to_string(),
        };
        session.send(&input).await.expect("send");
        let out = session.recv().await.expect("recv").expect("a result");
        check(&out, i);
    }
    start.elapsed()
}

type Bare =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn bare_batch(ws: &mut Bare, n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let input = Input {
            prompt: "a lighthouse at dusk",
            request_id: i.to_string(),
        };
        let bytes = rmp_serde::to_vec_named(&input).expect("encode");
        ws.send(Message::Binary(bytes.into())).await.expect("send");
        loop {
            match ws.next().await.expect("open").expect("frame") {
                Message::Binary(b) => {
                    let out: Output = rmp_serde::from_slice(&b).expect("decode");
                    check(&out, i);
                    break;
                }
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Close(c) => panic!("closed: {c:?}"),
            }
        }
    }
    start.elapsed()
}

fn per_second(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
