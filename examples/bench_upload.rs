//! Upload throughput and peak memory: a 1 GiB file (sparse, in a temporary directory) through
//! the crate (`fal.storage().upload_file`: multipart, 10 MiB parts, 4 at once) and through a
//! bare streamed `reqwest` PUT of the whole file, against the mock in a child process running
//! in discard mode (`store_uploads(false)`: it hashes and counts each part as it streams in and
//! keeps nothing).
//!
//! ```text
//! cargo run --release --example bench_upload -- crate      # 1024 MiB by default
//! cargo run --release --example bench_upload -- bare
//! cargo run --release --example bench_upload -- crate 4096 # another size, in MiB
//! ```
//!
//! Peak RSS is the process's `VmHWM`, so each variant runs in its own process. The bare variant
//! makes the same initiate call as the crate (`POST {rest}/storage/upload/initiate-multipart`),
//! then one `PUT` of the whole file as part 1 (a `ReaderStream` with 256 KiB reads, the crate's
//! read size) and the `complete` call: the fewest requests that upload the file to that mock.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use fal_client::storage::DEFAULT_PART_SIZE;
use serde::Deserialize;
use serde_json::json;
use support::{fmt_dur, ServerConfig, ServerProcess};

const READ_CHUNK: usize = 256 * 1024;

#[derive(Deserialize)]
struct Initiate {
    upload_url: String,
    file_url: String,
}

#[derive(Deserialize)]
struct PartAnswer {
    etag: String,
}

/// `{origin}{pathname}{suffix}{search}` of a signed upload URL (fal-js's part URL rule).
fn with_suffix(upload_url: &str, suffix: &str) -> String {
    let (base, query) = upload_url.split_once('?').unwrap_or((upload_url, ""));
    if query.is_empty() {
        format!("{base}{suffix}")
    } else {
        format!("{base}{suffix}?{query}")
    }
}

async fn bare_upload(server: &ServerProcess, path: &std::path::Path, len: u64) -> String {
    let http = reqwest::Client::new();
    let auth = format!("Key {}", server.var("FAL_KEY"));
    let target: Initiate = http
        .post(format!(
            "{}storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
            server.var("FAL_REST_URL")
        ))
        .header("authorization", &auth)
        .json(&json!({"content_type": "application/octet-stream", "file_name": "upload.bin"}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("initiate")
        .json()
        .await
        .expect("initiate answer");
    let file = tokio::fs::File::open(path).await.expect("open");
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file, READ_CHUNK,
    ));
    let part: PartAnswer = http
        .put(with_suffix(&target.upload_url, "/1"))
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .body(body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("part PUT")
        .json()
        .await
        .expect("part answer");
    http.post(with_suffix(&target.upload_url, "/complete"))
        .json(&json!({"parts": [{"partNumber": 1, "etag": part.etag}]}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("complete");
    target.file_url
}

/// Upload a sparse file through the crate or bare reqwest to the mock in a child process (in
/// discard mode); prints throughput, client CPU and peak RSS.
#[derive(Debug, clap::Parser)]
#[command(name = "bench_upload")]
struct Args {
    /// `crate` or `bare`.
    #[arg(default_value = "crate", value_parser = ["crate", "bare"])]
    variant: String,
    /// File size in MiB.
    #[arg(default_value_t = 1024)]
    mib: u64,
}

fn main() {
    support::serve_if_requested();
    let args = <Args as clap::Parser>::parse();
    let variant = args.variant.as_str();
    let mib = args.mib;
    let len = mib * 1024 * 1024;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("upload.bin");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(len))
        .expect("create the sparse file");

    let server = ServerProcess::spawn(ServerConfig {
        store_uploads: false,
        ..ServerConfig::default()
    })
    .expect("start the server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fal = server.client_builder().build().expect("client");
    let rss_before = support::rss_mib();

    let (cpu0, t0) = (support::cpu_time(), Instant::now());
    let url = rt.block_on(async {
        match variant {
            "crate" => fal
                .storage()
                .upload_file(&path)
                .await
                .expect("upload")
                .into(),
            _ => bare_upload(&server, &path, len).await,
        }
    });
    let (wall, cpu) = (t0.elapsed(), support::cpu_time() - cpu0);
    let peak = support::peak_rss_mib();
    let secs = wall.as_secs_f64().max(1e-9);
    let how = if variant == "crate" {
        format!(
            "crate upload_file: multipart, {} MiB parts",
            DEFAULT_PART_SIZE / (1024 * 1024)
        )
    } else {
        "bare reqwest: one streamed PUT".to_owned()
    };
    println!("{mib} MiB ({how}) -> {url}");
    println!(
        "  wall {}, throughput {:.0} MiB/s",
        fmt_dur(wall),
        mib as f64 / secs
    );
    println!(
        "  client CPU {} ({} per GiB)",
        fmt_dur(cpu),
        fmt_dur(Duration::from_secs_f64(
            cpu.as_secs_f64() * 1024.0 / mib as f64
        ))
    );
    println!(
        "  peak RSS {peak:.1} MiB (VmHWM; {rss_before:.1} MiB before the upload); target < 32 MiB: {}",
        if peak < 32.0 { "met" } else { "NOT met" }
    );
}
