//! Queue (stub).
