//! Webhooks (stub).
/// Webhook errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Placeholder.
    #[error("webhook")]
    Placeholder,
}
impl WebhookError {
    /// The request id, when known.
    pub fn request_id(&self) -> Option<&str> {
        None
    }
}
