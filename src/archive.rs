//! Training archives (stub).
/// Archive errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Placeholder.
    #[error("archive")]
    Placeholder,
}
