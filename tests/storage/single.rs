//! Storage paths against wiremock: the initiate call, the key-less PUT, downloads.

use std::time::Duration;

use fal_client::retry::RetryPolicy;
use fal_client::storage::UploadFlow;
use fal_client::StatusCode;
use fal_client::{Error, FalClient};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "storage-key";

/// A client of the initiate flow (the flow these wiremock tests check; `cdn.rs` checks v3).
fn client(rest: &MockServer) -> FalClient {
    FalClient::builder()
        .key(KEY)
        .rest_url(rest.uri())
        .queue_url(rest.uri())
        .retry(
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .upload_flows([UploadFlow::Initiate])
        .build()
        .unwrap()
}

async fn mount_initiate(rest: &MockServer, cdn: &MockServer, content_type: &str, file_name: &str) {
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .and(query_param("storage_type", "fal-cdn-v3"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .and(body_json(
            json!({"content_type": content_type, "file_name": file_name}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/upload/tok?signature=s3cr3t", cdn.uri()),
            "file_url": format!("{}/files/tok/{file_name}", cdn.uri()),
        })))
        .expect(1)
        .mount(rest)
        .await;
}

#[tokio::test]
async fn upload_bytes_initiates_then_puts_without_the_key() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    mount_initiate(&rest, &cdn, "application/zip", "photos.zip").await;
    Mock::given(method("PUT"))
        .and(path("/upload/tok"))
        .and(query_param("signature", "s3cr3t"))
        .and(header("content-type", "application/zip"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&cdn)
        .await;
    let url = client(&rest)
        .storage()
        .upload_bytes(b"PK\x03\x04zip".to_vec())
        .content_type("application/zip")
        .file_name("photos.zip")
        .await
        .unwrap();
    assert_eq!(url.as_str(), format!("{}/files/tok/photos.zip", cdn.uri()));
    let put = &cdn.received_requests().await.unwrap()[0];
    assert_eq!(put.body, b"PK\x03\x04zip");
    assert!(
        put.headers.get("authorization").is_none(),
        "the key must not reach the upload URL"
    );
}

#[tokio::test]
async fn upload_bytes_names_the_file_after_its_type() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    mount_initiate(&rest, &cdn, "image/png", "upload.png").await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cdn)
        .await;
    client(&rest)
        .storage()
        .upload_bytes(vec![1u8, 2, 3])
        .content_type("image/png")
        .await
        .unwrap();
}

#[tokio::test]
async fn upload_file_streams_the_file_with_its_guessed_type() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("training set.zip");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    mount_initiate(&rest, &cdn, "application/zip", "training set.zip").await;
    Mock::given(method("PUT"))
        .and(header("content-type", "application/zip"))
        .and(header("content-length", "300000"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&cdn)
        .await;
    client(&rest).storage().upload_file(&file).await.unwrap();
    let put = &cdn.received_requests().await.unwrap()[0];
    assert_eq!(put.body, data);
}

#[tokio::test]
async fn a_failed_put_is_retried_with_the_whole_file() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.png");
    std::fs::write(&file, b"\x89PNG data").unwrap();
    mount_initiate(&rest, &cdn, "image/png", "a.png").await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&cdn)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&cdn)
        .await;
    client(&rest).storage().upload_file(&file).await.unwrap();
    let puts = cdn.received_requests().await.unwrap();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[1].body, b"\x89PNG data");
}

#[tokio::test]
async fn a_missing_file_is_an_io_error_before_any_request() {
    let rest = MockServer::start().await;
    let err = client(&rest)
        .storage()
        .upload_file("/definitely/not/here.zip")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path.contains("here.zip")),
        "{err}"
    );
    assert!(rest.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_initiate_answer_is_typed() {
    let rest = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"upload_url": "not a url", "file_url": "x"})),
        )
        .mount(&rest)
        .await;
    let err = client(&rest)
        .storage()
        .upload_bytes(vec![1u8])
        .content_type("image/png")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Upload(ref m) if m.contains("upload_url")),
        "{err}"
    );

    let rest = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"file_url": "https://x"})))
        .mount(&rest)
        .await;
    let err = client(&rest)
        .storage()
        .upload_bytes(vec![1u8])
        .content_type("image/png")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decode { ref message, .. } if message.contains("upload_url")),
        "{err}"
    );
}

#[tokio::test]
async fn initiate_errors_keep_the_api_details() {
    let rest = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Unauthorized"})))
        .expect(1)
        .mount(&rest)
        .await;
    let err = client(&rest)
        .storage()
        .upload_bytes(vec![1u8])
        .content_type("image/png")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(err.as_api().unwrap().message(), "Unauthorized");
}

#[tokio::test]
async fn downloads_send_no_key() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/files/img.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"\x89PNG...".to_vec()))
        .mount(&cdn)
        .await;
    let fal = client(&rest);
    let url = format!("{}/files/img.png", cdn.uri());
    assert_eq!(
        &fal.storage().download(&url).await.unwrap()[..],
        b"\x89PNG..."
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.png");
    assert_eq!(fal.storage().download_to_file(&url, &out).await.unwrap(), 7);
    assert_eq!(std::fs::read(&out).unwrap(), b"\x89PNG...");
    for r in cdn.received_requests().await.unwrap() {
        assert!(r.headers.get("authorization").is_none());
    }
    let err = fal.storage().download("ftp://x/y").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
    let err = fal
        .storage()
        .download(&format!("{}/files/missing", cdn.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
}

/// A server whose first answer is cut short (5 of 10 declared bytes, then the connection
/// closes) and whose second answer is whole.
async fn flaky_file_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n";
            let body: &[u8] = if n == 0 { b"01234" } else { b"0123456789" };
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body).await;
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}/files/x.bin"), hits)
}

#[tokio::test]
async fn a_download_cut_short_is_fetched_again_and_never_left_half_written() {
    let rest = MockServer::start().await;
    let (url, hits) = flaky_file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.bin");
    let n = client(&rest)
        .storage()
        .download_to_file(&url, &out)
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(std::fs::read(&out).unwrap(), b"0123456789");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(!dir.path().join("x.bin.part").exists());

    // Without retries the cut-short body is an error and no file is left behind.
    let (url, _) = flaky_file_server().await;
    let once = FalClient::builder()
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let out = dir.path().join("y.bin");
    let err = once
        .storage()
        .download_to_file(&url, &out)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { .. } | Error::Io { .. }),
        "{err:?}"
    );
    assert!(!out.exists());
    assert!(!dir.path().join("y.bin.part").exists());
}

/// The read timeout is silence *between two chunks of an answer*: an upload whose answer takes
/// longer than it (a slow link, a busy CDN) still succeeds.
#[tokio::test]
async fn an_upload_slower_than_the_read_timeout_succeeds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = MockServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        // Read the head and the 8-byte body, then take a while to answer.
        while got < 8 || !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf[got..]).await.unwrap();
            if n == 0 {
                return;
            }
            got += n;
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("http://{cdn}/upload/tok"),
            "file_url": format!("http://{cdn}/files/tok"),
        })))
        .mount(&rest)
        .await;
    let fal = FalClient::builder()
        .upload_flows([UploadFlow::Initiate])
        .key(KEY)
        .rest_url(rest.uri())
        .read_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let url = fal
        .storage()
        .upload_bytes(b"12345678".to_vec())
        .content_type("application/octet-stream")
        .await
        .unwrap();
    assert_eq!(url.as_str(), format!("http://{cdn}/files/tok"));
}

/// An answer whose body stops arriving fails with `Error::Stalled` after the read timeout.
#[tokio::test]
async fn a_stalled_answer_body_is_a_typed_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await; // then nothing
    });
    let fal = FalClient::builder()
        .read_timeout(Duration::from_millis(200))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = fal
        .storage()
        .download(&format!("http://{addr}/files/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Stalled { idle, .. } if idle == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

/// A TCP server that reads what it is sent and never answers; counts the connections.
async fn silent_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, accepted)
}

/// A download whose answer never starts ends with `Error::Stalled` after the request timeout
/// (not never), and is retried like any idempotent call.
#[tokio::test]
async fn a_download_whose_answer_never_comes_is_stalled() {
    let (addr, accepted) = silent_server().await;
    let fal = FalClient::builder()
        .request_timeout(Duration::from_millis(200))
        .retry(
            RetryPolicy::default()
                .with_max_retries(1)
                .with_delays(Duration::from_millis(1), Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        fal.storage().download(format!("http://{addr}/files/x")),
    )
    .await
    .expect("the watchdog ends the call")
    .unwrap_err();
    assert!(
        matches!(err, Error::Stalled { idle, .. } if idle == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one retry"
    );
}

/// An upload whose body was taken but whose answer never comes ends with `Error::Stalled` after
/// the request timeout, counted from the end of the body.
#[tokio::test]
async fn an_upload_whose_answer_never_comes_is_stalled() {
    let rest = MockServer::start().await;
    let (cdn, _) = silent_server().await;
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("http://{cdn}/upload/tok"),
            "file_url": format!("http://{cdn}/files/tok"),
        })))
        .mount(&rest)
        .await;
    let fal = FalClient::builder()
        .upload_flows([UploadFlow::Initiate])
        .key(KEY)
        .rest_url(rest.uri())
        .request_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        fal.storage()
            .upload_bytes(vec![7u8; 300 * 1024])
            .content_type("application/octet-stream"),
    )
    .await
    .expect("the watchdog ends the call")
    .unwrap_err();
    assert!(
        matches!(err, Error::Stalled { idle, .. } if idle == Duration::from_millis(300)),
        "{err:?}"
    );
}

/// A content type that cannot be a header value is refused before anything is sent; an
/// upload's `Debug` shows the size of its bytes, not the bytes.
#[tokio::test]
async fn a_bad_content_type_is_refused_before_any_request() {
    let rest = MockServer::start().await;
    let fal = client(&rest);
    let upload = fal
        .storage()
        .upload_bytes(vec![0xAB_u8; 4096])
        .content_type("image/png\r\nx-evil: 1");
    let shown = format!("{upload:?}");
    assert!(
        shown.contains("4096 bytes") && !shown.contains("171"),
        "{shown}"
    );
    let err = upload.await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "content_type"),
        "{err:?}"
    );
    assert!(rest.received_requests().await.unwrap().is_empty());
}
