//! Beyond the queue: output streams, realtime sessions, short-lived tokens and credentials
//! resolved at call time — wire-level (wiremock) and against the fake of fal (`fal-mock`).

#[path = "../common/mod.rs"]
mod common;

mod credentials;
mod realtime;
mod stream;
mod tokens;
