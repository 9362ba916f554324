//! The endpoints the mock knows, read from fal's own OpenAPI documents, and input validation
//! driven by them, answering like fal's (pydantic v1 style) 422 bodies:
//! `{"detail": [{"loc": ["body", field, ...], "msg", "type", "ctx"?}]}`.
//!
//! The documents are this crate's `openapi/` folder (in the repository a link to fal-client's
//! test fixtures `tests/fixtures/openapi/`: snapshots of fal's model API with
//! `expand=openapi-3.0`, plus a hand-written one for the deprecated pro trainer), so the mock
//! follows a refresh of them. Unknown fields are ignored (pydantic's default), `null`
//! on an optional field means "not given", a `null` required field is an error.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::media::ImageFormat;

/// One entry of a 422 `detail` array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detail {
    pub(crate) loc: Vec<Value>,
    pub(crate) msg: String,
    pub(crate) ty: String,
    pub(crate) ctx: Option<Value>,
}

impl Detail {
    pub(crate) fn new(loc: Vec<Value>, msg: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            ty: ty.into(),
            ctx: None,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("loc".into(), Value::Array(self.loc.clone()));
        o.insert("msg".into(), Value::String(self.msg.clone()));
        o.insert("type".into(), Value::String(self.ty.clone()));
        if let Some(ctx) = &self.ctx {
            o.insert("ctx".into(), ctx.clone());
        }
        Value::Object(o)
    }
}

/// The 422 body for a list of details.
pub(crate) fn detail_body(details: &[Detail]) -> Value {
    json!({ "detail": details.iter().map(Detail::to_json).collect::<Vec<_>>() })
}

/// `image_size` presets and their sizes on fal.
pub(crate) const IMAGE_SIZE_PRESETS: [(&str, u64, u64); 6] = [
    ("square_hd", 1024, 1024),
    ("square", 512, 512),
    ("portrait_4_3", 768, 1024),
    ("portrait_16_9", 576, 1024),
    ("landscape_4_3", 1024, 768),
    ("landscape_16_9", 1024, 576),
];

/// fal's documents of the endpoints the mock serves.
const DOCUMENTS: [&str; 13] = [
    include_str!("../openapi/flux-lora-portrait-trainer.openapi.json"),
    include_str!("../openapi/flux-lora-fast-training.openapi.json"),
    include_str!("../openapi/flux-2-trainer.openapi.json"),
    include_str!("../openapi/flux-2-trainer-v2.openapi.json"),
    include_str!("../openapi/z-image-trainer.openapi.json"),
    include_str!("../openapi/z-image-turbo-trainer-v2.openapi.json"),
    include_str!("../openapi/qwen-image-2512-trainer.openapi.json"),
    include_str!("../openapi/flux-pro-trainer.openapi.json"),
    include_str!("../openapi/flux-lora.openapi.json"),
    include_str!("../openapi/flux-2_lora.openapi.json"),
    include_str!("../openapi/z-image_turbo_lora.openapi.json"),
    include_str!("../openapi/qwen-image-2512_lora.openapi.json"),
    include_str!("../openapi/flux-pro_v1.1-ultra-finetuned.openapi.json"),
];

/// What fal changed in these inputs after the snapshots were taken (fields added and removed,
/// with sources), applied on top of them.
const CHANGES: &str = include_str!("../openapi/changes-since-snapshot.json");

/// What an endpoint does, as far as the mock is concerned.
#[derive(Debug, Clone)]
pub(crate) enum ModelKind {
    /// Takes a ZIP at `archive_field`, returns `diffusers_lora_file` + `config_file`.
    LoraTrainer { archive_field: String },
    /// Takes a ZIP at `archive_field`, returns a `finetune_id` (the pro trainer).
    FinetuneTrainer { archive_field: String },
    /// Returns `images`: fal's current `ImageFile` shape when `file_images`, else the legacy one.
    Generator {
        file_images: bool,
        default_format: ImageFormat,
        /// Sizes come from `image_size` (else from `aspect_ratio`).
        image_size: bool,
    },
}

/// One endpoint the mock knows.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) endpoint_id: String,
    /// The `openapi` object (for `$ref`s).
    doc: Value,
    /// The input schema, `$ref` resolved.
    input: Value,
    pub(crate) kind: ModelKind,
    /// fal's `metadata` of the endpoint, as the document holds it (`null` when it has none).
    pub(crate) metadata: Value,
}

impl Model {
    /// Whether the input schema has `field`.
    pub(crate) fn has_input(&self, field: &str) -> bool {
        self.input["properties"].get(field).is_some()
    }

    /// The endpoint's OpenAPI 3.0 document (fal's, as `GET /v1/models?expand=openapi-3.0`
    /// answers it).
    pub(crate) fn openapi(&self) -> &Value {
        &self.doc
    }

    /// The server default of an input field, from the schema.
    pub(crate) fn default_of(&self, field: &str) -> Option<&Value> {
        self.input.get("properties")?.get(field)?.get("default")
    }
}

/// Every endpoint the mock knows.
pub(crate) fn models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        DOCUMENTS
            .iter()
            .filter_map(|text| match load(text) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "mock: an endpoint document does not load");
                    None
                }
            })
            .collect()
    })
}

/// The endpoint `endpoint_id`, when the mock knows it.
pub(crate) fn model(endpoint_id: &str) -> Option<&'static Model> {
    models().iter().find(|m| m.endpoint_id == endpoint_id)
}

fn load(text: &str) -> Result<Model, String> {
    let file: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let endpoint_id = file["endpoint_id"]
        .as_str()
        .ok_or("no endpoint_id")?
        .to_owned();
    let doc = file["openapi"].clone();
    let paths = &doc["paths"];
    let input_ref = &paths[format!("/{endpoint_id}")]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    let output_ref = &paths[format!("/{endpoint_id}/requests/{{request_id}}")]["get"]["responses"]
        ["200"]["content"]["application/json"]["schema"];
    let mut input = resolve(&doc, input_ref).clone();
    let output = resolve(&doc, output_ref).clone();
    if input.get("properties").is_none() || output.get("properties").is_none() {
        return Err(format!("{endpoint_id}: no input or output schema"));
    }
    let changes: Value = serde_json::from_str(CHANGES).map_err(|e| e.to_string())?;
    if let Some(props) = input["properties"].as_object_mut() {
        let of_this = |list: &str| {
            changes[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["endpoint_id"] == endpoint_id.as_str())
                .cloned()
                .collect::<Vec<_>>()
        };
        for added in of_this("added") {
            if let Some(field) = added["field"].as_str() {
                props.insert(field.to_owned(), added["schema"].clone());
            }
        }
        for removed in of_this("removed") {
            if let Some(field) = removed["field"].as_str() {
                props.remove(field);
            }
        }
    }
    let archive_field = || {
        input["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|f| f.ends_with("data_url"))
            .map(str::to_owned)
            .ok_or(format!("{endpoint_id}: a trainer without an archive field"))
    };
    let out_props = &output["properties"];
    let kind = if out_props.get("diffusers_lora_file").is_some() {
        ModelKind::LoraTrainer {
            archive_field: archive_field()?,
        }
    } else if out_props.get("finetune_id").is_some() {
        ModelKind::FinetuneTrainer {
            archive_field: archive_field()?,
        }
    } else if out_props.get("images").is_some() {
        let item = &out_props["images"]["items"]["$ref"];
        let default_format = input["properties"]["output_format"]["default"]
            .as_str()
            .and_then(ImageFormat::parse)
            .unwrap_or(ImageFormat::Jpeg);
        ModelKind::Generator {
            file_images: item.as_str().is_some_and(|r| r.ends_with("/ImageFile")),
            default_format,
            image_size: input["properties"].get("image_size").is_some(),
        }
    } else {
        return Err(format!("{endpoint_id}: an output the mock cannot produce"));
    };
    Ok(Model {
        endpoint_id,
        doc,
        input,
        kind,
        metadata: file["metadata"].clone(),
    })
}

/// Follow `$ref`s and single-element `allOf`s.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            node = &doc["components"]["schemas"][name];
        } else if let Some([only]) = node
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            node = only;
        } else {
            break;
        }
    }
    node
}

/// Validate `input` for `endpoint`; unknown endpoints accept any object.
pub(crate) fn validate(endpoint: &str, input: &Map<String, Value>) -> Vec<Detail> {
    let Some(model) = model(endpoint) else {
        return Vec::new();
    };
    let mut w = Walker {
        doc: &model.doc,
        errors: Vec::new(),
    };
    w.object(&model.input, input, &[json!("body")]);
    w.errors
}

/// A number as Python's `repr` would print it (`1e-06`, `0.001`, `4`, `2.0`).
fn py(n: &Value) -> String {
    match n.as_i64() {
        Some(i) if !n.is_f64() => i.to_string(),
        _ => py_float(n.as_f64().unwrap_or_default()),
    }
}

fn py_float(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-4 {
        let s = format!("{f:e}"); // e.g. 1e-6
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

fn is_nullable(node: &Value) -> bool {
    node.get("nullable") == Some(&Value::Bool(true))
        || node
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|b| b.iter().any(|b| b.get("type") == Some(&json!("null"))))
}

/// An integer, or a float with no fraction (pydantic v1 takes `2.0` for an int).
fn as_int(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.as_f64(),
        Value::Number(n) => n.as_f64().filter(|f| f.fract() == 0.0),
        _ => None,
    }
}

fn with(loc: &[Value], last: Value) -> Vec<Value> {
    let mut l = loc.to_vec();
    l.push(last);
    l
}

struct Walker<'a> {
    doc: &'a Value,
    errors: Vec<Detail>,
}

impl Walker<'_> {
    fn err(&mut self, loc: &[Value], msg: impl Into<String>, ty: &str, ctx: Option<Value>) {
        let mut d = Detail::new(loc.to_vec(), msg, ty);
        d.ctx = ctx;
        self.errors.push(d);
    }

    fn check(&mut self, node: &Value, value: &Value, loc: &[Value]) {
        let node = resolve(self.doc, node);
        if value.is_null() {
            if !is_nullable(node) {
                self.err(
                    loc,
                    "none is not an allowed value",
                    "type_error.none.not_allowed",
                    None,
                );
            }
            return;
        }
        if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
            self.any_of(branches, value, loc);
            return;
        }
        if let Some(permitted) = node.get("enum").and_then(Value::as_array) {
            if !permitted.iter().any(|p| same(p, value)) {
                let list: Vec<String> = permitted
                    .iter()
                    .map(|p| match p {
                        Value::String(s) => format!("'{s}'"),
                        other => other.to_string(),
                    })
                    .collect();
                self.err(
                    loc,
                    format!("unexpected value; permitted: {}", list.join(", ")),
                    "value_error.const",
                    Some(json!({ "given": value, "permitted": permitted })),
                );
            }
            return;
        }
        match node.get("type").and_then(Value::as_str) {
            Some("string") if !value.is_string() => {
                self.err(loc, "str type expected", "type_error.str", None)
            }
            Some("boolean") if !value.is_boolean() => self.err(
                loc,
                "value could not be parsed to a boolean",
                "type_error.bool",
                None,
            ),
            Some("integer") => match as_int(value) {
                Some(n) => self.range(node, n, loc),
                None => self.err(
                    loc,
                    "value is not a valid integer",
                    "type_error.integer",
                    None,
                ),
            },
            Some("number") => match value.as_f64().filter(|_| value.is_number()) {
                Some(n) => self.range(node, n, loc),
                None => self.err(loc, "value is not a valid float", "type_error.float", None),
            },
            Some("array") => match value.as_array() {
                Some(items) => {
                    let item = node.get("items").cloned().unwrap_or(Value::Null);
                    for (i, v) in items.iter().enumerate() {
                        self.check(&item, v, &with(loc, json!(i)));
                    }
                }
                None => self.err(loc, "value is not a valid list", "type_error.list", None),
            },
            Some("object") | None if node.get("properties").is_some() => match value.as_object() {
                Some(obj) => self.object(node, obj, loc),
                None => self.err(loc, "value is not a valid dict", "type_error.dict", None),
            },
            _ => {}
        }
    }

    fn object(&mut self, node: &Value, obj: &Map<String, Value>, loc: &[Value]) {
        let props = node.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // Field order as the model declares it (pydantic reports in that order).
        let mut order: Vec<&str> = node
            .get("x-fal-order-properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for name in props.into_iter().flat_map(|p| p.keys()) {
            if !order.contains(&name.as_str()) {
                order.push(name);
            }
        }
        for name in order {
            let schema = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
            let field_loc = with(loc, json!(name));
            let is_required = required.contains(&name);
            match obj.get(name) {
                None if is_required => {
                    self.err(&field_loc, "field required", "value_error.missing", None)
                }
                Some(Value::Null) if is_required && !is_nullable(resolve(self.doc, schema)) => self
                    .err(
                        &field_loc,
                        "none is not an allowed value",
                        "type_error.none.not_allowed",
                        None,
                    ),
                None => {}
                // `null` is "not given" only where the schema allows it; pydantic refuses it
                // for a plain optional field with a default (`"steps": null`).
                Some(v) => self.check(schema, v, &field_loc),
            }
        }
    }

    /// The value must match one branch; when none matches, report the errors of the branch of
    /// the value's JSON type (else of the first branch).
    fn any_of(&mut self, branches: &[Value], value: &Value, loc: &[Value]) {
        let mut best: Option<Vec<Detail>> = None;
        for branch in branches {
            let branch = resolve(self.doc, branch);
            if branch.get("type") == Some(&json!("null")) {
                continue;
            }
            let mut sub = Walker {
                doc: self.doc,
                errors: Vec::new(),
            };
            sub.check(branch, value, loc);
            if sub.errors.is_empty() {
                return;
            }
            let fits = match branch.get("type").and_then(Value::as_str) {
                Some("string") => value.is_string(),
                Some("object") | None => value.is_object() == branch.get("properties").is_some(),
                Some("integer" | "number") => value.is_number(),
                Some("array") => value.is_array(),
                Some("boolean") => value.is_boolean(),
                Some(_) => false,
            };
            if best.is_none() || fits {
                best = Some(sub.errors);
                if fits {
                    break;
                }
            }
        }
        self.errors.extend(best.unwrap_or_default());
    }

    fn range(&mut self, node: &Value, n: f64, loc: &[Value]) {
        let num = |k: &str| node.get(k).filter(|v| v.is_number());
        if let Some(min) = num("minimum") {
            let exclusive = node.get("exclusiveMinimum") == Some(&Value::Bool(true));
            self.bound(loc, n, min, true, exclusive);
        }
        if let Some(min) = num("exclusiveMinimum") {
            self.bound(loc, n, min, true, true);
        }
        if let Some(max) = num("maximum") {
            let exclusive = node.get("exclusiveMaximum") == Some(&Value::Bool(true));
            self.bound(loc, n, max, false, exclusive);
        }
        if let Some(max) = num("exclusiveMaximum") {
            self.bound(loc, n, max, false, true);
        }
        if let Some(step) = num("multipleOf") {
            let s = step.as_f64().unwrap_or(1.0);
            if s > 0.0 && (n / s).fract().abs() > 1e-9 {
                self.err(
                    loc,
                    format!("ensure this value is a multiple of {}", py(step)),
                    "value_error.number.not_multiple",
                    Some(json!({ "multiple_of": step })),
                );
            }
        }
    }

    fn bound(&mut self, loc: &[Value], n: f64, limit: &Value, lower: bool, exclusive: bool) {
        let l = limit.as_f64().unwrap_or_default();
        let (bad, words, ty) = match (lower, exclusive) {
            (true, false) => (n < l, "greater than or equal to", "not_ge"),
            (true, true) => (n <= l, "greater than", "not_gt"),
            (false, false) => (n > l, "less than or equal to", "not_le"),
            (false, true) => (n >= l, "less than", "not_lt"),
        };
        if bad {
            self.err(
                loc,
                format!("ensure this value is {words} {}", py(limit)),
                &format!("value_error.number.{ty}"),
                Some(json!({ "limit_value": limit })),
            );
        }
    }
}

/// JSON equality with numbers compared by value (`16` equals `16.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTRAIT_TRAINER: &str = "fal-ai/flux-lora-portrait-trainer";

    fn check(endpoint: &str, input: Value) -> Vec<Value> {
        let Value::Object(m) = input else {
            unreachable!()
        };
        validate(endpoint, &m).iter().map(Detail::to_json).collect()
    }

    #[test]
    fn every_document_loads() {
        let ids: Vec<&str> = models().iter().map(|m| m.endpoint_id.as_str()).collect();
        assert_eq!(ids.len(), DOCUMENTS.len(), "{ids:?}");
        for id in [
            "fal-ai/flux-2-trainer",
            "fal-ai/flux-2/lora",
            "fal-ai/flux-pro/v1.1-ultra-finetuned",
        ] {
            assert!(ids.contains(&id), "{id}");
        }
        assert!(matches!(
            model("fal-ai/flux-2-trainer").unwrap().kind,
            ModelKind::LoraTrainer { ref archive_field } if archive_field == "image_data_url"
        ));
        assert!(matches!(
            model("fal-ai/flux-2/lora").unwrap().kind,
            ModelKind::Generator {
                file_images: true,
                default_format: ImageFormat::Png,
                image_size: true
            }
        ));
        assert!(matches!(
            model("fal-ai/flux-pro/v1.1-ultra-finetuned").unwrap().kind,
            ModelKind::Generator {
                file_images: false,
                default_format: ImageFormat::Jpeg,
                image_size: false
            }
        ));
    }

    #[test]
    fn missing_and_ranges() {
        let e = check(PORTRAIT_TRAINER, json!({"steps": 0, "learning_rate": 0.5}));
        assert_eq!(e[0]["loc"], json!(["body", "images_data_url"]));
        assert_eq!(e[0]["type"], "value_error.missing");
        let by_field = |f: &str| e.iter().find(|d| d["loc"][1] == f).unwrap().clone();
        let lr = by_field("learning_rate");
        assert_eq!(lr["type"], "value_error.number.not_le");
        assert_eq!(
            lr["msg"],
            "ensure this value is less than or equal to 0.001"
        );
        let steps = by_field("steps");
        assert_eq!(steps["type"], "value_error.number.not_ge");
        assert_eq!(steps["ctx"]["limit_value"], 1);
    }

    #[test]
    fn multiples_nulls_and_newer_fields() {
        let e = check(
            "fal-ai/flux-2-trainer",
            json!({"image_data_url": "u", "steps": 150, "default_caption": null, "output_lora_format": "ckpt"}),
        );
        let types: Vec<&str> = e.iter().filter_map(|d| d["type"].as_str()).collect();
        assert_eq!(
            types,
            ["value_error.number.not_multiple", "value_error.const"]
        );
        assert_eq!(e[0]["msg"], "ensure this value is a multiple of 100");
        // `null` is "not given" only on nullable fields.
        let e = check(
            "fal-ai/flux-2-trainer",
            json!({"image_data_url": "u", "steps": null}),
        );
        assert_eq!(e[0]["type"], "type_error.none.not_allowed");
        // A field fal removed is ignored like any unknown field.
        let ultra = json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 1.0, "enable_safety_checker": "x"});
        assert!(check("fal-ai/flux-pro/v1.1-ultra-finetuned", ultra).is_empty());
        // `acceleration` is newer than the flux-lora snapshot; the mock knows it.
        let e = check(
            "fal-ai/flux-lora",
            json!({"prompt": "p", "acceleration": "high"}),
        );
        assert_eq!(e[0]["loc"], json!(["body", "acceleration"]));
        assert!(check(
            "fal-ai/flux-lora",
            json!({"prompt": "p", "acceleration": "regular"})
        )
        .is_empty());
    }

    #[test]
    fn python_float_formatting() {
        assert_eq!(py_float(1e-6), "1e-06");
        assert_eq!(py_float(0.001), "0.001");
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py(&json!(4)), "4");
    }

    #[test]
    fn ultra_rules() {
        let ok = json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 1.2, "safety_tolerance": "6"});
        assert!(check("fal-ai/flux-pro/v1.1-ultra-finetuned", ok).is_empty());
        let e = check(
            "fal-ai/flux-pro/v1.1-ultra-finetuned",
            json!({"prompt": 1, "finetune_id": "f", "finetune_strength": 2.5, "safety_tolerance": 2, "num_images": 5, "output_format": "gif"}),
        );
        let mut fields: Vec<&str> = e.iter().filter_map(|d| d["loc"][1].as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "finetune_strength",
                "num_images",
                "output_format",
                "prompt",
                "safety_tolerance"
            ]
        );
    }

    #[test]
    fn lora_rules() {
        let e = check(
            "fal-ai/flux-lora",
            json!({"prompt": "p", "loras": [{"scale": 5}], "image_size": {"width": 0, "height": 64}}),
        );
        let locs: Vec<&Value> = e.iter().map(|d| &d["loc"]).collect();
        assert!(
            locs.contains(&&json!(["body", "loras", 0, "path"])),
            "{e:?}"
        );
        assert!(
            locs.contains(&&json!(["body", "loras", 0, "scale"])),
            "{e:?}"
        );
        assert!(
            locs.contains(&&json!(["body", "image_size", "width"])),
            "{e:?}"
        );
        let gt = e.iter().find(|d| d["loc"][2] == "width").unwrap();
        assert_eq!(gt["type"], "value_error.number.not_gt");
        assert!(check(
            "fal-ai/flux-lora",
            json!({"prompt": "p", "image_size": "square_hd", "seed": 42})
        )
        .is_empty());
        let e = check(
            "fal-ai/flux-lora",
            json!({"prompt": "p", "image_size": "huge"}),
        );
        assert_eq!(e[0]["type"], "value_error.const");
    }

    #[test]
    fn pro_trainer_rules() {
        let e = check(
            "fal-ai/flux-pro-trainer",
            json!({"data_url": "u", "lora_rank": 8, "mode": "portrait", "iterations": 50}),
        );
        let fields: Vec<&Value> = e.iter().map(|d| &d["loc"][1]).collect();
        assert_eq!(
            fields,
            [
                &json!("finetune_comment"),
                &json!("mode"),
                &json!("iterations"),
                &json!("lora_rank")
            ]
        );
    }

    #[test]
    fn unknown_endpoints_accept_anything() {
        assert!(check("someone/else", json!({"x": 1})).is_empty());
    }
}
