//! CDN tokens of the v3 upload flow: fetched with the fal key from
//! `POST {rest}/storage/auth/token?storage_type=fal-cdn-v3`, cached per client until shortly
//! before they expire, one fetch shared by concurrent uploads.

use std::time::Duration;

use http::{HeaderValue, Method};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::config::{http_url, join, with_trailing_slash};
use crate::error::{Error, Result};
use crate::transport::{Op, Request, Transport};

/// A token is not used in the last quarter of its life, nor in its last 30 seconds (its last
/// half when it lives less than a minute). Multipart uploads ask for the token again for every
/// part, so a long upload moves on to the next token.
const MIN_MARGIN: Duration = Duration::from_secs(30);

/// How long a failed token fetch answers for the next ones: uploads meanwhile go to the next
/// flow at once instead of each waiting for a token route that is down.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// The client's CDN token, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct CdnTokens {
    current: tokio::sync::Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    token: Option<CdnToken>,
    /// When the last fetch failed, and why.
    failed: Option<(Instant, String)>,
}

/// A CDN token, ready to send.
#[derive(Debug, Clone)]
pub(super) struct CdnToken {
    /// `Authorization: {token_type} {token}`, marked sensitive.
    pub(super) authorization: HeaderValue,
    /// Where multipart uploads go (`{base_url}/files/upload/multipart`).
    pub(super) base_url: Url,
    /// Reused until then.
    usable_until: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    #[serde(default)]
    token_type: Option<String>,
    base_url: String,
    #[serde(default)]
    expires_at: Option<String>,
}

impl CdnTokens {
    /// The cached token while it is usable, else a new one (concurrent callers wait for the one
    /// fetch in flight).
    ///
    /// # Errors
    /// As the token call: [`Error::Api`] (e.g. 404 where fal serves no token route, 401),
    /// [`Error::Transport`]; [`Error::Upload`] for an answer without a usable token or base URL.
    pub(super) async fn get(&self, transport: &Transport) -> Result<CdnToken> {
        let mut slot = self.current.lock().await;
        if let Some(t) = slot
            .token
            .as_ref()
            .filter(|t| Instant::now() < t.usable_until)
        {
            return Ok(t.clone());
        }
        if let Some((at, why)) = &slot.failed {
            if at.elapsed() < FAILURE_MEMORY {
                return Err(Error::Upload(format!(
                    "no CDN token: the token route failed {:?} ago ({why})",
                    at.elapsed()
                )));
            }
        }
        match fetch(transport).await {
            Ok(token) => {
                *slot = Slot {
                    token: Some(token.clone()),
                    failed: None,
                };
                Ok(token)
            }
            Err(e) => {
                slot.failed = Some((Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Drop `refused` (the CDN refused it) unless a newer token replaced it meanwhile.
    pub(super) async fn forget(&self, refused: &CdnToken) {
        let mut slot = self.current.lock().await;
        if slot
            .token
            .as_ref()
            .is_some_and(|t| t.authorization == refused.authorization)
        {
            slot.token = None;
        }
    }
}

async fn fetch(transport: &Transport) -> Result<CdnToken> {
    let mut url = join(transport.config().rest_url(), "storage/auth/token")?;
    url.query_pairs_mut()
        .append_pair("storage_type", super::STORAGE_TYPE);
    let mut req =
        Request::new(Op::CdnToken, Method::POST, url).json_body(bytes::Bytes::from_static(b"{}"));
    req.headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    // Not retried, as fal's Python client: a token route that fails sends the upload to the
    // next flow at once (the initiate flow has its own retries).
    req.once = true;
    let fetched_at = Instant::now();
    let answer: TokenAnswer = transport.json(&req, &"CDN token answer").await?;
    let token = answer.token.trim();
    let token_type = answer
        .token_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("Bearer");
    let mut authorization = HeaderValue::from_str(&format!("{token_type} {token}"))
        .ok()
        .filter(|_| !token.is_empty())
        .ok_or_else(|| Error::Upload("the CDN token answer has no usable token".into()))?;
    authorization.set_sensitive(true);
    let mut base_url = http_url(&answer.base_url).ok_or_else(|| {
        Error::Upload("the CDN token answer's base_url is not an http(s) URL".into())
    })?;
    // So that joining `files/upload` keeps its path.
    with_trailing_slash(&mut base_url);
    let lifetime = answer
        .expires_at
        .as_deref()
        .and_then(remaining)
        .unwrap_or(Duration::ZERO);
    let margin = (lifetime / 4).max(MIN_MARGIN.min(lifetime / 2));
    if lifetime.is_zero() {
        tracing::debug!(
            expires_at = answer.expires_at.as_deref(),
            "CDN token without a readable expiry: used for one upload"
        );
    }
    Ok(CdnToken {
        authorization,
        base_url,
        usable_until: fetched_at + lifetime.saturating_sub(margin),
    })
}

/// Time left until `expires_at` (ISO 8601 / RFC 3339, with `Z`, an offset, or none = UTC, as
/// Python's `fromisoformat` reads it); `None` when unreadable.
fn remaining(expires_at: &str) -> Option<Duration> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let s = expires_at.trim();
    let at = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|p| p.assume_utc()))
        .ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Duration::try_from(left).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_formats() {
        let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let rfc = in_an_hour
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let left = remaining(&rfc).unwrap();
        assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
        // Python's isoformat(): an offset, or none (read as UTC), with microseconds.
        let py = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.123456",
            in_an_hour.year(),
            u8::from(in_an_hour.month()),
            in_an_hour.day(),
            in_an_hour.hour(),
            in_an_hour.minute(),
            in_an_hour.second()
        );
        assert!(remaining(&py).is_some(), "{py}");
        assert!(remaining(&format!("{py}+00:00")).is_some());
        // In the past, or not a date.
        assert_eq!(remaining("2001-01-01T00:00:00Z"), None);
        assert_eq!(remaining("tomorrow"), None);
    }
}
