//! What an avatar costs on fal: prices, an estimate before paying, usage tags, billed units,
//! the trainer's recent requests through the Platform API, and the deletion of the training's
//! stored payloads (people's photos are in them).
//!
//! ```text
//! cargo run --example costs
//! ```
//!
//! Without `FAL_KEY` it starts the bundled `FalMock` (which serves the Platform API too) and runs
//! offline. With `FAL_KEY` (an ADMIN key: usage and payload deletion need one) it talks to the
//! base URLs from the environment (`FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`,
//! `FAL_API_URL`; fal by default) and **pays for one training and two images**.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use fal_client::avatar::{AvatarKind, AvatarModel, Preset, TrainedAvatar, TriggerPhrase};
use fal_client::billing::UsageTags;
use fal_client::Error;
use fal_mock::FalMock;
use futures::TryStreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
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

async fn run() -> Result<(), Error> {
    let mock = FalMock::builder()
        .queue_time(Duration::from_millis(200))
        .processing_time(Duration::from_millis(500));
    let (fal, _mock) = common::client_or_mock(mock).await?;
    let platform = fal.platform();

    // 1. Prices of the trainer and the generator of a portrait avatar.
    let kind = AvatarKind::Portrait;
    let trainer = kind.default_trainer();
    let generator = trainer.generator();
    for price in platform
        .pricing([trainer.endpoint_id(), generator.endpoint_id()])
        .await?
    {
        println!(
            "price: {} {} {} per {}",
            price.endpoint_id, price.unit_price, price.currency, price.unit
        );
    }

    // 2. An estimate for one avatar, before anything is paid: the training, then 2 images.
    let avatar_id = "a-1042";
    let trigger = TriggerPhrase::new("TOK_anna")?;
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/portrait");
    let archive = trainer
        .archive_builder(kind, &trigger)
        .build_from_dir_async(&photos)
        .await?;
    // The archive uploads at submit (it expires on fal after a day, like `upload_archive`).
    let zip = fal_client::storage::FileInput::bytes(archive.into_bytes(), "application/zip");
    let plan = trainer.plan(kind, Preset::Fast, zip, trigger.clone());
    let training = plan.estimate(&fal).await?;
    // The generation of a model not trained yet: its request is what gets estimated.
    let placeholder = TrainedAvatar::new(
        kind,
        trainer,
        trigger,
        AvatarModel::Lora {
            url: "https://v3.fal.media/files/placeholder/lora.safetensors".into(),
            config_url: None,
        },
        None,
    );
    let generation = placeholder
        .generation("on a mountain top", 2)?
        .estimate(&fal)
        .await?;
    println!(
        "estimate: training {:.4} {}, 2 images {:.4} {}, avatar {:.4} {}",
        training.total_cost,
        training.currency,
        generation.total_cost,
        generation.currency,
        training.total_cost + generation.total_cost,
        training.currency
    );

    // 3. The avatar, with usage tags so that fal's usage splits by avatar.
    let tags = UsageTags::new()
        .tag("avatar", avatar_id)
        .tag("feature", "costs-example");
    let job = plan.submit(&fal).tags(tags.clone()).await?;
    println!(
        "training: request id {} (tags avatar={avatar_id})",
        job.request_id()
    );
    let avatar = job.wait().timeout(Duration::from_secs(45 * 60)).await?;
    let units = job.billable_units().await?;
    println!(
        "training billed: {} unit(s)",
        units.map_or("not reported".into(), |u| u.raw)
    );
    let handle = avatar
        .generation("TOK_anna on a mountain top", 2)?
        .submit(&fal)
        .tags(tags)
        .await?;
    let output = handle.wait().timeout(Duration::from_secs(600)).await?;
    let billed = handle.billed_result().await?;
    println!(
        "generation: {} image(s), billed {} unit(s) (request id {})",
        output.images.len(),
        billed
            .billable_units
            .map_or("not reported".into(), |u| u.raw),
        handle.request_id()
    );

    // 4. The trainer's recent requests through the Platform API: every page.
    let recent: Vec<_> = platform
        .requests(trainer.endpoint_id())
        .page_size(2)
        .stream()
        .try_collect()
        .await?;
    println!(
        "{} recent request(s) of {}:",
        recent.len(),
        trainer.endpoint_id()
    );
    for r in &recent {
        println!(
            "  {} status {} in {:.1} s",
            r.request_id,
            r.status_code.map_or("-".into(), |s| s.to_string()),
            r.duration.unwrap_or_default()
        );
    }

    // 5. Usage so far (needs an ADMIN key on fal).
    let usage: Vec<_> = platform.usage().summary().stream().try_collect().await?;
    for line in usage.iter().flat_map(|page| &page.summary) {
        println!(
            "usage: {} {} {} = {:.4} {}",
            line.endpoint_id, line.quantity, line.unit, line.cost_total, line.currency
        );
    }

    // 6. Delete the training's stored payloads: its input names the photos. Asking twice (a
    //    retry, a restart) deletes once: the idempotency key comes from the request id.
    for attempt in 1..=2 {
        let results = avatar.delete_training_payloads(&fal)?.await?;
        println!(
            "payloads deleted (call {attempt}): {} CDN file(s), {} failure(s)",
            results.len(),
            results.iter().filter(|r| r.exception.is_some()).count()
        );
    }
    Ok(())
}
