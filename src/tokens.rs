//! Short-lived tokens: `POST {rest}/tokens/` makes a JWT that lets its bearer use the named apps
//! for a while, without the fal key. A server hands them to browsers (which then open realtime
//! sessions or streams themselves); a [`RealtimeSession`](crate::realtime::RealtimeSession) can
//! authenticate with them (see [`TokenProvider`]). fal's JS and Python clients make them the
//! same way (<https://docs.fal.ai/model-apis/inference/real-time>).
//!
//! ```no_run
//! # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
//! use std::time::Duration;
//! let token = fal
//!     .create_token(["fal-ai/fast-lcm-diffusion"])
//!     .expiration(Duration::from_secs(300))
//!     .await?;
//! // hand `token.secret()` to the browser; it expires at `token.expires_at()`
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::join;
use crate::endpoint::EndpointId;
use crate::error::BoxError;
use crate::error::{Error, Result};
use crate::transport::{Op, Request, Transport};

/// How long a token lives unless told otherwise: 120 s, as in fal's JS and Python clients.
pub const DEFAULT_TOKEN_EXPIRATION: Duration = Duration::from_secs(120);

/// A short-lived token from `POST {rest}/tokens/`. `Debug` never shows it.
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    allowed_apps: Vec<String>,
    expires_at: SystemTime,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[REDACTED]")
            .field("allowed_apps", &self.allowed_apps)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Token {
    /// The token itself (a JWT): the `fal_jwt_token` query parameter of a realtime or stream URL.
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The app aliases it was made for (`fast-lcm-diffusion` for
    /// `fal-ai/fast-lcm-diffusion`).
    pub fn allowed_apps(&self) -> &[String] {
        &self.allowed_apps
    }

    /// When it expires, by the local clock: the time the request was sent plus its expiration
    /// (so a little early, never late).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// A token request, sent when awaited: from
/// [`FalClient::create_token`](crate::FalClient::create_token).
///
/// # Errors (when awaited)
/// [`Error::InvalidEndpointId`] or [`Error::InvalidInput`] (no app, an expiration under 1 s)
/// before anything is sent; [`Error::Api`] (401 for a bad key, 422); [`Error::Decode`] for an
/// answer that is none of fal's three shapes (a JSON string, `{"detail": token}`,
/// `{"token": token}`); [`Error::Credentials`].
#[must_use = "a token request does nothing until it is awaited"]
pub struct CreateToken {
    transport: Arc<Transport>,
    apps: Result<Vec<String>>,
    expiration: Duration,
}

impl fmt::Debug for CreateToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateToken")
            .field("apps", &self.apps.as_ref().ok())
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl CreateToken {
    pub(crate) fn new<I, S>(transport: Arc<Transport>, endpoint_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // fal scopes a token to app aliases (the JS and Python clients send the alias only).
        let apps = endpoint_ids
            .into_iter()
            .map(|id| EndpointId::parse(id.as_ref()).map(|e| e.alias().to_owned()))
            .collect::<Result<Vec<_>>>();
        Self {
            transport,
            apps,
            expiration: DEFAULT_TOKEN_EXPIRATION,
        }
    }

    /// How long the token lives (`token_expiration`), in whole seconds (a fraction is rounded
    /// up); at least 1 s. Default [`DEFAULT_TOKEN_EXPIRATION`] (120 s).
    pub fn expiration(mut self, ttl: Duration) -> Self {
        self.expiration = ttl;
        self
    }
}

/// The answer's three shapes (fal's JS and Python clients accept all of them).
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenAnswer {
    Bare(String),
    Detail { detail: String },
    Token { token: String },
}

impl IntoFuture for CreateToken {
    type Output = Result<Token>;
    type IntoFuture = BoxFuture<'static, Result<Token>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let apps = self.apps?;
            if apps.is_empty() {
                return Err(Error::invalid_input(
                    "allowed_apps",
                    "needs at least one endpoint id",
                ));
            }
            if self.expiration < Duration::from_secs(1) {
                return Err(Error::invalid_input(
                    "token_expiration",
                    "must be at least 1 second",
                ));
            }
            let secs = self
                .expiration
                .as_secs()
                .saturating_add(u64::from(self.expiration.subsec_nanos() > 0));
            let body = serde_json::json!({"allowed_apps": apps, "token_expiration": secs});
            let url = join(self.transport.config().rest_url(), "tokens/")?;
            let req =
                Request::new(Op::Token, Method::POST, url).json_body(Bytes::from(body.to_string()));
            let sent_at = SystemTime::now();
            let answer: TokenAnswer = self.transport.json(&req, &"token answer").await?;
            let (TokenAnswer::Bare(secret)
            | TokenAnswer::Detail { detail: secret }
            | TokenAnswer::Token { token: secret }) = answer;
            Ok(Token {
                secret: SecretString::from(secret),
                allowed_apps: apps,
                expires_at: sent_at
                    .checked_add(Duration::from_secs(secs))
                    .unwrap_or(sent_at),
            })
        })
    }
}

/// Gives a [`RealtimeSession`](crate::realtime::RealtimeSession) a token for an endpoint, when
/// it connects (and again on every reconnect). The [`FalClient`](crate::FalClient) itself is
/// one (it creates a [`DEFAULT_TOKEN_EXPIRATION`] token for the endpoint); so is every
/// `Fn(EndpointId) -> impl Future<Output = Result<String, E>>` closure, e.g. one that asks your
/// own backend.
pub trait TokenProvider: Send + Sync + 'static {
    /// A token that lets its bearer use `endpoint`'s app.
    ///
    /// # Errors
    /// Whatever stops it; a closure's error becomes [`Error::Credentials`].
    fn token<'a>(&'a self, endpoint: &'a EndpointId) -> BoxFuture<'a, Result<String>>;
}

impl<F, Fut, E> TokenProvider for F
where
    F: Fn(EndpointId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<String, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn token<'a>(&'a self, endpoint: &'a EndpointId) -> BoxFuture<'a, Result<String>> {
        let fut = self(endpoint.clone());
        Box::pin(async move { fut.await.map_err(|e| Error::Credentials(e.into())) })
    }
}

impl TokenProvider for crate::FalClient {
    fn token<'a>(&'a self, endpoint: &'a EndpointId) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let token = self.create_token([endpoint.as_str()]).await?;
            Ok(token.secret().to_owned())
        })
    }
}
