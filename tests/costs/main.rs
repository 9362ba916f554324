//! Cost and usage: platform headers and usage tags on submits and runs, billed units, the
//! Platform API client (paging, errors, idempotent deletion), and the adapter's estimates and
//! budget — wire-level (wiremock).

mod platform;
mod requests;
