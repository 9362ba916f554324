//! Input validation of the four modelled endpoints, answering like fal's (pydantic v1 style)
//! 422 bodies: `{"detail": [{"loc": ["body", field, ...], "msg", "type", "ctx"?}]}`.
//!
//! Rules come from MODELS.md. Unknown fields are ignored (pydantic's default), `null` on an
//! optional field means "not given", a `null` required field is an error.

use serde_json::{json, Map, Value};

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

/// The four endpoints the mock models.
pub(crate) const PORTRAIT_TRAINER: &str = "fal-ai/flux-lora-portrait-trainer";
pub(crate) const PRO_TRAINER: &str = "fal-ai/flux-pro-trainer";
pub(crate) const ULTRA_FINETUNED: &str = "fal-ai/flux-pro/v1.1-ultra-finetuned";
pub(crate) const FLUX_LORA: &str = "fal-ai/flux-lora";

/// `image_size` presets of `fal-ai/flux-lora` and their sizes on fal.
pub(crate) const IMAGE_SIZE_PRESETS: [(&str, u64, u64); 6] = [
    ("square_hd", 1024, 1024),
    ("square", 512, 512),
    ("portrait_4_3", 768, 1024),
    ("portrait_16_9", 576, 1024),
    ("landscape_4_3", 1024, 768),
    ("landscape_16_9", 1024, 576),
];

/// The input field holding a trainer's archive URL, for trainers.
pub(crate) fn archive_field(endpoint: &str) -> Option<&'static str> {
    match endpoint {
        PORTRAIT_TRAINER => Some("images_data_url"),
        PRO_TRAINER => Some("data_url"),
        _ => None,
    }
}

/// Validate `input` for `endpoint`; unknown endpoints accept any object.
pub(crate) fn validate(endpoint: &str, input: &Map<String, Value>) -> Vec<Detail> {
    let mut v = Checker {
        obj: input,
        prefix: vec![json!("body")],
        errors: Vec::new(),
    };
    match endpoint {
        PORTRAIT_TRAINER => {
            v.string("images_data_url", true);
            v.string("trigger_phrase", false);
            v.float(
                "learning_rate",
                false,
                Some(Num::F(1e-6)),
                Some(Num::F(1e-3)),
            );
            v.int("steps", false, Some(1), Some(10_000));
            v.boolean("multiresolution_training");
            v.boolean("subject_crop");
            v.string("data_archive_format", false);
            v.string("resume_from_checkpoint", false);
            v.boolean("create_masks");
        }
        PRO_TRAINER => {
            v.string("data_url", true);
            v.string("finetune_comment", true);
            v.literal_str("mode", &["character", "product", "style", "general"]);
            v.int("iterations", false, Some(100), Some(1000));
            v.float(
                "learning_rate",
                false,
                Some(Num::F(1e-6)),
                Some(Num::F(5e-3)),
            );
            v.literal_str("priority", &["speed", "quality", "high_res_only"]);
            v.boolean("captioning");
            v.string("trigger_word", false);
            if v.int("lora_rank", false, None, None) {
                v.literal_int("lora_rank", &[16, 32]);
            }
            v.literal_str("finetune_type", &["full", "lora"]);
        }
        ULTRA_FINETUNED => {
            v.string("prompt", true);
            v.string("finetune_id", true);
            v.float("finetune_strength", true, Some(Num::I(0)), Some(Num::I(2)));
            v.int("seed", false, None, None);
            v.boolean("sync_mode");
            v.int("num_images", false, Some(1), Some(4));
            v.boolean("enable_safety_checker");
            v.literal_str("output_format", &["jpeg", "png"]);
            v.literal_str("safety_tolerance", &["1", "2", "3", "4", "5", "6"]);
            v.boolean("enhance_prompt");
            v.string("image_url", false);
            v.float(
                "image_prompt_strength",
                false,
                Some(Num::I(0)),
                Some(Num::I(1)),
            );
            v.string("aspect_ratio", false);
            v.boolean("raw");
        }
        FLUX_LORA => {
            v.string("prompt", true);
            v.loras();
            v.image_size();
            v.int("num_inference_steps", false, Some(1), Some(50));
            v.float("guidance_scale", false, Some(Num::I(0)), Some(Num::I(35)));
            v.int("num_images", false, Some(1), Some(4));
            v.int("seed", false, None, None);
            v.boolean("sync_mode");
            v.boolean("enable_safety_checker");
            v.literal_str("output_format", &["jpeg", "png"]);
        }
        _ => {}
    }
    v.errors
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
    fn json(self) -> Value {
        match self {
            Num::I(i) => json!(i),
            Num::F(f) => json!(f),
        }
    }
    /// Formatted as Python's `repr` would (`1e-06`, `0.001`, `4`).
    fn py(self) -> String {
        match self {
            Num::I(i) => i.to_string(),
            Num::F(f) => py_float(f),
        }
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

struct Checker<'a> {
    obj: &'a Map<String, Value>,
    prefix: Vec<Value>,
    errors: Vec<Detail>,
}

impl<'a> Checker<'a> {
    fn loc(&self, field: &str) -> Vec<Value> {
        let mut l = self.prefix.clone();
        l.push(json!(field));
        l
    }

    fn err(&mut self, field: &str, msg: impl Into<String>, ty: &str, ctx: Option<Value>) {
        let mut d = Detail::new(self.loc(field), msg, ty);
        d.ctx = ctx;
        self.errors.push(d);
    }

    /// The field's value when present and not null; reports a missing required field.
    fn get(&mut self, field: &str, required: bool) -> Option<&'a Value> {
        let obj = self.obj;
        match obj.get(field) {
            None if required => {
                self.err(field, "field required", "value_error.missing", None);
                None
            }
            Some(Value::Null) if required => {
                self.err(
                    field,
                    "none is not an allowed value",
                    "type_error.none.not_allowed",
                    None,
                );
                None
            }
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn string(&mut self, field: &str, required: bool) {
        if let Some(v) = self.get(field, required) {
            if !v.is_string() {
                self.err(field, "str type expected", "type_error.str", None);
            }
        }
    }

    fn boolean(&mut self, field: &str) {
        if let Some(v) = self.get(field, false) {
            if !v.is_boolean() {
                self.err(
                    field,
                    "value could not be parsed to a boolean",
                    "type_error.bool",
                    None,
                );
            }
        }
    }

    /// Returns whether the field is absent or a valid integer.
    fn int(&mut self, field: &str, required: bool, min: Option<i64>, max: Option<i64>) -> bool {
        let Some(v) = self.get(field, required) else {
            return !required;
        };
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        let Some(n) = n else {
            // u64 beyond i64 (e.g. a large seed) is still an integer.
            if v.as_u64().is_some() && min.is_none() && max.is_none() {
                return true;
            }
            self.err(
                field,
                "value is not a valid integer",
                "type_error.integer",
                None,
            );
            return false;
        };
        self.range(field, n as f64, min.map(Num::I), max.map(Num::I))
    }

    fn float(&mut self, field: &str, required: bool, min: Option<Num>, max: Option<Num>) -> bool {
        let Some(v) = self.get(field, required) else {
            return !required;
        };
        let Some(f) = v.as_f64().filter(|_| v.is_number()) else {
            self.err(
                field,
                "value is not a valid float",
                "type_error.float",
                None,
            );
            return false;
        };
        self.range(field, f, min, max)
    }

    fn range(&mut self, field: &str, value: f64, min: Option<Num>, max: Option<Num>) -> bool {
        if let Some(min) = min {
            if value < min.value() {
                self.err(
                    field,
                    format!("ensure this value is greater than or equal to {}", min.py()),
                    "value_error.number.not_ge",
                    Some(json!({ "limit_value": min.json() })),
                );
                return false;
            }
        }
        if let Some(max) = max {
            if value > max.value() {
                self.err(
                    field,
                    format!("ensure this value is less than or equal to {}", max.py()),
                    "value_error.number.not_le",
                    Some(json!({ "limit_value": max.json() })),
                );
                return false;
            }
        }
        true
    }

    fn literal_str(&mut self, field: &str, permitted: &[&str]) {
        let Some(v) = self.get(field, false) else {
            return;
        };
        if v.as_str().is_some_and(|s| permitted.contains(&s)) {
            return;
        }
        let v = v.clone();
        let list = permitted
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err(
            field,
            format!("unexpected value; permitted: {list}"),
            "value_error.const",
            Some(json!({ "given": v, "permitted": permitted })),
        );
    }

    fn literal_int(&mut self, field: &str, permitted: &[i64]) {
        let Some(v) = self.get(field, false) else {
            return;
        };
        if v.as_f64()
            .is_some_and(|f| permitted.iter().any(|p| *p as f64 == f))
        {
            return;
        }
        let v = v.clone();
        let list = permitted
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.err(
            field,
            format!("unexpected value; permitted: {list}"),
            "value_error.const",
            Some(json!({ "given": v, "permitted": permitted })),
        );
    }

    fn loras(&mut self) {
        let Some(v) = self.get("loras", false) else {
            return;
        };
        let Some(items) = v.as_array().cloned() else {
            self.err(
                "loras",
                "value is not a valid list",
                "type_error.list",
                None,
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let mut prefix = self.loc("loras");
            prefix.push(json!(i));
            let Some(obj) = item.as_object() else {
                self.errors.push(Detail::new(
                    prefix,
                    "value is not a valid dict",
                    "type_error.dict",
                ));
                continue;
            };
            let mut sub = Checker {
                obj,
                prefix,
                errors: Vec::new(),
            };
            sub.string("path", true);
            sub.float("scale", false, Some(Num::I(0)), Some(Num::I(4)));
            self.errors.append(&mut sub.errors);
        }
    }

    fn image_size(&mut self) {
        let Some(v) = self.get("image_size", false) else {
            return;
        };
        match v {
            Value::String(_) => {
                let names: Vec<&str> = IMAGE_SIZE_PRESETS.iter().map(|p| p.0).collect();
                self.literal_str("image_size", &names);
            }
            Value::Object(obj) => {
                let mut sub = Checker {
                    obj,
                    prefix: self.loc("image_size"),
                    errors: Vec::new(),
                };
                sub.int("width", false, Some(1), Some(14_142));
                sub.int("height", false, Some(1), Some(14_142));
                self.errors.append(&mut sub.errors);
            }
            _ => self.err(
                "image_size",
                "value is not a valid dict",
                "type_error.dict",
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(endpoint: &str, input: Value) -> Vec<Value> {
        let Value::Object(m) = input else {
            unreachable!()
        };
        validate(endpoint, &m).iter().map(Detail::to_json).collect()
    }

    #[test]
    fn missing_and_ranges() {
        let e = check(PORTRAIT_TRAINER, json!({"steps": 0, "learning_rate": 0.5}));
        assert_eq!(e[0]["loc"], json!(["body", "images_data_url"]));
        assert_eq!(e[0]["type"], "value_error.missing");
        assert_eq!(e[1]["type"], "value_error.number.not_le");
        assert_eq!(
            e[1]["msg"],
            "ensure this value is less than or equal to 0.001"
        );
        assert_eq!(e[2]["type"], "value_error.number.not_ge");
        assert_eq!(e[2]["ctx"]["limit_value"], 1);
    }

    #[test]
    fn python_float_formatting() {
        assert_eq!(py_float(1e-6), "1e-06");
        assert_eq!(py_float(0.001), "0.001");
        assert_eq!(py_float(2.0), "2.0");
    }

    #[test]
    fn ultra_rules() {
        let ok = json!({"prompt": "p", "finetune_id": "f", "finetune_strength": 1.2, "safety_tolerance": "6"});
        assert!(check(ULTRA_FINETUNED, ok).is_empty());
        let e = check(
            ULTRA_FINETUNED,
            json!({"prompt": 1, "finetune_id": "f", "finetune_strength": 2.5, "safety_tolerance": 2, "num_images": 5, "output_format": "gif"}),
        );
        let types: Vec<&str> = e.iter().filter_map(|d| d["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                "type_error.str",
                "value_error.number.not_le",
                "value_error.number.not_le",
                "value_error.const",
                "value_error.const"
            ]
        );
    }

    #[test]
    fn lora_rules() {
        let e = check(
            FLUX_LORA,
            json!({"prompt": "p", "loras": [{"scale": 5}], "image_size": {"width": 0, "height": 64}}),
        );
        assert_eq!(e[0]["loc"], json!(["body", "loras", 0, "path"]));
        assert_eq!(e[1]["loc"], json!(["body", "loras", 0, "scale"]));
        assert_eq!(e[2]["loc"], json!(["body", "image_size", "width"]));
        assert!(check(
            FLUX_LORA,
            json!({"prompt": "p", "image_size": "square_hd", "seed": 18446744073709551615u64})
        )
        .is_empty());
    }

    #[test]
    fn pro_trainer_rules() {
        let e = check(
            PRO_TRAINER,
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
