//! [`FalClientBuilder`]: makes a [`FalClient`] from settings or the environment.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::FalClient;
use crate::config::{
    http_url, with_trailing_slash, Config, DEFAULT_API_URL, DEFAULT_JWKS_URL,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_QUEUE_URL, DEFAULT_REST_URL, DEFAULT_RUN_URL,
};
use crate::credentials::{Auth, Credential, CredentialResolver};
use crate::error::{Error, Result};
use crate::lifecycle::{ObjectLifecycle, UploadFlow};
use crate::retry::RetryPolicy;

/// Where the client's credential comes from.
enum AuthSource {
    Key(SecretString),
    Resolver(Arc<dyn CredentialResolver>),
}

/// Builds a [`FalClient`]. Nothing here panics; [`build`](Self::build) reports
/// bad settings. See [`Config`] for every setting and its default.
#[derive(Default)]
pub struct FalClientBuilder {
    auth: Option<AuthSource>,
    queue_url: Option<String>,
    run_url: Option<String>,
    rest_url: Option<String>,
    api_url: Option<String>,
    jwks_url: Option<String>,
    cdn_url: Option<String>,
    upload_flows: Option<Vec<UploadFlow>>,
    upload_lifecycle: Option<ObjectLifecycle>,
    output_lifecycle: Option<ObjectLifecycle>,
    retry: Option<RetryPolicy>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    sse_idle_timeout: Option<Duration>,
    max_response_bytes: Option<u64>,
    user_agent: Option<String>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for FalClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FalClientBuilder")
            .field(
                "auth",
                &self.auth.as_ref().map(|a| match a {
                    AuthSource::Key(_) => "key [REDACTED]",
                    AuthSource::Resolver(_) => "resolver",
                }),
            )
            .field("queue_url", &self.queue_url)
            .field("run_url", &self.run_url)
            .field("rest_url", &self.rest_url)
            .field("api_url", &self.api_url)
            .field("jwks_url", &self.jwks_url)
            .field("cdn_url", &self.cdn_url)
            .finish_non_exhaustive()
    }
}

impl FalClientBuilder {
    /// A builder with fal's defaults and no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from the environment: the key from `FAL_KEY`, else `FAL_KEY_ID` +
    /// `FAL_KEY_SECRET` (sent as `id:secret`); base URLs from `FAL_QUEUE_URL`, `FAL_RUN_URL`,
    /// `FAL_REST_URL`, `FAL_CDN_URL`, `FAL_API_URL`; the webhook key set from `FAL_JWKS_URL`. Unset or blank variables keep
    /// the defaults; no key is fine here (a webhook receiver needs none).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut b = Self::default();
        let key = match (
            non_empty("FAL_KEY"),
            non_empty("FAL_KEY_ID"),
            non_empty("FAL_KEY_SECRET"),
        ) {
            (Some(key), _, _) => Some(key),
            (None, Some(id), Some(secret)) => Some(format!("{id}:{secret}")),
            _ => None,
        };
        if let Some(key) = key {
            b = b.key(key);
        }
        b.queue_url = non_empty("FAL_QUEUE_URL");
        b.run_url = non_empty("FAL_RUN_URL");
        b.rest_url = non_empty("FAL_REST_URL");
        b.api_url = non_empty("FAL_API_URL");
        b.jwks_url = non_empty("FAL_JWKS_URL");
        b.cdn_url = non_empty("FAL_CDN_URL");
        b
    }

    /// Whether a key or a credential resolver is set.
    pub(crate) fn has_key(&self) -> bool {
        self.auth.is_some()
    }

    /// The fal API key (`FAL_KEY`, or `key_id:key_secret`). Kept as a secret: redacted in
    /// `Debug`, never logged, sent only to the configured base URLs. Replaces a
    /// [`credentials`](Self::credentials) resolver set before.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.auth = Some(AuthSource::Key(SecretString::from(key.into())));
        self
    }

    /// Resolve the credential when a request needs it instead of holding one key: rotating
    /// secrets, a secret manager, a user access token. The resolver is asked before each
    /// attempt unless its last [`Credential`](crate::credentials::Credential) is still cached;
    /// see [`crate::credentials`]. Replaces a [`key`](Self::key) set before (and the
    /// environment's, after [`from_env`](Self::from_env)).
    pub fn credentials(mut self, resolver: impl CredentialResolver) -> Self {
        self.auth = Some(AuthSource::Resolver(Arc::new(resolver)));
        self
    }

    /// Queue base URL, a full URL with scheme. Default `https://queue.fal.run`.
    pub fn queue_url(mut self, url: impl Into<String>) -> Self {
        self.queue_url = Some(url.into());
        self
    }

    /// Sync-run base URL. Default `https://fal.run`.
    pub fn run_url(mut self, url: impl Into<String>) -> Self {
        self.run_url = Some(url.into());
        self
    }

    /// REST base URL (storage upload initiation). Default `https://rest.fal.ai`.
    pub fn rest_url(mut self, url: impl Into<String>) -> Self {
        self.rest_url = Some(url.into());
        self
    }

    /// Platform API base URL, a full URL including the version path (`FAL_API_URL`). Default
    /// `https://api.fal.ai/v1`. See [`FalClient::platform`](crate::FalClient::platform).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// CDN base URL of the v3 upload flow (`FAL_CDN_URL`): small files go to
    /// `{cdn}/files/upload`. Default: the `base_url` of the CDN token fal hands out
    /// (`https://v3.fal.media` on fal), where multipart uploads always go. The CDN gets the CDN
    /// token, never the fal key.
    pub fn cdn_url(mut self, url: impl Into<String>) -> Self {
        self.cdn_url = Some(url.into());
        self
    }

    /// The upload flows, in the order they are tried (default [`UploadFlow::CdnV3`], then
    /// [`UploadFlow::Initiate`]). An upload falls back to the next flow only when one says it is
    /// unavailable before any of the file was stored (see
    /// [`Upload`](crate::storage::Upload)); with one flow there is no fallback. An empty list
    /// is [`Error::Config`] at [`build`](Self::build).
    pub fn upload_flows(mut self, flows: impl IntoIterator<Item = UploadFlow>) -> Self {
        let mut seen = Vec::new();
        for f in flows {
            if !seen.contains(&f) {
                seen.push(f);
            }
        }
        self.upload_flows = Some(seen);
        self
    }

    /// The lifecycle of every upload (expiry, initial ACL) unless the upload sets its own
    /// ([`Upload::lifecycle`](crate::storage::Upload::lifecycle)). Default: none (fal's
    /// account settings; files are kept when those say nothing).
    pub fn upload_lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.upload_lifecycle = Some(lifecycle);
        self
    }

    /// The lifecycle of the files every request creates (sent as
    /// `X-Fal-Object-Lifecycle-Preference` on submits and sync runs) unless the request sets
    /// its own ([`Submit::output_lifecycle`](crate::queue::Submit::output_lifecycle)). Default:
    /// none (fal's account settings).
    pub fn output_lifecycle(mut self, lifecycle: ObjectLifecycle) -> Self {
        self.output_lifecycle = Some(lifecycle);
        self
    }

    /// URL of the key set webhook deliveries are verified with
    /// ([`FalClient::webhooks`](crate::FalClient::webhooks)). Default fal's,
    /// `https://rest.alpha.fal.ai/.well-known/jwks.json`. No credentials are sent there.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Retry policy of every call ([`crate::retry`] says which failures are retried). Default
    /// [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// TCP/TLS connect timeout. Default 10 s.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// Longest silence while reading an answer's body (between two chunks), or while an
    /// upload's body is being sent (no chunk taken by the connection), before the call fails
    /// with [`Error::Stalled`] (retried on idempotent calls; a submit or sync run whose answer
    /// stalls is [`Error::AmbiguousSubmit`]). Default 120 s.
    ///
    /// It is measured by the crate, per chunk, and never limits how long an upload takes to
    /// send or how long a sync run takes to answer (reqwest's own `read_timeout` starts one
    /// timer per request and would cut a slow but healthy upload; it is not used). Dead
    /// connections are found by TCP keep-alive (30 s) and the per-call limits.
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.read_timeout = Some(t);
        self
    }

    /// Overall time limit of one control call (submit, status, result, cancel, upload
    /// initiation and completion; the webhook key set gets at most 10 s of it). Not applied to
    /// sync runs, status streams, uploads or downloads, which can legitimately take long: they
    /// are bounded by the read timeout while data moves, and an upload's or download's answer
    /// must start within this limit once the request was sent. Default 60 s.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = Some(t);
        self
    }

    /// Longest silence on the SSE status stream (also: longest wait for the stream to open)
    /// before a wait falls back to polling. Default 15 s (fal-js `EVENT_STREAM_TIMEOUT`).
    pub fn sse_idle_timeout(mut self, t: Duration) -> Self {
        self.sse_idle_timeout = Some(t);
        self
    }

    /// Largest answer read into memory, in bytes: results, sync-run outputs and
    /// [`Storage::download`](crate::storage::Storage::download). Default 256 MiB.
    ///
    /// Control answers (submit, status, cancel, upload initiation) have their own, lower limit
    /// of 8 MiB (or this one, when smaller). A larger answer is not read further and fails with
    /// [`Error::ResponseTooLarge`]; a server cannot make the client buffer an unbounded body.
    /// [`Storage::download_to_file`](crate::storage::Storage::download_to_file) streams to disk
    /// and has no limit.
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// `User-Agent` header. Default `fal-client-rs/{version}`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Use this `reqwest::Client` (proxies, custom TLS). Its own timeouts then apply instead of
    /// [`connect_timeout`](Self::connect_timeout), and its user agent instead of
    /// [`user_agent`](Self::user_agent).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Build the client.
    ///
    /// # Errors
    /// [`Error::Config`] for a base URL that is not an absolute `http`/`https` URL, a key that is
    /// empty or cannot be a header value, or when the HTTP client cannot be created (e.g. no
    /// TLS backend).
    pub fn build(self) -> Result<FalClient> {
        let (config, http, auth) = self.into_parts()?;
        Ok(FalClient::from_parts(config, http, auth))
    }

    fn into_parts(self) -> Result<(Config, reqwest::Client, Auth)> {
        let url =
            |which: &str, raw: Option<&str>, default: &str| base_url(which, raw.unwrap_or(default));
        let user_agent = self
            .user_agent
            .unwrap_or_else(|| concat!("fal-client-rs/", env!("CARGO_PKG_VERSION")).into());
        let jwks_raw = self.jwks_url.as_deref().unwrap_or(DEFAULT_JWKS_URL);
        let jwks_url = http_url(jwks_raw).ok_or_else(|| {
            Error::Config(format!(
                "the webhook key set URL (FAL_JWKS_URL) {jwks_raw:?} is not an http(s) URL"
            ))
        })?;
        let config = Config {
            queue_url: url("queue", self.queue_url.as_deref(), DEFAULT_QUEUE_URL)?,
            run_url: url("run", self.run_url.as_deref(), DEFAULT_RUN_URL)?,
            rest_url: url("rest", self.rest_url.as_deref(), DEFAULT_REST_URL)?,
            api_url: url("Platform API", self.api_url.as_deref(), DEFAULT_API_URL)?,
            jwks_url,
            cdn_url: self
                .cdn_url
                .as_deref()
                .map(|raw| base_url("CDN", raw))
                .transpose()?,
            upload_flows: match self.upload_flows {
                None => vec![UploadFlow::CdnV3, UploadFlow::Initiate],
                Some(f) if f.is_empty() => {
                    return Err(Error::Config("upload_flows needs at least one flow".into()))
                }
                Some(f) => f,
            },
            upload_lifecycle: self.upload_lifecycle,
            output_lifecycle: self.output_lifecycle,
            retry: self.retry.unwrap_or_default(),
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
            read_timeout: self.read_timeout.unwrap_or(Duration::from_secs(120)),
            request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(60)),
            sse_idle_timeout: self.sse_idle_timeout.unwrap_or(Duration::from_secs(15)),
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            user_agent,
        };
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.connect_timeout)
                // No reqwest `read_timeout`: see `read_timeout` above.
                .tcp_keepalive(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(90))
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?,
        };
        let auth = match self.auth {
            None => Auth::None,
            Some(AuthSource::Key(key)) => {
                Auth::Fixed(Credential::key(key.expose_secret())?.header().clone())
            }
            Some(AuthSource::Resolver(r)) => Auth::resolver(r, config.request_timeout),
        };
        Ok((config, http, auth))
    }
}

/// Parse a base URL: absolute, `http` or `https`, no query or fragment; the path gets a
/// trailing `/` so that joining keeps it.
fn base_url(which: &str, raw: &str) -> Result<Url> {
    let mut url = http_url(raw)
        .ok_or_else(|| Error::Config(format!("{which} base URL {raw:?} is not an http(s) URL")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "{which} base URL {raw:?} must not have a query or fragment"
        )));
    }
    with_trailing_slash(&mut url);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn auth(b: FalClientBuilder) -> Option<http::HeaderValue> {
        match b.into_parts().unwrap().2 {
            Auth::Fixed(h) => Some(h),
            _ => None,
        }
    }

    #[test]
    fn env_prefers_fal_key() {
        let b = FalClientBuilder::from_lookup(lookup(&[
            ("FAL_KEY", "k1"),
            ("FAL_KEY_ID", "id"),
            ("FAL_KEY_SECRET", "s"),
        ]));
        assert_eq!(auth(b).unwrap(), "Key k1");
    }

    #[test]
    fn env_falls_back_to_id_and_secret() {
        let b =
            FalClientBuilder::from_lookup(lookup(&[("FAL_KEY_ID", "id"), ("FAL_KEY_SECRET", "s")]));
        assert_eq!(auth(b).unwrap(), "Key id:s");
        let only_id = FalClientBuilder::from_lookup(lookup(&[("FAL_KEY_ID", "id")]));
        assert!(!only_id.has_key());
    }

    #[test]
    fn env_urls_are_used() {
        let (c, _, _) = FalClientBuilder::from_lookup(lookup(&[
            ("FAL_KEY", "k"),
            ("FAL_QUEUE_URL", "http://127.0.0.1:9000"),
            ("FAL_RUN_URL", "http://127.0.0.1:9001/run"),
            ("FAL_REST_URL", "http://127.0.0.1:9002/"),
            ("FAL_JWKS_URL", " http://127.0.0.1:9/.well-known/jwks.json "),
        ]))
        .into_parts()
        .unwrap();
        assert_eq!(c.queue_url().as_str(), "http://127.0.0.1:9000/");
        assert_eq!(c.run_url().as_str(), "http://127.0.0.1:9001/run/");
        assert_eq!(c.rest_url().as_str(), "http://127.0.0.1:9002/");
        assert_eq!(
            c.jwks_url().as_str(),
            "http://127.0.0.1:9/.well-known/jwks.json"
        );
        // A blank variable keeps the default.
        let (c, _, _) = FalClientBuilder::from_lookup(lookup(&[("FAL_JWKS_URL", "  ")]))
            .into_parts()
            .unwrap();
        assert_eq!(c.jwks_url().as_str(), DEFAULT_JWKS_URL);
        for bad in ["ftp://x/keys", "not a url"] {
            let r = FalClientBuilder::from_lookup(lookup(&[("FAL_JWKS_URL", bad)])).into_parts();
            assert!(
                matches!(&r, Err(Error::Config(m)) if m.contains("FAL_JWKS_URL")),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_are_fal() {
        let (c, _, auth) = FalClientBuilder::new().into_parts().unwrap();
        assert_eq!(c.queue_url().as_str(), "https://queue.fal.run/");
        assert_eq!(c.run_url().as_str(), "https://fal.run/");
        assert_eq!(c.rest_url().as_str(), "https://rest.fal.ai/");
        assert_eq!(c.jwks_url().as_str(), DEFAULT_JWKS_URL);
        assert_eq!(c.request_timeout(), Duration::from_secs(60));
        assert!(!auth.is_some());
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        for bad in ["queue.fal.run", "ftp://x", "http://x/?a=1", "not a url"] {
            let r = FalClientBuilder::new().queue_url(bad).into_parts();
            assert!(matches!(r, Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn keys_are_trimmed_and_checked_at_build() {
        let auth = auth(FalClientBuilder::new().key("  k-1\n")).unwrap();
        assert_eq!(auth, "Key k-1");
        assert!(auth.is_sensitive());
        for bad in ["", "  \n", "a\nb", "k\u{7f}"] {
            let r = FalClientBuilder::new().key(bad).into_parts();
            assert!(matches!(r, Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn key_is_redacted_in_debug() {
        let b = FalClientBuilder::new().key("super-secret-key");
        assert!(!format!("{b:?}").contains("super-secret-key"));
    }

    #[test]
    fn key_goes_only_to_configured_hosts() {
        let (c, _, _) = FalClientBuilder::new()
            .queue_url("http://127.0.0.1:9000")
            .into_parts()
            .unwrap();
        let ok = Url::parse("http://127.0.0.1:9000/fal-ai/x/requests/1").unwrap();
        assert!(c.is_fal_url(&ok));
        for other in [
            "http://127.0.0.1:9001/fal-ai/x",
            "https://127.0.0.1:9000/x",
            "http://localhost:9000/x",
            "https://v3.fal.media/files/upload",
            "https://storage.googleapis.com/bucket/x",
        ] {
            assert!(!c.is_fal_url(&Url::parse(other).unwrap()), "{other}");
        }
        // fal's own run and rest hosts stay trusted by default.
        assert!(c.is_fal_url(&Url::parse("https://fal.run/fal-ai/x").unwrap()));
    }
}
