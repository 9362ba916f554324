//! The queue: submit, status, status stream, result, cancel, waiting, sync run (wire-level, with
//! wiremock), and resuming requests after a restart.

#[path = "../common/mod.rs"]
mod common;

mod hedged;
mod resume;
mod wire;
