//! [`DeliveryDeduper`]: acting once per webhook delivery, in one process ([`MemoryDeduper`]) or
//! across replicas ([`RedisDeduper`], feature `redis`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use futures::future::BoxFuture;

use super::WebhookError;

/// A record of the webhook deliveries already acted on, so that each request id is acted on
/// once: fal retries a delivery up to 10 times over 2 hours, and a delivery can arrive again
/// even after a 2xx answer, at any replica.
///
/// After verification, [`first_time`](Self::first_time) claims the request id: act only when
/// it returns `Ok(true)`. If acting then fails, [`forget`](Self::forget) it and answer with a
/// 5xx, so that fal's next attempt is processed. When the record cannot be reached, both return
/// [`WebhookError::DedupStore`], whose [`status_code`](WebhookError::status_code) is 503: fal
/// delivers again later, and nothing is acted on twice or dropped.
///
/// [`MemoryDeduper`] covers one process; [`RedisDeduper`] (feature `redis`) covers every replica
/// that shares one Redis. Implement it for your own store (a database table with a unique
/// constraint, say); the futures are boxed so that `Arc<dyn DeliveryDeduper>` works.
pub trait DeliveryDeduper: Send + Sync {
    /// Claim `request_id`: `Ok(true)` the first time (act on it), `Ok(false)` while it is
    /// claimed (a re-delivery: answer 2xx and do nothing).
    ///
    /// # Errors
    /// [`WebhookError::DedupStore`] when the record cannot be reached.
    fn first_time<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<bool, WebhookError>>;

    /// Release a claim (acting failed; let the next delivery be processed). `Ok(true)` when it
    /// was claimed.
    ///
    /// # Errors
    /// [`WebhookError::DedupStore`] when the record cannot be reached.
    fn forget<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<bool, WebhookError>>;
}

/// The request ids of recent deliveries, in memory: one process's [`DeliveryDeduper`].
///
/// It forgets everything on restart and knows nothing of other replicas: with several
/// receivers, use [`RedisDeduper`] or your database. Bounded: once `capacity` ids are held, the
/// oldest one is forgotten for each new one (FIFO), so size it to hold at least 2 hours of
/// deliveries. `Send + Sync`; share it with an `Arc`. Never fails.
///
/// ```
/// use fal_client::webhook::{DeliveryDeduper, MemoryDeduper};
/// # futures::executor::block_on(async {
/// let seen = MemoryDeduper::new(2);
/// assert!(seen.first_time("a").await?);
/// assert!(!seen.first_time("a").await?); // a re-delivery
/// # Ok::<(), fal_client::webhook::WebhookError>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct MemoryDeduper {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl MemoryDeduper {
    /// A deduper holding at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryDeduper {
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

    fn claim(&self, request_id: &str) -> bool {
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

    fn release(&self, request_id: &str) -> bool {
        let mut inner = self.lock();
        if !inner.seen.remove(request_id) {
            return false;
        }
        inner.order.retain(|id| id != request_id);
        true
    }

    /// Whether `request_id` is remembered, without recording it.
    pub fn contains(&self, request_id: &str) -> bool {
        self.lock().seen.contains(request_id)
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

impl DeliveryDeduper for MemoryDeduper {
    fn first_time<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<bool, WebhookError>> {
        let first = self.claim(request_id);
        Box::pin(std::future::ready(Ok(first)))
    }

    fn forget<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<bool, WebhookError>> {
        let was = self.release(request_id);
        Box::pin(std::future::ready(Ok(was)))
    }
}

#[cfg(feature = "redis")]
pub use redis_store::RedisDeduper;

#[cfg(feature = "redis")]
mod redis_store {
    use std::fmt;
    use std::time::Duration;

    use futures::future::BoxFuture;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::{DeliveryDeduper, WebhookError};

    /// A [`DeliveryDeduper`] on Redis, shared by every receiver replica that uses the same
    /// Redis: a claim is one atomic `SET {prefix}{request_id} 1 NX EX {ttl}`, so of two replicas
    /// that get the same delivery at once exactly one acts (feature `redis`, the `redis` crate
    /// with tokio).
    ///
    /// - Claims live for [`ttl`](Self::ttl) (default 24 hours; fal retries a delivery for up to
    ///   2 hours), under keys starting with [`key_prefix`](Self::key_prefix) (default
    ///   `fal:webhook:`).
    /// - Redis unreachable, or slower than the response timeout (default 2 s): every call is
    ///   [`WebhookError::DedupStore`] (answer it with its 503; fal delivers again later). The
    ///   connection is re-made by the next call.
    /// - Redis must keep its data for the claims to hold: a Redis that restarts without
    ///   persistence forgets them (as a restarted [`MemoryDeduper`](super::MemoryDeduper)
    ///   does).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), fal_client::webhook::WebhookError> {
    /// use std::sync::Arc;
    /// use fal_client::webhook::{DeliveryDeduper, RedisDeduper};
    /// let seen: Arc<dyn DeliveryDeduper> = Arc::new(RedisDeduper::connect("redis://redis:6379/0").await?);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct RedisDeduper {
        connection: ConnectionManager,
        prefix: String,
        ttl: Duration,
    }

    impl fmt::Debug for RedisDeduper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisDeduper")
                .field("prefix", &self.prefix)
                .field("ttl", &self.ttl)
                .finish_non_exhaustive()
        }
    }

    fn store_error(e: impl fmt::Display) -> WebhookError {
        WebhookError::DedupStore {
            store: "redis",
            message: e.to_string(),
        }
    }

    impl RedisDeduper {
        /// Default lifetime of a claim: 24 hours.
        pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
        /// Default key prefix.
        pub const DEFAULT_PREFIX: &'static str = "fal:webhook:";
        /// Longest wait for Redis, for a connection or an answer: 2 s.
        pub const TIMEOUT: Duration = Duration::from_secs(2);

        /// Connect to the Redis at `url` (`redis://[user:password@]host:port/db`, or
        /// `rediss://` with the `redis` crate's TLS features).
        ///
        /// # Errors
        /// [`WebhookError::DedupStore`] for a bad URL or a Redis that cannot be reached.
        pub async fn connect(url: &str) -> Result<Self, WebhookError> {
            let client = redis::Client::open(url).map_err(store_error)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Self::TIMEOUT)
                .set_response_timeout(Self::TIMEOUT)
                .set_number_of_retries(1);
            let connection = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(store_error)?;
            Ok(Self {
                connection,
                prefix: Self::DEFAULT_PREFIX.to_owned(),
                ttl: Self::DEFAULT_TTL,
            })
        }

        /// Keys start with `prefix` (default `fal:webhook:`): give each application its own.
        pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
            self.prefix = prefix.into();
            self
        }

        /// How long a claim lives (default [`DEFAULT_TTL`](Self::DEFAULT_TTL); at least 1 s).
        pub fn ttl(mut self, ttl: Duration) -> Self {
            self.ttl = ttl.max(Duration::from_secs(1));
            self
        }

        fn key(&self, request_id: &str) -> String {
            format!("{}{request_id}", self.prefix)
        }
    }

    impl DeliveryDeduper for RedisDeduper {
        fn first_time<'a>(
            &'a self,
            request_id: &'a str,
        ) -> BoxFuture<'a, Result<bool, WebhookError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                // SET key 1 NX EX ttl: "OK" when set, nil when the key exists.
                let set: Option<String> = redis::cmd("SET")
                    .arg(self.key(request_id))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(self.ttl.as_secs())
                    .query_async(&mut connection)
                    .await
                    .map_err(store_error)?;
                Ok(set.is_some())
            })
        }

        fn forget<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<bool, WebhookError>> {
            Box::pin(async move {
                let mut connection = self.connection.clone();
                let removed: u64 = redis::cmd("DEL")
                    .arg(self.key(request_id))
                    .query_async(&mut connection)
                    .await
                    .map_err(store_error)?;
                Ok(removed > 0)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn zero_capacity_still_remembers_the_last_id() {
        let d = MemoryDeduper::new(0);
        assert_eq!(d.capacity(), 1);
        block_on(async {
            assert!(d.first_time("a").await.unwrap());
            assert!(!d.first_time("a").await.unwrap());
            assert!(d.first_time("b").await.unwrap());
            assert!(d.first_time("a").await.unwrap());
        });
    }

    #[test]
    fn forget_allows_the_next_delivery() {
        let d = MemoryDeduper::new(3);
        block_on(async {
            assert!(d.first_time("a").await.unwrap());
            assert!(d.first_time("b").await.unwrap());
            assert!(d.forget("a").await.unwrap());
            assert!(!d.forget("a").await.unwrap());
            assert_eq!(d.len(), 1);
            assert!(d.first_time("a").await.unwrap());
            assert!(d.first_time("c").await.unwrap());
            assert!(d.first_time("d").await.unwrap()); // evicts b, the oldest
            assert!(!d.contains("b") && d.contains("a"));
        });
    }

    #[test]
    fn the_trait_is_object_safe() {
        let d: std::sync::Arc<dyn DeliveryDeduper> = std::sync::Arc::new(MemoryDeduper::new(8));
        assert!(block_on(d.first_time("x")).unwrap());
    }
}
