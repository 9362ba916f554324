//! The avatar adapter end to end on the mock (every kind, every trainer, archives per trainer),
//! and the training-archive builder.

#[path = "../common/mod.rs"]
mod common;

mod archive;
mod flows;
