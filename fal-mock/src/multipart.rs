//! The mock's multipart upload flow (fal's own clients' `initiate-multipart` flow):
//!
//! - `POST /rest/storage/upload/initiate-multipart?storage_type=fal-cdn-v3` (API server, key
//!   required) with `{"content_type", "file_name"}` answers
//!   `{"upload_url": "{cdn}/multipart/{token}?signature={sig}", "file_url": "{cdn}/files/{token}/{name}"}`;
//! - `PUT /multipart/{token}/{n}?signature={sig}` (CDN server, no key) stores part `n` (1-based)
//!   and answers `{"partNumber": n, "etag": "\"…\""}` with the same `ETag` header;
//! - `POST /multipart/{token}/complete?signature={sig}` with
//!   `{"parts":[{"partNumber": n, "etag": "…"}]}` assembles the file and answers
//!   `{"file_url": …, "size": …}`.
//!
//! A missing or wrong `signature` answers 403. A complete is refused with
//! `400 {"detail": …}` unless the parts are listed as `1..n` in order, each was uploaded with the
//! listed ETag, no other part was uploaded, and the sizes add up (every part but the last has
//! part 1's size, the last at most that). Repeating a successful complete with the same parts
//! answers the same 200 (a client may retry it after a lost answer).

// Helpers return `Result<_, Response>` where the error is the answer to send.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::ETAG;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::BytesMut;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::routes::{detail, initiated, json_response, query_param, Initiated};
use super::state::{lock, Shared, StoredFile};
use super::{media, FalMock, FalMockBuilder};

/// Multipart uploads in progress and done, plus injected part failures.
pub(crate) struct Multipart {
    /// Keep the bytes of parts and assembled files (`false`: only sizes and hashes).
    store: bool,
    uploads: Mutex<HashMap<String, Upload>>,
    /// Part number → status to answer the next `PUT` of that part number with.
    fail_once: Mutex<HashMap<u32, u16>>,
    /// Completed uploads by file URL.
    done: Mutex<HashMap<String, MultipartRecord>>,
}

impl Multipart {
    pub(crate) fn new(store: bool) -> Self {
        Self {
            store,
            uploads: Mutex::new(HashMap::new()),
            fail_once: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
        }
    }
}

struct Upload {
    signature: String,
    file_path: String,
    file_url: String,
    content_type: String,
    parts: BTreeMap<u32, ReceivedPart>,
    /// The part list of a successful complete.
    completed: Option<Vec<(u32, String)>>,
}

struct ReceivedPart {
    etag: String,
    size: u64,
    sha256: String,
    data: Option<Bytes>,
}

/// A multipart upload the mock completed (see [`FalMock::multipart_upload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultipartRecord {
    /// The file URL handed out at initiation.
    pub file_url: String,
    /// Content type announced at initiation.
    pub content_type: String,
    /// Assembled size in bytes (the sum of the part sizes).
    pub size: u64,
    /// Size of each part in bytes, part 1 first.
    pub part_sizes: Vec<u64>,
    /// Lowercase hex SHA-256 of each part, part 1 first.
    pub part_sha256: Vec<String>,
    /// Whether the bytes were kept (servable at `file_url`, see [`FalMockBuilder::store_uploads`]).
    pub stored: bool,
}

impl FalMockBuilder {
    /// Whether multipart uploads keep their bytes (default `true`): the assembled file is then
    /// served at its `file_url` and returned by [`FalMock::uploaded`]. With `false` the mock
    /// only counts bytes and hashes each part as it streams in ([`FalMock::multipart_upload`]),
    /// so uploads of any size run in bounded memory (benchmarks); a `GET` of such a file
    /// answers 404. Single-`PUT` uploads are always kept.
    pub fn store_uploads(mut self, store: bool) -> Self {
        self.store_uploads = store;
        self
    }
}

impl FalMock {
    /// Answer the next multipart part `PUT` with part number `part_number` (of any upload) with
    /// `status` and `{"detail": "Injected failure"}`, after reading its body. Later `PUT`s of
    /// that part number succeed again. Calls for the same part number replace each other.
    pub fn fail_upload_part_once(&self, part_number: u32, status: u16) {
        lock(&self.shared.multipart.fail_once).insert(part_number, status);
    }

    /// The completed multipart upload whose file URL is `file_url`.
    pub fn multipart_upload(&self, file_url: impl AsRef<str>) -> Option<MultipartRecord> {
        let file_url = file_url.as_ref();
        lock(&self.shared.multipart.done).get(file_url).cloned()
    }
}

/// `POST /rest/storage/upload/initiate-multipart` (behind the API server's auth).
pub(crate) async fn initiate(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Initiated {
        token,
        content_type,
        file_path,
    } = match initiated(&s, &headers, &body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let sig = media::uuid();
    let cdn = s.cdn_base.trim_end_matches('/');
    let file_url = format!("{cdn}{file_path}");
    let answer = json!({
        "upload_url": format!("{cdn}/multipart/{token}?signature={sig}"),
        "file_url": file_url,
    });
    lock(&s.multipart.uploads).insert(
        token,
        Upload {
            signature: sig,
            file_path,
            file_url,
            content_type,
            parts: BTreeMap::new(),
            completed: None,
        },
    );
    json_response(200, &answer)
}

/// Start a multipart upload of the CDN v3 flow (its requests are authorized by a CDN token, not
/// a signature); `file_url` is its `access_url`.
pub(crate) fn start_v3(
    s: &Shared,
    upload_id: &str,
    file_path: String,
    file_url: String,
    content_type: String,
) {
    lock(&s.multipart.uploads).insert(
        upload_id.to_owned(),
        Upload {
            signature: String::new(),
            file_path,
            file_url,
            content_type,
            parts: BTreeMap::new(),
            completed: None,
        },
    );
}

/// The `/files/...` path of upload `upload_id`, when it exists.
pub(crate) fn file_path_of(s: &Shared, upload_id: &str) -> Option<String> {
    lock(&s.multipart.uploads)
        .get(upload_id)
        .map(|u| u.file_path.clone())
}

/// Check the token and signature of a CDN multipart request.
fn authorize(s: &Shared, token: &str, query: Option<&str>) -> Result<(), Response> {
    let uploads = lock(&s.multipart.uploads);
    let Some(up) = uploads.get(token) else {
        return Err(detail(404, "Upload not found"));
    };
    if up.signature.is_empty()
        || query_param(query, "signature").as_deref() != Some(up.signature.as_str())
    {
        return Err(detail(403, "Invalid or missing signature"));
    }
    Ok(())
}

/// `PUT /multipart/{token}/{n}` (CDN server).
pub(crate) async fn put_part(
    State(s): State<Arc<Shared>>,
    Path((token, part)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    if let Err(r) = authorize(&s, &token, query.as_deref()) {
        return r;
    }
    store_part(&s, &token, &part, body).await
}

/// Store part `part` of upload `token` (already authorized): the initiate flow's and the CDN v3
/// flow's part `PUT`.
pub(crate) async fn store_part(s: &Shared, token: &str, part: &str, body: Body) -> Response {
    let Ok(n) = part.parse::<u32>() else {
        return detail(400, &format!("Invalid part number {part:?}"));
    };
    if n == 0 {
        return detail(400, "Part numbers start at 1");
    }
    // Stream the body: hash and count, keep the bytes only when storing.
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut data = s.multipart.store.then(BytesMut::new);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return detail(400, &format!("Could not read the part: {e}")),
        };
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Some(d) = &mut data {
            d.extend_from_slice(&chunk);
        }
    }
    if let Some(status) = lock(&s.multipart.fail_once).remove(&n) {
        tracing::debug!(part = n, status, "mock: injected part failure");
        return detail(status, "Injected failure");
    }
    let sha256 = hex::encode(hasher.finalize());
    let etag = format!("\"{}\"", &sha256[..32]);
    {
        let mut uploads = lock(&s.multipart.uploads);
        let Some(up) = uploads.get_mut(token) else {
            return detail(404, "Upload not found");
        };
        if up.completed.is_some() {
            return detail(400, "Upload already completed");
        }
        up.parts.insert(
            n,
            ReceivedPart {
                etag: etag.clone(),
                size,
                sha256,
                data: data.map(BytesMut::freeze),
            },
        );
    }
    tracing::debug!(part = n, bytes = size, "mock: part stored");
    let mut r = json_response(200, &json!({ "partNumber": n, "etag": etag }));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(ETAG, v);
    }
    r
}

#[derive(Deserialize)]
struct CompleteBody {
    parts: Vec<ListedPart>,
}

#[derive(Deserialize)]
struct ListedPart {
    #[serde(rename = "partNumber")]
    part_number: u32,
    etag: String,
}

/// `POST /multipart/{token}/complete` (CDN server).
pub(crate) async fn complete(
    State(s): State<Arc<Shared>>,
    Path((token, segment)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if segment != "complete" {
        return detail(405, "Method Not Allowed");
    }
    if let Err(r) = authorize(&s, &token, query.as_deref()) {
        return r;
    }
    complete_upload(&s, &token, &body, false)
}

/// Complete upload `token` (already authorized) from the `{"parts": [...]}` body. The initiate
/// flow must list the parts in order (as fal-js sends them); the CDN v3 flow may list them in
/// any order (fal's Python client lists them as they finish): `sorted` sorts them first.
pub(crate) fn complete_upload(s: &Shared, token: &str, body: &[u8], sorted: bool) -> Response {
    let listed = match serde_json::from_slice::<CompleteBody>(body) {
        Ok(b) => b.parts,
        Err(e) => {
            return detail(
                400,
                &format!(
                "Invalid complete body (expected {{\"parts\":[{{\"partNumber\",\"etag\"}}]}}): {e}"
            ),
            )
        }
    };
    let mut listed: Vec<(u32, String)> = listed
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    if sorted {
        listed.sort_by_key(|(n, _)| *n);
    }
    let (record, data) = {
        let mut uploads = lock(&s.multipart.uploads);
        let Some(up) = uploads.get_mut(token) else {
            return detail(404, "Upload not found");
        };
        if let Some(done) = &up.completed {
            return if *done == listed {
                completed_answer(&up.file_url, up.parts.values().map(|p| p.size).sum())
            } else {
                detail(400, "Upload already completed with other parts")
            };
        }
        if let Err(problem) = check_complete(&listed, &up.parts) {
            tracing::debug!(%problem, "mock: complete refused");
            return detail(400, &problem);
        }
        let record = MultipartRecord {
            file_url: up.file_url.clone(),
            content_type: up.content_type.clone(),
            size: up.parts.values().map(|p| p.size).sum(),
            part_sizes: up.parts.values().map(|p| p.size).collect(),
            part_sha256: up.parts.values().map(|p| p.sha256.clone()).collect(),
            stored: s.multipart.store,
        };
        // Assemble, and drop the parts' bytes (the file holds them now).
        let data = s.multipart.store.then(|| {
            let mut all = BytesMut::with_capacity(usize::try_from(record.size).unwrap_or(0));
            for p in up.parts.values_mut() {
                if let Some(d) = p.data.take() {
                    all.extend_from_slice(&d);
                }
            }
            all.freeze()
        });
        up.completed = Some(listed);
        (record, data.map(|d| (up.file_path.clone(), d)))
    };
    if let Some((path, data)) = data {
        if data.len() as u64 != record.size {
            return detail(
                500,
                &format!("Assembled {} bytes, expected {}", data.len(), record.size),
            );
        }
        lock(&s.files).insert(
            path,
            StoredFile::Bytes {
                content_type: record.content_type.clone(),
                data,
            },
        );
    }
    tracing::debug!(
        file_url = %record.file_url,
        bytes = record.size,
        parts = record.part_sizes.len(),
        "mock: multipart upload completed"
    );
    let answer = completed_answer(&record.file_url, record.size);
    lock(&s.multipart.done).insert(record.file_url.clone(), record);
    answer
}

fn completed_answer(file_url: &str, size: u64) -> Response {
    json_response(200, &json!({ "file_url": file_url, "size": size }))
}

/// Why a complete listing `listed` cannot assemble `parts`, if it cannot.
fn check_complete(
    listed: &[(u32, String)],
    parts: &BTreeMap<u32, ReceivedPart>,
) -> Result<(), String> {
    if listed.is_empty() {
        return Err("The parts list is empty".into());
    }
    for (i, (n, etag)) in listed.iter().enumerate() {
        let expected = i as u64 + 1;
        if u64::from(*n) != expected {
            return Err(format!(
                "Parts must be listed as 1..n in order: entry {} is part {n}, expected part {expected}",
                i + 1
            ));
        }
        let Some(p) = parts.get(n) else {
            return Err(format!("Part {n} was never uploaded"));
        };
        if &p.etag != etag {
            return Err(format!(
                "Part {n}: ETag {etag:?} does not match the uploaded part's {:?}",
                p.etag
            ));
        }
    }
    let count = listed.len() as u32;
    if let Some(extra) = parts.keys().find(|k| **k > count) {
        return Err(format!(
            "Part {extra} was uploaded but is not listed ({count} parts listed)"
        ));
    }
    let first = parts.get(&1).map_or(0, |p| p.size);
    for (n, p) in parts {
        let last = *n == count;
        if (!last && p.size != first) || (last && p.size > first) {
            return Err(format!(
                "Part sizes do not add up: part {n} has {} bytes but part 1 has {first} \
                 (every part but the last must have the same size, the last at most that)",
                p.size
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(sizes: &[u64]) -> BTreeMap<u32, ReceivedPart> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    i as u32 + 1,
                    ReceivedPart {
                        etag: format!("e{}", i + 1),
                        size: *s,
                        sha256: String::new(),
                        data: None,
                    },
                )
            })
            .collect()
    }

    fn listed(n: u32) -> Vec<(u32, String)> {
        (1..=n).map(|i| (i, format!("e{i}"))).collect()
    }

    #[test]
    fn completes_are_checked() {
        assert!(check_complete(&listed(3), &parts(&[4, 4, 2])).is_ok());
        assert!(check_complete(&listed(1), &parts(&[7])).is_ok());
        let err = |l: &[(u32, String)], p: &[u64]| check_complete(l, &parts(p)).unwrap_err();
        assert!(err(&[], &[4]).contains("empty"));
        assert!(err(&listed(2), &[4]).contains("Part 2 was never uploaded"));
        assert!(err(&listed(2), &[4, 4, 4]).contains("Part 3 was uploaded but is not listed"));
        assert!(err(&[(2, "e2".into())], &[4, 4]).contains("entry 1 is part 2"));
        assert!(err(&[(1, "x".into())], &[4]).contains("ETag"));
        assert!(err(&listed(3), &[4, 3, 2]).contains("part 2 has 3 bytes"));
        assert!(err(&listed(2), &[4, 5]).contains("part 2 has 5 bytes"));
    }
}
