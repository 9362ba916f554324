//! Endpoint ids and the [`Endpoint`] trait.
//!
//! An endpoint id names a model on fal: `fal-ai/flux-lora`, `fal-ai/flux-pro/v1.1-ultra-finetuned`
//! (owner `fal-ai`, alias `flux-pro`, path `v1.1-ultra-finetuned`), `workflows/fal-ai/my-wf`
//! (namespace `workflows`), or a legacy numeric id `110602490-lora` (normalized to
//! `110602490/lora`). The grammar follows fal-js `utils.ts` and fal's Python client
//! (`AppId.from_endpoint_id`).
//!
//! Submit and sync run use the **full** id; status, result and cancel use only
//! `[namespace/]owner/alias` (<https://docs.fal.ai/model-endpoints/queue>).

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::file_input::FileInput;
use crate::lifecycle::ObjectLifecycle;

/// Namespaces that prefix `owner/alias` (fal-js `ENDPOINT_NAMESPACES`).
pub const NAMESPACES: [&str; 2] = ["workflows", "comfy"];

/// A parsed, normalized endpoint id.
///
/// ```
/// use fal_client::EndpointId;
///
/// let id: EndpointId = "fal-ai/flux-pro/v1.1-ultra-finetuned".parse()?;
/// assert_eq!(id.owner(), "fal-ai");
/// assert_eq!(id.alias(), "flux-pro");
/// assert_eq!(id.path(), Some("v1.1-ultra-finetuned"));
/// assert_eq!(id.app_id(), "fal-ai/flux-pro");
///
/// let legacy: EndpointId = "110602490-lora".parse()?;
/// assert_eq!(legacy.as_str(), "110602490/lora");
///
/// assert!("just-an-id".parse::<EndpointId>().is_err());
/// # Ok::<(), fal_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointId {
    full: String,
    namespace: Option<String>,
    owner: String,
    alias: String,
    path: Option<String>,
}

impl EndpointId {
    /// Parse and normalize an endpoint id.
    ///
    /// # Errors
    /// [`Error::InvalidEndpointId`] when the id has no `/` and is not a legacy `digits-alias` id,
    /// has an empty segment or a `.` / `..` segment, lacks an alias, or contains whitespace,
    /// control characters, `\`, `?`, `#` or `%`.
    pub fn parse(id: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEndpointId {
            id: id.to_owned(),
            reason: reason.to_owned(),
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(c) = id
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%' | '\\'))
        {
            return Err(invalid(&format!("it contains {c:?}")));
        }
        let full = if id.contains('/') {
            id.to_owned()
        } else if let Some((num, alias)) = id.split_once('-') {
            let legacy = !num.is_empty()
                && num.bytes().all(|b| b.is_ascii_digit())
                && !alias.is_empty()
                && alias
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !legacy {
                return Err(invalid("must be in the format <owner>/<alias>[/<path>]"));
            }
            format!("{num}/{alias}")
        } else {
            return Err(invalid("must be in the format <owner>/<alias>[/<path>]"));
        };
        let parts: Vec<&str> = full.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("it has an empty segment"));
        }
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(invalid("it has a `.` or `..` segment"));
        }
        let (namespace, rest) = if NAMESPACES.contains(&parts[0]) {
            (Some(parts[0].to_owned()), &parts[1..])
        } else {
            (None, &parts[..])
        };
        if rest.len() < 2 {
            return Err(invalid(match namespace {
                Some(_) => "a namespaced id needs <namespace>/<owner>/<alias>",
                None => "must be in the format <owner>/<alias>[/<path>]",
            }));
        }
        let path = (rest.len() > 2).then(|| rest[2..].join("/"));
        Ok(Self {
            namespace,
            owner: rest[0].to_owned(),
            alias: rest[1].to_owned(),
            path,
            full,
        })
    }

    /// The full normalized id, used for submit and sync run.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// `workflows` or `comfy`, when present.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The app owner (`fal-ai`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The app alias (`flux-pro`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The sub-path after owner/alias (`v1.1-ultra-finetuned`), when present.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// `[namespace/]owner/alias`: the prefix of status, result and cancel URLs.
    pub fn app_id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}/{}", self.owner, self.alias),
            None => format!("{}/{}", self.owner, self.alias),
        }
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for EndpointId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for EndpointId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EndpointId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl TryFrom<&String> for EndpointId {
    type Error = Error;
    fn try_from(s: &String) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&EndpointId> for EndpointId {
    type Error = Error;
    fn try_from(s: &EndpointId) -> Result<Self> {
        Ok(s.clone())
    }
}

/// A typed fal endpoint: its id, input and output types, and input validation.
///
/// The crate implements it for the endpoints in [`crate::models`] (trainers and generators);
/// implement it for any other endpoint to get typed submit/wait/result:
///
/// ```
/// use fal_client::Endpoint;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize)]
/// struct Input { prompt: String }
/// #[derive(Deserialize)]
/// struct Output { images: Vec<fal_client::models::Image> }
///
/// struct FastSdxl;
/// impl Endpoint for FastSdxl {
///     const ID: &'static str = "fal-ai/fast-sdxl";
///     type Input = Input;
///     type Output = Output;
/// }
/// ```
pub trait Endpoint: Send + Sync + 'static {
    /// The full endpoint id, e.g. `fal-ai/flux-lora`.
    const ID: &'static str;
    /// The request body. `Clone` so that a request with local [`FileInput`]s can upload them
    /// and send a copy holding their URLs.
    type Input: Serialize + Clone + Send + Sync + 'static;
    /// The result body.
    type Output: DeserializeOwned + Send + 'static;

    /// Check the input before it is sent; the default accepts everything.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field.
    fn validate(_input: &Self::Input) -> Result<()> {
        Ok(())
    }

    /// The input's file fields, read-only; the default has none. A [`FileInput`] among them that
    /// is not a URL is uploaded before the request is sent.
    fn file_inputs(_input: &Self::Input) -> Vec<&FileInput> {
        Vec::new()
    }

    /// The same fields, to put the uploaded files' URLs in. Must list the same fields as
    /// [`file_inputs`](Self::file_inputs).
    fn file_inputs_mut(_input: &mut Self::Input) -> Vec<&mut FileInput> {
        Vec::new()
    }

    /// The lifecycle of the file inputs the client uploads for this endpoint, unless the client
    /// has an [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle). Default: none.
    /// The trainers' archives (people's photos) expire after
    /// [`DEFAULT_ARCHIVE_EXPIRY`](crate::storage::DEFAULT_ARCHIVE_EXPIRY).
    fn file_lifecycle() -> Option<ObjectLifecycle> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EndpointId {
        EndpointId::parse(s).unwrap()
    }

    // fal-js utils.spec.ts
    #[test]
    fn current_owner_alias_format_is_unchanged() {
        assert_eq!(p("fal-ai/fast-sdxl").as_str(), "fal-ai/fast-sdxl");
    }

    #[test]
    fn current_owner_alias_path_format_is_unchanged() {
        assert_eq!(
            p("fal-ai/fast-sdxl/image-to-image").as_str(),
            "fal-ai/fast-sdxl/image-to-image"
        );
    }

    #[test]
    fn invalid_app_id_format_is_rejected() {
        let err = EndpointId::parse("just-an-id").unwrap_err();
        assert!(matches!(err, Error::InvalidEndpointId { ref id, .. } if id == "just-an-id"));
        assert!(err.to_string().contains("<owner>/<alias>"), "{err}");
    }

    #[test]
    fn parses_current_app_id() {
        let id = p("fal-ai/fast-sdxl");
        assert_eq!(
            (id.owner(), id.alias(), id.path(), id.namespace()),
            ("fal-ai", "fast-sdxl", None, None)
        );
    }

    #[test]
    fn parses_current_app_id_with_path() {
        let id = p("fal-ai/fast-sdxl/image-to-image");
        assert_eq!(id.path(), Some("image-to-image"));
        assert_eq!(id.app_id(), "fal-ai/fast-sdxl");
    }

    #[test]
    fn parses_current_app_id_with_namespace() {
        let id = p("workflows/fal-ai/fast-sdxl");
        assert_eq!(id.namespace(), Some("workflows"));
        assert_eq!(
            (id.owner(), id.alias(), id.path()),
            ("fal-ai", "fast-sdxl", None)
        );
        assert_eq!(id.app_id(), "workflows/fal-ai/fast-sdxl");
        let c = p("comfy/me/wf/deep/path");
        assert_eq!(c.namespace(), Some("comfy"));
        assert_eq!(c.path(), Some("deep/path"));
        assert_eq!(c.app_id(), "comfy/me/wf");
    }

    #[test]
    fn legacy_numeric_ids_are_normalized() {
        let id = p("110602490-lora");
        assert_eq!(id.as_str(), "110602490/lora");
        assert_eq!((id.owner(), id.alias()), ("110602490", "lora"));
        assert_eq!(p("110602490-sdxl-turbo").alias(), "sdxl-turbo");
    }

    #[test]
    fn ultra_finetuned_uses_owner_alias_for_status() {
        let id = p("fal-ai/flux-pro/v1.1-ultra-finetuned");
        assert_eq!(id.app_id(), "fal-ai/flux-pro");
        assert_eq!(id.path(), Some("v1.1-ultra-finetuned"));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "fal-ai/",
            "/fast-sdxl",
            "fal-ai//x",
            "workflows/fal-ai",
            "a-",
            "-lora",
            "abc-lora",
            "fal ai/x",
            "fal-ai/../x",
            "fal-ai/x/.",
            "fal-ai/x?y=1",
            "fal-ai/x#f",
            "123-lo_ra",
        ] {
            assert!(
                EndpointId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
