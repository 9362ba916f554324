//! Typed models (stub).
