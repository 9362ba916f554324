//! [`DeliveryDeduper`]: remembers recent request ids to drop re-deliveries.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Remembers the request ids of recent deliveries, in memory, to act once per `request_id`.
///
/// fal retries a delivery up to 10 times over 2 hours, and a delivery can arrive again even
/// after a 2xx answer. Call [`first_time`](Self::first_time) after verification and act only when
/// it returns `true`. If acting then fails, call [`forget`](Self::forget) and answer with a 5xx,
/// so that fal's next attempt is processed.
///
/// This covers **one process** and forgets everything on restart. In production, record
/// processed request ids in your database under a unique constraint (insert first; act only
/// when the insert succeeded, in the same transaction as the effect where possible).
///
/// Bounded: once `capacity` ids are held, the oldest one is forgotten for each new one (FIFO),
/// so size it to hold at least 2 hours of deliveries. `Send + Sync`; share it with an `Arc`.
///
/// ```
/// use fal_client::webhook::DeliveryDeduper;
/// let seen = DeliveryDeduper::new(2);
/// assert!(seen.first_time("a"));
/// assert!(!seen.first_time("a")); // a re-delivery
/// ```
#[derive(Debug)]
pub struct DeliveryDeduper {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl DeliveryDeduper {
    /// A deduper holding at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DeliveryDeduper {
            capacity,
            inner: Mutex::new(Inner {
                order: VecDeque::with_capacity(capacity.min(4096)),
                seen: HashSet::with_capacity(capacity.min(4096)),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `true` the first time `request_id` is seen (and records it), `false` while it is
    /// remembered.
    pub fn first_time(&self, request_id: &str) -> bool {
        let mut inner = self.lock();
        if inner.seen.contains(request_id) {
            return false;
        }
        while inner.order.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.seen.remove(&old);
                }
                None => break,
            }
        }
        inner.order.push_back(request_id.to_owned());
        inner.seen.insert(request_id.to_owned());
        true
    }

    /// Whether `request_id` is remembered, without recording it.
    pub fn contains(&self, request_id: &str) -> bool {
        self.lock().seen.contains(request_id)
    }

    /// Forget `request_id` (processing failed; let the next delivery be processed). Returns
    /// whether it was remembered.
    pub fn forget(&self, request_id: &str) -> bool {
        let mut inner = self.lock();
        if !inner.seen.remove(request_id) {
            return false;
        }
        inner.order.retain(|id| id != request_id);
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// `true` when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most ids remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_capacity_still_remembers_the_last_id() {
        let d = DeliveryDeduper::new(0);
        assert_eq!(d.capacity(), 1);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("a"));
    }

    #[test]
    fn forget_allows_the_next_delivery() {
        let d = DeliveryDeduper::new(3);
        assert!(d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.forget("a"));
        assert!(!d.forget("a"));
        assert_eq!(d.len(), 1);
        assert!(d.first_time("a"));
        assert!(d.first_time("c"));
        assert!(d.first_time("d")); // evicts b, the oldest
        assert!(!d.contains("b") && d.contains("a"));
    }
}
