//! Queue status bodies (<https://docs.fal.ai/model-endpoints/queue>).

use serde::{Deserialize, Serialize};

use crate::error::{decode_json, Error, Result};

/// The state of a queued request, as answered by `GET .../requests/{id}/status` and sent by
/// each event of the status stream.
///
/// A failed request still reaches [`QueueStatus::Completed`]; the failure is in `error` /
/// `error_type` (see [`QueueStatus::failure`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QueueStatus {
    /// `IN_QUEUE`: waiting for a runner.
    InQueue {
        /// Requests ahead of this one (0 = next).
        queue_position: u64,
    },
    /// `IN_PROGRESS`: a runner is working on it.
    InProgress {
        /// Runner logs so far; `None` when logs were not requested.
        logs: Option<Vec<RequestLog>>,
    },
    /// `COMPLETED`: finished, successfully or not.
    Completed {
        /// Runner logs; `None` when logs were not requested.
        logs: Option<Vec<RequestLog>>,
        /// Metrics such as `inference_time` (seconds); empty on legacy apps.
        metrics: Metrics,
        /// Set when the request failed, e.g. `Runner disconnected`.
        error: Option<String>,
        /// fal's error category, e.g. `runner_disconnected`, `request_timeout`.
        error_type: Option<String>,
    },
}

impl QueueStatus {
    /// Parse a status body.
    ///
    /// # Errors
    /// [`Error::Decode`] for malformed JSON or a missing `status`;
    /// [`Error::UnknownQueueStatus`] for a status other than `IN_QUEUE`, `IN_PROGRESS`,
    /// `COMPLETED`.
    pub fn from_slice(body: &[u8]) -> Result<Self> {
        let raw: RawStatus = decode_json(&"queue status", body, None)?;
        raw.into_status()
    }

    /// `true` for [`QueueStatus::Completed`] (successful or failed).
    pub fn is_completed(&self) -> bool {
        matches!(self, QueueStatus::Completed { .. })
    }

    /// The error message and type of a failed `COMPLETED` status.
    pub fn failure(&self) -> Option<(&str, Option<&str>)> {
        match self {
            QueueStatus::Completed {
                error: Some(e),
                error_type,
                ..
            } => Some((e, error_type.as_deref())),
            _ => None,
        }
    }

    /// The logs carried by this status, if any.
    pub fn logs(&self) -> &[RequestLog] {
        match self {
            QueueStatus::InProgress { logs: Some(l) }
            | QueueStatus::Completed { logs: Some(l), .. } => l,
            _ => &[],
        }
    }

    /// The wire name: `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`.
    pub fn name(&self) -> &'static str {
        match self {
            QueueStatus::InQueue { .. } => "IN_QUEUE",
            QueueStatus::InProgress { .. } => "IN_PROGRESS",
            QueueStatus::Completed { .. } => "COMPLETED",
        }
    }
}

/// One runner log line (fal-js `RequestLog`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestLog {
    /// The log text.
    #[serde(default)]
    pub message: String,
    /// `STDERR`, `STDOUT`, `ERROR`, `INFO`, `WARN` or `DEBUG` (kept as sent).
    #[serde(default)]
    pub level: Option<String>,
    /// Origin, usually `USER`.
    #[serde(default)]
    pub source: Option<String>,
    /// ISO 8601 time stamp, as sent.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Metrics of a completed request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Time the runner spent on the request, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_time: Option<f64>,
    /// Any other metric fal sends.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
pub(crate) struct RawStatus {
    status: String,
    #[serde(default)]
    queue_position: Option<u64>,
    #[serde(default)]
    logs: Option<Vec<RequestLog>>,
    #[serde(default)]
    metrics: Option<Metrics>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
}

impl RawStatus {
    /// The typed status; [`Error::UnknownQueueStatus`] for a status this crate does not know.
    pub(crate) fn into_status(self) -> Result<QueueStatus> {
        Ok(match self.status.as_str() {
            "IN_QUEUE" => QueueStatus::InQueue {
                queue_position: self.queue_position.unwrap_or(0),
            },
            "IN_PROGRESS" => QueueStatus::InProgress { logs: self.logs },
            "COMPLETED" => QueueStatus::Completed {
                logs: self.logs,
                metrics: self.metrics.unwrap_or_default(),
                error: self.error.filter(|e| !e.is_empty()),
                error_type: self.error_type.filter(|e| !e.is_empty()),
            },
            other => {
                return Err(Error::UnknownQueueStatus {
                    status: other.to_owned(),
                    request_id: None,
                })
            }
        })
    }
}

/// Emits each log line once.
///
/// A status *poll* answers the full log list so far, so its new lines are the ones past the
/// count already emitted. A status *stream* event carries only new lines (fal-js accumulates
/// them), but a server may send full lists there too: a stream list that starts with the first
/// line seen and still holds the last line seen at the same index is taken as cumulative.
/// Memory stays O(1). Polls after a stream (the fallback) continue from the same count.
#[derive(Debug, Default)]
pub(crate) struct LogCursor {
    seen: usize,
    first: Option<RequestLog>,
    last: Option<RequestLog>,
    incremental: bool,
}

impl LogCursor {
    /// The lines of `logs` not emitted before; `polled` for a status poll's (cumulative) list.
    pub(crate) fn new_lines<'a>(
        &mut self,
        logs: &'a [RequestLog],
        polled: bool,
    ) -> &'a [RequestLog] {
        let Some(tail) = logs.last() else {
            return logs;
        };
        let fresh = if polled {
            logs.get(self.seen..).unwrap_or(&[])
        } else if self.seen == 0 {
            logs
        } else {
            let cumulative = !self.incremental
                && logs.len() >= self.seen
                && self.first.as_ref() == Some(&logs[0])
                && self.last.as_ref() == Some(&logs[self.seen - 1]);
            if cumulative {
                &logs[self.seen..]
            } else {
                self.incremental = true;
                logs
            }
        };
        if self.first.is_none() {
            self.first = Some(logs[0].clone());
        }
        if !fresh.is_empty() {
            self.seen += fresh.len();
            self.last = Some(tail.clone());
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases of fal's Python client `test_parse_status`.
    #[test]
    fn parses_in_queue() {
        let s = QueueStatus::from_slice(
            br#"{"status":"IN_QUEUE","queue_position":123,"request_id":"r"}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            QueueStatus::InQueue {
                queue_position: 123
            }
        );
    }

    #[test]
    fn parses_in_progress_with_and_without_logs() {
        let s = QueueStatus::from_slice(
            br#"{"status":"IN_PROGRESS","logs":[{"message":"step 1","level":"INFO","source":"USER","timestamp":"2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        assert_eq!(s.logs().len(), 1);
        assert_eq!(s.logs()[0].message, "step 1");
        let s = QueueStatus::from_slice(br#"{"status":"IN_PROGRESS","logs":null}"#).unwrap();
        assert_eq!(s, QueueStatus::InProgress { logs: None });
    }

    #[test]
    fn completed_without_metrics_has_empty_metrics() {
        let s = QueueStatus::from_slice(br#"{"status":"COMPLETED","logs":[]}"#).unwrap();
        let QueueStatus::Completed { metrics, error, .. } = &s else {
            panic!()
        };
        assert_eq!(metrics, &Metrics::default());
        assert!(error.is_none());
        assert!(s.failure().is_none());
    }

    #[test]
    fn completed_keeps_metrics() {
        let s = QueueStatus::from_slice(
            br#"{"status":"COMPLETED","logs":null,"metrics":{"inference_time":1.5,"gpu":"h100"}}"#,
        )
        .unwrap();
        let QueueStatus::Completed { metrics, .. } = s else {
            panic!()
        };
        assert_eq!(metrics.inference_time, Some(1.5));
        assert_eq!(metrics.other["gpu"], "h100");
    }

    #[test]
    fn completed_with_error_is_a_failure() {
        for (e, t) in [
            ("Runner disconnected", "runner_disconnected"),
            ("Request timed out", "request_timeout"),
        ] {
            let body =
                serde_json::json!({"status":"COMPLETED","logs":null,"error":e,"error_type":t})
                    .to_string();
            let s = QueueStatus::from_slice(body.as_bytes()).unwrap();
            assert_eq!(s.failure(), Some((e, Some(t))));
        }
    }

    #[test]
    fn unknown_status_is_an_error() {
        let err = QueueStatus::from_slice(br#"{"status":"FOO"}"#).unwrap_err();
        assert!(
            matches!(err, Error::UnknownQueueStatus { ref status, .. } if status == "FOO"),
            "{err}"
        );
        assert!(QueueStatus::from_slice(b"not json").is_err());
        assert!(QueueStatus::from_slice(br#"{"queue_position":1}"#).is_err());
    }

    fn log(m: &str) -> RequestLog {
        RequestLog {
            message: m.into(),
            level: None,
            source: None,
            timestamp: None,
        }
    }

    #[test]
    fn cursor_handles_cumulative_lists() {
        let mut c = LogCursor::default();
        let a = vec![log("a")];
        assert_eq!(c.new_lines(&a, false).len(), 1);
        let ab = vec![log("a"), log("b")];
        assert_eq!(c.new_lines(&ab, false), &[log("b")]);
        assert!(c.new_lines(&ab, false).is_empty());
        let abcd = vec![log("a"), log("b"), log("c"), log("d")];
        assert_eq!(c.new_lines(&abcd, false), &[log("c"), log("d")]);
    }

    #[test]
    fn cursor_handles_incremental_batches() {
        let mut c = LogCursor::default();
        assert_eq!(c.new_lines(&[log("a")], false).len(), 1);
        assert_eq!(c.new_lines(&[log("b")], false), &[log("b")]);
        assert_eq!(c.new_lines(&[log("c"), log("d")], false).len(), 2);
    }

    #[test]
    fn polls_after_an_incremental_stream_continue_from_the_count() {
        let mut c = LogCursor::default();
        assert_eq!(c.new_lines(&[log("a"), log("b")], false).len(), 2);
        assert_eq!(c.new_lines(&[log("c")], false), &[log("c")]);
        let full = [log("a"), log("b"), log("c"), log("d")];
        assert_eq!(c.new_lines(&full, true), &[log("d")]);
        assert!(c.new_lines(&full, true).is_empty());
        let more = [log("a"), log("b"), log("c"), log("d"), log("e")];
        assert_eq!(c.new_lines(&more, true), &[log("e")]);
    }

    #[test]
    fn polls_are_cumulative() {
        let mut c = LogCursor::default();
        assert_eq!(c.new_lines(&[log("x")], true).len(), 1);
        assert_eq!(c.new_lines(&[log("x"), log("x")], true), &[log("x")]);
        assert!(c.new_lines(&[log("x"), log("x")], true).is_empty());
        assert!(c.new_lines(&[], true).is_empty());
    }
}
