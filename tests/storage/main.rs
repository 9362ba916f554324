//! Storage: single and multipart uploads, progress, downloads.

#[path = "../common/mod.rs"]
mod common;

mod cdn;
mod inputs;
mod multipart;
mod single;
