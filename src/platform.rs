//! fal's Platform API (`https://api.fal.ai/v1`, [`FalClientBuilder::api_url`] or `FAL_API_URL`):
//! models and their OpenAPI documents, prices, cost estimates, usage, the requests an endpoint
//! served, and the deletion of a request's stored payloads
//! (<https://docs.fal.ai/platform-apis/v1>).
//!
//! ```no_run
//! # async fn demo(fal: fal_client::FalClient) -> fal_client::Result<()> {
//! use futures::TryStreamExt;
//! use fal_client::platform::Estimate;
//!
//! let platform = fal.platform();
//! for price in platform.pricing(["fal-ai/flux-lora"]).await? {
//!     println!("{}: {} {} per {}", price.endpoint_id, price.unit_price, price.currency, price.unit);
//! }
//! let estimate = platform.estimate(&Estimate::units([("fal-ai/flux-lora", 2.0)])).await?;
//! // Every page of the endpoint's recent requests, as one stream.
//! let recent: Vec<_> = platform.requests("fal-ai/flux-lora").stream().try_collect().await?;
//! # Ok(()) }
//! ```
//!
//! Lists are paged by fal (`cursor` / `next_cursor`); the `stream()` of a query follows the
//! cursors and yields every item of every page. Errors come in the Platform API's own format
//! ([`ErrorDetail::Platform`](crate::error::ErrorDetail::Platform), its `type` as
//! [`ApiError::error_type`](crate::ApiError::error_type)). Usage, billing and payload deletion
//! need an ADMIN-scoped key.
//!
//! [`FalClientBuilder::api_url`]: crate::FalClientBuilder::api_url

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use http::{HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::join;
use crate::error::{Error, Result};
use crate::transport::{Op, Request, Transport};

/// The Platform API: from [`FalClient::platform`](crate::FalClient::platform). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Platform {
    transport: Arc<Transport>,
}

/// A model (an endpoint) as the Platform API describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Model {
    /// The endpoint id, e.g. `fal-ai/flux-lora`.
    pub endpoint_id: String,
    /// What fal says about it (absent for some endpoints).
    #[serde(default)]
    pub metadata: Option<ModelMetadata>,
    /// Its OpenAPI 3.0 document, with [`ModelQuery::with_openapi`]; an object
    /// `{"error": {"code": "expansion_failed", ...}}` when fal could not expand it.
    #[serde(default)]
    pub openapi: Option<serde_json::Value>,
}

/// [`Model::metadata`]: the fields a client uses (fal sends more).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ModelMetadata {
    /// Human-readable name.
    pub display_name: String,
    /// e.g. `text-to-image`, `training`.
    pub category: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `active` or `deprecated`.
    pub status: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The model's page on fal.
    #[serde(default)]
    pub model_url: String,
    /// `inference` or `training`, when given.
    #[serde(default)]
    pub kind: Option<String>,
    /// For an inference endpoint: the trainers whose weights it takes.
    #[serde(default)]
    pub training_endpoint_ids: Vec<String>,
    /// For a trainer: the endpoints that use its weights.
    #[serde(default)]
    pub inference_endpoint_ids: Vec<String>,
    /// Typical run time, in minutes, when given.
    #[serde(default)]
    pub duration_estimate: Option<f64>,
}

/// `active` or `deprecated` (a [`ModelQuery`] filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelStatus {
    /// Served.
    Active,
    /// Deprecated on fal.
    Deprecated,
}

/// One endpoint's price: `unit_price` per `unit` (e.g. `megapixels`, `images`, a training), in
/// `currency`. Account discounts may apply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Price {
    /// The endpoint id.
    pub endpoint_id: String,
    /// Price per unit, ≥ 0.
    pub unit_price: f64,
    /// The billing unit ([`BillableUnits`](crate::billing::BillableUnits) are counted in it).
    pub unit: String,
    /// Three-letter currency code (`USD`).
    pub currency: String,
}

/// A cost estimate request (`POST /models/pricing/estimate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "estimate_type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Estimate {
    /// From each endpoint's historical price per call, for a number of calls.
    HistoricalApiPrice {
        /// Endpoint id → `{"call_quantity": n}` (n ≥ 1).
        endpoints: BTreeMap<String, CallQuantity>,
    },
    /// From each endpoint's unit price, for a quantity of its billing unit.
    UnitPrice {
        /// Endpoint id → `{"unit_quantity": q}` (q ≥ 0.000001).
        endpoints: BTreeMap<String, UnitQuantity>,
    },
}

/// Calls of one endpoint in an [`Estimate::HistoricalApiPrice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallQuantity {
    /// Number of calls, ≥ 1.
    pub call_quantity: u64,
}

/// Units of one endpoint in an [`Estimate::UnitPrice`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UnitQuantity {
    /// Quantity of the endpoint's billing unit, ≥ 0.000001.
    pub unit_quantity: f64,
}

impl Estimate {
    /// An estimate for `n` calls of each endpoint, from their historical price per call.
    pub fn calls<I, S>(calls: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<String>,
    {
        Estimate::HistoricalApiPrice {
            endpoints: calls
                .into_iter()
                .map(|(id, n)| (id.into(), CallQuantity { call_quantity: n }))
                .collect(),
        }
    }

    /// An estimate for a quantity of each endpoint's billing unit, from its unit price.
    pub fn units<I, S>(units: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        Estimate::UnitPrice {
            endpoints: units
                .into_iter()
                .map(|(id, q)| (id.into(), UnitQuantity { unit_quantity: q }))
                .collect(),
        }
    }

    fn check(&self) -> Result<()> {
        let invalid = |m: &str| Error::invalid_input("endpoints", m);
        match self {
            Estimate::HistoricalApiPrice { endpoints } => {
                if endpoints.is_empty() {
                    return Err(invalid("needs at least one endpoint"));
                }
                if endpoints.values().any(|c| c.call_quantity < 1) {
                    return Err(invalid("call_quantity must be at least 1"));
                }
            }
            Estimate::UnitPrice { endpoints } => {
                if endpoints.is_empty() {
                    return Err(invalid("needs at least one endpoint"));
                }
                if endpoints
                    .values()
                    .any(|u| !(u.unit_quantity >= 0.000_001 && u.unit_quantity.is_finite()))
                {
                    return Err(invalid(
                        "unit_quantity must be a number of at least 0.000001",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// fal's estimate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CostEstimate {
    /// `historical_api_price` or `unit_price`.
    pub estimate_type: String,
    /// The total, in `currency`.
    pub total_cost: f64,
    /// Three-letter currency code.
    pub currency: String,
}

/// One line of a usage report: an endpoint's billed quantity and cost (rows with different
/// discounts come apart).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct UsageLine {
    /// The endpoint id.
    pub endpoint_id: String,
    /// The billing unit.
    pub unit: String,
    /// Units billed.
    pub quantity: f64,
    /// Price per unit.
    pub unit_price: f64,
    /// Discount in percent (0-100), when one applied.
    #[serde(default)]
    pub percent_discount: Option<f64>,
    /// Before the discount.
    pub cost_subtotal: f64,
    /// The discount.
    pub cost_discount: f64,
    /// What was charged.
    pub cost_total: f64,
    /// Three-letter currency code.
    pub currency: String,
}

/// One time bucket of a usage report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct UsageBucket {
    /// The bucket's start (ISO 8601 with offset).
    pub bucket: String,
    /// Its lines.
    pub results: Vec<UsageLine>,
}

/// One page of a usage report: the time series and/or the summary, as asked.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct UsagePage {
    /// Lines per time bucket ([`UsageQuery::time_series`]).
    #[serde(default)]
    pub time_series: Vec<UsageBucket>,
    /// Lines over the whole range ([`UsageQuery::summary`]).
    #[serde(default)]
    pub summary: Vec<UsageLine>,
}

/// A request an endpoint served (`GET /models/requests/by-endpoint`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The request id.
    pub request_id: String,
    /// The endpoint id.
    pub endpoint_id: String,
    /// When it started (ISO 8601, UTC).
    pub started_at: String,
    /// When it was sent (ISO 8601, UTC).
    pub sent_at: String,
    /// When it ended, if it did.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// The HTTP status it ended with.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// How long it ran, in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Its JSON input ([`RequestQuery::with_payloads`]; absent once deleted or not stored).
    #[serde(default)]
    pub json_input: Option<serde_json::Value>,
    /// Its JSON output (as `json_input`).
    #[serde(default)]
    pub json_output: Option<serde_json::Value>,
}

/// One CDN file of a payload deletion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CdnDeleteResult {
    /// The file's CDN URL.
    pub link: String,
    /// Why it could not be deleted (`None`: deleted).
    #[serde(default)]
    pub exception: Option<String>,
}

impl Platform {
    pub(crate) fn new(transport: Arc<Transport>) -> Self {
        Self { transport }
    }

    fn url(&self, path: &str) -> Result<Url> {
        join(self.transport.config().api_url(), path)
    }

    /// The URL of a list and its `endpoint_id` filter (none when `ids` is empty).
    fn list(&self, path: &str, ids: &[String]) -> Result<(Url, Vec<(&'static str, String)>)> {
        let query = if ids.is_empty() {
            Vec::new()
        } else {
            ids_query(&endpoint_id_list(ids)?)
        };
        Ok((self.url(path)?, query))
    }

    async fn get<T: DeserializeOwned>(&self, url: Url, what: &'static str) -> Result<T> {
        let req = Request::new(Op::Platform, Method::GET, url);
        self.transport.json(&req, &what).await
    }

    /// Models: all of them, or those a [`ModelQuery`] selects (ids, text search, category,
    /// status), optionally with their OpenAPI documents.
    pub fn models(&self) -> ModelQuery {
        ModelQuery {
            platform: self.clone(),
            endpoint_ids: Vec::new(),
            search: None,
            category: None,
            status: None,
            openapi: false,
            page_size: None,
        }
    }

    /// The prices of `endpoint_ids` (1 to 50; every page). An endpoint fal has no price for is
    /// missing from the answer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no id or more than 50; [`Error::Api`] with fal's
    /// [`PlatformError`](crate::error::PlatformError).
    pub async fn pricing<I, S>(&self, endpoint_ids: I) -> Result<Vec<Price>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let ids = endpoint_id_list(endpoint_ids)?;
        let url = self.url("models/pricing")?;
        paginate::<PricePage, Price>(self.clone(), url, ids_query(&ids), |p| p.prices)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// What `estimate` would cost (`POST /models/pricing/estimate`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no endpoint or a quantity out of range; [`Error::Api`].
    pub async fn estimate(&self, estimate: &Estimate) -> Result<CostEstimate> {
        estimate.check()?;
        let body = serde_json::to_vec(estimate)
            .map_err(|e| Error::invalid_input("estimate", e.to_string()))?;
        let req = Request::new(
            Op::Platform,
            Method::POST,
            self.url("models/pricing/estimate")?,
        )
        .json_body(Bytes::from(body));
        self.transport.json(&req, &"cost estimate").await
    }

    /// Usage (billed quantities and costs), from the jobs the account ran: a [`UsageQuery`].
    /// Needs an ADMIN key.
    pub fn usage(&self) -> UsageQuery {
        UsageQuery {
            platform: self.clone(),
            range: TimeRange::default(),
            endpoint_ids: Vec::new(),
            time_series: false,
            summary: false,
        }
    }

    /// The requests `endpoint_id` served: a [`RequestQuery`] (filters, payloads, paging).
    pub fn requests(&self, endpoint_id: &str) -> RequestQuery {
        RequestQuery {
            platform: self.clone(),
            endpoint_ids: vec![endpoint_id.to_owned()],
            range: TimeRange::default(),
            status: None,
            request_id: None,
            payloads: false,
            by_duration: false,
            page_size: None,
        }
    }

    /// Delete a request's stored payloads: its JSON input and output, and the CDN files of its
    /// output (input files stay: other requests may use them). It cannot be undone. Needs an
    /// ADMIN key. See [`DeletePayloads`].
    pub fn delete_payloads(&self, request_id: &str) -> DeletePayloads {
        DeletePayloads {
            platform: self.clone(),
            request_id: request_id.to_owned(),
            idempotency_key: None,
        }
    }
}

/// 1 to 50 endpoint ids, checked.
fn endpoint_id_list<I, S>(ids: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let ids: Vec<String> = ids
        .into_iter()
        .map(|s| crate::EndpointId::parse(s.as_ref()).map(|id| id.as_str().to_owned()))
        .collect::<Result<_>>()?;
    if ids.is_empty() || ids.len() > 50 {
        return Err(Error::invalid_input(
            "endpoint_id",
            format!("takes 1 to 50 endpoint ids, got {}", ids.len()),
        ));
    }
    Ok(ids)
}

/// A list that failed before its first page.
fn failed<T: Send + 'static>(e: Error) -> BoxStream<'static, Result<T>> {
    stream::iter([Err(e)]).boxed()
}

fn ids_query(ids: &[String]) -> Vec<(&'static str, String)> {
    ids.iter().map(|id| ("endpoint_id", id.clone())).collect()
}

/// The pages of a list: the items of each page and the cursor of the next.
trait Page<T>: DeserializeOwned + Send {
    fn next_cursor(&self) -> Option<&str>;
}

macro_rules! page {
    ($name:ident, $field:ident: $item:ty) => {
        #[derive(Deserialize)]
        struct $name {
            #[serde(default)]
            $field: Vec<$item>,
            #[serde(default)]
            next_cursor: Option<String>,
            #[serde(default)]
            has_more: bool,
        }
        impl Page<$item> for $name {
            fn next_cursor(&self) -> Option<&str> {
                self.next_cursor.as_deref().filter(|_| self.has_more)
            }
        }
    };
}

page!(ModelPage, models: Model);
page!(PricePage, prices: Price);
page!(RequestPage, items: RequestRecord);

#[derive(Deserialize)]
struct UsageAnswer {
    #[serde(flatten)]
    page: UsagePage,
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
}

impl Page<UsagePage> for UsageAnswer {
    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref().filter(|_| self.has_more)
    }
}

/// Every item of every page, following `next_cursor` while `has_more`.
fn paginate<P, T>(
    platform: Platform,
    url: Url,
    query: Vec<(&'static str, String)>,
    items: fn(P) -> Vec<T>,
) -> BoxStream<'static, Result<T>>
where
    P: Page<T> + 'static,
    T: Send + 'static,
{
    enum Next {
        Cursor(Option<String>),
        Done,
    }
    stream::unfold(Next::Cursor(None), move |next| {
        let (platform, mut url, query) = (platform.clone(), url.clone(), query.clone());
        async move {
            let cursor = match next {
                Next::Done => return None,
                Next::Cursor(c) => c,
            };
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in &query {
                    pairs.append_pair(k, v);
                }
                if let Some(c) = &cursor {
                    pairs.append_pair("cursor", c);
                }
            }
            match platform.get::<P>(url, "Platform API page").await {
                Err(e) => Some((stream::iter(vec![Err(e)]), Next::Done)),
                Ok(page) => {
                    let next = match page.next_cursor() {
                        // A cursor that does not move would page forever.
                        Some(c) if Some(c) != cursor.as_deref() => Next::Cursor(Some(c.to_owned())),
                        _ => Next::Done,
                    };
                    let batch: Vec<Result<T>> = items(page).into_iter().map(Ok).collect();
                    Some((stream::iter(batch), next))
                }
            }
        }
    })
    .flatten()
    .boxed()
}

/// Which models ([`Platform::models`]); `stream()` yields every match on every page.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until streamed"]
pub struct ModelQuery {
    platform: Platform,
    endpoint_ids: Vec<String>,
    search: Option<String>,
    category: Option<String>,
    status: Option<ModelStatus>,
    openapi: bool,
    page_size: Option<u32>,
}

impl ModelQuery {
    /// Only these endpoint ids (1 to 50 in all).
    pub fn endpoint_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoint_ids.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Free-text search over names, descriptions and categories (`q`).
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Only this category, e.g. `text-to-image`, `training`.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// Only active or only deprecated models (default: both).
    pub fn status(mut self, status: ModelStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Include each model's OpenAPI 3.0 document (`expand=openapi-3.0`).
    pub fn with_openapi(mut self) -> Self {
        self.openapi = true;
        self
    }

    /// Items per page (fal's maximum depends on the query).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// Every matching model.
    ///
    /// # Errors (as items)
    /// [`Error::InvalidInput`] for more than 50 ids or a bad one; [`Error::Api`].
    pub fn stream(self) -> BoxStream<'static, Result<Model>> {
        let (url, mut query) = match self.platform.list("models", &self.endpoint_ids) {
            Ok(start) => start,
            Err(e) => return failed(e),
        };
        if let Some(q) = self.search {
            query.push(("q", q));
        }
        if let Some(c) = self.category {
            query.push(("category", c));
        }
        if let Some(s) = self.status {
            let s = match s {
                ModelStatus::Active => "active",
                ModelStatus::Deprecated => "deprecated",
            };
            query.push(("status", s.to_owned()));
        }
        if self.openapi {
            query.push(("expand", "openapi-3.0".to_owned()));
        }
        if let Some(n) = self.page_size {
            query.push(("limit", n.to_string()));
        }
        paginate::<ModelPage, Model>(self.platform, url, query, |p| p.models)
    }
}

/// A time range of a report: `start` inclusive, `end` exclusive (fal's default: the last 24
/// hours).
#[derive(Debug, Clone, Copy, Default)]
struct TimeRange {
    start: Option<SystemTime>,
    end: Option<SystemTime>,
}

impl TimeRange {
    fn query(&self, out: &mut Vec<(&'static str, String)>) {
        let fmt = |t: SystemTime| {
            time::OffsetDateTime::from(t)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        if let Some(s) = self.start {
            out.push(("start", fmt(s)));
        }
        if let Some(e) = self.end {
            out.push(("end", fmt(e)));
        }
    }
}

/// A usage report ([`Platform::usage`]): the time range, endpoints, and what to include.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until streamed"]
pub struct UsageQuery {
    platform: Platform,
    range: TimeRange,
    endpoint_ids: Vec<String>,
    time_series: bool,
    summary: bool,
}

impl UsageQuery {
    /// From this time on (default: 24 hours before `end`).
    pub fn start(mut self, t: SystemTime) -> Self {
        self.range.start = Some(t);
        self
    }

    /// Up to this time, exclusive (default: now).
    pub fn end(mut self, t: SystemTime) -> Self {
        self.range.end = Some(t);
        self
    }

    /// Only these endpoints (1 to 50 in all).
    pub fn endpoint_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoint_ids.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Include lines per time bucket (`expand=time_series`; the default when neither this nor
    /// [`summary`](Self::summary) is set).
    pub fn time_series(mut self) -> Self {
        self.time_series = true;
        self
    }

    /// Include lines over the whole range (`expand=summary`).
    pub fn summary(mut self) -> Self {
        self.summary = true;
        self
    }

    /// Every page of the report.
    ///
    /// # Errors (as items)
    /// [`Error::InvalidInput`] for a bad endpoint id; [`Error::Api`] (403 without an ADMIN
    /// key).
    pub fn stream(self) -> BoxStream<'static, Result<UsagePage>> {
        let (url, mut query) = match self.platform.list("models/usage", &self.endpoint_ids) {
            Ok(start) => start,
            Err(e) => return failed(e),
        };
        self.range.query(&mut query);
        let (series, summary) = match (self.time_series, self.summary) {
            (false, false) => (true, false),
            other => other,
        };
        if series {
            query.push(("expand", "time_series".to_owned()));
        }
        if summary {
            query.push(("expand", "summary".to_owned()));
        }
        paginate::<UsageAnswer, UsagePage>(self.platform, url, query, |p| vec![p.page])
    }
}

/// `success`, `error` (5xx) or `user_error` (4xx): a [`RequestQuery`] filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// 2xx.
    Success,
    /// 5xx.
    Error,
    /// 4xx.
    UserError,
}

/// An endpoint's requests ([`Platform::requests`]); `stream()` yields every match on every
/// page, newest first.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until streamed"]
pub struct RequestQuery {
    platform: Platform,
    endpoint_ids: Vec<String>,
    range: TimeRange,
    status: Option<RequestOutcome>,
    request_id: Option<String>,
    payloads: bool,
    by_duration: bool,
    page_size: Option<u32>,
}

impl RequestQuery {
    /// From this time on (default: the last 24 hours; 90 days with
    /// [`request_id`](Self::request_id)).
    pub fn start(mut self, t: SystemTime) -> Self {
        self.range.start = Some(t);
        self
    }

    /// Up to this time, exclusive.
    pub fn end(mut self, t: SystemTime) -> Self {
        self.range.end = Some(t);
        self
    }

    /// Only requests that ended this way.
    pub fn outcome(mut self, outcome: RequestOutcome) -> Self {
        self.status = Some(outcome);
        self
    }

    /// Only this request.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Include each request's JSON input and output (`expand=payloads`).
    pub fn with_payloads(mut self) -> Self {
        self.payloads = true;
        self
    }

    /// Longest first instead of most recent first (`sort_by=duration`).
    pub fn by_duration(mut self) -> Self {
        self.by_duration = true;
        self
    }

    /// Items per page, 1 to 100 (default 50).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.clamp(1, 100));
        self
    }

    /// Every matching request.
    ///
    /// # Errors (as items)
    /// [`Error::InvalidInput`] for a bad endpoint id; [`Error::Api`].
    pub fn stream(self) -> BoxStream<'static, Result<RequestRecord>> {
        // (The endpoint id is required here: the list always holds the one given.)
        let path = "models/requests/by-endpoint";
        let (url, mut query) = match self.platform.list(path, &self.endpoint_ids) {
            Ok(start) => start,
            Err(e) => return failed(e),
        };
        self.range.query(&mut query);
        if let Some(s) = self.status {
            let s = match s {
                RequestOutcome::Success => "success",
                RequestOutcome::Error => "error",
                RequestOutcome::UserError => "user_error",
            };
            query.push(("status", s.to_owned()));
        }
        if let Some(id) = self.request_id {
            query.push(("request_id", id));
        }
        if self.payloads {
            query.push(("expand", "payloads".to_owned()));
        }
        if self.by_duration {
            query.push(("sort_by", "duration".to_owned()));
        }
        if let Some(n) = self.page_size {
            query.push(("limit", n.to_string()));
        }
        paginate::<RequestPage, RequestRecord>(self.platform, url, query, |p| p.items)
    }
}

/// A payload deletion ([`Platform::delete_payloads`]), sent when awaited.
///
/// It always carries an `Idempotency-Key` (fal caches the answer 10 minutes per key, so a
/// repeat does not delete again): yours, or one made for this call, so that the crate's own
/// retries of it are safe.
///
/// # Errors (when awaited)
/// [`Error::Api`]: 404 for an unknown request, 403 without an ADMIN key.
#[must_use = "a deletion does nothing until it is awaited"]
pub struct DeletePayloads {
    platform: Platform,
    request_id: String,
    idempotency_key: Option<String>,
}

impl fmt::Debug for DeletePayloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeletePayloads")
            .field("request_id", &self.request_id)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

impl DeletePayloads {
    /// The `Idempotency-Key`: the same key within 10 minutes gets the first answer again,
    /// without a second deletion.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

#[derive(Deserialize)]
struct DeleteAnswer {
    cdn_delete_results: Vec<CdnDeleteResult>,
}

impl std::future::IntoFuture for DeletePayloads {
    type Output = Result<Vec<CdnDeleteResult>>;
    type IntoFuture = futures::future::BoxFuture<'static, Result<Vec<CdnDeleteResult>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            crate::queue::check_request_id(&self.request_id)?;
            let mut url = self.platform.url("models/requests/")?;
            if let Ok(mut segments) = url.path_segments_mut() {
                segments
                    .pop_if_empty()
                    .push(&self.request_id)
                    .push("payloads");
            }
            let key = self
                .idempotency_key
                .unwrap_or_else(|| format!("fal-client-{:032x}", fastrand::u128(..)));
            let mut req = Request::new(Op::Platform, Method::DELETE, url);
            req.request_id = Some(&self.request_id);
            let value = HeaderValue::from_str(&key)
                .map_err(|_| Error::invalid_input("idempotency_key", "cannot be a header value"))?;
            req.headers.insert("idempotency-key", value);
            let answer: DeleteAnswer = self
                .platform
                .transport
                .json(&req, &"payload deletion")
                .await?;
            Ok(answer.cdn_delete_results)
        })
    }
}
