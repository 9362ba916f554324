//! Upload options and progress ([`UploadProgress`]).

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::transport::Meter;

/// Size above which an upload uses the multipart flow: 90 MiB, as fal-js.
/// An upload of exactly this size still goes up in one `PUT`.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 90 * 1024 * 1024;

/// Size of one multipart part: 10 MiB, as fal-js and fal's Python client.
pub const DEFAULT_PART_SIZE: u64 = 10 * 1024 * 1024;

/// Parts in flight at once in a multipart upload. fal-js sends them one after the other, fal's
/// Python client ten at a time; four keeps a fast link busy without many open connections.
pub const DEFAULT_CONCURRENCY: usize = 4;

pub(crate) type ProgressFn = Arc<dyn Fn(UploadProgress) + Send + Sync>;

/// How far an upload is, in bytes of the file (or buffer) being uploaded.
///
/// Reports come from [`Upload::on_progress`](super::Upload::on_progress); see there for when
/// they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadProgress {
    /// Bytes sent so far (never counting a failed attempt's bytes twice), in bytes.
    pub sent: u64,
    /// Size of the whole upload, in bytes.
    pub total: u64,
}

impl UploadProgress {
    /// `sent / total` in `0.0..=1.0` (1.0 for an empty upload).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.sent as f64 / self.total as f64
        }
    }

    /// Whether the upload is finished (`sent == total`; only reported once fal accepted it).
    pub fn is_done(&self) -> bool {
        self.sent == self.total
    }
}

/// The options of an upload (set through [`Upload`](super::Upload)).
#[derive(Clone)]
pub(crate) struct UploadOptions {
    pub(crate) multipart_threshold: u64,
    pub(crate) part_size: u64,
    pub(crate) concurrency: usize,
    pub(crate) content_type: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) lifecycle: Option<crate::lifecycle::ObjectLifecycle>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            content_type: None,
            file_name: None,
            progress: None,
            lifecycle: None,
        }
    }
}

impl fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadOptions")
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("content_type", &self.content_type)
            .field("file_name", &self.file_name)
            .field("on_progress", &self.progress.is_some())
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

/// Turns body chunks of every part into ordered, monotonic [`UploadProgress`] reports.
pub(crate) struct Tracker {
    total: u64,
    callback: ProgressFn,
    state: Mutex<TrackerState>,
}

struct TrackerState {
    /// Bytes of successful and in-flight attempts.
    live: u64,
    /// Last `sent` reported.
    reported: Option<u64>,
}

impl Tracker {
    /// A tracker for an upload of `total` bytes; reports `sent == 0` at once when `total > 0`.
    pub(crate) fn start(total: u64, callback: ProgressFn) -> Arc<Self> {
        let t = Arc::new(Self {
            total,
            callback,
            state: Mutex::new(TrackerState {
                live: 0,
                reported: None,
            }),
        });
        if total > 0 {
            t.report(|_| Some(0));
        }
        t
    }

    /// The upload succeeded: report `sent == total` (once).
    pub(crate) fn finish(&self) {
        let total = self.total;
        self.report(|_| Some(total));
    }

    fn report(&self, f: impl FnOnce(&mut TrackerState) -> Option<u64>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sent) = f(&mut st) {
            if st.reported.is_none_or(|r| sent > r) {
                st.reported = Some(sent);
                (self.callback)(UploadProgress {
                    sent,
                    total: self.total,
                });
            }
        }
    }
}

impl Meter for Tracker {
    fn sent(&self, n: u64) {
        let cap = self.total.saturating_sub(1);
        self.report(|st| {
            st.live = st.live.saturating_add(n);
            Some(st.live.min(cap))
        });
    }

    fn rewound(&self, n: u64) {
        self.report(|st| {
            st.live = st.live.saturating_sub(n);
            None
        });
    }
}

/// A tracker for `options`, when it asks for progress.
pub(crate) fn tracker(options: &UploadOptions, total: u64) -> Option<Arc<Tracker>> {
    options.progress.clone().map(|f| Tracker::start(total, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (ProgressFn, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Arc::new(move |p: UploadProgress| s.lock().unwrap().push(p.sent)),
            seen,
        )
    }

    #[test]
    fn reports_are_monotonic_and_total_comes_once_at_the_end() {
        let (f, seen) = recorder();
        let t = Tracker::start(100, f);
        t.sent(40);
        t.sent(60); // all bytes streamed, not yet accepted
        t.rewound(60); // that attempt failed
        t.sent(30); // retry: 70 < 99 reported, nothing new
        t.sent(30);
        t.finish();
        t.finish();
        assert_eq!(*seen.lock().unwrap(), vec![0, 40, 99, 100]);
    }

    #[test]
    fn an_empty_upload_reports_once() {
        let (f, seen) = recorder();
        let t = Tracker::start(0, f);
        t.finish();
        assert_eq!(*seen.lock().unwrap(), vec![0]);
    }

    #[test]
    fn fraction_and_done() {
        let p = UploadProgress { sent: 1, total: 4 };
        assert_eq!(p.fraction(), 0.25);
        assert!(!p.is_done());
        assert!(UploadProgress { sent: 0, total: 0 }.is_done());
    }
}
