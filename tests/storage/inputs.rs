//! Local files in inputs: typed models' `FileInput` fields are uploaded at submit and run;
//! `Storage::upload_files_in` does the same for untyped JSON.

use std::time::Duration;

use fal_client::avatar::{AvatarKind, Preset, TriggerPhrase};
use fal_client::models::{
    PortraitTrainer, PortraitTrainerInput, UltraFinetuned, UltraFinetunedInput,
};
use fal_client::storage::FileInput;
use fal_client::{Endpoint, Error};
use fal_mock::FalMock;
use serde_json::{json, Value};

use crate::common::{training_zip, PNG_1X1};

async fn mock() -> FalMock {
    FalMock::builder()
        .queue_time(Duration::ZERO)
        .processing_time(Duration::from_millis(20))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_local_archive_is_uploaded_at_submit_and_its_url_sent() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("anna photos.zip");
    std::fs::write(&zip, training_zip()).unwrap();
    let input = PortraitTrainerInput::new(FileInput::path(&zip));
    let job = fal.submit::<PortraitTrainer>(&input).await.unwrap();
    // The caller's input is untouched; the request carried the uploaded file's URL.
    assert_eq!(input.images_data_url, FileInput::path(&zip));
    let sent = mock.job(job.request_id()).unwrap().input["images_data_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sent.starts_with(&mock.cdn_url()), "{sent}");
    assert_eq!(mock.uploaded(&sent).unwrap().1, training_zip());
    let out = job
        .wait()
        .poll_interval(Duration::from_millis(5))
        .await
        .unwrap();
    assert!(!out.diffusers_lora_file.url.is_empty());
}

#[tokio::test]
async fn bytes_and_data_uris_are_uploaded_at_a_sync_run() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    for image in [
        FileInput::bytes(PNG_1X1, "image/png"),
        FileInput::url(fal_client::storage::data_uri(PNG_1X1, "image/png")),
    ] {
        let input = UltraFinetunedInput {
            image_url: Some(image),
            ..UltraFinetunedInput::new("a fox", "ft-1", 1.0)
        };
        fal.run::<UltraFinetuned>(&input).await.unwrap();
    }
    let uploads = mock
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/files/upload")
        .count();
    assert_eq!(uploads, 2);
    assert_eq!(mock.cdn_token_fetches(), 1);
}

#[tokio::test]
async fn a_plan_takes_a_local_archive() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("set.zip");
    std::fs::write(&zip, training_zip()).unwrap();
    let plan = AvatarKind::Portrait.plan(
        Preset::Fast,
        zip.as_path(),
        TriggerPhrase::new("TOK_anna").unwrap(),
    );
    let job = plan.submit(&fal).await.unwrap();
    let sent = mock.job(job.request_id()).unwrap().input["images_data_url"].clone();
    assert!(
        sent.as_str().unwrap().starts_with(&mock.cdn_url()),
        "{sent}"
    );
}

#[tokio::test]
async fn a_missing_local_file_fails_before_anything_is_submitted() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let input = PortraitTrainerInput::new(FileInput::path("/nonexistent/photos.zip"));
    let err = fal.submit::<PortraitTrainer>(&input).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(mock.submissions(PortraitTrainer::ID), 0);
}

#[tokio::test]
async fn untyped_inputs_get_their_files_uploaded_explicitly() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("fox.png");
    std::fs::write(&png, PNG_1X1).unwrap();
    let input = json!({
        "prompt": "data: not a URI, just text",
        "image_url": FileInput::path(&png),
        "refs": [fal_client::storage::data_uri(b"abc", "text/plain"), "https://example.com/a.png"],
        "nested": {"a/b": {"mask": FileInput::bytes(PNG_1X1, "image/png")}},
    });
    assert!(input["image_url"].as_str().unwrap().starts_with("file://"));
    let out = fal.storage().upload_files_in(input).await.unwrap();
    let cdn = mock.cdn_url();
    let is_upload = |v: &Value| v.as_str().unwrap().starts_with(&cdn);
    assert!(is_upload(&out["image_url"]), "{out}");
    assert!(is_upload(&out["refs"][0]), "{out}");
    assert_eq!(out["refs"][1], "https://example.com/a.png");
    assert!(is_upload(&out["nested"]["a/b"]["mask"]), "{out}");
    assert_eq!(out["prompt"], "data: not a URI, just text");
    let (ct, bytes) = mock.uploaded(out["refs"][0].as_str().unwrap()).unwrap();
    assert_eq!((ct.as_str(), &bytes[..]), ("text/plain", &b"abc"[..]));
    // Only base64 data URIs are uploaded.
    let err = fal
        .storage()
        .upload_files_in(json!({"x": "data:text/plain,abc"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
