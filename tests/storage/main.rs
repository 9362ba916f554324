//! Storage: single and multipart uploads, progress, downloads.

#[path = "../common/mod.rs"]
mod common;

mod multipart;
mod single;
