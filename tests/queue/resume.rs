//! Resuming a paid job after a restart: submit, keep only the endpoint id and request id (as a
//! database row would), drop the client and the handle, build a new client, rebuild the handle,
//! and get the result, without submitting again.

use std::path::PathBuf;
use std::time::Duration;

use fal_client::archive::ArchiveBuilder;
use fal_client::avatar::{AvatarKind, AvatarModel, Preset, Trainer, TrainingJob, TriggerPhrase};
use fal_client::models::{LoraTrainingOutput, PortraitTrainer, PortraitTrainerInput};
use fal_client::queue::{RequestHandle, WaitEvent};
use fal_client::{Endpoint, Error};
use fal_mock::FalMock;
use serde_json::json;

fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/portrait")
}

async fn mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::from_millis(50))
        .processing_time(Duration::from_millis(200))
        .log_lines(4)
        .start()
        .await
        .unwrap()
}

/// What an application stores right after submit.
#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    endpoint_id: String,
    request_id: String,
    kind: String,
    trigger: String,
}

async fn upload_photos(mock: &FalMock) -> String {
    let archive = ArchiveBuilder::new().build_from_dir(photos()).unwrap();
    mock.client()
        .unwrap()
        .storage()
        .upload_bytes(archive.into_bytes())
        .content_type("application/zip")
        .file_name("photos.zip")
        .await
        .unwrap()
        .into()
}

#[tokio::test]
async fn a_training_resumes_with_a_new_client_from_the_stored_ids() {
    let mock = mock().await;
    let zip = upload_photos(&mock).await;
    let row = {
        let fal = mock.client().unwrap();
        let job = fal
            .submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip))
            .await
            .unwrap();
        serde_json::to_string(&Row {
            endpoint_id: job.endpoint_id().to_owned(),
            request_id: job.request_id().to_owned(),
            kind: "portrait".into(),
            trigger: String::new(),
        })
        .unwrap()
        // `fal` and `job` are dropped here: nothing of the first client survives.
    };

    let row: Row = serde_json::from_str(&row).unwrap();
    let fal = mock.client().unwrap();
    let job: RequestHandle<LoraTrainingOutput> = fal
        .resume(&row.endpoint_id, row.request_id.clone())
        .unwrap();
    assert_eq!(job.request_id(), row.request_id);
    let mut events = Vec::new();
    let out = job
        .wait()
        .on_event(|e| {
            events.push(match e {
                WaitEvent::Log(_) => "log".to_owned(),
                other => format!("{other:?}"),
            })
        })
        .await
        .unwrap();
    assert!(events.iter().any(|e| e == "log"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("Completed"));
    let lora = fal
        .storage()
        .download(&out.diffusers_lora_file.url)
        .await
        .unwrap();
    assert!(!lora.is_empty());
    // The model's own id reaches the same request.
    let again = fal
        .resume::<LoraTrainingOutput>(PortraitTrainer::ID, &row.request_id)
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(again, out);
    assert_eq!(
        mock.submissions(PortraitTrainer::ID),
        1,
        "never submitted twice"
    );
}

/// A wait that passes its deadline without cancelling leaves the job running; its error carries
/// the request id, which is all a new process needs.
#[tokio::test]
async fn a_timed_out_wait_resumes_from_the_error() {
    let mock = mock().await;
    let zip = upload_photos(&mock).await;
    let err = {
        let fal = mock.client().unwrap();
        fal.submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip))
            .await
            .unwrap()
            .wait()
            .timeout(Duration::from_millis(50))
            .cancel_on_timeout(false)
            .await
            .unwrap_err()
    };
    let Error::Timeout {
        request_id: Some(id),
        endpoint,
        cancel_requested: false,
        ..
    } = &err
    else {
        panic!("expected a resumable timeout, got {err:?}");
    };
    assert!(err.to_string().contains("FalClient::resume"), "{err}");
    assert!(!mock.job(id).unwrap().cancelled);

    let fal = mock.client().unwrap();
    let out: LoraTrainingOutput = fal
        .resume(endpoint, id.clone())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(!out.diffusers_lora_file.url.is_empty());
    assert_eq!(mock.submissions(PortraitTrainer::ID), 1);
}

/// The avatar adapter's own handle, for every kind of trainer: `TrainingJob::resume` from the
/// stored trainer, kind, trigger and request id, then generation with the trained avatar.
#[tokio::test]
async fn avatar_training_jobs_resume_for_every_trainer() {
    let mock = mock().await;
    let zip = upload_photos(&mock).await;
    let cases = [
        (Trainer::FluxLoraPortrait, AvatarKind::Portrait),
        (Trainer::FluxLoraFast, AvatarKind::Style),
        (Trainer::Flux2, AvatarKind::Product),
        (Trainer::ZImage, AvatarKind::General),
    ];
    for (trainer, kind) in cases {
        let row = {
            let fal = mock.client().unwrap();
            let plan = trainer.plan(
                kind,
                Preset::Fast,
                zip.clone(),
                TriggerPhrase::new("TOK_anna").unwrap(),
            );
            let job = plan.submit(&fal).await.unwrap();
            json!({
                "trainer": job.endpoint_id(),
                "kind": kind.as_str(),
                "trigger": job.trigger().as_str(),
                "request_id": job.request_id(),
            })
            .to_string()
        };

        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        let fal = mock.client().unwrap();
        let stored: Trainer = row["trainer"].as_str().unwrap().parse().unwrap();
        let kind: AvatarKind = row["kind"].as_str().unwrap().parse().unwrap();
        let trigger = TriggerPhrase::new(row["trigger"].as_str().unwrap()).unwrap();
        let id = row["request_id"].as_str().unwrap();
        let job = TrainingJob::resume(&fal, stored, kind, trigger, id).unwrap();
        assert_eq!(job.request_id(), id);
        let avatar = job.wait().await.unwrap();
        assert_eq!((avatar.kind(), avatar.trainer()), (kind, trainer));
        assert_eq!(avatar.training_request_id(), Some(id));
        let AvatarModel::Lora { url, .. } = avatar.model() else {
            panic!("{trainer} trained {:?}", avatar.model())
        };
        assert!(!url.is_empty());
        let images = avatar
            .generate(&fal, "TOK_anna on a boat", 1)
            .await
            .unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(mock.submissions(trainer.endpoint_id()), 1);
    }
    // Each avatar generated on its trainer's generator (portrait and fast share FLUX LoRA).
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 2);
    assert_eq!(mock.submissions("fal-ai/flux-2/lora"), 1);
    assert_eq!(mock.submissions("fal-ai/z-image/turbo/lora"), 1);
}

/// Dropping a wait (here by an outer timeout) leaves nothing running: no task keeps polling or
/// streaming, and the job stays resumable.
#[tokio::test]
async fn a_dropped_wait_leaves_nothing_running() {
    let mock = FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let zip = upload_photos(&mock).await;
    let job = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(zip))
        .await
        .unwrap();
    for stream in [true, false] {
        let wait = job
            .wait()
            .stream(stream)
            .poll_interval(Duration::from_millis(5));
        assert!(tokio::time::timeout(Duration::from_millis(100), wait)
            .await
            .is_err());
        // A request already on the wire when the future was dropped may still land: let it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_drop = mock.requests().len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            mock.requests().len(),
            after_drop,
            "stream {stream}: a request after the drop"
        );
    }
    assert!(!mock.job(job.request_id()).unwrap().cancelled);
}
