//! [`FalClient`]: the one entry point.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;

mod builder;

pub use builder::FalClientBuilder;

use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointId};
use crate::error::{Error, Result};
use crate::queue::{self, RequestHandle, Run, Submit};
use crate::storage::{CdnTokens, Storage};
use crate::transport::Transport;
use crate::webhook::{KeyCache, WebhookVerifier};

/// A fal client: cheap to clone (an `Arc` inside), `Send + Sync`, one connection pool, one
/// [`Config`] and one webhook key cache shared by every clone.
///
/// The queue calls are methods of the client itself ([`submit`](Self::submit),
/// [`run`](Self::run), [`resume`](Self::resume)): every typed model goes through them. Storage
/// and webhooks are handles ([`storage`](Self::storage), [`webhooks`](Self::webhooks)) because
/// they group several calls with their own options or state (the cached key set). Every call is
/// a builder that is also a future: set its options, then `.await` it.
///
/// ```no_run
/// # async fn demo() -> fal_client::Result<()> {
/// use fal_client::models::{FluxLora, FluxLoraInput};
/// use fal_client::queue::Priority;
/// use fal_client::FalClient;
///
/// let fal = FalClient::from_env()?; // FAL_KEY, or FAL_KEY_ID + FAL_KEY_SECRET
/// let job = fal
///     .submit::<FluxLora>(&FluxLoraInput::new("a red fox"))
///     .priority(Priority::Low)
///     .await?;
/// let out = job.wait().timeout(std::time::Duration::from_secs(600)).await?;
/// println!("{}", out.images[0].url);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FalClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<Transport>,
    /// The webhook key cache, made on first use.
    keys: OnceLock<Arc<KeyCache>>,
    /// The CDN token of the v3 upload flow.
    cdn_tokens: Arc<CdnTokens>,
}

impl fmt::Debug for FalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.inner.transport;
        f.debug_struct("FalClient")
            .field("key", &t.has_key().then_some("[REDACTED]"))
            .field("config", t.config())
            .finish()
    }
}

impl FalClient {
    /// A builder with fal's default base URLs and no key.
    pub fn builder() -> FalClientBuilder {
        FalClientBuilder::new()
    }

    /// A client configured from the environment ([`FalClientBuilder::from_env`]): the key from
    /// `FAL_KEY` (or `FAL_KEY_ID` + `FAL_KEY_SECRET`), base URLs from `FAL_QUEUE_URL`,
    /// `FAL_RUN_URL`, `FAL_REST_URL`, the webhook key set from `FAL_JWKS_URL`.
    ///
    /// # Errors
    /// [`Error::Config`] when no key is set or a URL is not an `http(s)` URL.
    pub fn from_env() -> Result<Self> {
        Self::from_builder_with_key(FalClientBuilder::from_env())
    }

    /// `builder` built, or [`Error::Config`] when it has no key.
    fn from_builder_with_key(builder: FalClientBuilder) -> Result<Self> {
        if !builder.has_key() {
            return Err(Error::Config(
                "no fal credentials: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)".into(),
            ));
        }
        builder.build()
    }

    pub(crate) fn from_parts(
        config: Config,
        http: reqwest::Client,
        auth: crate::credentials::Auth,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport: Arc::new(Transport::new(config, http, auth)),
                keys: OnceLock::new(),
                cdn_tokens: Arc::default(),
            }),
        }
    }

    /// The client's settings.
    pub fn config(&self) -> &Config {
        self.inner.transport.config()
    }

    /// Whether a key or a credential resolver is configured.
    pub fn has_key(&self) -> bool {
        self.inner.transport.has_key()
    }

    /// Submit a typed request to the queue (`POST {queue}/{endpoint id}`): a [`Submit`] builder
    /// (webhook, priority, runner hint, start timeout, headers) that sends when awaited. The
    /// input is checked with [`Endpoint::validate`] before anything is sent.
    ///
    /// # Errors (when awaited)
    /// [`Error::InvalidInput`] before anything is sent; [`Error::EndpointNotFound`] when fal
    /// serves no app at the endpoint id; [`Error::Api`] (e.g. 401, 422, 429 after retries);
    /// [`Error::AmbiguousSubmit`] when the connection failed after the request may have reached
    /// fal (never retried); [`Error::Decode`] for a malformed answer.
    pub fn submit<E: Endpoint>(&self, input: &E::Input) -> Submit<RequestHandle<E::Output>> {
        let prepared = E::validate(input).and_then(|()| self.prepare::<E>(input));
        self.submit_prepared(prepared)
    }

    /// [`submit`](Self::submit) for any endpoint id and any JSON-serializable input; the result
    /// is untyped JSON (turn it into a type with [`RequestHandle::with_output`]).
    ///
    /// # Errors (when awaited)
    /// [`Error::InvalidEndpointId`], then as [`submit`](Self::submit).
    pub fn submit_json<I: Serialize + ?Sized>(
        &self,
        endpoint_id: &str,
        input: &I,
    ) -> Submit<RequestHandle<serde_json::Value>> {
        let prepared = EndpointId::parse(endpoint_id)
            .and_then(|id| Ok((id, queue::Body::Ready(to_body(input)?))));
        self.submit_prepared(prepared)
    }

    /// The endpoint id and body of a typed request: the input as JSON, after its local file
    /// inputs are uploaded (when it has any: they upload when the request is awaited).
    fn prepare<E: Endpoint>(&self, input: &E::Input) -> Result<(EndpointId, queue::Body)> {
        let id = EndpointId::parse(E::ID)?;
        if !E::file_inputs(input).iter().any(|f| f.needs_upload()) {
            return Ok((id, queue::Body::Ready(to_body(input)?)));
        }
        let mut owned = input.clone();
        let storage = self.storage();
        let body = async move {
            storage
                .upload_file_inputs(E::file_inputs_mut(&mut owned), E::file_lifecycle())
                .await?;
            to_body(&owned)
        };
        Ok((id, queue::Body::AfterUploads(Box::pin(body))))
    }

    fn submit_prepared<O: Send + 'static>(
        &self,
        prepared: Result<(EndpointId, queue::Body)>,
    ) -> Submit<RequestHandle<O>> {
        let transport = Arc::clone(&self.inner.transport);
        Submit::new(move |options| {
            Box::pin(async move {
                let (endpoint, body) = prepared?;
                // The options are checked before the input's files are uploaded.
                let headers = options.headers(transport.config())?;
                let body = body.ready().await?;
                queue::submit(&transport, endpoint, body, &options, headers).await
            })
        })
    }

    /// Run a typed request synchronously (`POST {run}/{endpoint id}`) and decode the output: a
    /// [`Run`] builder that sends when awaited. Fine for fast generators; use the queue for
    /// training (sync runs are not retried by fal and hold a connection open for the whole run).
    ///
    /// # Errors (when awaited)
    /// As [`submit`](Self::submit), plus [`Error::Decode`] for the output.
    pub fn run<E: Endpoint>(&self, input: &E::Input) -> Run<E::Output> {
        let prepared = E::validate(input).and_then(|()| self.prepare::<E>(input));
        Run::new(Arc::clone(&self.inner.transport), prepared)
    }

    /// [`run`](Self::run) for any endpoint id and JSON input, with an untyped output.
    ///
    /// # Errors (when awaited)
    /// As [`run`](Self::run).
    pub fn run_json<I: Serialize + ?Sized>(
        &self,
        endpoint_id: &str,
        input: &I,
    ) -> Run<serde_json::Value> {
        let prepared = EndpointId::parse(endpoint_id)
            .and_then(|id| Ok((id, queue::Body::Ready(to_body(input)?))));
        Run::new(Arc::clone(&self.inner.transport), prepared)
    }

    /// fal's Platform API (models, prices, estimates, usage, request listing, payload
    /// deletion) at the client's [`api_url`](crate::FalClientBuilder::api_url). See
    /// [`crate::platform`].
    pub fn platform(&self) -> crate::platform::Platform {
        crate::platform::Platform::new(Arc::clone(&self.inner.transport))
    }

    /// Create a short-lived token for the apps of `endpoint_ids` (`POST {rest}/tokens/`): a
    /// [`CreateToken`](crate::tokens::CreateToken) that sends when awaited. See
    /// [`crate::tokens`].
    ///
    /// # Errors (when awaited)
    /// As [`CreateToken`](crate::tokens::CreateToken).
    pub fn create_token<I, S>(&self, endpoint_ids: I) -> crate::tokens::CreateToken
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        crate::tokens::CreateToken::new(Arc::clone(&self.inner.transport), endpoint_ids)
    }

    /// A realtime session with the app at `endpoint_id` (WebSocket, msgpack frames): a
    /// [`RealtimeBuilder`](crate::realtime::RealtimeBuilder) (auth, `max_buffering`,
    /// throttling, codec); the session connects on its first send. `I` is the input type, `O`
    /// the result type (`serde_json::Value` for untyped). See [`crate::realtime`].
    pub fn realtime<I, O>(&self, endpoint_id: &str) -> crate::realtime::RealtimeBuilder<I, O> {
        crate::realtime::RealtimeBuilder::new(
            Arc::clone(&self.inner.transport),
            EndpointId::parse(endpoint_id),
        )
    }

    /// Stream a typed request's output as it is made (`POST {run}/{endpoint id}/stream`): a
    /// [`StreamRequest`](crate::stream::StreamRequest) that sends when awaited and gives an
    /// [`OutputStream`](crate::stream::OutputStream) of partial events, then the output. The
    /// input is checked with [`Endpoint::validate`] and its local files are uploaded first, as
    /// for [`run`](Self::run). See [`crate::stream`].
    ///
    /// # Errors (when awaited)
    /// As [`StreamRequest`](crate::stream::StreamRequest).
    pub fn stream<E: crate::stream::StreamingEndpoint>(
        &self,
        input: &E::Input,
    ) -> crate::stream::StreamRequest<E::Event, E::Output> {
        let prepared = E::validate(input).and_then(|()| self.prepare::<E>(input));
        crate::stream::StreamRequest::new(Arc::clone(&self.inner.transport), prepared)
    }

    /// [`stream`](Self::stream) for any endpoint id and JSON input: events and output are
    /// untyped JSON.
    ///
    /// # Errors (when awaited)
    /// [`Error::InvalidEndpointId`], then as [`stream`](Self::stream).
    pub fn stream_json<I: Serialize + ?Sized>(
        &self,
        endpoint_id: &str,
        input: &I,
    ) -> crate::stream::StreamRequest<serde_json::Value, serde_json::Value> {
        let prepared = EndpointId::parse(endpoint_id)
            .and_then(|id| Ok((id, queue::Body::Ready(to_body(input)?))));
        crate::stream::StreamRequest::new(Arc::clone(&self.inner.transport), prepared)
    }

    /// Rebuild the handle of a request submitted earlier, from the stored endpoint id and
    /// request id (status, result and cancel URLs follow fal's owner/alias rule). Use it to
    /// resume a paid training job after a restart; `O` is the output type.
    ///
    /// ```
    /// # fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
    /// use fal_client::models::LoraTrainingOutput;
    /// use fal_client::queue::RequestHandle;
    /// let job: RequestHandle<LoraTrainingOutput> =
    ///     fal.resume("fal-ai/flux-lora-portrait-trainer", "764cabcf-b745-4b3e-ae38-1200304cf45b")?;
    /// assert!(job.status_url().as_str().ends_with("/requests/764cabcf-b745-4b3e-ae38-1200304cf45b/status"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidEndpointId`], or [`Error::InvalidInput`] for a request id that cannot be
    /// one (empty, `.`/`..`, or with `/`, `?`, `#`, `%`, whitespace).
    pub fn resume<O>(
        &self,
        endpoint_id: &str,
        request_id: impl Into<String>,
    ) -> Result<RequestHandle<O>> {
        RequestHandle::build(
            Arc::clone(&self.inner.transport),
            EndpointId::parse(endpoint_id)?,
            request_id.into(),
        )
    }

    /// Storage: uploads and downloads on this client's connection pool.
    pub fn storage(&self) -> Storage {
        Storage::new(
            Arc::clone(&self.inner.transport),
            Arc::clone(&self.inner.cdn_tokens),
        )
    }

    /// The webhook verifier with fal's keys ([`Config::jwks_url`], `FAL_JWKS_URL`), fetched
    /// through this client's connection pool when first needed and cached: every verifier this
    /// client (and its clones) hands out shares them. No credentials are sent to the key set.
    /// See [`WebhookVerifier`].
    pub fn webhooks(&self) -> WebhookVerifier {
        let cache = self.inner.keys.get_or_init(|| {
            Arc::new(KeyCache::new(
                Arc::clone(&self.inner.transport),
                self.config().jwks_url().clone(),
            ))
        });
        WebhookVerifier::fetching(Arc::clone(cache))
    }
}

/// Serialize an input to its request body.
fn to_body<I: Serialize + ?Sized>(input: &I) -> Result<Bytes> {
    serde_json::to_vec(input)
        .map(Bytes::from)
        .map_err(|e| Error::invalid_input("input", format!("cannot be serialized to JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_redacted_in_debug() {
        let c = FalClient::builder()
            .key("super-secret-key")
            .build()
            .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("super-secret-key"), "{d}");
        assert!(d.contains("REDACTED"));
    }

    #[test]
    fn env_without_key_is_a_config_error_for_from_env_only() {
        // `from_env` wants a key ...
        let err =
            FalClient::from_builder_with_key(FalClientBuilder::from_lookup(|_| None)).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("FAL_KEY")),
            "{err}"
        );
        let with_key = FalClientBuilder::from_lookup(|k| (k == "FAL_KEY").then(|| "k".into()));
        assert!(FalClient::from_builder_with_key(with_key)
            .unwrap()
            .has_key());
        // ... a builder from the environment does not (a webhook receiver needs none).
        let b = FalClientBuilder::from_lookup(|_| None);
        assert!(!b.build().unwrap().has_key());
    }
}
