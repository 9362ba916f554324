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
async fn a_plan_takes_a_local_archive_that_expires_after_a_day() {
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
    let sent = sent.as_str().unwrap();
    assert!(sent.starts_with(&mock.cdn_url()), "{sent}");
    // People's photos: the archive expires after a day, as with `upload_archive`.
    assert_eq!(
        mock.file_lifecycle(sent),
        Some(json!({"expiration_duration_seconds": 86400}))
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

/// A `file://` string from outside (a deserialized input) is a URL like any other: the client
/// never reads a local file because of it.
#[tokio::test]
async fn a_deserialized_file_url_is_never_read_from_disk() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let input: PortraitTrainerInput =
        serde_json::from_value(json!({"images_data_url": "file:///etc/passwd"})).unwrap();
    assert_eq!(
        input.images_data_url,
        FileInput::Url("file:///etc/passwd".into())
    );
    assert!(!input.images_data_url.needs_upload());
    let job = fal.submit::<PortraitTrainer>(&input).await.unwrap();
    assert_eq!(
        mock.job(job.request_id()).unwrap().input["images_data_url"],
        "file:///etc/passwd"
    );
    assert_eq!(mock.cdn_token_fetches(), 0);
    assert!(mock
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/files/")));
}

/// Options are checked before the input's files are uploaded.
#[tokio::test]
async fn a_bad_option_fails_before_any_upload() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("set.zip");
    std::fs::write(&zip, training_zip()).unwrap();
    let err = fal
        .submit::<PortraitTrainer>(&PortraitTrainerInput::new(FileInput::path(&zip)))
        .start_timeout(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
}

#[tokio::test]
async fn untyped_inputs_get_their_data_uris_uploaded_explicitly() {
    let mock = mock().await;
    let fal = mock.client().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("fox.png");
    std::fs::write(&png, PNG_1X1).unwrap();
    let input = json!({
        "prompt": "data:science,chart",
        "refs": [fal_client::storage::data_uri(b"abc", "text/plain"), "https://example.com/a.png"],
        "nested": {"a/b": {"mask": fal_client::storage::data_uri(PNG_1X1, "image/png")}},
        "inline": "data:text/plain,not base64: sent as is",
        "path": format!("file://{}", png.display()),
    });
    let out = fal.storage().upload_files_in(input).await.unwrap();
    let cdn = mock.cdn_url();
    let is_upload = |v: &Value| v.as_str().unwrap().starts_with(&cdn);
    assert!(is_upload(&out["refs"][0]), "{out}");
    assert_eq!(out["refs"][1], "https://example.com/a.png");
    assert!(is_upload(&out["nested"]["a/b"]["mask"]), "{out}");
    assert_eq!(out["prompt"], "data:science,chart");
    assert_eq!(out["inline"], "data:text/plain,not base64: sent as is");
    // A `file://` string is never read from disk.
    assert!(out["path"].as_str().unwrap().starts_with("file://"));
    let (ct, bytes) = mock.uploaded(out["refs"][0].as_str().unwrap()).unwrap();
    assert_eq!((ct.as_str(), &bytes[..]), ("text/plain", &b"abc"[..]));
    assert_eq!(
        mock.requests()
            .iter()
            .filter(|r| r.path == "/files/upload")
            .count(),
        2
    );
}
