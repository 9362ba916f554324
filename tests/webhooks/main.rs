//! Webhooks: signature verification, key caching, typed deliveries, and deliveries from the mock
//! end to end.

#[path = "../common/mod.rs"]
mod common;

mod e2e;
mod replicas;
mod verify;
