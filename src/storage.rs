//! Storage (stub).
