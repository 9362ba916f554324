//! A typed async client for [fal.ai](https://fal.ai): the queue (submit, status, status
//! stream, result, cancel, waiting with a deadline, sync run), storage uploads, webhook
//! verification, typed models for fal's LoRA trainers (FLUX.1, FLUX.2, Z-Image) and their
//! generators, an avatar adapter that trains a personal model from photos on a trainer fal serves
//! today and generates with the matching generator, a training-archive builder that knows each
//! trainer's rules. Its companion crate `fal-mock` is a fake of fal for offline examples and tests.
//!
//! # A tour
//!
//! ```no_run
//! # async fn tour() -> fal_client::Result<()> {
//! use std::time::Duration;
//! use fal_client::avatar::{AvatarKind, Preset, TriggerPhrase};
//! use fal_client::queue::WaitEvent;
//! use fal_client::FalClient;
//!
//! // FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET); base URLs from FAL_QUEUE_URL/FAL_RUN_URL/FAL_REST_URL.
//! let fal = FalClient::from_env()?;
//!
//! // The adapter picks a live trainer for the kind (portrait → the FLUX LoRA portrait trainer).
//! let (kind, trigger) = (AvatarKind::Portrait, TriggerPhrase::new("TOK_anna")?);
//! let trainer = kind.default_trainer();
//!
//! // A training zip from a folder of photos (+ NAME.txt captions), checked against the trainer's
//! // rules before upload.
//! let archive = trainer.archive_builder(kind, &trigger).build_from_dir_async("photos/anna").await?;
//! // The photos are personal: the archive expires on fal after a day unless told otherwise.
//! let zip_url = fal.storage().upload_archive(&archive).await?;
//!
//! // The plan applies the preset to the trainer's own parameters; inspect it before paying.
//! let plan = trainer.plan(kind, Preset::Balanced, zip_url, trigger);
//! let job = plan.submit(&fal).await?;
//! println!("store this: {} {}", job.endpoint_id(), job.request_id());
//!
//! let avatar = job
//!     .wait()
//!     .timeout(Duration::from_secs(1800))
//!     .on_event(|event| {
//!         if let WaitEvent::Log(line) = event {
//!             println!("{}", line.message);
//!         }
//!     })
//!     .await?;
//! for image in avatar.generate(&fal, "TOK_anna on a mountain top", 2).await? {
//!     println!("{}", image.url);
//! }
//! # Ok(()) }
//! ```
//!
//! Any endpoint works untyped, or typed by implementing [`Endpoint`]. Every call is a builder
//! ([`queue::Submit`], [`queue::Run`], [`queue::Wait`], [`storage::Upload`]): set what you need,
//! then `.await` it.
//!
//! ```no_run
//! # async fn untyped(fal: fal_client::FalClient) -> fal_client::Result<()> {
//! let job = fal
//!     .submit_json("fal-ai/fast-sdxl", &serde_json::json!({"prompt": "a cat"}))
//!     .await?;
//! let output: serde_json::Value = job.wait().await?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Every call returns [`Error`]; API errors keep the HTTP status, `x-fal-request-id`,
//! `error_type` and 422 field details, and every error about a known request carries its
//! request id ([`Error::request_id`]) so a paid job is never lost. Inputs are validated before
//! anything is sent.
//!
//! # Features
//!
//! - `rustls` (default): TLS through rustls.
//! - `native-tls`: TLS through the platform library.
//!
//! The fake of fal used by the examples and tests is its own crate, `fal-mock` (a library for
//! tests and a standalone `fal-mock` server for any language's client).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod archive;
pub mod avatar;
pub mod billing;
mod client;
pub mod config;
pub mod credentials;
mod deprecation;
mod detail;
pub mod endpoint;
pub mod error;
mod file_input;
mod lifecycle;
pub mod models;
pub mod platform;
pub mod queue;
pub mod realtime;
pub mod retry;
mod sse;
pub mod storage;
pub mod stream;
pub mod tokens;
mod transport;
pub mod webhook;

pub use client::{FalClient, FalClientBuilder};
pub use config::Config;
pub use endpoint::{Endpoint, EndpointId};
pub use error::{ApiError, Error, Result};
/// The HTTP types in [`Error`] (`http` 1.x, the ones reqwest uses).
pub use http::{Method, StatusCode};

/// The README's examples, compiled as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
