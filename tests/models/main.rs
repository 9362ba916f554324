//! Typed models: wire names, enums, ranges and fixtures, and every typed input against fal's own
//! OpenAPI document of its endpoint.

#[path = "../common/mod.rs"]
mod common;

mod schemas;
mod wire;
