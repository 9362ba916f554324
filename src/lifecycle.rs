//! Object lifecycle (how long fal keeps a file, and who may read it) and the upload flows:
//! settings of uploads and requests, public through [`crate::storage`]
//! (<https://docs.fal.ai/model-apis/fal-cdn>).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A way of uploading a file to fal's CDN. [`FalClientBuilder::upload_flows`](crate::FalClientBuilder::upload_flows)
/// sets the order they are tried in (default: [`CdnV3`](Self::CdnV3), then
/// [`Initiate`](Self::Initiate)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UploadFlow {
    /// fal's CDN v3 flow (fal's Python client's default): a CDN token from
    /// `POST {rest}/storage/auth/token?storage_type=fal-cdn-v3` (cached until shortly before it
    /// expires), then the file in one `POST {cdn}/files/upload`, or multipart (`POST
    /// {token base_url}/files/upload/multipart`, parts `PUT` with ETags, `complete`). The CDN
    /// gets the token, never the fal key.
    CdnV3,
    /// The initiate flow (fal's JavaScript client's): `POST
    /// {rest}/storage/upload/initiate[-multipart]?storage_type=fal-cdn-v3` with the fal key,
    /// then the bytes to the pre-signed URL it answers, with no key.
    Initiate,
}

/// How long fal keeps a training archive (people's photos) the client uploads, unless the
/// client has an [`upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle) or the upload
/// sets its own: one day. A trainer reads the archive when the training starts; a day covers a
/// long queue. Applies to [`Storage::upload_archive`](crate::storage::Storage::upload_archive)
/// and to local archives in the trainers' inputs.
pub const DEFAULT_ARCHIVE_EXPIRY: Expiry = Expiry::OneDay;

/// Header of an upload's lifecycle (fal's CDN v3 and the initiate flow).
pub(crate) const LIFECYCLE_HEADER: &str = "x-fal-object-lifecycle";
/// Header of a request's output lifecycle (runs and submits). fal's Python client sends it on
/// uploads too, as the storage-backed initiate flow reads this name.
pub(crate) const LIFECYCLE_PREFERENCE_HEADER: &str = "x-fal-object-lifecycle-preference";

/// How long fal keeps a file before deleting it: fal's expiry values (`never`, `immediate`,
/// `1h`, `1d`, `7d`, `30d`, `1y`) or any whole number of seconds.
///
/// `Immediate` is 60 seconds, as in fal's clients (fal treats 0 as "no expiry").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiry {
    /// Kept until deleted.
    Never,
    /// 60 seconds.
    Immediate,
    /// 3,600 seconds.
    OneHour,
    /// 86,400 seconds.
    OneDay,
    /// 604,800 seconds.
    SevenDays,
    /// 2,592,000 seconds.
    ThirtyDays,
    /// 31,536,000 seconds.
    OneYear,
    /// This long, rounded up to whole seconds (1.5 s is 2 s); not zero (checked when sent:
    /// [`Error::InvalidInput`]).
    After(Duration),
}

impl Expiry {
    /// The expiry in seconds; `None` for [`Expiry::Never`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an [`Expiry::After`] of zero.
    pub fn seconds(self) -> Result<Option<u64>> {
        Ok(Some(match self {
            Expiry::Never => return Ok(None),
            Expiry::Immediate => 60,
            Expiry::OneHour => 3_600,
            Expiry::OneDay => 86_400,
            Expiry::SevenDays => 604_800,
            Expiry::ThirtyDays => 2_592_000,
            Expiry::OneYear => 31_536_000,
            Expiry::After(d) => {
                let secs = ceil_secs(d);
                if secs == 0 {
                    return Err(Error::invalid_input(
                        "expires_in",
                        "must be at least one second (fal treats 0 as no expiry; use Expiry::Never)",
                    ));
                }
                secs
            }
        }))
    }
}

/// `never`, `immediate`, `1h`, `1d`, `7d`, `30d`, `1y` (fal's names), or a number of seconds.
impl FromStr for Expiry {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "never" => Expiry::Never,
            "immediate" => Expiry::Immediate,
            "1h" => Expiry::OneHour,
            "1d" => Expiry::OneDay,
            "7d" => Expiry::SevenDays,
            "30d" => Expiry::ThirtyDays,
            "1y" => Expiry::OneYear,
            other => match other.parse::<u64>() {
                Ok(n) if n > 0 => Expiry::After(Duration::from_secs(n)),
                _ => {
                    return Err(Error::invalid_input(
                        "expires_in",
                        format!(
                            "{other:?} is not never, immediate, 1h, 1d, 7d, 30d, 1y or a number of seconds > 0"
                        ),
                    ))
                }
            },
        })
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Never => f.write_str("never"),
            Expiry::Immediate => f.write_str("immediate"),
            Expiry::OneHour => f.write_str("1h"),
            Expiry::OneDay => f.write_str("1d"),
            Expiry::SevenDays => f.write_str("7d"),
            Expiry::ThirtyDays => f.write_str("30d"),
            Expiry::OneYear => f.write_str("1y"),
            Expiry::After(d) => write!(f, "{}", ceil_secs(*d)),
        }
    }
}

/// `d` in whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// What a reader of a file gets: fal's ACL decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AclDecision {
    /// The file is served.
    Allow,
    /// The file is refused.
    Forbid,
    /// The file is answered as if it did not exist.
    Hide,
}

/// One rule of an [`Acl`]: the decision for one fal user (nickname or user id). Made with
/// [`Acl::rule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AclRule {
    /// The fal user (nickname or user id).
    pub user: String,
    /// What that user gets.
    pub decision: AclDecision,
}

/// A file's initial access control list: a default decision and per-user rules.
///
/// ```
/// use fal_client::storage::{Acl, AclDecision};
/// let only_anna = Acl::new(AclDecision::Hide).rule("anna", AclDecision::Allow);
/// assert_eq!(only_anna.rules.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Acl {
    /// The decision for everyone the rules do not name (fal's default when `None`: public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<AclDecision>,
    /// Per-user decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AclRule>,
}

impl Acl {
    /// An ACL whose default decision is `default`.
    pub fn new(default: AclDecision) -> Self {
        Self {
            default: Some(default),
            rules: Vec::new(),
        }
    }

    /// The same ACL with a rule for `user` (a fal nickname or user id).
    pub fn rule(mut self, user: impl Into<String>, decision: AclDecision) -> Self {
        self.rules.push(AclRule {
            user: user.into(),
            decision,
        });
        self
    }
}

/// The lifecycle of files on fal's CDN: their expiry and initial access control list. Set on
/// uploads ([`Upload::lifecycle`](crate::storage::Upload::lifecycle), sent as `X-Fal-Object-Lifecycle`)
/// and for the files a request creates ([`Submit::output_lifecycle`](crate::queue::Submit::output_lifecycle),
/// sent as `X-Fal-Object-Lifecycle-Preference`); client-wide defaults in
/// [`FalClientBuilder::upload_lifecycle`](crate::FalClientBuilder::upload_lifecycle) and
/// [`output_lifecycle`](crate::FalClientBuilder::output_lifecycle).
///
/// Without one, fal keeps files as the account's storage settings say (forever when they say
/// nothing). Wire shape: `{"expiration_duration_seconds": N, "initial_acl": {"default": ...,
/// "rules": [{"user", "decision"}]}}`, unset parts left out.
///
/// ```
/// use fal_client::storage::{Acl, AclDecision, Expiry, ObjectLifecycle};
/// let private_for_a_day =
///     ObjectLifecycle::expiring(Expiry::OneDay).with_acl(Acl::new(AclDecision::Hide));
/// assert_eq!(private_for_a_day.expires_in(), Some(Expiry::OneDay));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectLifecycle {
    expires_in: Option<Expiry>,
    initial_acl: Option<Acl>,
}

#[derive(Serialize)]
struct LifecycleJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_duration_seconds: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_acl: Option<&'a Acl>,
}

impl ObjectLifecycle {
    /// Files that expire after `expires_in`.
    pub fn expiring(expires_in: Expiry) -> Self {
        Self {
            expires_in: Some(expires_in),
            initial_acl: None,
        }
    }

    /// Files without an expiry ([`Expiry::Never`]). On an upload no expiry is sent (fal's
    /// clients send none for `never`), so the account's storage settings still apply there; for
    /// a request's outputs `"expiration_duration_seconds": null` is sent, which fal documents as
    /// no expiry, overriding the account's settings. It also replaces a client-wide default
    /// lifecycle for that call.
    pub fn keep() -> Self {
        Self::expiring(Expiry::Never)
    }

    /// The same lifecycle with this initial access control list.
    pub fn with_acl(mut self, acl: Acl) -> Self {
        self.initial_acl = Some(acl);
        self
    }

    /// The expiry, when set.
    pub fn expires_in(&self) -> Option<Expiry> {
        self.expires_in
    }

    /// The initial access control list, when set.
    pub fn initial_acl(&self) -> Option<&Acl> {
        self.initial_acl.as_ref()
    }

    /// The header value, `None` when there is nothing to say. For an upload [`Expiry::Never`]
    /// leaves the field out (fal's clients do); for a request's outputs it is sent as `null`,
    /// which overrides an expiry in the account's storage settings.
    pub(crate) fn header(&self, for_outputs: bool) -> Result<Option<HeaderValue>> {
        let seconds = match self.expires_in {
            None => None,
            Some(e) => match e.seconds()? {
                Some(s) => Some(Some(s)),
                None if for_outputs => Some(None),
                None => None,
            },
        };
        let acl = self
            .initial_acl
            .as_ref()
            .filter(|a| a.default.is_some() || !a.rules.is_empty());
        if seconds.is_none() && acl.is_none() {
            return Ok(None);
        }
        if let Some(rule) = acl.and_then(|a| a.rules.iter().find(|r| r.user.trim().is_empty())) {
            return Err(Error::invalid_input(
                "initial_acl.rules",
                format!("a rule needs a user (got {:?})", rule.user),
            ));
        }
        let json = serde_json::to_string(&LifecycleJson {
            expiration_duration_seconds: seconds,
            initial_acl: acl,
        })
        .map_err(|e| Error::invalid_input("lifecycle", e.to_string()))?;
        HeaderValue::from_str(&json).map(Some).map_err(|_| {
            Error::invalid_input(
                "initial_acl.rules",
                "a user name cannot be sent in a header",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(l: &ObjectLifecycle, outputs: bool) -> Option<String> {
        l.header(outputs)
            .unwrap()
            .map(|h| h.to_str().unwrap().to_owned())
    }

    #[test]
    fn expiry_values_are_fals() {
        let cases = [
            ("never", None),
            ("immediate", Some(60)),
            ("1h", Some(3600)),
            ("1d", Some(86400)),
            ("7d", Some(604800)),
            ("30d", Some(2592000)),
            ("1y", Some(31536000)),
            ("90", Some(90)),
        ];
        for (name, secs) in cases {
            let e: Expiry = name.parse().unwrap();
            assert_eq!(e.seconds().unwrap(), secs, "{name}");
            assert_eq!(e.to_string(), name);
        }
        for bad in ["0", "-1", "2w", ""] {
            assert!(bad.parse::<Expiry>().is_err(), "{bad}");
        }
        assert_eq!(
            Expiry::After(Duration::from_millis(1500))
                .seconds()
                .unwrap(),
            Some(2)
        );
        assert!(Expiry::After(Duration::ZERO).seconds().is_err());
    }

    #[test]
    fn header_shapes() {
        assert_eq!(header(&ObjectLifecycle::default(), false), None);
        assert_eq!(
            header(&ObjectLifecycle::expiring(Expiry::OneDay), false).as_deref(),
            Some(r#"{"expiration_duration_seconds":86400}"#)
        );
        // Never: left out of an upload's header, null for a request's outputs.
        assert_eq!(header(&ObjectLifecycle::keep(), false), None);
        assert_eq!(
            header(&ObjectLifecycle::keep(), true).as_deref(),
            Some(r#"{"expiration_duration_seconds":null}"#)
        );
        let acl = Acl::new(AclDecision::Hide).rule("anna", AclDecision::Allow);
        assert_eq!(
            header(
                &ObjectLifecycle::expiring(Expiry::OneHour).with_acl(acl),
                false
            )
            .as_deref(),
            Some(
                r#"{"expiration_duration_seconds":3600,"initial_acl":{"default":"hide","rules":[{"user":"anna","decision":"allow"}]}}"#
            )
        );
        // An empty ACL is no ACL.
        assert_eq!(
            header(&ObjectLifecycle::default().with_acl(Acl::default()), false),
            None
        );
        let nameless = Acl::default().rule(" ", AclDecision::Forbid);
        assert!(ObjectLifecycle::default()
            .with_acl(nameless)
            .header(false)
            .is_err());
    }
}
