//! Avatar adapter (stub).
