//! Whole flows through the crate's API against `FalMock`.

use std::time::Duration;

use fal_client::archive::ArchiveBuilder;
use fal_client::avatar::{
    AvatarKind, AvatarModel, Preset, Trainer, TrainingJob, TrainingRequest, TriggerPhrase,
};
use fal_client::models::{
    FluxLora, FluxLoraInput, LoraTrainingOutput, OutputFormat, PortraitTrainer,
    PortraitTrainerInput, ProTrainer, ProTrainerInput, UltraFinetuned, UltraFinetunedInput,
};
use fal_client::queue::{CancelOutcome, QueueStatus, RequestHandle, WaitEvent};
use fal_client::StatusCode;
use fal_client::{Error, FalClient};
use fal_mock::{FalMock, MockFailure};

fn data(kind: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data")
        .join(kind)
}

async fn fast_mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::from_millis(40))
        .processing_time(Duration::from_millis(120))
        .log_lines(4)
        .start()
        .await
        .unwrap()
}

async fn upload_archive(fal: &FalClient, kind: &str) -> String {
    let archive = ArchiveBuilder::new()
        .build_from_dir_async(data(kind))
        .await
        .unwrap();
    fal.storage()
        .upload_bytes(archive.into_bytes())
        .content_type("application/zip")
        .file_name("set.zip")
        .await
        .unwrap()
        .into()
}

fn decodes(bytes: &[u8]) -> (u32, u32) {
    if bytes.starts_with(b"RIFF") {
        let d = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        let (w, h) = d.dimensions();
        let mut buf = vec![0; d.output_buffer_size().unwrap()];
        let mut d = d;
        d.read_image(&mut buf).unwrap();
        (w, h)
    } else if bytes.starts_with(b"\x89PNG") {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (info.width, info.height)
    } else {
        let mut d = jpeg_decoder::Decoder::new(bytes);
        d.decode().unwrap();
        let info = d.info().unwrap();
        (u32::from(info.width), u32::from(info.height))
    }
}

#[tokio::test]
async fn portrait_avatar_trains_and_generates_decodable_images() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    let zip_url = upload_archive(&fal, "portrait").await;
    let plan = AvatarKind::Portrait.plan(
        Preset::Fast,
        zip_url.clone(),
        TriggerPhrase::new("TOK_ann").unwrap(),
    );
    let job = plan.submit(&fal).await.unwrap();
    assert_eq!(job.endpoint_id(), "fal-ai/flux-lora-portrait-trainer");

    // The mock received exactly what the plan said.
    let sent = mock.job(job.request_id()).unwrap();
    assert_eq!(sent.input["images_data_url"], zip_url.as_str());
    assert_eq!(sent.input["steps"], 500);
    assert_eq!(sent.input["learning_rate"], 3e-4);
    assert_eq!(sent.input["trigger_phrase"], "TOK_ann");

    let mut events = Vec::new();
    let avatar = job
        .wait()
        .timeout(Duration::from_secs(20))
        .on_event(|e| {
            events.push(match e {
                WaitEvent::Queued { .. } => "queued".to_owned(),
                WaitEvent::Started => "started".to_owned(),
                WaitEvent::Log(l) => format!("log:{}", l.message),
                WaitEvent::Completed => "completed".to_owned(),
                _ => "other".to_owned(),
            })
        })
        .await
        .unwrap();
    assert_eq!(events.iter().filter(|e| *e == "started").count(), 1);
    assert_eq!(events.last().map(String::as_str), Some("completed"));
    let logs: Vec<_> = events.iter().filter(|e| e.starts_with("log:")).collect();
    assert_eq!(logs.len(), 4, "each log line once: {events:?}");

    let AvatarModel::Lora { url, config_url } = avatar.model() else {
        panic!("expected a LoRA")
    };
    let lora = fal.storage().download(url).await.unwrap();
    let header_len = u64::from_le_bytes(lora[..8].try_into().unwrap()) as usize;
    assert!(
        serde_json::from_slice::<serde_json::Value>(&lora[8..8 + header_len]).is_ok(),
        "safetensors header"
    );
    assert!(config_url.is_some());

    let images = avatar.generate(&fal, "in a garden", 2).await.unwrap();
    assert_eq!(images.len(), 2);
    for image in &images {
        let bytes = fal.storage().download(&image.url).await.unwrap();
        assert_eq!(
            decodes(&bytes),
            (image.width.unwrap(), image.height.unwrap())
        );
    }
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 1);
    let gen = mock.requests();
    assert!(gen
        .iter()
        .all(|r| r.host_kind != fal_mock::HostKind::Cdn || !r.key_sent));
}

#[tokio::test]
async fn style_avatar_trains_on_fast_training_in_style_mode() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    let trigger = TriggerPhrase::new("TOK_brand").unwrap();
    let zip_url = upload_for(&fal, AvatarKind::Style, Trainer::FluxLoraFast, &trigger).await;
    let plan = AvatarKind::Style.plan(Preset::Balanced, zip_url, trigger);
    let TrainingRequest::FluxLoraFast(input) = plan.request() else {
        panic!()
    };
    assert_eq!(input.steps, Some(1000));
    let job = plan.submit(&fal).await.unwrap();
    assert_eq!(job.endpoint_id(), "fal-ai/flux-lora-fast-training");
    let sent = mock.job(job.request_id()).unwrap().input;
    assert_eq!(sent["is_style"], true);
    assert_eq!(sent["trigger_word"], "TOK_brand");
    let avatar = job.wait().await.unwrap();
    assert_eq!(avatar.trainer(), Trainer::FluxLoraFast);
    let images = avatar.generate(&fal, "a lighthouse", 1).await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 1);
    assert_eq!(mock.submissions("fal-ai/flux-pro-trainer"), 0);
}

/// Train `kind` on `trainer` from the bundled photos (the archive built for the trainer) and
/// generate two images; returns the avatar and the images' bytes.
async fn train_and_generate(
    mock: &FalMock,
    kind: AvatarKind,
    trainer: Trainer,
) -> (
    fal_client::avatar::TrainedAvatar,
    Vec<(fal_client::models::Image, bytes::Bytes)>,
) {
    let fal = mock.client().unwrap();
    let trigger = TriggerPhrase::new(format!("TOK_{kind}")).unwrap();
    let zip_url = upload_for(&fal, kind, trainer, &trigger).await;
    let job = trainer
        .plan(kind, Preset::Fast, zip_url, trigger)
        .submit(&fal)
        .await
        .unwrap();
    assert_eq!(job.endpoint_id(), trainer.endpoint_id());
    let avatar = job
        .wait()
        .timeout(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{trainer}: {e}"));
    let images = avatar.generate(&fal, "on a mountain top", 2).await.unwrap();
    let mut out = Vec::new();
    for image in images {
        let bytes = fal.storage().download(&image.url).await.unwrap();
        out.push((image, bytes));
    }
    (avatar, out)
}

async fn upload_for(
    fal: &FalClient,
    kind: AvatarKind,
    trainer: Trainer,
    trigger: &TriggerPhrase,
) -> String {
    let folder = if kind == AvatarKind::Portrait {
        "portrait"
    } else {
        "style"
    };
    let archive = trainer
        .archive_builder(kind, trigger)
        .build_from_dir_async(data(folder))
        .await
        .unwrap();
    fal.storage()
        .upload_bytes(archive.into_bytes())
        .content_type("application/zip")
        .file_name("set.zip")
        .await
        .unwrap()
        .into()
}

#[tokio::test]
async fn every_kind_trains_on_its_default_live_trainer_and_generates() {
    let mock = fast_mock().await;
    for kind in AvatarKind::ALL {
        let trainer = kind.default_trainer();
        let (avatar, images) = train_and_generate(&mock, kind, trainer).await;
        assert_eq!(avatar.generator().endpoint_id(), "fal-ai/flux-lora");
        assert_eq!(images.len(), 2, "{kind}");
        for (image, bytes) in &images {
            assert_eq!(
                decodes(bytes),
                (image.width.unwrap(), image.height.unwrap())
            );
        }
    }
    assert_eq!(mock.submissions("fal-ai/flux-pro-trainer"), 0);
}

#[tokio::test]
async fn flux2_avatars_generate_with_the_flux2_lora_generator() {
    let mock = fast_mock().await;
    for trainer in [Trainer::Flux2, Trainer::Flux2V2] {
        let (avatar, images) = train_and_generate(&mock, AvatarKind::Portrait, trainer).await;
        let AvatarModel::Lora { url, .. } = avatar.model() else {
            panic!()
        };
        assert!(url.starts_with(&mock.cdn_url()));
        // No trigger field: the trigger phrase went in as the default caption.
        let training = mock.job(avatar.training_request_id().unwrap()).unwrap();
        assert_eq!(training.input["default_caption"], "a photo of TOK_portrait");
        assert!(training.input.get("trigger_phrase").is_none());
        for (image, bytes) in &images {
            // FLUX.2's default output is PNG.
            assert!(bytes.starts_with(b"\x89PNG"), "{trainer}");
            assert_eq!(image.content_type.as_deref(), Some("image/png"));
            assert_eq!(
                decodes(bytes),
                (image.width.unwrap(), image.height.unwrap())
            );
        }
    }
    assert_eq!(mock.submissions("fal-ai/flux-2-trainer"), 1);
    assert_eq!(mock.submissions("fal-ai/flux-2-trainer-v2"), 1);
    assert_eq!(mock.submissions("fal-ai/flux-2/lora"), 2);
    // Status and result of `fal-ai/flux-2/lora` live under the app id `fal-ai/flux-2`.
    assert!(mock
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/queue/fal-ai/flux-2/requests/")));
}

#[tokio::test]
async fn z_image_avatars_generate_with_the_z_image_generator() {
    let mock = fast_mock().await;
    let (avatar, images) = train_and_generate(&mock, AvatarKind::Product, Trainer::ZImage).await;
    assert_eq!(
        avatar.generator().endpoint_id(),
        "fal-ai/z-image/turbo/lora"
    );
    assert_eq!(images.len(), 2);
    assert_eq!(mock.submissions("fal-ai/z-image/turbo/lora"), 1);
}

#[tokio::test]
async fn flux2_archives_carry_the_trigger_in_every_caption() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    let trigger = TriggerPhrase::new("TOK_ann").unwrap();
    let url = upload_for(&fal, AvatarKind::Portrait, Trainer::Flux2, &trigger).await;
    let (_, zip) = mock.uploaded(&url).unwrap();
    let report = fal_client::archive::validate_zip(&zip, 10).unwrap();
    assert_eq!(report.captioned_count(), report.image_count());
    for image in &report.images {
        let caption = image.caption.as_deref().unwrap();
        assert!(caption.contains("TOK_ann"), "{}: {caption}", image.name);
        assert!(!caption.contains("[trigger]"), "{}: {caption}", image.name);
    }
}

#[tokio::test]
async fn the_mock_fails_a_flux2_training_whose_archive_lacks_captions() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    // Built without the trainer's rules: four images have no caption.
    let url = upload_archive(&fal, "portrait").await;
    let input = fal_client::models::Flux2TrainerInput::new(url.clone());
    let err = fal
        .submit::<fal_client::models::Flux2Trainer>(&input)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    let api = err.as_api().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(api.status, 422);
    assert!(err.to_string().contains("astronaut_09.jpg"), "{err}");
    // With a default caption the same archive trains.
    let with_default = fal_client::models::Flux2TrainerInput {
        default_caption: Some("a photo of TOK_ann".into()),
        ..fal_client::models::Flux2TrainerInput::new(url)
    };
    fal.submit::<fal_client::models::Flux2Trainer>(&with_default)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_deprecated_pro_trainer_is_a_typed_error_naming_the_replacement() {
    let mock = fast_mock().await; // like fal today: the pro trainer is not served
    let fal = mock.client().unwrap();
    let plan = Trainer::FluxPro.plan(
        AvatarKind::Style,
        Preset::Fast,
        "https://example.com/set.zip",
        TriggerPhrase::new("TOK_brand").unwrap(),
    );
    let err = plan.submit(&fal).await.unwrap_err();
    let Error::EndpointNotFound {
        endpoint,
        deprecation,
        api,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(endpoint, "fal-ai/flux-pro-trainer");
    assert_eq!(api.status, 404);
    assert_eq!(
        deprecation.map(|d| d.replacement),
        Some("fal-ai/flux-lora-fast-training")
    );
    let msg = err.to_string();
    assert!(
        msg.contains("deprecated") && msg.contains("fal-ai/flux-lora-fast-training"),
        "{msg}"
    );
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(!err.is_retryable());
    assert_eq!(mock.submissions("fal-ai/flux-pro-trainer"), 0);

    // Any other endpoint fal does not serve is the same error, without a deprecation.
    mock.remove_endpoint("fal-ai/flux-lora");
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EndpointNotFound { ref endpoint, deprecation: None, .. } if endpoint == "fal-ai/flux-lora"),
        "{err:?}"
    );
    let err = fal
        .run::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EndpointNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn legacy_pro_avatars_still_work_where_the_trainer_is_served() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_millis(40))
        .processing_time(Duration::from_millis(120))
        .removed_endpoints(Vec::<String>::new())
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let trigger = TriggerPhrase::new("TOK_brand").unwrap();
    let zip_url = upload_for(&fal, AvatarKind::Style, Trainer::FluxPro, &trigger).await;
    let plan = Trainer::FluxPro.plan(AvatarKind::Style, Preset::Balanced, zip_url, trigger);
    let TrainingRequest::FluxPro(input) = plan.request() else {
        panic!()
    };
    assert_eq!(input.iterations, Some(500));
    let job = plan.submit(&fal).await.unwrap();
    assert_eq!(mock.job(job.request_id()).unwrap().input["mode"], "style");
    let avatar = job.wait().await.unwrap();
    let AvatarModel::Finetune { id } = avatar.model() else {
        panic!("expected a finetune")
    };
    assert!(!id.is_empty());
    let images = avatar.generate(&fal, "a lighthouse", 1).await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(mock.submissions("fal-ai/flux-pro/v1.1-ultra-finetuned"), 1);
    let ultra = mock
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/requests/"))
        .map(|r| r.path)
        .collect::<Vec<_>>();
    assert!(
        ultra
            .iter()
            .any(|p| p.starts_with("/queue/fal-ai/flux-pro/requests/")),
        "owner/alias rule: {ultra:?}"
    );
}

#[tokio::test]
async fn a_training_resumes_after_the_client_is_dropped() {
    let mock = fast_mock().await;
    let (request_id, trigger) = {
        let fal = mock.client().unwrap();
        let zip_url = upload_archive(&fal, "portrait").await;
        let trigger = TriggerPhrase::new("TOK_r").unwrap();
        let job = AvatarKind::Portrait
            .plan(Preset::Fast, zip_url, trigger.clone())
            .submit(&fal)
            .await
            .unwrap();
        (job.request_id().to_owned(), trigger)
    }; // client and handle dropped: a service restarted
    let fal = mock.client().unwrap();
    let job = TrainingJob::resume(
        &fal,
        Trainer::FluxLoraPortrait,
        AvatarKind::Portrait,
        trigger,
        &request_id,
    )
    .unwrap();
    let avatar = job.wait().await.unwrap();
    assert_eq!(avatar.training_request_id(), Some(request_id.as_str()));
    let raw: RequestHandle<LoraTrainingOutput> = fal
        .resume("fal-ai/flux-lora-portrait-trainer", &request_id)
        .unwrap();
    assert!(raw
        .result()
        .await
        .unwrap()
        .diffusers_lora_file
        .url
        .starts_with("http"));
    assert_eq!(mock.submissions("fal-ai/flux-lora-portrait-trainer"), 1);
}

#[tokio::test]
async fn server_side_validation_comes_back_with_field_details() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    // A body the client's own validation would refuse, sent untyped to reach the server.
    let job = fal
        .submit_json(
            "fal-ai/flux-lora-portrait-trainer",
            &serde_json::json!({"images_data_url": "https://example.com/a.zip", "steps": 20000}),
        )
        .await
        .unwrap();
    let err = job.wait().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(err.request_id(), Some(job.request_id()));
    let fields = err.as_api().unwrap().field_errors();
    assert_eq!(fields[0].field(), Some("steps"));
    // The typed path refuses the same input before spending anything.
    let before = mock.submissions("fal-ai/flux-lora-portrait-trainer");
    let input = PortraitTrainerInput {
        steps: Some(20_000),
        ..PortraitTrainerInput::new("https://example.com/a.zip")
    };
    let err = fal.submit::<PortraitTrainer>(&input).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "steps"));
    assert_eq!(
        mock.submissions("fal-ai/flux-lora-portrait-trainer"),
        before
    );
}

#[tokio::test]
async fn a_failed_request_is_typed_and_keeps_its_id() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    mock.fail_next(
        "fal-ai/flux-lora",
        MockFailure::completed_with_error("Runner disconnected", "runner_disconnected"),
    );
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap();
    let err = job.wait().await.unwrap_err();
    assert_eq!(err.request_id(), Some(job.request_id()));
    let api = err
        .as_api()
        .expect("the result call returns the runner error");
    assert_eq!(api.error_type.as_deref(), Some("runner_disconnected"));
    assert!(matches!(
        job.status(false).await.unwrap(),
        QueueStatus::Completed { error: Some(_), .. }
    ));
}

#[tokio::test]
async fn the_pro_trainer_requires_a_finetune_comment_on_the_server_too() {
    let mock = fast_mock().await;
    mock.restore_endpoint("fal-ai/flux-pro-trainer"); // a mock of fal before the deprecation
    let fal = mock.client().unwrap();
    let job = fal
        .submit_json(
            "fal-ai/flux-pro-trainer",
            &serde_json::json!({"data_url": "https://x/a.zip"}),
        )
        .await
        .unwrap();
    let err = job.wait().await.unwrap_err();
    let f = &err.as_api().unwrap().field_errors()[0];
    assert_eq!(
        (f.field(), f.kind.as_str()),
        (Some("finetune_comment"), "value_error.missing")
    );
    let typed = fal
        .submit::<ProTrainer>(&ProTrainerInput::new("https://x/a.zip", " "))
        .await;
    assert!(
        matches!(typed, Err(Error::InvalidInput { ref field, .. }) if field == "finetune_comment")
    );
}

#[tokio::test]
async fn cancel_a_queued_request() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap();
    assert!(matches!(
        job.status(false).await.unwrap(),
        QueueStatus::InQueue { .. }
    ));
    assert_eq!(
        job.cancel().await.unwrap(),
        CancelOutcome::CancellationRequested
    );
    assert_eq!(job.cancel().await.unwrap(), CancelOutcome::AlreadyCompleted);
    let err = job.wait().await.unwrap_err();
    assert_eq!(err.request_id(), Some(job.request_id()));
    assert_eq!(
        err.as_api().unwrap().error_type.as_deref(),
        Some("client_cancelled")
    );
}

#[tokio::test]
async fn a_deadline_cancels_the_request_on_the_mock() {
    let mock = FalMock::builder()
        .queue_time(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let fal = mock.client().unwrap();
    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap();
    let err = job
        .wait()
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                cancel_requested: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(mock.job(job.request_id()).unwrap().cancelled);
}

#[tokio::test]
async fn sync_run_and_submit_options_reach_the_server() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    let input = UltraFinetunedInput {
        num_images: Some(2),
        output_format: Some(OutputFormat::Png),
        ..UltraFinetunedInput::new("a fox", "ft-1", 1.0)
    };
    let out = fal.run::<UltraFinetuned>(&input).await.unwrap();
    assert_eq!(out.images.len(), 2);
    assert_eq!(out.prompt, "a fox");
    let png = fal.storage().download(&out.images[0].url).await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(mock.runs("fal-ai/flux-pro/v1.1-ultra-finetuned"), 1);

    let job = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .priority(fal_client::queue::Priority::Low)
        .runner_hint("lora:a")
        .start_timeout(Duration::from_secs(90))
        .webhook("http://127.0.0.1:9/hook".parse().unwrap())
        .await
        .unwrap();
    let snap = mock.job(job.request_id()).unwrap();
    assert_eq!(snap.priority.as_deref(), Some("low"));
    assert_eq!(snap.runner_hint.as_deref(), Some("lora:a"));
    assert_eq!(snap.request_timeout.as_deref(), Some("90"));
    assert_eq!(snap.webhook_url.as_deref(), Some("http://127.0.0.1:9/hook"));
}

#[tokio::test]
async fn a_wrong_key_is_a_401_and_nothing_is_queued() {
    let mock = fast_mock().await;
    let fal = mock.client_builder().key("not-the-key").build().unwrap();
    let err = fal
        .submit::<FluxLora>(&FluxLoraInput::new("x"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(mock.submissions("fal-ai/flux-lora"), 0);
    let err = fal
        .storage()
        .upload_bytes(vec![1u8])
        .content_type("image/png")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn uploaded_files_round_trip_through_the_mock() {
    let mock = fast_mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("face.jpg");
    std::fs::copy(data("portrait").join("astronaut_01.jpg"), &path).unwrap();
    let url = fal.storage().upload_file(&path).await.unwrap();
    let (ct, bytes) = mock.uploaded(&url).unwrap();
    assert_eq!(ct, "image/jpeg");
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    assert_eq!(fal.storage().download(&url).await.unwrap(), bytes);
}
