//! Multipart uploads of both flows: parts `PUT` in parallel (each retried on its own), then a
//! `complete` listing every part's ETag.
//!
//! - The initiate flow (fal-js): parts to `{origin}{pathname}/{partNumber}{search}` of the
//!   initiate answer's pre-signed `upload_url`, complete at `{origin}{pathname}/complete{search}`.
//! - The CDN v3 flow (fal's Python client): parts to `{access_url}/multipart/{uploadId}/{n}`,
//!   complete at `{access_url}/multipart/{uploadId}/complete`, each with the CDN token.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

use super::cdn::CdnTokens;
use super::Source;
use crate::error::{Error, Result};
use crate::transport::Transport;
use crate::transport::{header_str, Meter, Op, Request};

/// One part: 1-based number and the byte range of the source it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) number: u32,
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// Most parts one upload may have (the S3-style limit object stores behind fal's CDN share):
/// it also bounds the part list kept in memory.
pub(super) const MAX_PARTS: u64 = 10_000;

/// Cut `len` bytes into parts of `part_size` (the last one holds the rest).
///
/// # Errors
/// [`Error::InvalidInput`] when `part_size` is 0 or the file needs more than [`MAX_PARTS`]
/// parts.
pub(super) fn plan(len: u64, part_size: u64) -> Result<Vec<Part>> {
    if part_size == 0 {
        return Err(Error::invalid_input("part_size", "must be at least 1 byte"));
    }
    let count = len.div_ceil(part_size).max(1);
    if count > MAX_PARTS {
        return Err(Error::invalid_input(
            "part_size",
            format!(
                "{part_size} bytes makes {count} parts, more than {MAX_PARTS}; use larger parts"
            ),
        ));
    }
    Ok((0..count)
        .map(|i| {
            let offset = i * part_size;
            Part {
                number: (i + 1) as u32,
                offset,
                len: part_size.min(len - offset),
            }
        })
        .collect())
}

/// Where a multipart upload's parts and complete call go.
pub(super) enum MultipartTarget {
    /// The initiate flow's pre-signed `upload_url` (no credentials).
    Signed { upload_url: Url },
    /// The CDN v3 flow: `{access_url}/multipart/{upload_id}/...` with the client's CDN token,
    /// asked for again for every request (a long upload moves on to the next token).
    Cdn {
        access_url: Url,
        upload_id: String,
        tokens: Arc<CdnTokens>,
    },
}

impl MultipartTarget {
    fn url(&self, last: &str) -> Url {
        match self {
            MultipartTarget::Signed { upload_url } => sub_url(upload_url, last),
            MultipartTarget::Cdn {
                access_url,
                upload_id,
                ..
            } => {
                let mut u = access_url.clone();
                u.set_query(None);
                u.set_fragment(None);
                // An http(s) URL always has path segments.
                if let Ok(mut segments) = u.path_segments_mut() {
                    segments
                        .pop_if_empty()
                        .push("multipart")
                        .push(upload_id)
                        .push(last);
                }
                u
            }
        }
    }

    async fn request(
        &self,
        transport: &Transport,
        op: Op,
        method: Method,
        last: &str,
    ) -> Result<Request<'static>> {
        let mut req = Request::new(op, method, self.url(last));
        if let MultipartTarget::Cdn { tokens, .. } = self {
            let token = tokens.get(transport).await?;
            req.headers
                .insert(http::header::AUTHORIZATION, token.authorization);
        }
        Ok(req)
    }
}

/// `{origin}{pathname}/{suffix}{search}` (fal-js builds the part and complete URLs this way).
pub(super) fn sub_url(upload_url: &Url, suffix: &str) -> Url {
    let mut u = upload_url.clone();
    let path = format!("{}/{suffix}", u.path());
    u.set_path(&path);
    u.set_fragment(None);
    u
}

/// What the CDN answers to a part `PUT`.
#[derive(Deserialize)]
struct PartAnswer {
    #[serde(rename = "partNumber")]
    part_number: Option<u32>,
    etag: Option<String>,
}

/// One entry of the `complete` body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(super) struct CompletedPart {
    #[serde(rename = "partNumber")]
    pub(super) part_number: u32,
    pub(super) etag: String,
    #[serde(skip)]
    pub(super) len: u64,
}

#[derive(Serialize)]
struct CompleteRequest<'a> {
    parts: &'a [CompletedPart],
}

/// Send every part (at most `concurrency` at once), check the answers, then complete.
pub(super) async fn upload(
    transport: &Transport,
    target: &MultipartTarget,
    source: &Source,
    parts: &[Part],
    total: u64,
    concurrency: usize,
    meter: Option<Arc<dyn Meter>>,
) -> Result<()> {
    let count = parts.len();
    let mut done: Vec<CompletedPart> = futures::stream::iter(parts.iter().copied())
        .map(|part| {
            let span = tracing::info_span!("fal.upload.part", part = part.number, bytes = part.len);
            put_part(transport, target, source, part, count, meter.clone()).instrument(span)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|p| p.part_number);
    check_parts(&done, count, total)?;
    source.check_unchanged(total).await?;

    let body = serde_json::to_vec(&CompleteRequest { parts: &done })
        .map_err(|e| Error::Upload(format!("cannot encode the complete request: {e}")))?;
    // The op never carries the fal key (a pre-signed URL, or the CDN token).
    let req = target
        .request(transport, Op::UploadComplete, Method::POST, "complete")
        .await?
        .json_body(body.into());
    transport.bytes(&req).await?;
    tracing::debug!(parts = count, "multipart upload completed");
    Ok(())
}

async fn put_part(
    transport: &Transport,
    target: &MultipartTarget,
    source: &Source,
    part: Part,
    count: usize,
    meter: Option<Arc<dyn Meter>>,
) -> Result<CompletedPart> {
    // The op never carries the fal key (a pre-signed URL, or the CDN token).
    let mut req = target
        .request(
            transport,
            Op::UploadPart,
            Method::PUT,
            &part.number.to_string(),
        )
        .await?;
    req.headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    // No compressed answer: a re-encoding proxy may drop the ETag header (fal's Python client
    // sends the same for the same reason).
    req.headers.insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    req.body = Some(source.body(part.offset, part.len));
    req.meter = meter;
    let (headers, body) = transport.bytes(&req).await?;
    let answer = serde_json::from_slice::<PartAnswer>(&body).ok();
    let n = part.number;
    if let Some(other) = answer.as_ref().and_then(|a| a.part_number) {
        if other != n {
            return Err(Error::Upload(format!(
                "part {n} of {count}: the CDN answered for part {other}"
            )));
        }
    }
    let etag = answer
        .and_then(|a| a.etag)
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            header_str(&headers, "etag")
                .filter(|e| !e.trim().is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            Error::Upload(format!(
                "part {n} of {count}: the CDN's answer carries no ETag (no \"etag\" field, no ETag header); not completing the upload"
            ))
        })?;
    tracing::trace!(part = n, %etag, "part uploaded");
    Ok(CompletedPart {
        part_number: n,
        etag,
        len: part.len,
    })
}

/// Parts sorted by number must be exactly `1..=count`, each with an ETag, adding up to `total`.
pub(super) fn check_parts(done: &[CompletedPart], count: usize, total: u64) -> Result<()> {
    if done.len() != count {
        return Err(Error::Upload(format!(
            "{} of {count} parts were uploaded",
            done.len()
        )));
    }
    for (i, p) in done.iter().enumerate() {
        let expected = i as u64 + 1;
        if u64::from(p.part_number) != expected {
            return Err(Error::Upload(format!(
                "part numbers are not contiguous: expected part {expected}, found part {}",
                p.part_number
            )));
        }
        if p.etag.trim().is_empty() {
            return Err(Error::Upload(format!(
                "part {} of {count} has an empty ETag",
                p.part_number
            )));
        }
    }
    let sum: u64 = done.iter().map(|p| p.len).sum();
    if sum != total {
        return Err(Error::Upload(format!(
            "the parts add up to {sum} bytes, not the {total} bytes of the upload"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_the_file() {
        let p = plan(10, 4).unwrap();
        assert_eq!(
            p,
            vec![
                Part {
                    number: 1,
                    offset: 0,
                    len: 4
                },
                Part {
                    number: 2,
                    offset: 4,
                    len: 4
                },
                Part {
                    number: 3,
                    offset: 8,
                    len: 2
                },
            ]
        );
        assert_eq!(plan(8, 4).unwrap().len(), 2);
        assert_eq!(
            plan(0, 4).unwrap(),
            vec![Part {
                number: 1,
                offset: 0,
                len: 0
            }]
        );
        assert!(matches!(plan(8, 0), Err(Error::InvalidInput { .. })));
        assert!(matches!(plan(u64::MAX, 1), Err(Error::InvalidInput { .. })));
    }

    #[test]
    fn part_urls_keep_the_query() {
        let u = Url::parse("https://cdn.example/upload/abc?sig=x%2By&exp=1").unwrap();
        assert_eq!(
            sub_url(&u, "3").as_str(),
            "https://cdn.example/upload/abc/3?sig=x%2By&exp=1"
        );
        assert_eq!(
            sub_url(&u, "complete").as_str(),
            "https://cdn.example/upload/abc/complete?sig=x%2By&exp=1"
        );
        let plain = Url::parse("https://cdn.example/u/abc").unwrap();
        assert_eq!(sub_url(&plain, "1").as_str(), "https://cdn.example/u/abc/1");
    }

    fn part(n: u32, etag: &str, len: u64) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.into(),
            len,
        }
    }

    #[test]
    fn parts_are_checked_before_completing() {
        assert!(check_parts(&[part(1, "a", 4), part(2, "b", 2)], 2, 6).is_ok());
        let msg = |r: Result<()>| match r {
            Err(Error::Upload(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(check_parts(&[part(1, "a", 4)], 2, 6)).contains("1 of 2"));
        assert!(msg(check_parts(&[part(1, "a", 4), part(3, "b", 2)], 2, 6)).contains("part 2"));
        assert!(msg(check_parts(&[part(1, "a", 4), part(2, " ", 2)], 2, 6)).contains("part 2"));
        assert!(msg(check_parts(&[part(1, "a", 4), part(2, "b", 1)], 2, 6)).contains("5 bytes"));
    }
}
