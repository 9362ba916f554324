//! Train an avatar from real photos and generate two images with it.
//!
//! ```text
//! cargo run --example avatar                                   # portrait: portrait trainer + FLUX LoRA
//! cargo run --example avatar -- --kind style                   # FLUX LoRA fast training (style mode) + FLUX LoRA
//! cargo run --example avatar -- --trainer fal-ai/flux-2-trainer  # FLUX.2 trainer + FLUX.2 LoRA generator
//! cargo run --example avatar -- --help                         # kinds, trainers, presets
//! ```
//!
//! Without `FAL_KEY` it starts the bundled `FalMock` (an in-process fake of fal) and runs
//! offline. With `FAL_KEY` it talks to the base URLs from the environment (`FAL_QUEUE_URL`,
//! `FAL_RUN_URL`, `FAL_REST_URL`; fal by default) through the same code. Any failure exits
//! non-zero with the error and the request id.
//!
//! The archive is built for the trainer: its minimum image count, captions where it needs them
//! (images without a caption get the kind's default caption), and the trigger phrase written into
//! the captions where the trainer has no trigger field. Portraits use `examples/data/portrait`
//! (twelve photos, eight captioned with `[trigger]`), the other kinds `examples/data/style`.
//!
//! `--budget USD` refuses the training when fal's estimate is above it (before anything is
//! submitted; the error names the estimate).
//!
//! `--webhook URL` has the training result delivered there as well (signed; the mock signs with
//! its own key, served at `/.well-known/jwks.json` on its API address, which `--mock-addr` pins).
//! With the `webhook_receiver` example:
//!
//! ```text
//! FAL_JWKS_URL=http://127.0.0.1:8788/.well-known/jwks.json cargo run --example webhook_receiver
//! cargo run --example avatar -- --mock-addr 127.0.0.1:8788 --webhook http://127.0.0.1:8787/webhook/fal/status
//! ```
//!
//! Against the mock, `FAL_MOCK_FAULT_RATE=0.25` makes it misbehave on about a quarter of its
//! answers (429 with `Retry-After`, 500, nginx 503, dropped connections, slow answers, cut or
//! stalled status streams, broken JSON and HTML pages; see `Faults::uniform`), seeded by
//! `FAL_MOCK_FAULT_SEED` (default 1). The run must still finish with the same output:
//!
//! ```text
//! FAL_MOCK_FAULT_RATE=0.25 cargo run --example avatar
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fal_client::avatar::{AvatarKind, Budget, Preset, Trainer, TriggerPhrase};
use fal_client::queue::WaitEvent;
use fal_client::storage::UploadProgress;
use fal_client::{Error, FalClient};
use fal_mock::{FalMock, Faults};
use indicatif::{ProgressBar, ProgressStyle};

/// Train an avatar from the bundled photos and generate two images with it (offline on the
/// bundled mock unless FAL_KEY is set).
#[derive(Parser)]
#[command(after_help = after_help())]
struct Args {
    /// What the avatar is of: portrait, style, product or general.
    #[arg(long, default_value = "portrait", value_parser = parse_kind)]
    kind: AvatarKind,
    /// Train on this trainer (an endpoint id) instead of the kind's default.
    #[arg(long, value_parser = parse_trainer)]
    trainer: Option<Trainer>,
    /// Training preset: fast, balanced or quality.
    #[arg(long, default_value = "balanced", value_parser = parse_preset)]
    preset: Preset,
    /// Also deliver the training result to this webhook URL.
    #[arg(long)]
    webhook: Option<url::Url>,
    /// Where the images go (in a folder named after the kind).
    #[arg(long, default_value = "avatar-output")]
    out: PathBuf,
    /// The generation prompt (the trigger phrase is added when missing).
    #[arg(long)]
    prompt: Option<String>,
    /// Refuse to train when fal's estimate of the training is above this many US dollars
    /// (checked before the submit: nothing is paid).
    #[arg(long, value_name = "USD")]
    budget: Option<f64>,
    /// Pin the mock's API address (to know its JWKS URL in advance).
    #[arg(long)]
    mock_addr: Option<std::net::SocketAddr>,
}

fn parse_kind(s: &str) -> Result<AvatarKind, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn parse_trainer(s: &str) -> Result<Trainer, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// Kinds, trainers and presets, from the crate itself.
fn after_help() -> String {
    let mut out = String::from("Kinds (default trainer -> generator):\n");
    for kind in AvatarKind::ALL {
        let t = kind.default_trainer();
        out += &format!("  {:<9} {} -> {}\n", kind.as_str(), t, t.generator());
    }
    out += "\nTrainers (--trainer), with their generator and presets fast / balanced / quality:\n";
    for t in Trainer::ALL {
        let values: Vec<String> = Preset::ALL
            .iter()
            .map(|p| {
                let v = p.values(t);
                let unit = if t == Trainer::FluxPro {
                    "iterations"
                } else {
                    "steps"
                };
                let mut s = format!("{} {unit}", v.steps);
                if let Some(lr) = v.learning_rate {
                    s += &format!(" lr {lr:e}");
                }
                if let Some(priority) = v.priority {
                    s += &format!(" {priority:?}").to_lowercase();
                }
                s
            })
            .collect();
        let legacy = if t.is_deprecated() {
            " (deprecated on fal: legacy only)"
        } else {
            ""
        };
        out += &format!(
            "  {t}{legacy}\n      -> {}; {}\n",
            t.generator(),
            values.join(" / ")
        );
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
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
    // 1. A client: fal (or any server speaking its protocol) when FAL_KEY is set, else the mock.
    let mut mock = None;
    let fal = if std::env::var_os("FAL_KEY").is_some() || std::env::var_os("FAL_KEY_ID").is_some() {
        let fal = FalClient::from_env()?;
        println!(
            "FAL_KEY is set: using the queue at {}",
            fal.config().queue_url()
        );
        fal
    } else {
        let faults = mock_faults()?;
        let mut builder = FalMock::builder()
            .queue_time(Duration::from_millis(600))
            .processing_time(Duration::from_secs(3))
            .log_lines(12)
            .faults(faults.clone().unwrap_or_default())
            // The webhook URL is the user's choice: deliver there even if it is not local.
            .webhook_allow_remote(true);
        if let Some(addr) = args.mock_addr {
            builder = builder.api_addr(addr);
        }
        let started = builder
            .start()
            .await
            .map_err(|e| Error::Config(format!("cannot start the mock: {e}")))?;
        println!(
            "FAL_KEY is not set: running offline against the bundled FalMock at {}",
            started.queue_url()
        );
        if args.webhook.is_some() {
            println!(
                "the mock signs webhook deliveries with the keys at {}",
                started.jwks_url()
            );
        }
        if let Some(f) = &faults {
            println!(
                "the mock faults ~{:.0}% of its answers (seed {})",
                f.rate_of(fal_mock::MockRoute::Status) * 100.0,
                f.seed()
            );
        }
        // The mock sends a status event at least every 600 ms: a stream silent for 2 s is broken.
        let fal = started
            .client_builder()
            .sse_idle_timeout(Duration::from_secs(2))
            .build()?;
        mock = Some(started);
        fal
    };

    // 2. The training archive, from the bundled photos, checked against the trainer's rules.
    let trainer = args.trainer.unwrap_or(args.kind.default_trainer());
    let trigger = TriggerPhrase::new(format!("TOK_{}", args.kind))?;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(if args.kind == AvatarKind::Portrait {
            "portrait"
        } else {
            "style"
        });
    let archive = trainer
        .archive_builder(args.kind, &trigger)
        .build_from_dir_async(&folder)
        .await?;
    println!(
        "archive for {trainer}: {} images ({} captioned) from {}, {} KiB",
        archive.image_count(),
        archive.captioned_count(),
        folder.display(),
        archive.len() / 1024
    );

    // 3. Upload it to fal storage, with a progress bar (plain lines when not a terminal). The
    //    photos are personal: the archive expires on fal after a day (DEFAULT_ARCHIVE_EXPIRY).
    let name = format!("{}-training.zip", args.kind);
    let bar = ProgressBar::new(archive.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("uploading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let shown = bar.clone();
    let quarters = Arc::new(AtomicU64::new(0));
    let zip_url = fal
        .storage()
        .upload_archive(&archive)
        .file_name(name)
        .on_progress(move |p: UploadProgress| {
            if shown.is_hidden() {
                // One line per quarter, not one per chunk.
                let q = p.sent * 4 / p.total.max(1);
                if q > quarters.fetch_max(q, Ordering::Relaxed) {
                    println!("  upload: {}/{} bytes", p.sent, p.total);
                }
            } else {
                shown.set_position(p.sent);
            }
        })
        .await;
    bar.finish_and_clear();
    let zip_url = zip_url?;
    println!(
        "uploaded: {zip_url} (expires on fal after {})",
        fal_client::storage::DEFAULT_ARCHIVE_EXPIRY
    );

    // 4. The plan: the trainer input with the preset's values, inspectable before paying.
    let mut plan = trainer.plan(args.kind, args.preset, zip_url, trigger);
    if let Some(max) = args.budget {
        // Checked at submit against fal's estimate: above it, nothing is submitted.
        let estimate = plan.estimate(&fal).await?;
        println!(
            "estimate: {:.4} {} for the training (budget {max:.2})",
            estimate.total_cost, estimate.currency
        );
        plan.set_budget(Some(Budget::usd(max)));
    }
    println!(
        "plan: {} ({} preset): {}",
        plan.endpoint_id(),
        args.preset,
        serde_json::to_string(plan.request()).unwrap_or_default()
    );

    // 5. Submit. The request id is the way back to a paid job: print (store) it at once.
    let mut submit = plan.submit(&fal);
    if let Some(hook) = &args.webhook {
        println!("webhook: {hook}");
        submit = submit.webhook(hook.clone());
    }
    let job = submit.await?;
    println!(
        "submitted: request id {} on {}",
        job.request_id(),
        job.endpoint_id()
    );

    // 6. Live progress: queue position, log lines, a progress bar from "step N/M" lines.
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("submitted");
    let progress = bar.clone();
    let avatar = job
        .wait()
        .timeout(Duration::from_secs(45 * 60))
        .cancel_on_timeout(false)
        .on_event(move |event| match event {
            WaitEvent::Queued { position } => {
                progress.set_message(format!("in queue, position {position}"))
            }
            WaitEvent::Started => {
                progress.set_style(
                    ProgressStyle::with_template("{spinner} training [{bar:30}] {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                progress.set_message("started");
            }
            WaitEvent::Log(line) => {
                if let Some((done, total)) = step_of(&line.message) {
                    progress.set_length(total);
                    progress.set_position(done);
                }
                if progress.is_hidden() {
                    println!("  log: {}", line.message); // not a terminal: plain lines
                } else {
                    progress.println(format!("  log: {}", line.message));
                }
            }
            WaitEvent::PollingFallback => {
                progress.set_message("status stream unavailable, polling")
            }
            WaitEvent::Completed => progress.set_message("completed"),
            _ => {}
        })
        .await;
    bar.finish_and_clear();
    let avatar = avatar?;
    println!("trained: {:?}", avatar.model());

    // 7. Generate two images with the trained model and download them.
    let prompt = args.prompt.unwrap_or_else(|| match args.kind {
        AvatarKind::Portrait => format!(
            "{}, portrait in a white spacesuit, studio light",
            avatar.trigger()
        ),
        AvatarKind::Product => format!("{} on a marble counter, morning light", avatar.trigger()),
        _ => format!("{}, a lighthouse on a cliff at dusk", avatar.trigger()),
    });
    let generation = avatar.generation(&prompt, 2)?;
    println!(
        "generating 2 images with {}: {prompt}",
        generation.endpoint_id()
    );
    let images = generation
        .generate(&fal)
        .timeout(Duration::from_secs(600))
        .await?;
    let dir = args.out.join(args.kind.as_str());
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io_error(&dir, e))?;
    for (i, image) in images.iter().enumerate() {
        let bytes = fal.storage().download(&image.url).await?;
        // Name the file by what it is, not by what the answer claims.
        let ext = match &bytes[..] {
            [0x89, b'P', b'N', b'G', ..] => "png",
            [0xFF, 0xD8, 0xFF, ..] => "jpg",
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "webp",
            _ => "bin",
        };
        let path = dir.join(format!("image-{}.{ext}", i + 1));
        tokio::fs::write(&path, &bytes)
            .await
            .map_err(|e| io_error(&path, e))?;
        println!(
            "saved {} ({}x{}, {} bytes)",
            path.display(),
            image.width.unwrap_or_default(),
            image.height.unwrap_or_default(),
            bytes.len()
        );
    }
    if let Some(mock) = mock.filter(|m| m.fault_counts().total() > 0) {
        let counts = mock.fault_counts();
        println!(
            "survived {} injected faults in {} mock requests: {:?}",
            counts.total(),
            counts.requests,
            counts.by_kind
        );
    }
    Ok(())
}

/// The fault plan from `FAL_MOCK_FAULT_RATE` (0..=1) and `FAL_MOCK_FAULT_SEED`, when set.
fn mock_faults() -> Result<Option<Faults>, Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let Some(rate) = var("FAL_MOCK_FAULT_RATE") else {
        return Ok(None);
    };
    let rate: f64 = rate
        .trim()
        .parse()
        .ok()
        .filter(|r: &f64| (0.0..=1.0).contains(r))
        .ok_or_else(|| {
            Error::Config(format!(
                "FAL_MOCK_FAULT_RATE={rate:?} is not a number in 0..=1"
            ))
        })?;
    let seed = match var("FAL_MOCK_FAULT_SEED") {
        Some(s) => s.trim().parse().map_err(|_| {
            Error::Config(format!("FAL_MOCK_FAULT_SEED={s:?} is not a whole number"))
        })?,
        None => 1,
    };
    Ok(Some(Faults::uniform(seed, rate)))
}

/// `(done, total)` from a log line like `step 200/1000, loss 0.09`.
fn step_of(message: &str) -> Option<(u64, u64)> {
    message.split_whitespace().find_map(|word| {
        let (a, b) = word
            .trim_matches(|c: char| !c.is_ascii_digit() && c != '/')
            .split_once('/')?;
        let (a, b) = (a.parse().ok()?, b.parse().ok()?);
        (b > 0 && a <= b).then_some((a, b))
    })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}
