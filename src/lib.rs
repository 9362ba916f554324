//! fal-client (crate docs are written in the final pass)
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod archive;
pub mod avatar;
mod client;
pub mod endpoint;
pub mod error;
mod http;
pub mod models;
pub mod queue;
pub mod retry;
pub mod storage;
pub mod webhook;

#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;

pub use client::{FalClient, FalClientBuilder};
pub use endpoint::{Endpoint, EndpointId};
pub use error::{ApiError, Error, Result};
