//! Realtime sessions: a WebSocket to an app's realtime path (`wss://fal.run/{endpoint
//! id}/realtime`) for interactive generation, inputs and results as binary msgpack frames
//! (<https://docs.fal.ai/model-apis/inference/real-time>).
//!
//! ```no_run
//! # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
//! use serde_json::{json, Value};
//!
//! let mut session = fal.realtime::<Value, Value>("fal-ai/fast-lcm-diffusion").build()?;
//! session.send(&json!({"prompt": "a red fox", "request_id": "1"})).await?;
//! if let Some(result) = session.recv().await? {
//!     println!("{}", result["images"][0]["url"]);
//! }
//! # Ok(()) }
//! ```
//!
//! - **Connection**: opened by the first [`send`](RealtimeSession::send), not before. After any
//!   close (the app's idle `TIMEOUT`, an error, a network failure) the next `send` connects
//!   again, with a fresh token when the session uses tokens. Nothing reconnects on its own.
//! - **Auth**: by default the handshake carries `Authorization: Key …` (the client's key, from a
//!   server: what fal recommends there). [`RealtimeBuilder::token_auth`] uses a short-lived token
//!   in `fal_jwt_token` instead, from the client or any [`TokenProvider`].
//! - **Frames**: inputs go out as binary msgpack ([`Msgpack`], as fal's JS and Python clients
//!   send them; fal's realtime apps read bytes); [`Json`] or your own [`RealtimeCodec`] can
//!   replace it. Results come back as binary frames, decoded by the codec. fal's control
//!   messages are JSON text frames: `x-fal-message` is skipped, `x-fal-error` is an error,
//!   except `TIMEOUT`, the app ending an idle session, which is a normal end.
//! - **Throttling** (off by default): with [`RealtimeBuilder::throttle`], inputs sent faster
//!   than the interval collapse to the last one (fal's JS client does the same, at 128 ms).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::config::join;
use crate::endpoint::EndpointId;
use crate::error::BoxError;
use crate::error::{decode_json, Error, OutputOf, Result};
use crate::tokens::TokenProvider;
use crate::transport::Transport;

/// The realtime path appended to the endpoint id unless it already ends with it.
pub const DEFAULT_REALTIME_PATH: &str = "realtime";

/// A frame to send: binary (msgpack, bytes) or text (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A binary frame.
    Binary(bytes::Bytes),
    /// A text frame.
    Text(String),
}

/// Turns inputs into frames and result frames into outputs.
pub trait RealtimeCodec<I, O>: Send + Sync + 'static {
    /// The frame for `input`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when it cannot be encoded (nothing is sent).
    fn encode(&self, input: &I) -> Result<Frame>;

    /// The result in a binary frame. (Text frames are JSON: control messages, or results of
    /// apps that answer in JSON, decoded with `serde_json`.)
    ///
    /// # Errors
    /// [`Error::Decode`].
    fn decode(&self, frame: &[u8]) -> Result<O>;
}

/// msgpack frames, maps with string keys (`rmp_serde::to_vec_named`): what fal's realtime apps
/// read and write by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Msgpack;

impl<I: Serialize, O: DeserializeOwned> RealtimeCodec<I, O> for Msgpack {
    fn encode(&self, input: &I) -> Result<Frame> {
        rmp_serde::to_vec_named(input)
            .map(|v| Frame::Binary(v.into()))
            .map_err(|e| Error::invalid_input("input", format!("cannot be msgpack-encoded: {e}")))
    }

    fn decode(&self, frame: &[u8]) -> Result<O> {
        rmp_serde::from_slice(frame).map_err(|e| Error::Decode {
            what: "realtime result (msgpack)".into(),
            path: ".".into(),
            message: e.to_string(),
            body_excerpt: crate::error::excerpt(frame),
            request_id: None,
        })
    }
}

/// JSON frames: inputs as text, binary results as JSON, for apps that speak JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<I: Serialize, O: DeserializeOwned> RealtimeCodec<I, O> for Json {
    fn encode(&self, input: &I) -> Result<Frame> {
        serde_json::to_string(input)
            .map(Frame::Text)
            .map_err(|e| Error::invalid_input("input", format!("cannot be JSON-encoded: {e}")))
    }

    fn decode(&self, frame: &[u8]) -> Result<O> {
        decode_json(&"realtime result (JSON)", frame, None)
    }
}

/// Why a realtime session failed ([`Error::Realtime`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RealtimeFailure {
    /// fal refused the credentials: the handshake was answered 401 or 403, or the app sent
    /// `{"status": "error", "error": "Unauthorized"}`. A bad or expired token, a token for
    /// another app, a bad key.
    Unauthorized,
    /// The app sent an `x-fal-error` other than `TIMEOUT` (e.g. `INTERNAL_ERROR`,
    /// `BAD_REQUEST`); the session stays open.
    App {
        /// fal's code.
        error: String,
        /// fal's text.
        reason: String,
    },
    /// The connection closed abnormally: a close code other than 1000/1001, or none (1006, the
    /// connection dropped). The next send reconnects.
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The close reason, if any.
        reason: String,
    },
    /// The session could not be opened: the handshake was refused with this HTTP status (404:
    /// no realtime app at this endpoint id).
    Refused {
        /// The handshake answer's status.
        status: u16,
    },
    /// The session could not be opened: no connection, TLS, timeout.
    Connect,
}

impl fmt::Display for RealtimeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RealtimeFailure::Unauthorized => f.write_str("unauthorized"),
            RealtimeFailure::App { error, reason } => write!(f, "{error}: {reason}"),
            RealtimeFailure::Closed { code, reason } => {
                write!(f, "the connection closed abnormally (code {code}")?;
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                f.write_str(")")
            }
            RealtimeFailure::Refused { status } => {
                write!(f, "the handshake was refused with HTTP {status}")
            }
            RealtimeFailure::Connect => f.write_str("could not connect"),
        }
    }
}

/// Builds a [`RealtimeSession`]: from [`FalClient::realtime`](crate::FalClient::realtime).
///
/// The handshake must finish within the client's
/// [`request_timeout`](crate::FalClientBuilder::request_timeout) (60 s by default; fal's Python
/// client waits 90 s); a message may be at most the client's
/// [`max_response_bytes`](crate::FalClientBuilder::max_response_bytes). The WebSocket connects
/// directly: it does not go through an HTTP proxy configured on a custom `http_client`.
#[must_use = "a realtime builder does nothing until built"]
pub struct RealtimeBuilder<I, O, C = Msgpack> {
    transport: Arc<Transport>,
    endpoint: Result<EndpointId>,
    path: Option<String>,
    max_buffering: Option<u8>,
    throttle: Option<Duration>,
    tokens: Option<Arc<dyn TokenProvider>>,
    codec: C,
    _types: std::marker::PhantomData<fn(I) -> O>,
}

impl<I, O, C> fmt::Debug for RealtimeBuilder<I, O, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealtimeBuilder")
            .field(
                "endpoint",
                &self.endpoint.as_ref().map(EndpointId::as_str).ok(),
            )
            .field("path", &self.path)
            .field("max_buffering", &self.max_buffering)
            .field("throttle", &self.throttle)
            .field("token_auth", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl<I, O> RealtimeBuilder<I, O, Msgpack> {
    pub(crate) fn new(transport: Arc<Transport>, endpoint: Result<EndpointId>) -> Self {
        Self {
            transport,
            endpoint,
            path: None,
            max_buffering: None,
            throttle: None,
            tokens: None,
            codec: Msgpack,
            _types: std::marker::PhantomData,
        }
    }
}

impl<I, O, C> RealtimeBuilder<I, O, C> {
    /// The path after the endpoint id (default `realtime`, not added again when the id ends
    /// with it; a path given here is always added, an empty one adds none).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// `max_buffering`: how many inputs the app keeps before dropping the oldest, 1 to 60
    /// (fal suggests 2). Default: unset, the app decides. Out of range is
    /// [`Error::InvalidInput`] at [`build`](Self::build).
    pub fn max_buffering(mut self, frames: u8) -> Self {
        self.max_buffering = Some(frames);
        self
    }

    /// Send at most one input per `interval`: inputs sent sooner are held, and a newer one
    /// replaces a held one (the last wins). A held input goes out when the interval has
    /// passed, during [`recv`](RealtimeSession::recv) or the next send, or at once with
    /// [`flush`](RealtimeSession::flush). Default: off.
    pub fn throttle(mut self, interval: Duration) -> Self {
        self.throttle = (!interval.is_zero()).then_some(interval);
        self
    }

    /// Authenticate with a short-lived token in the URL (`fal_jwt_token`) instead of the key on
    /// the handshake: one from `provider` at every connect. The
    /// [`FalClient`](crate::FalClient) is a provider (it creates a 120 s token for the app).
    pub fn token_auth(mut self, provider: impl TokenProvider) -> Self {
        self.tokens = Some(Arc::new(provider));
        self
    }

    /// Encode inputs and decode results with `codec` instead of [`Msgpack`].
    pub fn codec<C2: RealtimeCodec<I, O>>(self, codec: C2) -> RealtimeBuilder<I, O, C2> {
        RealtimeBuilder {
            transport: self.transport,
            endpoint: self.endpoint,
            path: self.path,
            max_buffering: self.max_buffering,
            throttle: self.throttle,
            tokens: self.tokens,
            codec,
            _types: std::marker::PhantomData,
        }
    }

    /// The session, not yet connected: the first [`send`](RealtimeSession::send) connects.
    ///
    /// # Errors
    /// [`Error::InvalidEndpointId`]; [`Error::InvalidInput`] for `max_buffering` outside
    /// 1..=60; [`Error::Config`] when the run URL cannot become a WebSocket URL.
    pub fn build(self) -> Result<RealtimeSession<I, O, C>>
    where
        C: RealtimeCodec<I, O>,
    {
        let endpoint = self.endpoint?;
        if let Some(n) = self.max_buffering {
            if !(1..=60).contains(&n) {
                return Err(Error::invalid_input(
                    "max_buffering",
                    format!("must be between 1 and 60 (inclusive), got {n}"),
                ));
            }
        }
        let http_url = realtime_http_url(&self.transport, &endpoint, self.path.as_deref())?;
        Ok(RealtimeSession {
            transport: self.transport,
            endpoint,
            http_url,
            max_buffering: self.max_buffering,
            throttle: self.throttle,
            tokens: self.tokens,
            codec: self.codec,
            ws: None,
            inbox: VecDeque::new(),
            held: None,
            last_sent: None,
            _types: std::marker::PhantomData,
        })
    }
}

/// `{run}/{endpoint id}/{path}` (http or https; the scheme becomes ws or wss on connect).
fn realtime_http_url(
    transport: &Transport,
    endpoint: &EndpointId,
    path: Option<&str>,
) -> Result<Url> {
    let id = endpoint.as_str();
    let full = match path.map(|p| p.trim_start_matches('/')) {
        // An explicit path is always added (fal's JS client does the same).
        Some("") => id.to_owned(),
        Some(p) => format!("{id}/{p}"),
        // The default one only when the id does not end with it already.
        None if endpoint.path().is_some() && id.ends_with(&format!("/{DEFAULT_REALTIME_PATH}")) => {
            id.to_owned()
        }
        None => format!("{id}/{DEFAULT_REALTIME_PATH}"),
    };
    join(transport.config().run_url(), &full)
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One realtime session with an app: [`send`](Self::send) inputs, [`recv`](Self::recv)
/// results. See [`crate::realtime`] for the connection rules.
pub struct RealtimeSession<I, O, C = Msgpack> {
    transport: Arc<Transport>,
    endpoint: EndpointId,
    http_url: Url,
    max_buffering: Option<u8>,
    throttle: Option<Duration>,
    tokens: Option<Arc<dyn TokenProvider>>,
    codec: C,
    ws: Option<Socket>,
    /// Frames read while checking the connection before a send, for `recv`.
    inbox: VecDeque<Message>,
    /// An input held back by the throttle.
    held: Option<Frame>,
    last_sent: Option<Instant>,
    _types: std::marker::PhantomData<fn(I) -> O>,
}

impl<I, O, C> fmt::Debug for RealtimeSession<I, O, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealtimeSession")
            .field("endpoint", &self.endpoint.as_str())
            .field("connected", &self.ws.is_some())
            .field("held", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

/// The app's idle `TIMEOUT` (`{"type": "x-fal-error", "error": "TIMEOUT", ...}`).
fn is_timeout(text: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(text).is_ok_and(|v| {
        v.get("type").and_then(|t| t.as_str()) == Some("x-fal-error")
            && v.get("error").and_then(|e| e.as_str()) == Some("TIMEOUT")
    })
}

/// A field of a control message as text (a string as is, anything else as JSON).
fn text_of(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// What one incoming frame means.
enum Incoming<O> {
    Result(O),
    Skip,
    /// The session ended normally.
    End,
}

impl<I, O: DeserializeOwned, C: RealtimeCodec<I, O>> RealtimeSession<I, O, C> {
    /// The endpoint id.
    pub fn endpoint_id(&self) -> &EndpointId {
        &self.endpoint
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.ws.is_some()
    }

    /// Send an input, connecting first when no connection is open. With a
    /// [`throttle`](RealtimeBuilder::throttle), an input inside the interval is held instead
    /// (replacing one held before).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the codec cannot encode it (nothing is sent);
    /// [`Error::Realtime`] when the session cannot be opened ([`RealtimeFailure::Unauthorized`],
    /// [`RealtimeFailure::Refused`], [`RealtimeFailure::Connect`]) or the connection fails while
    /// sending ([`RealtimeFailure::Closed`]: send again to reconnect); the token provider's
    /// error.
    pub async fn send(&mut self, input: &I) -> Result<()> {
        let frame = self.codec.encode(input)?;
        if let (Some(interval), Some(last)) = (self.throttle, self.last_sent) {
            if last.elapsed() < interval {
                self.held = Some(frame);
                return Ok(());
            }
        }
        self.held = None;
        self.write(frame).await
    }

    /// Send a held (throttled) input now, if there is one.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn flush(&mut self) -> Result<()> {
        let Some(frame) = self.held.take() else {
            return Ok(());
        };
        match self.write(frame.clone()).await {
            // Not sent (no connection): kept for the next try, unless a newer input replaces it.
            Err(e) if self.ws.is_none() && self.held.is_none() => {
                self.held = Some(frame);
                Err(e)
            }
            other => other,
        }
    }

    /// The next result. `Ok(None)` when the session ended normally (the app's idle `TIMEOUT`,
    /// a normal close, or no connection open and no input held): send again to start a new
    /// one. A held (throttled) input is sent when its interval passes meanwhile.
    ///
    /// # Errors
    /// [`Error::Realtime`]: [`RealtimeFailure::App`] for the app's `x-fal-error` (the session
    /// stays open), [`RealtimeFailure::Unauthorized`], [`RealtimeFailure::Closed`] (the next
    /// send reconnects); [`Error::Decode`] for a result the codec cannot decode.
    pub async fn recv(&mut self) -> Result<Option<O>> {
        loop {
            if let Some(message) = self.inbox.pop_front() {
                match self.incoming(Some(Ok(message)))? {
                    Incoming::Result(o) => return Ok(Some(o)),
                    Incoming::Skip => continue,
                    Incoming::End => return Ok(None),
                }
            }
            let flush_at = match (&self.held, self.throttle, self.last_sent) {
                (Some(_), Some(interval), Some(last)) => last.checked_add(interval),
                (Some(_), _, _) => Some(Instant::now()),
                _ => None,
            };
            let Some(ws) = self.ws.as_mut() else {
                if self.held.is_some() {
                    if let Some(at) = flush_at {
                        tokio::time::sleep_until(at).await;
                    }
                    self.flush().await?;
                    continue;
                }
                return Ok(None);
            };
            let message = match flush_at {
                Some(at) => tokio::select! {
                    m = ws.next() => m,
                    () = tokio::time::sleep_until(at) => {
                        self.flush().await?;
                        continue;
                    }
                },
                None => ws.next().await,
            };
            match self.incoming(message)? {
                Incoming::Result(o) => return Ok(Some(o)),
                Incoming::Skip => {}
                Incoming::End => return Ok(None),
            }
        }
    }

    /// Close the session normally (code 1000). A later send opens a new one. An input held by
    /// the throttle is dropped (call [`flush`](Self::flush) first to send it), and so are
    /// results not yet received.
    ///
    /// # Errors
    /// None that matter: a connection that is already gone is closed.
    pub async fn close(&mut self) -> Result<()> {
        self.held = None;
        self.inbox.clear();
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        Ok(())
    }

    fn incoming(
        &mut self,
        message: Option<std::result::Result<Message, tungstenite::Error>>,
    ) -> Result<Incoming<O>> {
        let message = match message {
            None => return Err(self.dropped(None)),
            Some(Err(e)) => return Err(self.dropped(Some(Box::new(e)))),
            Some(Ok(m)) => m,
        };
        match message {
            Message::Binary(bytes) => self.codec.decode(&bytes).map(Incoming::Result),
            Message::Text(text) => self.text(text.as_bytes()),
            Message::Close(frame) => {
                self.ws = None;
                let (code, reason) = frame.map_or((1005, String::new()), |f: CloseFrame| {
                    (u16::from(f.code), f.reason.to_string())
                });
                if matches!(code, 1000 | 1001 | 1005) {
                    Ok(Incoming::End)
                } else {
                    Err(self.closed(code, reason))
                }
            }
            // Pings are answered by tungstenite.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Incoming::Skip),
        }
    }

    fn text(&mut self, text: &[u8]) -> Result<Incoming<O>> {
        let value: serde_json::Value = decode_json(&OutputOf(self.endpoint.as_str()), text, None)?;
        let kind = value.get("type").and_then(|t| t.as_str());
        match kind {
            Some("x-fal-message") => return Ok(Incoming::Skip),
            Some("x-fal-error") => {
                let error = text_of(value.get("error"));
                if error == "TIMEOUT" {
                    // The app ends an idle session and closes it next: a normal end. The
                    // connection is done with; the next send opens a new one.
                    self.ws = None;
                    return Ok(Incoming::End);
                }
                return Err(self.failure(
                    RealtimeFailure::App {
                        error,
                        reason: text_of(value.get("reason")),
                    },
                    None,
                ));
            }
            _ => {}
        }
        if value.get("status").and_then(|s| s.as_str()) == Some("error")
            && text_of(value.get("error")) == "Unauthorized"
        {
            self.ws = None;
            return Err(self.failure(RealtimeFailure::Unauthorized, None));
        }
        serde_json::from_value(value)
            .map(Incoming::Result)
            .map_err(|e| Error::Decode {
                what: format!("{} realtime result (JSON)", self.endpoint),
                path: ".".into(),
                message: e.to_string(),
                body_excerpt: crate::error::excerpt(text),
                request_id: None,
            })
    }

    /// Whether the open connection is still usable: frames that already arrived are read
    /// without waiting (results are kept for `recv`). A close, the app's `TIMEOUT` or a broken
    /// connection ends it, so that the next input goes over a new one instead of being lost.
    fn check_connection(&mut self) {
        while let Some(ws) = self.ws.as_mut() {
            match ws.next().now_or_never() {
                // Nothing more has arrived: the connection is open.
                None => return,
                Some(None) | Some(Some(Err(_))) | Some(Some(Ok(Message::Close(_)))) => {
                    self.ws = None;
                }
                Some(Some(Ok(Message::Text(text)))) if is_timeout(text.as_bytes()) => {
                    self.ws = None;
                }
                Some(Some(Ok(message))) => self.inbox.push_back(message),
            }
        }
    }

    async fn write(&mut self, frame: Frame) -> Result<()> {
        self.check_connection();
        if self.ws.is_none() {
            self.ws = Some(self.connect().await?);
        }
        let message = match frame {
            Frame::Binary(b) => Message::Binary(b),
            Frame::Text(t) => Message::Text(t.into()),
        };
        let Some(ws) = self.ws.as_mut() else {
            return Err(self.failure(RealtimeFailure::Connect, None));
        };
        if let Err(e) = ws.send(message).await {
            return Err(self.dropped(Some(Box::new(e))));
        }
        self.last_sent = Some(Instant::now());
        Ok(())
    }

    async fn connect(&self) -> Result<Socket> {
        let config = self.transport.config();
        let mut url = self.http_url.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // http, https, ws and wss are all "special" schemes: one may replace another.
        url.set_scheme(scheme)
            .map_err(|()| Error::Config(format!("cannot make a WebSocket URL of {url}")))?;
        let auth = match &self.tokens {
            Some(provider) => {
                let token = provider.token(&self.endpoint).await?;
                url.query_pairs_mut().append_pair("fal_jwt_token", &token);
                None
            }
            None => self.transport.auth_for(&self.http_url).await?,
        };
        if let Some(n) = self.max_buffering {
            url.query_pairs_mut()
                .append_pair("max_buffering", &n.to_string());
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| self.failure(RealtimeFailure::Connect, Some(Box::new(e))))?;
        if let Some(auth) = &auth {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, auth.clone());
        }
        if let Ok(ua) = HeaderValue::from_str(config.user_agent()) {
            request.headers_mut().insert(http::header::USER_AGENT, ua);
        }
        let max = usize::try_from(config.max_response_bytes()).unwrap_or(usize::MAX);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let connect = handshake(request, ws_config);
        let connected = match tokio::time::Instant::now().checked_add(config.request_timeout()) {
            Some(until) => tokio::time::timeout_at(until, connect).await.map_err(|_| {
                self.failure(
                    RealtimeFailure::Connect,
                    Some("the handshake timed out".into()),
                )
            })?,
            None => connect.await,
        };
        match connected {
            Ok(ws) => Ok(ws),
            Err(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let failure = if matches!(status, 401 | 403) {
                    RealtimeFailure::Unauthorized
                } else {
                    RealtimeFailure::Refused { status }
                };
                // A refused key (not a refused token) drops a resolver's cached credential.
                if let (401, Some(sent)) = (status, &auth) {
                    self.transport.auth_refused(sent);
                }
                Err(self.failure(failure, None))
            }
            Err(e) => Err(self.failure(RealtimeFailure::Connect, Some(Box::new(e)))),
        }
    }

    /// The connection dropped without a close frame (1006): it is done with.
    fn dropped(&mut self, source: Option<BoxError>) -> Error {
        self.ws = None;
        self.failure(
            RealtimeFailure::Closed {
                code: 1006,
                reason: String::new(),
            },
            source,
        )
    }

    fn closed(&self, code: u16, reason: String) -> Error {
        self.failure(RealtimeFailure::Closed { code, reason }, None)
    }

    fn failure(&self, failure: RealtimeFailure, source: Option<BoxError>) -> Error {
        Error::Realtime {
            endpoint: self.endpoint.as_str().to_owned(),
            failure,
            source,
        }
    }
}

/// The WebSocket handshake. `wss` URLs use rustls with ring and the webpki roots (as reqwest
/// does) when the `rustls` feature is on, else the platform's TLS (`native-tls`); without either
/// feature only `ws` URLs connect.
async fn handshake(
    request: tungstenite::handshake::client::Request,
    config: WebSocketConfig,
) -> std::result::Result<Socket, tungstenite::Error> {
    #[cfg(feature = "rustls")]
    let connector = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()
            .map(|b| {
                let config = b.with_root_certificates(roots).with_no_client_auth();
                tokio_tungstenite::Connector::Rustls(Arc::new(config))
            })
    };
    #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
    let connector = None;
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    let connected =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
            .await;
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    let connected = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await;
    connected.map(|(ws, _)| ws)
}
