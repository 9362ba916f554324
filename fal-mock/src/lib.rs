//! A fake of [fal.ai](https://fal.ai) for tests and offline development: [`FalMock`] runs it
//! in-process (for `fal-client`'s examples and tests, and yours), and the `fal-mock` binary runs
//! it as a standalone server that any client can use, fal's Python and JavaScript clients
//! included.
//!
//! The mock speaks fal's wire protocol (<https://docs.fal.ai/model-endpoints/queue>) on two local
//! listeners, by default bound to `127.0.0.1` on ephemeral ports:
//!
//! - an **API server** serving the queue under `/queue/`, synchronous runs, streaming runs and
//!   realtime apps under `/run/`, the REST storage and token routes under `/rest/`, and fal's
//!   Platform API under `/v1` (see [Platform API](#platform-api)); every route requires
//!   `Authorization: Key <key>` and answers `401 {"detail":"Unauthorized"}` otherwise (the
//!   Platform API with its own error body), except the webhook key set at
//!   `/.well-known/jwks.json` (public, like fal's), a realtime connection (which may use a token
//!   instead, and answers over the WebSocket) and a streaming run with a token in
//!   `fal_jwt_token` (see [Streaming and realtime](#streaming-and-realtime));
//! - a **CDN server** (a different address, so tests can check the key never goes there) serving
//!   upload targets (`PUT /upload/<token>`) and files (`GET /files/...`), without auth.
//!
//! Multipart uploads (`/rest/storage/upload/initiate-multipart`, then part `PUT`s and a
//! `complete` on the CDN server) are checked like fal's CDN would: see
//! [`FalMock::multipart_upload`], [`FalMock::fail_upload_part_once`] and
//! [`FalMockBuilder::store_uploads`].
//!
//! Beside that initiate flow (fal's JavaScript client's), the mock serves fal's CDN v3 flow
//! (fal's Python client's default): a token from `POST /rest/storage/auth/token`, then
//! `POST {cdn}/files/upload` with `Authorization: Bearer <token>`, or the v3 multipart flow
//! (`/files/upload/multipart`, parts with ETags, `complete`). Every upload's
//! `X-Fal-Object-Lifecycle`, and a request's `X-Fal-Object-Lifecycle-Preference` for its output
//! files, is checked and recorded ([`FalMock::file_lifecycle`]); a file past its
//! `expiration_duration_seconds` answers 404. See [`FalMockBuilder::cdn_token_ttl`] and
//! [`FalMock::cdn_token_fetches`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fal_mock::FalMock;
//!
//! let mock = FalMock::start().await?;
//! let fal = mock.client()?; // a FalClient pointed at the mock, with the mock's key
//! assert!(mock.queue_url().ends_with("/queue/"));
//! # drop(fal);
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The standalone server
//!
//! ```text
//! cargo run -p fal-mock -- --port 8788 --cdn-port 8789
//! ```
//!
//! prints `export` lines (`FAL_KEY`, `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`,
//! `FAL_CDN_URL`, `FAL_JWKS_URL`, `FAL_API_URL`) and one JSON line with the same values, then
//! serves until
//! SIGINT or SIGTERM. `--help` lists the flags: the key, queue and processing times, log lines,
//! a seeded fault rate, endpoints to answer 404 for, the webhook signing seed and retries, and
//! for streaming and realtime `--stream-events N`, `--stream-cut-after N`,
//! `--token-shape bare|detail|token`, `--realtime-processing-time`,
//! `--realtime-session-timeout` and `--realtime-timings`. No further variable is needed: the
//! realtime URL is `FAL_RUN_URL` with `ws` for `http`, tokens come from `FAL_REST_URL`.
//!
//! # Endpoints
//!
//! The mock knows fal's endpoints from fal's own OpenAPI documents (the crate's `openapi/`
//! folder, a dated snapshot): the trainers `fal-ai/flux-lora-portrait-trainer`,
//! `fal-ai/flux-lora-fast-training`, `fal-ai/flux-2-trainer[-v2]`, `fal-ai/z-image-trainer`,
//! `fal-ai/z-image-turbo-trainer-v2`, `fal-ai/qwen-image-2512-trainer` and the generators
//! `fal-ai/flux-lora`, `fal-ai/flux-2/lora`, `fal-ai/z-image/turbo/lora`,
//! `fal-ai/qwen-image-2512/lora`, `fal-ai/flux-pro/v1.1-ultra-finetuned`. For each it:
//!
//! - validates the input from the document, like fal (`422 {"detail": [...]}` with pydantic's
//!   messages, in the order fal's model declares its fields);
//! - checks a trainer's archive (a data URI or a file on the mock's CDN) by the trainer's
//!   [`ArchiveRules`](fal_client::archive::ArchiveRules): a ZIP of at least as many images as the
//!   trainer takes, each with a caption where the trainer needs one unless `default_caption` is
//!   set. A bad archive fails the job the way fal reports a failed run: status `COMPLETED` with
//!   `error`, and the result answers the 422 naming the archive field and the file;
//! - answers with its output shape: LoRA trainers return `diffusers_lora_file` and
//!   `config_file` (real files: a small safetensors and the training config), generators return
//!   images in their shape (`ImageFile` for FLUX.2 and Z-Image, the legacy image otherwise) and
//!   default format (`png` or `jpeg`; `webp` on request), rendered on first download.
//!
//! Any other endpoint id is accepted and echoes its input.
//!
//! Endpoints fal no longer serves answer `404 {"detail": "Application '<id>' not found"}` to a
//! submit or sync run: by default the deprecated `fal-ai/flux-pro-trainer` (see
//! [`FalMockBuilder::removed_endpoints`], [`FalMock::remove_endpoint`],
//! [`FalMock::restore_endpoint`]).
//!
//! # Queue lifecycle
//!
//! A submitted job is `IN_QUEUE` for [`queue_time`](FalMockBuilder::queue_time) with a
//! `queue_position` counting down from [`initial_queue_position`](FalMockBuilder::initial_queue_position)
//! to 0, then `IN_PROGRESS` for [`processing_time`](FalMockBuilder::processing_time) while
//! [`log_lines`](FalMockBuilder::log_lines) log lines appear evenly spread, then `COMPLETED` with
//! all logs and `metrics.inference_time`. Everything is computed from the submit instant (timings
//! are captured per job at submit). Status answers 202 until completion, then 200.
//!
//! Status, status stream, result and cancel live under `[namespace/]owner/alias/requests/{id}`
//! only (fal's owner/alias rule): a job submitted to `fal-ai/flux-pro/v1.1-ultra-finetuned` is at
//! `/queue/fal-ai/flux-pro/requests/{id}`; using the full path answers
//! `404 {"detail":"Request not found"}`.
//!
//! # Webhooks
//!
//! A job submitted with `fal_webhook` is delivered like fal does it
//! (<https://docs.fal.ai/model-apis/model-endpoints/webhooks>): once it
//! completes, a background task `POST`s `{"request_id", "gateway_request_id", "status": "OK" |
//! "ERROR", "payload", "error"}` to the URL, signed with the mock's own Ed25519 key in the four
//! `X-Fal-Webhook-*` headers and without any `Authorization` header. The public key is served at
//! [`FalMock::jwks_url`], so a receiver verifies mock deliveries exactly as it verifies fal's:
//!
//! - a non-2xx answer or a connection failure is re-delivered
//!   [`webhook_retries`](FalMockBuilder::webhook_retries) times (default 3) with a doubling
//!   [`backoff`](FalMockBuilder::webhook_retry_backoff) (default 100 ms), each attempt signed
//!   afresh;
//! - every attempt is recorded: [`FalMock::webhook_deliveries`],
//!   [`FalMock::wait_for_webhook_deliveries`];
//! - only loopback URLs are delivered to unless
//!   [`webhook_allow_remote`](FalMockBuilder::webhook_allow_remote) is set;
//! - [`sign_webhook`] and [`WebhookSigner`] sign bodies of your own for handler tests.
//!
//! # Streaming and realtime
//!
//! Streaming runs (fal's `fal.stream` / `fal_client.stream`):
//!
//! - `POST /run/{endpoint_id}/stream` (a path already ending in `/stream` is the same stream)
//!   with the endpoint's input is checked like a sync run (`404`, `422`, planned
//!   [`MockFailure`]s answer before anything is streamed). Then `200` with
//!   `content-type: text/event-stream`, `cache-control: no-store`, `x-fal-request-id`, and SSE
//!   events `data: <JSON>\n\n`: [`stream_events`](FalMockBuilder::stream_events) (default 3)
//!   partial events `{"images": [], "progress": k/N, "partial": true}`, then one final event
//!   that is exactly the sync run's output; one wait of `processing_time / (N + 1)` before each
//!   event. The body ends after the final event.
//! - Authorized by the key, or without it by `?fal_jwt_token=<token>` (fal's JavaScript client in
//!   `connectionMode: "client"`) for a token that lists the endpoint's alias.
//! - [`MockFailure::stream_cut`] (one stream) and
//!   [`stream_cut_after`](FalMockBuilder::stream_cut_after) (every stream) abort the connection
//!   after some events without finishing the chunked body. [`FalMock::streams`] counts how
//!   streams ended ([`StreamCounts`]: started, completed, cut, and disconnected: the client went
//!   away before the final event).
//!
//! Realtime tokens (what fal's clients fetch before a realtime connection):
//!
//! - `POST /rest/tokens/` (or `/rest/tokens`) with `{"allowed_apps": ["<alias>"],
//!   "token_expiration": <seconds, default 120>}` answers `200` with a JWT-shaped token (its
//!   payload holds `allowed_apps` and `exp`) as a bare JSON string, `{"detail": ...}` or
//!   `{"token": ...}` ([`FalMockBuilder::token_response_shape`], [`TokenShape`]); a bad body
//!   answers `422` in pydantic's style. See [`FalMock::tokens_created`],
//!   [`FalMock::expire_tokens`].
//!
//! Realtime apps over WebSocket (fal's `fal.realtime.connect` / `fal_client.realtime`), for
//! [`REALTIME_APPS`] (`fal-ai/fast-lcm-diffusion`, `fal-ai/fast-turbo-diffusion`):
//!
//! - `GET /run/{endpoint_id}/realtime[?fal_jwt_token=<token>&max_buffering=<1..=60>]`, upgraded
//!   to a WebSocket ([`FalMock::realtime_url`] is the run URL with `ws` for `http`). Another
//!   endpoint answers the handshake `404`, a bad `max_buffering` `422` (plain HTTP).
//! - Authorized by `Authorization: Key <key>` on the handshake or by a token for the app's
//!   alias that has not expired. Otherwise the upgrade is accepted, the mock sends the text frame
//!   `{"status":"error","error":"Unauthorized"}` and closes with code 1008.
//! - Each binary frame is a msgpack map (`prompt` required; `seed`, `num_inference_steps`,
//!   `image_size` or `width`/`height`, `request_id` optional) answered by one binary msgpack
//!   frame `{"images": [{"url": "data:image/jpeg;base64,...", "width", "height",
//!   "content_type"}], "seed", "num_inference_steps", "timings": {"inference"},
//!   "has_nsfw_concepts": [false], "request_id"}` (a real JPEG of at most 64 px, `request_id`
//!   echoed when given), after [`realtime_processing_time`](FalMockBuilder::realtime_processing_time).
//!   An input that is not such a map, or any text frame, is answered by the text frame
//!   `{"type":"x-fal-error","error":"BAD_REQUEST","reason":"..."}` and the session goes on.
//!   [`realtime_timings`](FalMockBuilder::realtime_timings) adds a text frame
//!   `{"type":"x-fal-message","action":"timings","timing":<s>}` after each result.
//! - A session without input for
//!   [`realtime_session_timeout`](FalMockBuilder::realtime_session_timeout) (default 60 s) gets
//!   `{"type":"x-fal-error","error":"TIMEOUT","reason":"no inputs, reconnect when needed!"}`
//!   and close code 1000; [`MockFailure::realtime_close`] closes the next session with code 1011
//!   (reason `mock: abnormal close`) after some results; the mock's shutdown closes open
//!   sessions with 1001. [`FalMock::realtime_sessions`] counts authorized connections.
//!
//! Handshakes and streams are in the request log ([`FalMock::requests`]) like every request, a
//! `fal_jwt_token` value recorded as `redacted`.
//!
//! # Platform API
//!
//! fal's Platform API (`https://api.fal.ai/v1`) is served under `/v1` of the API server
//! ([`FalMock::api_url`], `FAL_API_URL`), with the answer shapes of fal's OpenAPI document of
//! it, from the requests the mock actually ran (queue jobs, sync runs and streaming runs) and
//! its fixed price table [`PRICES`]. Auth is `Authorization: Key <key>` (optional for
//! `GET /v1/models` and `GET /v1/meta`); errors answer `{"error": {"type", "message"}}` with
//! `type` `authorization_error` (401), `validation_error` (400), `not_found` (404) or
//! `not_implemented` (404, for fal's routes the mock skips: `/models/analytics`,
//! `/models/billing-events`, `/models/requests/search`, `/storage/settings`,
//! `/storage/files/acl`, `/storage/files/sign`).
//!
//! - Lists page with `limit` and `cursor`; a cursor is the base64 of the offset of the page's
//!   first item (`Mw==` for 3); `next_cursor` is `null` and `has_more` `false` on the last page.
//!   Multi-value parameters (`endpoint_id`, `expand`) are comma-separated, repeated or both;
//!   `endpoint_id` takes 1 to 50 ids. `start`/`end` are ISO 8601 date-times or `YYYY-MM-DD`,
//!   `end` exclusive, by default the last 24 hours.
//! - `GET /v1/models` (`limit` default 20): every endpoint the mock knows (the trainers and
//!   generators above, `fal-ai/flux-pro-trainer` with status `deprecated`, the
//!   [`REALTIME_APPS`]), sorted by id, with fal's metadata from the documents (category
//!   `training` or `text-to-image`, kind `training` or `inference`, `model_url` on the mock,
//!   `is_favorited` `null` without a key). Find with `endpoint_id` (unknown ids are left out),
//!   search with `q` (substring of the id or display name, any case), `category`, `status`.
//!   `expand=openapi-3.0` adds fal's OpenAPI document, or
//!   `{"error": {"code": "expansion_failed", ...}}` for the realtime apps;
//!   `expand=enterprise_status` adds `"ready"`.
//! - `GET /v1/models/pricing?endpoint_id=...` (required): `{"prices": [{"endpoint_id",
//!   "unit_price", "unit", "currency": "USD"}], "next_cursor": null, "has_more": false}` for the
//!   ids in [`PRICES`]; others are left out.
//! - `POST /v1/models/pricing/estimate`: `unit_price` estimates sum `unit_price ×
//!   unit_quantity`; `historical_api_price` ones sum `unit_price × (units of a default call) ×
//!   call_quantity`, a default call billing 1 training, 1 image, or the megapixels of one image
//!   of the endpoint's default size as the mock renders it (512×384: 0.197). `total_cost` is
//!   rounded to 6 decimals. An endpoint without a price or a bad body answers 400.
//! - `GET /v1/models/usage`: line items (`endpoint_id`, `unit`, `quantity`, `unit_price`,
//!   `percent_discount: null`, `cost_subtotal`, `cost_discount: 0`, `cost_total`, `cost`,
//!   `currency`) of the successful requests of priced endpoints that ended in the range, one per
//!   endpoint, `quantity` the sum of their billed units. `expand` `time_series` (default) and/or
//!   `summary` (400 without either; `auth_method[_structured]` accepted, not filled). Buckets
//!   by `timeframe` (default: fal's rule from the range, `minute` under 2 h, `hour` under 2
//!   days, `day` under 64 days, `week` under 183 days, else `month`), in UTC only (another
//!   `timezone` answers 400), labelled like `2025-01-15T00:00:00+00:00`; with
//!   `bound_to_timeframe` (default `true`) the range widens to whole buckets. Only buckets with
//!   usage are listed; `limit`/`cursor` page the buckets, and `summary` (of the whole range)
//!   comes with the first page only. `api_key_id`/`login_username` filters are ignored.
//! - `GET /v1/models/requests/by-endpoint?endpoint_id=...` (required; `limit` default 50,
//!   at most 100): the endpoint's queue jobs, sync runs and streaming runs submitted in the range
//!   (by `sent_at`; 90 days by default with `request_id`), newest `ended_at` first (running
//!   requests first), or longest `duration` first with `sort_by=duration`; filters `status`
//!   (`success` 2xx, `user_error` 4xx — a cancel is 499 —, `error` 5xx) and `request_id`.
//!   `sent_at` is the submit, `started_at` the start of processing, `duration` is `ended_at −
//!   sent_at` in seconds. `expand=payloads` adds `json_input` and `json_output` (a failure's
//!   error body), both `null` once the payloads were deleted or when the request was sent
//!   with `X-Fal-Store-IO: 0`.
//! - `DELETE /v1/models/requests/{request_id}/payloads`: deletes the payloads of a finished
//!   request and the mock CDN files its output points at (they answer 404 from then on; a
//!   trainer's LoRA file too), except files its input points at too. Answers
//!   `{"cdn_delete_results": [{"link", "exception": null}]}` (`"File not found"` for a file
//!   already gone); 404 `not_found` for an unknown id, 400 for one that is not a UUID or a
//!   request still running. With `Idempotency-Key`, a successful answer is kept 10 minutes per
//!   key and a repeat with the key (whatever the request id) gets it back without deleting
//!   again. [`FalMock::payload_deletions`] counts deletions. The queue result of the request
//!   keeps answering (undocumented on fal; its file URLs then answer 404).
//! - `GET /v1/meta`: `{"webhook_ip_ranges": ["127.0.0.1/32", "::1/128"]}`.
//!
//! **Billed units.** The result of a successful queue job (`GET /queue/.../requests/{id}`) and
//! the answer of a successful sync run of an endpoint in [`PRICES`] carry
//! `x-fal-billable-units` as a decimal string: `1` for a trainer, the megapixels of the output
//! images for a `megapixels` endpoint (sum of `width × height / 1e6`, rounded to 3 decimals,
//! e.g. `0.197`), the number of images for `fal-ai/flux-pro/v1.1-ultra-finetuned`. The usage
//! route bills exactly these units (a streaming run's too, though its answer head, sent before
//! the output exists, has no header); [`FalMock::billable_units`] gives them per request.
//!
//! **Platform headers.** Each submit, sync run and streaming run records its `X-Fal-Tags`
//! (parsed like fal's gateway, which "fails open and drops pairs it rejects"),
//! `X-Fal-Store-IO`, `X-Fal-No-Retry`, `X-Fal-Retry-Config`, `x-app-fal-disable-fallback` and
//! `x-fal-disable-fallbacks`: [`FalMock::platform_headers`] by request id, and
//! [`JobSnapshot::platform_headers`] for queue jobs. Nothing is refused for them.
//!
//! **Queue length.** A submit with `?fal_max_queue_length=N` answers
//! `429 {"detail": "Queue length exceeded: ..."}` and creates no job when more than `N`
//! requests of the same endpoint are `IN_QUEUE`; `N` that is not a whole number answers 422.
//!
//! # Decisions where fal's behaviour is not documented
//!
//! - Result of an unfinished job: `400 {"detail":"Request is still in progress"}`.
//! - Result of a cancelled job: `499 {"detail":"Request was cancelled","error_type":"client_cancelled"}`
//!   with `x-fal-error-type: client_cancelled` (fal's request-error shape and status for that
//!   category); its status is `COMPLETED` with the same `error`/`error_type`.
//! - Cancel: `202 {"status":"CANCELLATION_REQUESTED"}` (queued or running),
//!   `400 {"status":"ALREADY_COMPLETED"}`, `404 {"status":"NOT_FOUND"}`.
//! - Status stream with `logs=1`: each event carries only the log lines that are new since the
//!   previous event (fal-js accumulates logs across events); polling returns all of them.
//! - `x-fal-request-timeout` shorter than the queue time: the job completes when it expires with
//!   `error: "Request timed out"`, `error_type: "request_timeout"`; the result answers 504 with
//!   `x-fal-request-timeout-type: user`.
//! - Invalid JSON / non-object bodies, a bad `x-fal-queue-priority`, `x-fal-request-timeout` or
//!   `fal_webhook` are rejected at submit with 422; field validation happens like fal, when the
//!   job runs (status `COMPLETED` with `error: "Invalid status code: 422"`, result 422).
//! - Generated images are at most 512 px on the long side (keeping the requested ratio); the
//!   reported `width`/`height` are the real pixel sizes. They are rendered on first download.
//!
//! # Fault injection
//!
//! [`FalMockBuilder::faults`] and [`FalMock::set_faults`] take a seeded [`Faults`] plan: per
//! [`MockRoute`], the rate of each [`FaultKind`] (429 with `Retry-After`, 500, an nginx 503,
//! connection resets before or after the mock acts, slow answers, truncated or stalled status
//! streams, malformed JSON, HTML pages). [`FalMock::fault_counts`] says what was injected and
//! [`FalMock::duplicate_submissions`] whether any input was queued twice.

mod billing;
mod cdn;
mod faults;
mod media;
mod multipart;
mod platform;
mod realtime;
mod routes;
mod signer;
mod state;
mod stream;
mod tokens;
mod validate;
mod webhook;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use fal_client::{FalClient, FalClientBuilder};
pub use signer::WebhookSigner;
use state::{lock, Shared, Timing};
pub use webhook::WebhookDelivery;

pub use billing::{
    price_of, PlatformHeaders, Price, CURRENCY, PRICES, UNIT_IMAGES, UNIT_MEGAPIXELS, UNIT_TRAINING,
};
pub use faults::{FaultCounts, FaultKind, Faults, MockRoute};

pub use multipart::MultipartRecord;

pub use realtime::REALTIME_APPS;
pub use stream::StreamCounts;
pub use tokens::TokenShape;

/// The README's examples, compiled as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// A failure to inject with [`FalMock::fail_next`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MockFailure {
    /// Answer the submit (or sync run) directly with this status, JSON body and headers, e.g. a
    /// 503 or a 429. The request is not queued and not counted as a submission.
    Http {
        /// HTTP status code.
        status: u16,
        /// JSON body.
        body: Value,
        /// Extra response headers (name, value).
        headers: Vec<(String, String)>,
    },
    /// The queue accepts the request, which then completes with a validation error: status
    /// `COMPLETED` with `error: "Invalid status code: 422"`, result
    /// `422 {"detail":[{"loc":["body",field],"msg":msg,"type":type}]}`. A sync run answers the 422
    /// directly.
    Validation(Vec<(String, String, String)>),
    /// The queue accepts the request, which completes with a request error: status `COMPLETED`
    /// carries `error`/`error_type`; the result answers `{"detail": error, "error_type": error_type}`
    /// with header `x-fal-error-type` and the status fal uses for that category (503 for
    /// `runner_*` errors, 504 for timeouts, 500 otherwise).
    CompletedWithError {
        /// Human-readable message, e.g. `Runner disconnected`.
        error: String,
        /// Category, e.g. `runner_disconnected`.
        error_type: String,
    },
    /// A streaming run (`POST /run/{endpoint}/stream`) sends `after_events` SSE events, then
    /// aborts the connection without finishing the chunked body: the client sees a broken body,
    /// not a clean end. Only a stream takes it (a submit or sync run leaves it queued).
    StreamCut {
        /// Events sent before the connection is aborted.
        after_events: usize,
    },
    /// The next realtime session (`GET /run/{endpoint}/realtime`, a WebSocket) sends
    /// `after_results` results, then closes with code 1011 (internal error) and reason
    /// `mock: abnormal close`. Only an authorized realtime connection takes it.
    RealtimeClose {
        /// Results sent before the session is closed.
        after_results: usize,
    },
}

/// The kind of request a planned [`MockFailure`] is taken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureUse {
    /// A queue submit or a sync run.
    Request,
    /// A streaming run.
    Stream,
    /// A realtime WebSocket handshake.
    Realtime,
}

impl MockFailure {
    /// [`MockFailure::Http`] without extra headers.
    pub fn http(status: u16, body: Value) -> Self {
        Self::Http {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// [`MockFailure::Validation`] with one field error.
    pub fn validation(field: &str, msg: &str, error_type: &str) -> Self {
        Self::Validation(vec![(
            field.to_owned(),
            msg.to_owned(),
            error_type.to_owned(),
        )])
    }

    /// [`MockFailure::CompletedWithError`].
    pub fn completed_with_error(error: &str, error_type: &str) -> Self {
        Self::CompletedWithError {
            error: error.to_owned(),
            error_type: error_type.to_owned(),
        }
    }

    /// [`MockFailure::StreamCut`]: the next stream of the endpoint sends `after_events` events,
    /// then its connection is aborted.
    pub fn stream_cut(after_events: usize) -> Self {
        Self::StreamCut { after_events }
    }

    /// [`MockFailure::RealtimeClose`]: the next realtime session of the endpoint sends
    /// `after_results` results, then closes with code 1011.
    pub fn realtime_close(after_results: usize) -> Self {
        Self::RealtimeClose { after_results }
    }

    /// Whether a request of kind `kind` takes this failure.
    pub(crate) fn applies_to(&self, kind: FailureUse) -> bool {
        match self {
            Self::Http { .. } => true,
            Self::Validation(_) | Self::CompletedWithError { .. } => kind != FailureUse::Realtime,
            Self::StreamCut { .. } => kind == FailureUse::Stream,
            Self::RealtimeClose { .. } => kind == FailureUse::Realtime,
        }
    }
}

/// Sign `body` as a webhook delivery for `request_id`, at the current time: the four
/// `X-Fal-Webhook-*` headers, exactly as fal sends them
/// (<https://docs.fal.ai/model-apis/model-endpoints/webhooks>). The test header generator for your
/// webhook handler: sign with [`FalMock::webhook_signer`] (or any [`WebhookSigner`]), give the
/// handler a client whose key set is [`FalMock::jwks_url`] (`FAL_JWKS_URL`; [`FalMock::client`]
/// does it) or a verifier on [`WebhookSigner::jwks`], and `POST` the body with these headers.
///
/// ```
/// # futures::executor::block_on(async {
/// use fal_client::webhook::WebhookVerifier;
/// use fal_mock::{sign_webhook, WebhookSigner};
///
/// let signer = WebhookSigner::from_seed([3; 32]);
/// let body = br#"{"request_id":"r-1","status":"OK","payload":{"finetune_id":"ft-1"},"error":null}"#;
/// let headers = sign_webhook(&signer, "r-1", body)?;
/// let delivery = WebhookVerifier::from_jwks(&signer.jwks())
///     .verify(&headers, body)
///     .await?
///     .parse::<serde_json::Value>()?;
/// assert_eq!(delivery.output().map(|o| o["finetune_id"] == "ft-1"), Some(true));
/// # Ok::<(), fal_client::webhook::WebhookError>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// [`WebhookError::InvalidHeader`](fal_client::webhook::WebhookError::InvalidHeader) when
/// `request_id` or the signer's user id cannot be a header value.
pub fn sign_webhook(
    signer: &WebhookSigner,
    request_id: &str,
    body: &[u8],
) -> std::result::Result<http::HeaderMap, fal_client::webhook::WebhookError> {
    signer.sign_now(request_id, body).to_header_map()
}

/// Which of the mock's two servers received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// The API server (`/queue/`, `/run/`, `/rest/`).
    Api,
    /// The CDN server (`/upload/`, `/files/`).
    Cdn,
}

/// An HTTP request the mock received. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// HTTP method (`POST`, `GET`, ...).
    pub method: String,
    /// URL path as sent (percent-encoded), e.g. `/queue/fal-ai/flux-lora`.
    pub path: String,
    /// Raw query string without `?`, when present (a `fal_jwt_token` value is recorded as
    /// `redacted`: tokens are never stored).
    pub query: Option<String>,
    /// Whether an `Authorization` header was present (whatever its value: the fal key, or a CDN
    /// token of the v3 upload flow).
    pub authorization_present: bool,
    /// Whether the mock's fal key was sent (in `Authorization` or any other header).
    pub key_sent: bool,
    /// Which server received it.
    pub host_kind: HostKind,
}

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting in the queue.
    InQueue {
        /// Position in the queue (0 = next).
        position: u32,
    },
    /// Running.
    InProgress {
        /// Log lines emitted so far.
        logs: usize,
    },
    /// Done, successfully or not.
    Completed {
        /// Status `error` for a failed job.
        error: Option<String>,
        /// Status `error_type` for a failed job, when it has one.
        error_type: Option<String>,
    },
}

/// What the mock knows about one queued request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSnapshot {
    /// The request id.
    pub request_id: String,
    /// The full endpoint id it was submitted to.
    pub endpoint_id: String,
    /// The submitted input.
    pub input: Value,
    /// Its state now.
    pub state: JobState,
    /// The `fal_webhook` URL, when given.
    pub webhook_url: Option<String>,
    /// The `x-fal-queue-priority` header, when sent.
    pub priority: Option<String>,
    /// The `x-fal-runner-hint` header, when sent.
    pub runner_hint: Option<String>,
    /// The `x-fal-request-timeout` header as sent, when sent.
    pub request_timeout: Option<String>,
    /// The `x-fal-object-lifecycle-preference` JSON, when sent (it applies to the output's
    /// files: [`FalMock::file_lifecycle`]).
    pub object_lifecycle: Option<Value>,
    /// Whether a cancel was accepted for it.
    pub cancelled: bool,
    /// When the mock marked it `COMPLETED` (the first look at it, by a status answer, a status
    /// stream or the mock's own timer, at or after its end), for latency measurements.
    pub completed_at: Option<std::time::SystemTime>,
    /// The platform headers of the submit (`X-Fal-Tags`, `X-Fal-Store-IO`, ...), as the
    /// mock's gateway read them.
    pub platform_headers: PlatformHeaders,
}

/// Configures and starts a [`FalMock`].
#[derive(Debug, Clone)]
pub struct FalMockBuilder {
    key: String,
    timing: Timing,
    api_addr: Option<SocketAddr>,
    cdn_addr: Option<SocketAddr>,
    webhook: webhook::WebhookConfig,
    faults: Faults,
    store_uploads: bool,
    removed: Vec<String>,
    cdn_token_ttl: Duration,
    stream: stream::StreamConfig,
    token_shape: TokenShape,
    realtime: realtime::RealtimeConfig,
}

impl Default for FalMockBuilder {
    fn default() -> Self {
        Self {
            key: "mock-key".into(),
            timing: Timing {
                queue_time: Duration::from_millis(300),
                processing_time: Duration::from_secs(1),
                log_lines: 5,
                initial_queue_position: 2,
            },
            api_addr: None,
            cdn_addr: None,
            webhook: webhook::WebhookConfig::default(),
            faults: Faults::none(),
            store_uploads: true,
            cdn_token_ttl: cdn::DEFAULT_TOKEN_TTL,
            stream: stream::StreamConfig::default(),
            token_shape: TokenShape::default(),
            realtime: realtime::RealtimeConfig::default(),
            removed: fal_client::models::DEPRECATED
                .iter()
                .map(|d| d.endpoint_id.to_owned())
                .collect(),
        }
    }
}

impl FalMockBuilder {
    /// The API key the mock accepts (`Authorization: Key <key>`). Default `mock-key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }

    /// How long a job stays `IN_QUEUE`. Default 300 ms.
    pub fn queue_time(mut self, t: Duration) -> Self {
        self.timing.queue_time = t;
        self
    }

    /// How long a job stays `IN_PROGRESS` (also the duration of a sync run). Default 1 s.
    pub fn processing_time(mut self, t: Duration) -> Self {
        self.timing.processing_time = t;
        self
    }

    /// Number of log lines a job emits while in progress, spread evenly. Default 5.
    pub fn log_lines(mut self, n: usize) -> Self {
        self.timing.log_lines = n;
        self
    }

    /// Queue position right after submit; it counts down to 0 during the queue time. Default 2.
    pub fn initial_queue_position(mut self, n: u32) -> Self {
        self.timing.initial_queue_position = n;
        self
    }

    /// Bind the API server at `addr` instead of an ephemeral port on `127.0.0.1`, so that its
    /// URLs (e.g. [`FalMock::jwks_url`]) are known before it starts. The CDN server still uses
    /// an ephemeral port.
    pub fn api_addr(mut self, addr: SocketAddr) -> Self {
        self.api_addr = Some(addr);
        self
    }

    /// Bind the CDN server (uploads and files) at `addr` instead of an ephemeral port on
    /// `127.0.0.1`.
    pub fn cdn_addr(mut self, addr: SocketAddr) -> Self {
        self.cdn_addr = Some(addr);
        self
    }

    /// Sign webhook deliveries with the key derived from this 32-byte seed (a stable key set
    /// across runs). Default: a random key per mock.
    pub fn webhook_seed(mut self, seed: [u8; 32]) -> Self {
        self.webhook.seed = Some(seed);
        self
    }

    /// How many times a webhook delivery is repeated after a non-2xx answer or a connection
    /// failure (fal: 10 times over 2 hours). Default 3.
    pub fn webhook_retries(mut self, n: u32) -> Self {
        self.webhook.retries = n;
        self
    }

    /// The wait before the first webhook re-delivery, doubled for each further one.
    /// Default 100 ms.
    pub fn webhook_retry_backoff(mut self, t: Duration) -> Self {
        self.webhook.backoff = t;
        self
    }

    /// The limit of one webhook delivery attempt (connect and answer). Default 10 s.
    pub fn webhook_timeout(mut self, t: Duration) -> Self {
        self.webhook.timeout = t;
        self
    }

    /// Also deliver webhooks to hosts that are not loopback (`localhost`, `127.0.0.0/8`,
    /// `::1`). Default `false`, so that tests submitting `https://example.com/...` never reach
    /// the network; such deliveries are skipped with a `tracing` event.
    pub fn webhook_allow_remote(mut self, allow: bool) -> Self {
        self.webhook.allow_remote = allow;
        self
    }

    /// Endpoints the mock answers as fal answers an app it does not serve: `404
    /// {"detail": "Application '<id>' not found"}` to a submit or sync run. Default: the
    /// endpoints fal deprecated ([`fal_client::models::DEPRECATED`], i.e. `fal-ai/flux-pro-trainer`),
    /// as fal no longer serves them. Pass an empty list to serve them (tests of legacy flows).
    pub fn removed_endpoints<I, S>(mut self, endpoint_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.removed = endpoint_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Bind both listeners on `127.0.0.1` (ephemeral ports, unless [`api_addr`](Self::api_addr)
    /// is set) and start serving on the current tokio runtime.
    ///
    /// # Errors
    /// An I/O error when a listener cannot be bound, or when the webhook HTTP client cannot be
    /// built (e.g. outside a tokio runtime).
    pub async fn start(self) -> std::io::Result<FalMock> {
        let bind = |at: SocketAddr| async move {
            let io = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{at}: {e}"));
            let l = tokio::net::TcpListener::bind(at).await.map_err(io)?;
            let addr = l.local_addr().map_err(io)?;
            Ok::<_, std::io::Error>((l, addr))
        };
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
        let (api, api_addr) = bind(self.api_addr.unwrap_or(ephemeral)).await?;
        let (cdn, cdn_addr) = bind(self.cdn_addr.unwrap_or(ephemeral)).await?;
        let (tx, rx) = watch::channel(false);
        let webhooks = Arc::new(webhook::Webhooks::new(self.webhook, rx.clone())?);
        let shared = Arc::new(Shared {
            key: self.key,
            api_base: format!("http://{}/", reachable(api_addr)),
            cdn_base: format!("http://{}/", reachable(cdn_addr)),
            timing: Mutex::new(self.timing),
            jobs: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            submissions: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            faults: faults::Injector::new(self.faults),
            failures: Mutex::new(HashMap::new()),
            multipart: multipart::Multipart::new(self.store_uploads),
            cdn: cdn::Cdn::new(self.cdn_token_ttl),
            removed: Mutex::new(self.removed.into_iter().collect()),
            streams: stream::Streams::new(self.stream),
            tokens: tokens::Tokens::new(self.token_shape),
            realtime: realtime::Realtime::new(self.realtime),
            platform: platform::Platform::new(),
            shutdown: rx.clone(),
            webhooks,
        });
        let tasks = vec![
            tokio::spawn(serve(api, routes::api_router(shared.clone()), rx.clone())),
            tokio::spawn(serve(cdn, routes::cdn_router(shared.clone()), rx)),
        ];
        tracing::debug!(api = %api_addr, cdn = %cdn_addr, "mock: fal mock started");
        Ok(FalMock {
            shared,
            api_addr,
            cdn_addr,
            shutdown: tx,
            tasks,
        })
    }
}

/// The request with the `//` that joining a base URL ending in `/` with a path starting with `/`
/// makes (`/rest//storage/...`, `//files/upload`) collapsed to one `/`. Slashes inside an
/// endpoint id are left alone (`a//b` is not an id).
fn collapse_slashes(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    let rest = path.trim_start_matches('/');
    let mut fixed = format!("/{rest}");
    for prefix in ["/queue/", "/run/", "/rest/", "/v1/"] {
        if let Some(after) = fixed.strip_prefix(prefix) {
            if after.starts_with('/') {
                fixed = format!("{prefix}{}", after.trim_start_matches('/'));
            }
            break;
        }
    }
    if fixed == path {
        return req;
    }
    if let Some(q) = req.uri().query() {
        fixed.push('?');
        fixed.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = fixed.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

/// The address to put in URLs: a listener on every interface (`0.0.0.0`, `::`) is reached at
/// the loopback address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let signal = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    // Clients that join a base URL ending in `/` with a path starting with `/` (fal's Python
    // client does for REST and CDN URLs) send `//`: routed as one `/`, like fal's own hosts.
    let service = tower::ServiceExt::map_request(router, collapse_slashes);
    if let Err(e) = axum::serve(listener, axum::ServiceExt::into_make_service(service))
        .with_graceful_shutdown(signal)
        .await
    {
        tracing::warn!(error = %e, "mock: server stopped with an error");
    }
}

/// An in-process fake of fal.ai. See the [module docs](self) for the protocol it speaks.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) stops both servers and every task it
/// spawned.
pub struct FalMock {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    cdn_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for FalMock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FalMock")
            .field("api", &self.api_addr)
            .field("cdn", &self.cdn_addr)
            .finish_non_exhaustive()
    }
}

impl FalMock {
    /// Start a mock with the default settings (see [`FalMockBuilder`]).
    ///
    /// # Errors
    /// An I/O error when a listener cannot be bound.
    pub async fn start() -> std::io::Result<FalMock> {
        FalMockBuilder::default().start().await
    }

    /// A builder for custom timings or key.
    pub fn builder() -> FalMockBuilder {
        FalMockBuilder::default()
    }

    /// Queue base URL, e.g. `http://127.0.0.1:P/queue/`.
    pub fn queue_url(&self) -> String {
        format!("{}queue/", self.shared.api_base)
    }

    /// Sync-run base URL, e.g. `http://127.0.0.1:P/run/`.
    pub fn run_url(&self) -> String {
        format!("{}run/", self.shared.api_base)
    }

    /// REST base URL, e.g. `http://127.0.0.1:P/rest/`.
    pub fn rest_url(&self) -> String {
        format!("{}rest/", self.shared.api_base)
    }

    /// Platform API base URL, version path included and without a trailing `/`, e.g.
    /// `http://127.0.0.1:P/v1` (`FAL_API_URL`; fal's is `https://api.fal.ai/v1`).
    pub fn api_url(&self) -> String {
        format!("{}v1", self.shared.api_base)
    }

    /// CDN base URL (a different port than the API), e.g. `http://127.0.0.1:Q/`.
    pub fn cdn_url(&self) -> String {
        self.shared.cdn_base.clone()
    }

    /// The key the mock accepts.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// A [`FalClientBuilder`] pointed at the mock with its key, for adding options.
    pub fn client_builder(&self) -> FalClientBuilder {
        FalClient::builder()
            .key(self.key())
            .queue_url(self.queue_url())
            .run_url(self.run_url())
            .rest_url(self.rest_url())
            .jwks_url(self.jwks_url())
            .cdn_url(self.cdn_url())
            .api_url(self.api_url())
    }

    /// A [`FalClient`] pointed at the mock with its key.
    ///
    /// # Errors
    /// As [`FalClientBuilder::build`].
    pub fn client(&self) -> fal_client::Result<FalClient> {
        self.client_builder().build()
    }

    /// `FAL_KEY`, `FAL_QUEUE_URL`, `FAL_RUN_URL`, `FAL_REST_URL`, `FAL_CDN_URL` (where fal's
    /// storage files and uploads are), `FAL_JWKS_URL` and `FAL_API_URL` (the Platform API), for
    /// a child process or another language's client.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("FAL_KEY".into(), self.key().to_owned()),
            ("FAL_QUEUE_URL".into(), self.queue_url()),
            ("FAL_RUN_URL".into(), self.run_url()),
            ("FAL_REST_URL".into(), self.rest_url()),
            ("FAL_CDN_URL".into(), self.cdn_url()),
            ("FAL_JWKS_URL".into(), self.jwks_url()),
            ("FAL_API_URL".into(), self.api_url()),
        ]
    }

    /// The address the API server is bound to.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The address the CDN server is bound to.
    pub fn cdn_addr(&self) -> SocketAddr {
        self.cdn_addr
    }

    /// The URL of the mock's webhook key set, e.g. `http://127.0.0.1:P/.well-known/jwks.json`
    /// (served without auth). [`client`](Self::client) verifies webhooks against it; point another
    /// receiver at it with `FAL_JWKS_URL` or
    /// [`FalClientBuilder::jwks_url`](fal_client::FalClientBuilder::jwks_url).
    pub fn jwks_url(&self) -> String {
        format!(
            "{}{}",
            self.shared.api_base.trim_end_matches('/'),
            webhook::JWKS_PATH
        )
    }

    /// The signer of the mock's webhook deliveries (user id `mock-user`, key id
    /// `fal-mock-webhook`). Use it to sign bodies of your own, e.g. with [`sign_webhook`].
    pub fn webhook_signer(&self) -> &WebhookSigner {
        self.shared.webhooks.signer()
    }

    /// The key set served at [`jwks_url`](Self::jwks_url): the signer's public key.
    pub fn jwks(&self) -> fal_client::webhook::Jwks {
        self.webhook_signer().jwks()
    }

    /// Every webhook delivery attempt so far, oldest first (re-deliveries included).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.webhooks.deliveries()
    }

    /// Wait until at least `count` webhook delivery attempts are recorded, or `timeout` passes;
    /// returns every attempt recorded by then (check the length).
    pub async fn wait_for_webhook_deliveries(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Vec<WebhookDelivery> {
        self.shared.webhooks.wait_for(count, timeout).await
    }

    /// How many queue submits were accepted for `endpoint_id` (the full id, e.g.
    /// `fal-ai/flux-pro/v1.1-ultra-finetuned`). Submits answered with an error are not counted.
    pub fn submissions(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.submissions)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many sync runs (`POST /run/...`) were accepted for `endpoint_id`.
    pub fn runs(&self, endpoint_id: &str) -> usize {
        lock(&self.shared.runs)
            .get(endpoint_id)
            .copied()
            .unwrap_or(0)
    }

    /// Every request received by either server, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The content type and bytes of a file on the mock CDN, by its URL: an upload (after its
    /// PUT) or a generated output file.
    pub fn uploaded(&self, file_url: impl AsRef<str>) -> Option<(String, Bytes)> {
        let path = self.shared.cdn_path(file_url.as_ref())?;
        self.shared.file(&path)
    }

    /// What the mock knows about a queued request (completing it first if its time has come).
    pub fn job(&self, request_id: &str) -> Option<JobSnapshot> {
        let job = self.shared.job(request_id)?;
        Some(self.shared.snapshot(&job))
    }

    /// Make the next submit or sync run of `endpoint_id` (the full id) fail as `failure`
    /// describes. Calls queue up: each failure applies to one request, in order.
    ///
    /// A streaming run (`/run/{endpoint_id}/stream`) takes the first queued failure that applies
    /// to it: [`MockFailure::Http`], [`MockFailure::Validation`] and
    /// [`MockFailure::CompletedWithError`] answer before streaming, like a sync run;
    /// [`MockFailure::StreamCut`] cuts the stream. A realtime connection
    /// (`/run/{endpoint_id}/realtime`) takes [`MockFailure::Http`] (the handshake's answer) or
    /// [`MockFailure::RealtimeClose`]. Submits and sync runs leave the stream and realtime
    /// failures queued.
    pub fn fail_next(&self, endpoint_id: &str, failure: MockFailure) {
        lock(&self.shared.failures)
            .entry(endpoint_id.to_owned())
            .or_default()
            .push_back(failure);
    }

    /// From now on, answer submits and sync runs of `endpoint_id` (the full id) as fal answers an
    /// app it does not serve: `404 {"detail": "Application '<id>' not found"}`.
    pub fn remove_endpoint(&self, endpoint_id: &str) {
        lock(&self.shared.removed).insert(endpoint_id.to_owned());
    }

    /// Serve `endpoint_id` again after [`remove_endpoint`](Self::remove_endpoint) (or the
    /// builder's default list of deprecated endpoints).
    pub fn restore_endpoint(&self, endpoint_id: &str) {
        lock(&self.shared.removed).remove(endpoint_id);
    }

    /// Change the processing time of jobs submitted from now on (and of sync runs).
    pub fn set_processing_time(&self, t: Duration) {
        lock(&self.shared.timing).processing_time = t;
    }

    /// Change the queue time of jobs submitted from now on.
    pub fn set_queue_time(&self, t: Duration) {
        lock(&self.shared.timing).queue_time = t;
    }

    /// Stop both servers and wait (at most 5 s) for them to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("mock: a server did not stop within 5 s");
            }
        }
    }
}

impl Drop for FalMock {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
