//! Mock (stub).
