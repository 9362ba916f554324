//! Multipart uploads (fal's `initiate-multipart` flow) and upload progress: against wiremock (exact wire
//! shape, retries, refusals, concurrency) and against `FalMock` (whole flow, size checks).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fal_client::retry::RetryPolicy;
use fal_client::storage::{UploadFlow, UploadProgress};
use fal_client::StatusCode;
use fal_client::{Error, FalClient};
use fal_mock::{FalMock, HostKind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "multipart-key";
const KIB: u64 = 1024;
const THRESHOLD: u64 = 1024 * KIB;
const PART: u64 = 256 * KIB;

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(2))
}

/// A client of the initiate flow (the flow these wiremock tests check; `cdn.rs` checks v3).
fn client(rest: &MockServer) -> FalClient {
    FalClient::builder()
        .key(KEY)
        .rest_url(rest.uri())
        .queue_url(rest.uri())
        .retry(fast_retries())
        .upload_flows([UploadFlow::Initiate])
        .build()
        .unwrap()
}

/// A file of `len` bytes of a non-repeating-per-part pattern.
fn write_file(dir: &Path, name: &str, len: u64) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 4099) as u8)
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// Answers a part `PUT` like fal's CDN: `{"partNumber": n, "etag": "etag-n"}`, where `n` is the
/// last path segment.
struct PartAnswer {
    etag_in_body: bool,
    etag_header: bool,
}

fn part_number(req: &Request) -> u32 {
    req.url
        .path_segments()
        .unwrap()
        .next_back()
        .unwrap()
        .parse()
        .unwrap()
}

impl Respond for PartAnswer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = part_number(req);
        let mut body = json!({ "partNumber": n });
        if self.etag_in_body {
            body["etag"] = json!(format!("etag-{n}"));
        }
        let mut t = ResponseTemplate::new(200).set_body_json(body);
        if self.etag_header {
            t = t.insert_header("ETag", format!("\"h{n}\"").as_str());
        }
        t
    }
}

async fn mount_initiate_multipart(rest: &MockServer, cdn: &MockServer, name: &str) {
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate-multipart"))
        .and(query_param("storage_type", "fal-cdn-v3"))
        .and(header("authorization", format!("Key {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/mp/tok?sig=s%2B1&exp=99", cdn.uri()),
            "file_url": format!("{}/files/tok/{name}", cdn.uri()),
        })))
        .expect(1)
        .mount(rest)
        .await;
}

async fn mount_parts(cdn: &MockServer, answer: PartAnswer) {
    Mock::given(method("PUT"))
        .and(path_regex(r"^/mp/tok/\d+$"))
        .respond_with(answer)
        .with_priority(5)
        .mount(cdn)
        .await;
}

async fn mount_complete(cdn: &MockServer, expected_calls: u64) {
    Mock::given(method("POST"))
        .and(path("/mp/tok/complete"))
        .and(query_param("sig", "s+1"))
        .and(query_param("exp", "99"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(expected_calls)
        .mount(cdn)
        .await;
}

fn etags(n: u32, f: impl Fn(u32) -> String) -> Value {
    json!({ "parts": (1..=n).map(|i| json!({"partNumber": i, "etag": f(i)})).collect::<Vec<_>>() })
}

/// The part `PUT`s the CDN received, by part number (several per number when retried).
async fn part_puts(cdn: &MockServer) -> Vec<(u32, Request)> {
    let mut v: Vec<(u32, Request)> = cdn
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| (part_number(&r), r))
        .collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

#[tokio::test]
async fn parts_cover_the_file_and_keep_the_query_string() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // 4 full parts and a short fifth: not a multiple of the part size.
    let (file, data) = write_file(dir.path(), "big.bin", 4 * PART + 100_000);
    mount_initiate_multipart(&rest, &cdn, "big.bin").await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    mount_complete(&cdn, 1).await;

    let url = client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .await
        .unwrap();
    assert_eq!(url.as_str(), format!("{}/files/tok/big.bin", cdn.uri()));

    let puts = part_puts(&cdn).await;
    assert_eq!(
        puts.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let mut joined = Vec::new();
    for (n, r) in &puts {
        assert_eq!(r.url.path(), format!("/mp/tok/{n}"));
        assert_eq!(r.url.query(), Some("sig=s%2B1&exp=99"), "part {n}");
        assert!(r.headers.get("authorization").is_none(), "part {n}");
        let expected_len = if *n == 5 { 100_000 } else { PART as usize };
        assert_eq!(r.body.len(), expected_len, "part {n}");
        assert_eq!(
            r.headers.get("content-length").unwrap().to_str().unwrap(),
            expected_len.to_string()
        );
        joined.extend_from_slice(&r.body);
    }
    assert_eq!(joined, data, "the parts concatenate to the file");

    let complete = cdn
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    assert!(complete.headers.get("authorization").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&complete.body).unwrap(),
        etags(5, |i| format!("etag-{i}"))
    );
    let init = &rest.received_requests().await.unwrap()[0];
    assert_eq!(
        serde_json::from_slice::<Value>(&init.body).unwrap(),
        json!({"content_type": "application/octet-stream", "file_name": "big.bin"})
    );
}

#[tokio::test]
async fn exactly_at_the_threshold_is_one_put_and_one_byte_more_is_multipart() {
    let dir = tempfile::tempdir().unwrap();

    // == threshold: the single-PUT flow.
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let (file, data) = write_file(dir.path(), "at.bin", THRESHOLD);
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/upload/one?sig=x", cdn.uri()),
            "file_url": format!("{}/files/one/at.bin", cdn.uri()),
        })))
        .expect(1)
        .mount(&rest)
        .await;
    Mock::given(method("PUT"))
        .and(path("/upload/one"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&cdn)
        .await;
    client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .await
        .unwrap();
    assert_eq!(cdn.received_requests().await.unwrap()[0].body, data);

    // == threshold + 1: multipart, with a one-byte last part.
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let (file, data) = write_file(dir.path(), "over.bin", THRESHOLD + 1);
    mount_initiate_multipart(&rest, &cdn, "over.bin").await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    mount_complete(&cdn, 1).await;
    client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .await
        .unwrap();
    let puts = part_puts(&cdn).await;
    assert_eq!(puts.len(), 5);
    assert_eq!(puts[4].1.body, &data[data.len() - 1..]);
}

#[tokio::test]
async fn the_etag_header_is_used_when_the_body_has_none() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = write_file(dir.path(), "h.bin", 2 * PART + 1);
    mount_initiate_multipart(&rest, &cdn, "h.bin").await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: false,
            etag_header: true,
        },
    )
    .await;
    mount_complete(&cdn, 1).await;
    client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .await
        .unwrap();
    let complete = cdn
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&complete.body).unwrap(),
        etags(3, |i| format!("\"h{i}\""))
    );
}

#[tokio::test]
async fn a_part_without_an_etag_is_refused_before_completing() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = write_file(dir.path(), "e.bin", 4 * PART);
    mount_initiate_multipart(&rest, &cdn, "e.bin").await;
    Mock::given(method("PUT"))
        .and(path("/mp/tok/3"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"partNumber": 3, "etag": ""})),
        )
        .with_priority(1)
        .mount(&cdn)
        .await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    mount_complete(&cdn, 0).await;
    let err = client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Upload(m) if m.contains("part 3 of 4") && m.contains("ETag")),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_part_is_retried_alone() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = write_file(dir.path(), "r.bin", 4 * PART + 7);
    mount_initiate_multipart(&rest, &cdn, "r.bin").await;
    Mock::given(method("PUT"))
        .and(path("/mp/tok/2"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"detail": "busy"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&cdn)
        .await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    mount_complete(&cdn, 1).await;

    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    client(&rest)
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .on_progress(move |p| r.lock().unwrap().push(p))
        .await
        .unwrap();

    let puts = part_puts(&cdn).await;
    let numbers: Vec<u32> = puts.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 2, 3, 4, 5], "only part 2 is sent again");
    assert_eq!(
        puts[1].1.body, puts[2].1.body,
        "the retry resends the same range"
    );
    assert_eq!(puts[2].1.body, &data[PART as usize..2 * PART as usize]);
    check_progress(&reports.lock().unwrap(), data.len() as u64);
}

/// Reports start at 0, only grow, never exceed the total and reach it exactly once, last.
fn check_progress(reports: &[UploadProgress], total: u64) {
    assert!(reports.len() > 2, "byte-level reports: {reports:?}");
    assert_eq!(reports[0].sent, 0);
    assert!(reports.iter().all(|p| p.total == total));
    assert!(
        reports.windows(2).all(|w| w[0].sent < w[1].sent),
        "monotonic: {reports:?}"
    );
    assert_eq!(reports.iter().filter(|p| p.sent == total).count(), 1);
    assert_eq!(reports.last().unwrap().sent, total);
    assert!(reports.last().unwrap().is_done());
}

#[tokio::test]
async fn progress_of_single_and_multipart_uploads() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    mount_initiate_multipart(&rest, &cdn, "upload.zip").await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    mount_complete(&cdn, 1).await;
    let data: Vec<u8> = (0..(3 * PART + 5)).map(|i| i as u8).collect();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    // Bytes above the threshold go multipart too.
    client(&rest)
        .storage()
        .upload_bytes(data.clone())
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .content_type("application/zip")
        .on_progress(move |p| r.lock().unwrap().push(p))
        .await
        .unwrap();
    check_progress(&reports.lock().unwrap(), data.len() as u64);
    let joined: Vec<u8> = part_puts(&cdn)
        .await
        .into_iter()
        .flat_map(|(_, r)| r.body)
        .collect();
    assert_eq!(joined, data);

    // Single PUT from memory, reported in chunks as well.
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/storage/upload/initiate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "upload_url": format!("{}/upload/one", cdn.uri()),
            "file_url": format!("{}/files/one/a.zip", cdn.uri()),
        })))
        .mount(&rest)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cdn)
        .await;
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    client(&rest)
        .storage()
        .upload_bytes(data.clone())
        .on_progress(move |p| r.lock().unwrap().push(p))
        .await
        .unwrap();
    check_progress(&reports.lock().unwrap(), data.len() as u64);
    let put = &cdn.received_requests().await.unwrap()[0];
    assert_eq!(put.body, data);
    assert_eq!(
        put.headers.get("content-length").unwrap().to_str().unwrap(),
        data.len().to_string()
    );
}

#[tokio::test]
async fn a_failed_upload_never_reports_completion() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    mount_initiate_multipart(&rest, &cdn, "upload.bin").await;
    mount_parts(
        &cdn,
        PartAnswer {
            etag_in_body: true,
            etag_header: false,
        },
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/mp/tok/complete"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"detail": "bad parts"})))
        .expect(1)
        .mount(&cdn)
        .await;
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let err = client(&rest)
        .storage()
        .upload_bytes(vec![7u8; 2 * PART as usize + 1])
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .on_progress(move |p| r.lock().unwrap().push(p))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.as_api().unwrap().message(), "bad parts");
    let reports = reports.lock().unwrap();
    assert!(reports.iter().all(|p| p.sent < p.total), "{reports:?}");
}

/// Answers a part after `delay`, recording when each request arrived.
struct Timed {
    delay: Duration,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Timed {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        let n = part_number(req);
        ResponseTemplate::new(200)
            .set_body_json(json!({"partNumber": n, "etag": format!("e{n}")}))
            .set_delay(self.delay)
    }
}

#[tokio::test]
async fn parts_in_flight_never_exceed_the_concurrency() {
    let rest = MockServer::start().await;
    let cdn = MockServer::start().await;
    mount_initiate_multipart(&rest, &cdn, "upload.bin").await;
    let delay = Duration::from_millis(150);
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("PUT"))
        .respond_with(Timed {
            delay,
            arrivals: arrivals.clone(),
        })
        .mount(&cdn)
        .await;
    mount_complete(&cdn, 1).await;
    client(&rest)
        .storage()
        .upload_bytes(vec![1u8; 9 * 16 * KIB as usize])
        .multipart_threshold(16 * KIB)
        .part_size(16 * KIB)
        .concurrency(3)
        .await
        .unwrap();
    // A part is in flight on the server from its arrival until its delayed answer; a new part
    // only starts once an answer came back, so at most 3 such windows overlap.
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 9);
    let max_overlap = arrivals
        .iter()
        .map(|t| {
            arrivals
                .iter()
                .filter(|u| *u <= t && t.duration_since(**u) < delay)
                .count()
        })
        .max()
        .unwrap();
    assert!(max_overlap <= 3, "{max_overlap} parts in flight");
    assert!(
        max_overlap >= 2,
        "parts are sent in parallel ({max_overlap})"
    );
}

#[tokio::test]
async fn a_zero_part_size_is_invalid_input() {
    let rest = MockServer::start().await;
    let err = client(&rest)
        .storage()
        .upload_bytes(vec![0u8; 10])
        .multipart_threshold(1)
        .part_size(0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(rest.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// against FalMock

/// A client of `mock` that uploads through the initiate flow only (the flow these tests check).
async fn mock_client(mock: &FalMock) -> FalClient {
    mock.client_builder()
        .retry(fast_retries())
        .upload_flows([UploadFlow::Initiate])
        .build()
        .unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn falmock_assembles_a_multipart_upload() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock_client(&mock).await;
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = write_file(dir.path(), "data set.tar", 5 * PART + 12_345);
    let url = fal
        .storage()
        .upload_file(&file)
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .await
        .unwrap();
    assert!(url.as_str().starts_with(&mock.cdn_url()), "{url}");
    assert_eq!(&fal.storage().download(&url).await.unwrap()[..], &data[..]);
    let (ct, stored) = mock.uploaded(&url).unwrap();
    assert_eq!(ct, "application/x-tar");
    assert_eq!(stored.len(), data.len());

    let rec = mock.multipart_upload(&url).unwrap();
    assert_eq!(rec.size, data.len() as u64);
    assert_eq!(rec.part_sizes, [PART, PART, PART, PART, PART, 12_345]);
    assert_eq!(rec.part_sha256[5], sha256_hex(&data[5 * PART as usize..]));
    assert!(rec.stored);

    let reqs = mock.requests();
    let init = reqs
        .iter()
        .find(|r| r.path == "/rest/storage/upload/initiate-multipart")
        .unwrap();
    assert!(init.authorization_present);
    assert_eq!(init.query.as_deref(), Some("storage_type=fal-cdn-v3"));
    let cdn: Vec<_> = reqs
        .iter()
        .filter(|r| r.host_kind == HostKind::Cdn && r.method != "GET")
        .collect();
    assert_eq!(cdn.len(), 7, "6 parts and a complete");
    assert!(cdn.iter().all(|r| !r.authorization_present));
    assert!(cdn.iter().all(|r| r
        .query
        .as_deref()
        .is_some_and(|q| q.starts_with("signature="))));
}

#[tokio::test]
async fn falmock_part_failure_is_retried_and_counted_once() {
    let mock = FalMock::start().await.unwrap();
    let fal = mock_client(&mock).await;
    mock.fail_upload_part_once(3, 503);
    let data: Vec<u8> = (0..(4 * PART + 1)).map(|i| (i * 7) as u8).collect();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let url = fal
        .storage()
        .upload_bytes(data.clone())
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .on_progress(move |p| r.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(mock.uploaded(&url).unwrap().1, data);
    let puts: Vec<String> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(puts.len(), 6, "{puts:?}");
    assert_eq!(puts.iter().filter(|p| *p == "3").count(), 2);
    check_progress(&reports.lock().unwrap(), data.len() as u64);
}

#[tokio::test]
async fn falmock_discard_mode_keeps_sizes_and_hashes_only() {
    let mock = FalMock::builder()
        .store_uploads(false)
        .start()
        .await
        .unwrap();
    let fal = mock_client(&mock).await;
    let data: Vec<u8> = (0..(2 * PART + 3)).map(|i| (i % 13) as u8).collect();
    let url = fal
        .storage()
        .upload_bytes(data.clone())
        .multipart_threshold(THRESHOLD)
        .part_size(PART)
        .multipart_threshold(PART)
        .await
        .unwrap();
    let rec = mock.multipart_upload(&url).unwrap();
    assert!(!rec.stored);
    assert_eq!(rec.size, data.len() as u64);
    assert_eq!(rec.part_sha256[0], sha256_hex(&data[..PART as usize]));
    assert!(mock.uploaded(&url).is_none());
    assert_eq!(
        fal.storage().download(&url).await.unwrap_err().status(),
        Some(StatusCode::NOT_FOUND)
    );
}

/// The mock's checks, with plain reqwest (parts that do not add up, wrong ETags, signatures).
#[tokio::test]
async fn falmock_refuses_bad_completes() {
    let mock = FalMock::start().await.unwrap();
    let http = reqwest::Client::new();
    let initiate = || async {
        let r = http
            .post(format!(
                "{}storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
                mock.rest_url()
            ))
            .header("authorization", format!("Key {}", mock.key()))
            .json(&json!({"content_type": "application/zip", "file_name": "a.zip"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        url::Url::parse(v["upload_url"].as_str().unwrap()).unwrap()
    };
    let sub = |u: &url::Url, s: &str| {
        let mut u = u.clone();
        let p = format!("{}/{s}", u.path());
        u.set_path(&p);
        u
    };
    let put = |u: url::Url, body: Vec<u8>| {
        let http = http.clone();
        async move {
            let r = http.put(u).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["etag"].as_str().unwrap().to_owned()
        }
    };
    let complete = |u: url::Url, parts: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(u)
                .json(&json!({ "parts": parts }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["detail"].as_str().unwrap_or_default().to_owned())
        }
    };

    // Initiate needs the key.
    let r = http
        .post(format!(
            "{}storage/upload/initiate-multipart",
            mock.rest_url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Parts that do not add up: the middle part is longer than the first.
    let up = initiate().await;
    let e1 = put(sub(&up, "1"), vec![1; 10]).await;
    let e2 = put(sub(&up, "2"), vec![2; 20]).await;
    let e3 = put(sub(&up, "3"), vec![3; 5]).await;
    let (status, detail) = complete(
        sub(&up, "complete"),
        json!([{"partNumber": 1, "etag": e1}, {"partNumber": 2, "etag": e2}, {"partNumber": 3, "etag": e3}]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        detail.contains("do not add up") && detail.contains("part 2 has 20 bytes"),
        "{detail}"
    );

    // A wrong ETag, a missing part, parts out of order.
    let up = initiate().await;
    let e1 = put(sub(&up, "1"), vec![1; 10]).await;
    let e2 = put(sub(&up, "2"), vec![2; 4]).await;
    let (status, detail) = complete(
        sub(&up, "complete"),
        json!([{"partNumber": 1, "etag": e1}, {"partNumber": 2, "etag": "\"nope\""}]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(detail.contains("Part 2: ETag"), "{detail}");
    let (status, detail) = complete(
        sub(&up, "complete"),
        json!([{"partNumber": 1, "etag": e1}, {"partNumber": 2, "etag": e2}, {"partNumber": 3, "etag": "x"}]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(detail.contains("Part 3 was never uploaded"), "{detail}");
    let (status, detail) = complete(
        sub(&up, "complete"),
        json!([{"partNumber": 2, "etag": e2}, {"partNumber": 1, "etag": e1}]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(detail.contains("1..n in order"), "{detail}");
    // The right list completes, and repeating it answers the same.
    let good = json!([{"partNumber": 1, "etag": e1}, {"partNumber": 2, "etag": e2}]);
    assert_eq!(complete(sub(&up, "complete"), good.clone()).await.0, 200);
    assert_eq!(complete(sub(&up, "complete"), good).await.0, 200);

    // The signature in the query string is required.
    let up = initiate().await;
    let mut unsigned = sub(&up, "1");
    unsigned.set_query(None);
    let r = http.put(unsigned).body(vec![1u8]).send().await.unwrap();
    assert_eq!(r.status(), 403);
}
