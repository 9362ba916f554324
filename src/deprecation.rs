//! [`Deprecation`]: what fal says about an endpoint it deprecated. Public as
//! [`models::Deprecation`](crate::models::Deprecation); the table is
//! [`models::DEPRECATED`](crate::models::DEPRECATED).

/// An endpoint fal has deprecated: what fal says, since when, and what to use instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deprecation {
    /// The deprecated endpoint id.
    pub endpoint_id: &'static str,
    /// What fal says and when it happened, with the sources.
    pub note: &'static str,
    /// The endpoint id to use instead.
    pub replacement: &'static str,
    /// fal's page for the deprecated endpoint.
    pub page: &'static str,
}
