//! The README's guarantees: retries without duplicate submits under faults, request ids on
//! errors, the key only to fal hosts, waits that never hang, bad input that never panics
//! (property tests included).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod faults;
mod hosts;
mod proptests;
mod secrets;
