//! The retry policy: which failures are tried again, and after how long.
//!
//! One policy applies to every call of a client: set it with
//! [`FalClientBuilder::retry`](crate::FalClientBuilder::retry). (A part of a service that wants
//! another policy builds a second client; clones of one client share its connection pool and
//! its policy.)
//!
//! # Decision table
//!
//! | failure | status / result / cancel / downloads / upload parts | submit (`POST` to the queue) and sync run |
//! |---|---|---|
//! | connection refused, DNS, TLS set-up (nothing sent) | retried | retried |
//! | connection reset or timeout after the request was sent | retried | **not retried**: [`Error::AmbiguousSubmit`](crate::Error::AmbiguousSubmit) |
//! | 408 Request Timeout | retried | not retried |
//! | 429 Too Many Requests | retried, honouring `Retry-After` | retried, honouring `Retry-After` (fal did not take the job) |
//! | 500 | retried | not retried |
//! | 502 / 503 / 504 **without** `x-fal-request-id` (ingress) | retried | retried (fal did not take the job) |
//! | 502 / 503 / 504 **with** `x-fal-request-id` | retried | not retried (fal may have taken it) |
//! | 504 with `x-fal-request-timeout-type: user` | never | never |
//! | `x-fal-retryable: false` | never | never |
//! | any other 4xx (400, 401, 403, 404, 422, ...) | never | never |
//! | 2xx whose body breaks while it is read | retried | **not retried**: [`Error::AmbiguousSubmit`](crate::Error::AmbiguousSubmit) (fal has the job) |
//! | 2xx whose body is not JSON at all (cut short, an HTML page from a proxy) where JSON is expected (status, result, upload initiate) | retried; [`Error::Decode`](crate::Error::Decode) when retries run out | not retried: [`Error::Decode`](crate::Error::Decode) (fal may have the job) |
//! | 2xx JSON of the wrong shape | never: [`Error::Decode`](crate::Error::Decode) naming the JSON path | never |
//! | 2xx larger than its size limit | never: [`Error::ResponseTooLarge`](crate::Error::ResponseTooLarge) | never |
//! | an answer body silent for longer than the read timeout | retried ([`Error::Stalled`](crate::Error::Stalled) when retries run out) | not retried: [`Error::AmbiguousSubmit`](crate::Error::AmbiguousSubmit) (fal may have the job) |
//!
//! "After the request was sent" covers every failure except the ones that prove nothing left
//! the machine (reqwest's `is_connect`: refused, DNS, TLS handshake). A reset is ambiguous
//! even when the server dropped the connection before looking at the request: the client
//! cannot tell the two apart. A 200 whose JSON is cut short is treated as a transport failure
//! (the bytes were damaged on the way), not as fal's answer.
//!
//! Waiting ([`RequestHandle::wait`](crate::queue::RequestHandle::wait)) adds two rules on top:
//! a status poll that still fails after its retries is a *missed poll* (the wait polls again;
//! an unknown `status` value is not: it ends the wait),
//! and a status stream that breaks, ends before `COMPLETED`, or stays silent longer than the
//! SSE idle timeout is dropped for polling.
//!
//! Why: fal's queue retries runner failures itself (up to 10 times), so a client retry only
//! has to cover the network between the caller and fal. A submit that may have reached fal is
//! never repeated behind the caller's back, because a second training job costs money; the
//! official clients disagree here (JS retries 502/503/504 on submit whatever their origin, Python
//! retries only ingress errors) and neither reads `Retry-After`.
//!
//! Delays grow exponentially: `min(base_delay * 2^attempt, max_delay)`, then ±`jitter`
//! (default ±25%, as fal-js). A `Retry-After` header (seconds or an HTTP date) replaces the
//! computed delay, capped at [`RetryPolicy::max_retry_after`]. Each retry emits a `tracing`
//! event at `WARN` level with the operation, attempt, delay and cause.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// How often and how patiently failed calls are tried again.
///
/// Defaults: 5 retries (6 attempts), base delay 500 ms, max delay 30 s, ±25% jitter,
/// `Retry-After` honoured up to 60 s.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying). Default 5.
    pub max_retries: u32,
    /// Delay before the first retry. Default 500 ms.
    pub base_delay: Duration,
    /// Upper bound of the exponential delay. Default 30 s.
    pub max_delay: Duration,
    /// Relative jitter in `0.0..=1.0` applied to each delay (0.25 = ±25%). Default 0.25.
    pub jitter: f64,
    /// Longest `Retry-After` that is honoured; longer values are cut to it. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            jitter: 0.25,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Set [`max_retries`](Self::max_retries).
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Set [`base_delay`](Self::base_delay) and [`max_delay`](Self::max_delay).
    pub fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    /// Set [`jitter`](Self::jitter) (clamped to `0.0..=1.0`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Set [`max_retry_after`](Self::max_retry_after).
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The delay before retry number `attempt` (0-based: the delay after the first failure is
    /// `delay(0, ..)`). A server's `Retry-After` replaces the exponential delay, capped.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = 2u32.saturating_pow(attempt.min(31));
        let base = self.base_delay.saturating_mul(exp).min(self.max_delay);
        if self.jitter <= 0.0 {
            return base;
        }
        let factor = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        // `try_from_secs_f64`: a delay near `Duration::MAX` times the jitter must not overflow.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor.max(0.0))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Parse a `Retry-After` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(1e9)));
        }
        return None;
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What kind of call a request is, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// Safe to repeat: status, result, cancel, downloads, upload initiate/parts/complete.
    Idempotent,
    /// A queue submit or sync run: repeated only when fal cannot have taken it.
    Submit,
}

/// What an HTTP error answer says about retrying it: the one classifier behind both the retry
/// loop and [`ApiError::is_retryable`](crate::ApiError::is_retryable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusFacts {
    pub(crate) status: StatusCode,
    /// `x-fal-request-timeout-type: user`: the caller's own start timeout expired.
    pub(crate) user_timeout: bool,
    /// `x-fal-retryable`, when present.
    pub(crate) retryable: Option<bool>,
    /// `x-fal-request-id` was sent: the answer comes from fal's queue, not from ingress.
    pub(crate) from_fal: bool,
}

impl StatusFacts {
    pub(crate) fn from_answer(status: StatusCode, headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            status,
            user_timeout: header("x-fal-request-timeout-type") == Some("user"),
            retryable: header("x-fal-retryable").and_then(|v| {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                }
            }),
            from_fal: headers.contains_key("x-fal-request-id"),
        }
    }

    /// Whether a call of `kind` that got this answer is tried again (the decision table).
    pub(crate) fn retried(&self, kind: CallKind) -> bool {
        if self.status == StatusCode::GATEWAY_TIMEOUT && self.user_timeout {
            return false;
        }
        if self.retryable == Some(false) {
            return false;
        }
        let s = self.status.as_u16();
        match kind {
            CallKind::Idempotent => matches!(s, 408 | 429 | 500 | 502 | 503 | 504),
            CallKind::Submit => s == 429 || ((502..=504).contains(&s) && !self.from_fal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy::default()
            .with_delays(Duration::from_millis(1000), Duration::from_millis(5000))
            .with_jitter(0.0)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = no_jitter();
        assert_eq!(p.delay(0, None), Duration::from_millis(1000));
        assert_eq!(p.delay(1, None), Duration::from_millis(2000));
        assert_eq!(p.delay(2, None), Duration::from_millis(4000));
        assert_eq!(p.delay(10, None), Duration::from_millis(5000));
        assert_eq!(p.delay(u32::MAX, None), Duration::from_millis(5000));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = no_jitter().with_jitter(0.25);
        for _ in 0..200 {
            let d = p.delay(1, None);
            assert!(
                d >= Duration::from_millis(1500) && d <= Duration::from_millis(2500),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_replaces_backoff_and_is_capped() {
        let p = no_jitter().with_max_retry_after(Duration::from_secs(10));
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn status_decisions_follow_the_table() {
        let empty = HeaderMap::new();
        let mut fal = HeaderMap::new();
        fal.insert("x-fal-request-id", HeaderValue::from_static("r1"));
        let mut user = HeaderMap::new();
        user.insert(
            "x-fal-request-timeout-type",
            HeaderValue::from_static("user"),
        );
        let mut no = HeaderMap::new();
        no.insert("x-fal-retryable", HeaderValue::from_static("false"));
        let retried = |kind, status: u16, headers: &HeaderMap| {
            let status = StatusCode::from_u16(status).unwrap();
            StatusFacts::from_answer(status, headers).retried(kind)
        };

        use CallKind::*;
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retried(Idempotent, s, &empty), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!retried(Idempotent, s, &empty), "{s}");
        }
        assert!(!retried(Idempotent, 504, &user));
        assert!(!retried(Idempotent, 503, &no));

        assert!(retried(Submit, 429, &empty));
        assert!(retried(Submit, 429, &fal));
        for s in [502, 503, 504] {
            assert!(retried(Submit, s, &empty), "{s}");
            assert!(!retried(Submit, s, &fal), "{s} with request id");
        }
        assert!(!retried(Submit, 504, &user));
        for s in [400, 408, 422, 500] {
            assert!(!retried(Submit, s, &empty), "{s}");
        }
    }
}
