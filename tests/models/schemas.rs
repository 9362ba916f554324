//! Every typed input against fal's own OpenAPI document of its endpoint
//! (`tests/fixtures/openapi/`, see the README there for how to refresh them).
//!
//! The crate's side is read from its behaviour, not from a second description: field names from
//! the serde derive, and the rest by sending probe inputs through deserialization, `validate()`
//! and serialization, as a caller would. For every field of fal's schema the test checks:
//!
//! - `field`: the typed input has it (and nothing fal does not have);
//! - `required`: an input without it is refused when fal requires it, and accepted otherwise;
//! - `type`: a value of fal's type goes through unchanged, a value of another type is refused
//!   (an integer field refuses `1.5`);
//! - `nullable`: `null` is accepted where fal's schema allows it;
//! - `enum`: exactly fal's values are accepted (probed with every value any document lists for a
//!   field of that name, plus a made-up one);
//! - `default`: `with_fal_defaults()` fills in fal's default, and nothing where fal has none;
//! - `minimum`, `maximum`, `multipleOf`: the bounds are accepted and the values just beyond are
//!   refused; where fal has no bound, a value far out is accepted;
//! - `maxItems`: where fal sets no limit on a list, five items are accepted.
//!
//! Nested objects (`loras[0]`, `image_size`) are checked the same way. Where the crate
//! deliberately differs from fal's document, [`ALLOWED`] says so and why; an entry that no longer
//! matches a difference fails the test too, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::rc::Rc;

use fal_client::avatar::{Generator, Trainer};
use fal_client::models::*;
use fal_client::Endpoint;
use serde::de::{DeserializeOwned, Visitor};
use serde::{forward_to_deserialize_any, Deserializer};
use serde_json::{json, Map, Value};

/// Where the crate deliberately differs from fal's document: `(endpoint ids separated by
/// spaces, field path, aspect, why)`. Endpoints are listed one by one, so that an entry never
/// hides a difference on an endpoint it was not written for.
const ALLOWED: &[(&str, &str, &str, &str)] = &[
    (
        "fal-ai/flux-lora fal-ai/flux-2/lora fal-ai/z-image/turbo/lora \
         fal-ai/flux-pro/v1.1-ultra-finetuned",
        "seed",
        "minimum",
        "seeds are unsigned in the crate (u64): fal documents no negative seed and every example \
         is non-negative",
    ),
    (
        "fal-ai/flux-2-trainer fal-ai/flux-2-trainer-v2 fal-ai/z-image-trainer",
        "learning_rate",
        "minimum",
        "fal states no range; the crate refuses a learning rate that is not above 0, which would \
         train nothing while the training is billed",
    ),
    (
        "fal-ai/flux-2/lora",
        "loras",
        "maxItems",
        "the field description says \"maximum 3\"; the schema has no maxItems",
    ),
    (
        "fal-ai/z-image/turbo/lora",
        "loras",
        "maxItems",
        "the field description says \"maximum 3\"; the schema has no maxItems",
    ),
    (
        "fal-ai/flux-2/lora",
        "image_size.width",
        "minimum",
        "the image_size description says width and height must be between 512 and 2048; the \
         shared ImageSize schema allows 1..=14142",
    ),
    (
        "fal-ai/flux-2/lora",
        "image_size.width",
        "maximum",
        "the image_size description says width and height must be between 512 and 2048",
    ),
    (
        "fal-ai/flux-2/lora",
        "image_size.height",
        "minimum",
        "the image_size description says width and height must be between 512 and 2048",
    ),
    (
        "fal-ai/flux-2/lora",
        "image_size.height",
        "maximum",
        "the image_size description says width and height must be between 512 and 2048",
    ),
];

// ---------------------------------------------------------------------------------------------
// The crate's side

/// What the crate does with one input: refused (why), or accepted and sent as this JSON.
enum Outcome {
    Sent(Value),
    Refused(String),
}

type Accept = Rc<dyn Fn(&Value) -> Outcome>;

struct Typed {
    endpoint: &'static str,
    document: &'static str,
    fields: &'static [&'static str],
    accept: Accept,
    fal_defaults: Rc<dyn Fn(&Value) -> Value>,
}

fn typed<E>(document: &'static str, defaults: fn(E::Input) -> E::Input) -> Typed
where
    E: Endpoint,
    E::Input: DeserializeOwned,
{
    let accept: Accept = Rc::new(
        |v: &Value| match serde_json::from_value::<E::Input>(v.clone()) {
            Err(e) => Outcome::Refused(format!("does not decode: {e}")),
            Ok(input) => match E::validate(&input) {
                Err(e) => Outcome::Refused(e.to_string()),
                Ok(()) => Outcome::Sent(serde_json::to_value(&input).expect("serializes")),
            },
        },
    );
    let fal_defaults = Rc::new(move |v: &Value| {
        let input: E::Input = serde_json::from_value(v.clone()).expect("the base input decodes");
        serde_json::to_value(defaults(input)).expect("serializes")
    });
    Typed {
        endpoint: E::ID,
        document,
        fields: field_names::<E::Input>(),
        accept,
        fal_defaults,
    }
}

/// Every typed endpoint, with fal's document of it.
fn endpoints() -> Vec<Typed> {
    vec![
        typed::<PortraitTrainer>(
            "flux-lora-portrait-trainer.openapi.json",
            PortraitTrainerInput::with_fal_defaults,
        ),
        typed::<FluxLoraFastTraining>(
            "flux-lora-fast-training.openapi.json",
            FluxLoraFastTrainingInput::with_fal_defaults,
        ),
        typed::<Flux2Trainer>(
            "flux-2-trainer.openapi.json",
            Flux2TrainerInput::with_fal_defaults,
        ),
        typed::<Flux2TrainerV2>(
            "flux-2-trainer-v2.openapi.json",
            Flux2TrainerInput::with_fal_defaults,
        ),
        typed::<ZImageTrainer>(
            "z-image-trainer.openapi.json",
            ZImageTrainerInput::with_fal_defaults,
        ),
        typed::<ProTrainer>(
            "flux-pro-trainer.openapi.json",
            ProTrainerInput::with_fal_defaults,
        ),
        typed::<FluxLora>("flux-lora.openapi.json", FluxLoraInput::with_fal_defaults),
        typed::<Flux2Lora>(
            "flux-2_lora.openapi.json",
            Flux2LoraInput::with_fal_defaults,
        ),
        typed::<ZImageTurboLora>(
            "z-image_turbo_lora.openapi.json",
            ZImageTurboLoraInput::with_fal_defaults,
        ),
        typed::<UltraFinetuned>(
            "flux-pro_v1.1-ultra-finetuned.openapi.json",
            UltraFinetunedInput::with_fal_defaults,
        ),
    ]
}

/// The field names of a struct with derived `Deserialize`, as serde sees them.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("probed"))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

// ---------------------------------------------------------------------------------------------
// fal's side

struct Document {
    /// The `openapi` object.
    doc: Value,
    /// The input schema, resolved.
    input: Value,
}

fn read_json(file: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/openapi/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A document, with the changes fal made since the snapshot
/// (`changes-since-snapshot.json`) applied.
fn load(file: &str) -> Document {
    let full = read_json(file);
    let endpoint = full["endpoint_id"].as_str().expect("endpoint_id");
    let doc = full["openapi"].clone();
    let r = &doc["paths"][format!("/{endpoint}")]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    let mut input = resolve(&doc, r).clone();
    assert!(input["properties"].is_object(), "{file}: no input schema");
    let changes = read_json("changes-since-snapshot.json");
    let props = input["properties"].as_object_mut().expect("properties");
    for added in changes["added"].as_array().expect("added") {
        if added["endpoint_id"] == endpoint {
            let field = added["field"].as_str().expect("field");
            let before = props.insert(field.to_owned(), added["schema"].clone());
            assert!(
                before.is_none(),
                "{file} already has {field}: remove it from changes-since-snapshot.json"
            );
        }
    }
    for removed in changes["removed"].as_array().expect("removed") {
        if removed["endpoint_id"] == endpoint {
            let field = removed["field"].as_str().expect("field");
            assert!(
                props.remove(field).is_some(),
                "{file} no longer has {field}: remove it from changes-since-snapshot.json"
            );
        }
    }
    Document { doc, input }
}

fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            node = &doc["components"]["schemas"][r.rsplit('/').next().unwrap_or_default()];
        } else if let Some([only]) = node
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            node = only;
        } else {
            return node;
        }
    }
}

/// The non-null branches of a schema node (an `anyOf`, or the node itself), resolved, and whether
/// it allows `null`.
fn branches<'a>(doc: &'a Value, node: &'a Value) -> (Vec<&'a Value>, bool) {
    let node = resolve(doc, node);
    let mut nullable = node.get("nullable") == Some(&Value::Bool(true));
    let list = match node.get("anyOf").and_then(Value::as_array) {
        Some(any) => any
            .iter()
            .map(|b| resolve(doc, b))
            .filter(|b| {
                let null = b.get("type") == Some(&json!("null"));
                nullable |= null;
                !null
            })
            .collect(),
        None => vec![node],
    };
    (list, nullable)
}

/// Every enum value any document lists for a field of each name (probe candidates).
fn enum_values(docs: &[Document]) -> BTreeMap<String, Vec<Value>> {
    fn walk(doc: &Value, node: &Value, out: &mut BTreeMap<String, Vec<Value>>, depth: usize) {
        if depth > 6 {
            return;
        }
        let node = resolve(doc, node);
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let (list, _) = branches(doc, prop);
                for b in list {
                    for v in b
                        .get("enum")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let seen = out.entry(name.clone()).or_default();
                        if !seen.contains(v) {
                            seen.push(v.clone());
                        }
                    }
                    walk(doc, b, out, depth + 1);
                    if let Some(items) = b.get("items") {
                        walk(doc, items, out, depth + 1);
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for d in docs {
        walk(&d.doc, &d.input, &mut out, 0);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The comparison

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Mismatch {
    endpoint: String,
    path: String,
    aspect: &'static str,
    fal: String,
    krate: String,
}

/// Builds the whole input around one object.
type Put = Rc<dyn Fn(Map<String, Value>) -> Value>;
/// Finds that object in a sent input.
type Get = Rc<dyn Fn(&Value) -> Option<Value>>;

/// Where the object under test sits in a whole input.
#[derive(Clone)]
struct Place {
    /// The path prefix (`""`, `loras[0].`, `image_size.`).
    prefix: String,
    /// The whole input with this object in its place.
    put: Put,
    /// This object in a sent input.
    get: Get,
}

struct Check<'a> {
    endpoint: &'static str,
    doc: &'a Value,
    accept: Accept,
    enums: &'a BTreeMap<String, Vec<Value>>,
    found: Vec<Mismatch>,
}

impl Check<'_> {
    fn mismatch(&mut self, path: &str, aspect: &'static str, fal: String, krate: String) {
        self.found.push(Mismatch {
            endpoint: self.endpoint.to_owned(),
            path: path.to_owned(),
            aspect,
            fal,
            krate,
        });
    }

    /// Send `obj` (in its place); the value at `field` of what was sent, or why it was refused.
    fn send(&self, at: &Place, obj: &Map<String, Value>, field: &str) -> Result<Value, String> {
        match (self.accept)(&(at.put)(obj.clone())) {
            Outcome::Refused(why) => Err(why),
            Outcome::Sent(sent) => Ok((at.get)(&sent)
                .and_then(|o| o.get(field).cloned())
                .unwrap_or(Value::Null)),
        }
    }

    fn accepts(&self, at: &Place, obj: &Map<String, Value>) -> Result<(), String> {
        match (self.accept)(&(at.put)(obj.clone())) {
            Outcome::Refused(why) => Err(why),
            Outcome::Sent(_) => Ok(()),
        }
    }

    /// Check one object schema: `base` is a valid object with fal's required fields.
    fn object(
        &mut self,
        node: &Value,
        base: &Map<String, Value>,
        at: &Place,
        crate_fields: Option<&[&str]>,
    ) {
        let doc = self.doc;
        let node = resolve(doc, node);
        let props = node["properties"].as_object().cloned().unwrap_or_default();
        let required: BTreeSet<&str> = node["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Err(why) = self.accepts(at, base) {
            let path = at.prefix.trim_end_matches('.');
            self.mismatch(
                if path.is_empty() { "(input)" } else { path },
                "required",
                format!("requires only {required:?}"),
                format!("refuses an input with just those: {why}"),
            );
            return;
        }
        if let Some(fields) = crate_fields {
            for name in props.keys() {
                if !fields.contains(&name.as_str()) {
                    self.mismatch(name, "field", "has it".into(), "has no such field".into());
                }
            }
            for name in fields {
                if !props.contains_key(*name) {
                    self.mismatch(name, "field", "has no such field".into(), "has it".into());
                }
            }
        }
        for (name, prop) in &props {
            if crate_fields.is_some_and(|f| !f.contains(&name.as_str())) {
                continue;
            }
            let path = format!("{}{name}", at.prefix);
            if required.contains(name.as_str()) {
                let mut without = base.clone();
                without.remove(name);
                if self.accepts(at, &without).is_ok() {
                    self.mismatch(
                        &path,
                        "required",
                        "requires it".into(),
                        "accepts an input without it".into(),
                    );
                }
            }
            self.field(name, &path, prop, base, at);
        }
    }

    fn field(
        &mut self,
        name: &str,
        path: &str,
        prop: &Value,
        base: &Map<String, Value>,
        at: &Place,
    ) {
        let doc = self.doc;
        let (list, nullable) = branches(doc, prop);
        let with = |v: Value| {
            let mut o = base.clone();
            o.insert(name.to_owned(), v);
            o
        };
        if nullable {
            if let Err(why) = self.accepts(at, &with(Value::Null)) {
                self.mismatch(
                    path,
                    "nullable",
                    "allows null".into(),
                    format!("refuses null: {why}"),
                );
            }
        }
        // `anyOf(enum, string)` (e.g. `aspect_ratio`): the enum values and any other string.
        let open = list.len() > 1
            && list
                .iter()
                .any(|b| b.get("enum").is_none() && b.get("type") == Some(&json!("string")));
        for b in list {
            if let Some(values) = b.get("enum").and_then(Value::as_array) {
                self.enumeration(name, path, values, open, &with, at);
                continue;
            }
            match b.get("type").and_then(Value::as_str) {
                Some("string") => {
                    let sample = if name.ends_with("url") {
                        json!("https://example.com/files/photos.zip")
                    } else {
                        json!("a photo of TOK")
                    };
                    self.sample(path, "string", sample, json!(12345), &with, name, at);
                }
                Some("boolean") => {
                    for v in [true, false] {
                        self.sample(path, "boolean", json!(v), json!("yes"), &with, name, at);
                    }
                }
                Some("integer") => {
                    let v = int_sample(b);
                    self.sample(
                        path,
                        "integer",
                        json!(v),
                        json!(v as f64 + 0.5),
                        &with,
                        name,
                        at,
                    );
                    self.bounds(path, b, true, &with, at);
                }
                Some("number") => {
                    self.sample(
                        path,
                        "number",
                        json!(num_sample(b)),
                        json!("1"),
                        &with,
                        name,
                        at,
                    );
                    self.bounds(path, b, false, &with, at);
                }
                Some("array") => self.array(name, path, b, base, at),
                Some("object") | None if b.get("properties").is_some() => {
                    let key = name.to_owned();
                    let outer = at.clone();
                    let base_outer = base.clone();
                    let inner = Place {
                        prefix: format!("{path}."),
                        put: Rc::new(move |obj| {
                            let mut o = base_outer.clone();
                            o.insert(key.clone(), Value::Object(obj));
                            (outer.put)(o)
                        }),
                        get: {
                            let outer = at.clone();
                            let key = name.to_owned();
                            Rc::new(move |sent| (outer.get)(sent)?.get(&key).cloned())
                        },
                    };
                    let item_base = required_sample(doc, b);
                    self.object(b, &item_base, &inner, None);
                    self.nested_defaults(b, &item_base, &inner);
                }
                other => panic!(
                    "{}: {path}: a schema type the test does not know: {other:?}",
                    self.endpoint
                ),
            }
        }
    }

    /// A value of fal's type goes through unchanged; one of another type is refused.
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &mut self,
        path: &str,
        ty: &str,
        good: Value,
        bad: Value,
        with: &dyn Fn(Value) -> Map<String, Value>,
        name: &str,
        at: &Place,
    ) {
        match self.send(at, &with(good.clone()), name) {
            Ok(sent) if sent == good => {}
            Ok(sent) => self.mismatch(
                path,
                "type",
                format!("{ty} ({good})"),
                format!("sends {sent}"),
            ),
            Err(why) => self.mismatch(
                path,
                "type",
                format!("{ty} ({good})"),
                format!("refuses it: {why}"),
            ),
        }
        if self.accepts(at, &with(bad.clone())).is_ok() {
            self.mismatch(path, "type", ty.to_owned(), format!("accepts {bad}"));
        }
    }

    /// Exactly fal's values are accepted (`open`: at least fal's values, as another branch takes
    /// any string).
    fn enumeration(
        &mut self,
        name: &str,
        path: &str,
        values: &[Value],
        open: bool,
        with: &dyn Fn(Value) -> Map<String, Value>,
        at: &Place,
    ) {
        let mut candidates: Vec<Value> = self.enums.get(name).cloned().unwrap_or_default();
        for v in values {
            if !candidates.contains(v) {
                candidates.push(v.clone());
            }
        }
        if values.iter().all(Value::is_number) {
            let nums: Vec<i64> = values.iter().filter_map(Value::as_i64).collect();
            for extra in [
                nums.iter().min().map(|m| m - 1),
                nums.iter().max().map(|m| m + 1),
            ] {
                candidates.extend(extra.map(|e| json!(e)));
            }
        } else {
            candidates.push(json!("not-a-value-fal-knows"));
        }
        let accepted: Vec<Value> = candidates
            .into_iter()
            .filter(|c| {
                self.send(at, &with(c.clone()), name)
                    .is_ok_and(|sent| same(&sent, c))
            })
            .collect();
        let want: BTreeSet<String> = values.iter().map(plain).collect();
        let got: BTreeSet<String> = accepted.iter().map(plain).collect();
        if want != got && !(open && want.is_subset(&got)) {
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" | ");
            self.mismatch(path, "enum", list(&want), format!("accepts {}", list(&got)));
        }
    }

    fn bounds(
        &mut self,
        path: &str,
        node: &Value,
        integer: bool,
        with: &dyn Fn(Value) -> Map<String, Value>,
        at: &Place,
    ) {
        let multiple = node.get("multipleOf").and_then(Value::as_f64);
        // The value just beyond a bound; with `multipleOf` k, the next multiple (so that the
        // multiple-of check cannot be what refuses it).
        let step = |limit: f64| match (multiple, integer) {
            (Some(k), _) => k,
            (None, true) => 1.0,
            (None, false) => (limit.abs() * 1e-3).max(1e-9),
        };
        let num = |v: f64| if integer { json!(v as i64) } else { json!(v) };
        let check = |this: &mut Self, aspect: &'static str, fal: String, v: f64, ok: bool| {
            let accepted = this.accepts(at, &with(num(v))).is_ok();
            if accepted != ok {
                let verb = if accepted { "accepts" } else { "refuses" };
                this.mismatch(path, aspect, fal, format!("{verb} {}", num(v)));
            }
        };
        match (
            node.get("minimum").and_then(Value::as_f64),
            node.get("exclusiveMinimum").and_then(Value::as_f64),
        ) {
            (Some(m), _) => {
                check(self, "minimum", format!(">= {m}"), m, true);
                check(self, "minimum", format!(">= {m}"), m - step(m), false);
            }
            (None, Some(m)) => {
                check(self, "minimum", format!("> {m}"), m, false);
                check(self, "minimum", format!("> {m}"), m + step(m), true);
            }
            (None, None) => check(self, "minimum", "none".into(), -1.0, true),
        }
        match node.get("maximum").and_then(Value::as_f64) {
            Some(m) => {
                check(self, "maximum", format!("<= {m}"), m, true);
                check(self, "maximum", format!("<= {m}"), m + step(m), false);
            }
            None => check(self, "maximum", "none".into(), 1e6, true),
        }
        if let Some(k) = multiple {
            let lo = node.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
            check(self, "multipleOf", format!("{k}"), lo + k, true);
            check(self, "multipleOf", format!("{k}"), lo + k / 2.0, false);
        }
    }

    fn array(
        &mut self,
        name: &str,
        path: &str,
        node: &Value,
        base: &Map<String, Value>,
        at: &Place,
    ) {
        let doc = self.doc;
        let item = resolve(doc, &node["items"]);
        let item_base = required_sample(doc, item);
        let five = |o: &Map<String, Value>| {
            let mut b = base.clone();
            b.insert(
                name.to_owned(),
                Value::Array(vec![Value::Object(o.clone()); 5]),
            );
            b
        };
        match node.get("maxItems").and_then(Value::as_u64) {
            None => {
                if let Err(why) = self.accepts(at, &five(&item_base)) {
                    self.mismatch(
                        path,
                        "maxItems",
                        "none".into(),
                        format!("refuses 5 items: {why}"),
                    );
                }
            }
            Some(max) => panic!("{path}: maxItems {max} is not probed yet"),
        }
        let key = name.to_owned();
        let outer = at.clone();
        let base_outer = base.clone();
        let inner = Place {
            prefix: format!("{path}[0]."),
            put: Rc::new(move |obj| {
                let mut o = base_outer.clone();
                o.insert(key.clone(), json!([obj]));
                (outer.put)(o)
            }),
            get: {
                let outer = at.clone();
                let key = name.to_owned();
                Rc::new(move |sent| (outer.get)(sent)?.get(&key)?.get(0).cloned())
            },
        };
        self.object(item, &item_base, &inner, None);
        self.nested_defaults(item, &item_base, &inner);
    }

    /// In a nested object, a field left out reads as fal's default.
    fn nested_defaults(&mut self, node: &Value, base: &Map<String, Value>, at: &Place) {
        let props = node["properties"].as_object().cloned().unwrap_or_default();
        for (name, prop) in props {
            let Some(default) = prop.get("default") else {
                continue;
            };
            let mut without = base.clone();
            without.remove(&name);
            if let Ok(sent) = self.send(at, &without, &name) {
                if !sent.is_null() && !same(&sent, default) {
                    let path = format!("{}{name}", at.prefix);
                    self.mismatch(
                        &path,
                        "default",
                        default.to_string(),
                        format!("reads a missing value as {sent}"),
                    );
                }
            }
        }
    }

    /// `with_fal_defaults()` against fal's defaults.
    fn defaults(&mut self, input: &Value, filled: &Value, crate_fields: &[&str]) {
        let required = input["required"].as_array().cloned().unwrap_or_default();
        for (name, prop) in input["properties"].as_object().into_iter().flatten() {
            if !crate_fields.contains(&name.as_str()) || required.contains(&json!(name)) {
                continue;
            }
            let got = filled.get(name).cloned().unwrap_or(Value::Null);
            match prop.get("default") {
                Some(Value::Array(a)) if a.is_empty() && (got.is_null() || got == json!([])) => {}
                Some(d) if same(&got, d) => {}
                Some(d) => self.mismatch(name, "default", d.to_string(), format!("fills in {got}")),
                None if got.is_null() => {}
                None => self.mismatch(name, "default", "none".into(), format!("fills in {got}")),
            }
        }
    }
}

/// A JSON value as text, strings without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn int_sample(node: &Value) -> i64 {
    let mut v = node
        .get("default")
        .and_then(Value::as_i64)
        .or_else(|| node.get("minimum").and_then(Value::as_i64))
        .or_else(|| {
            node.get("exclusiveMinimum")
                .and_then(Value::as_i64)
                .map(|m| m + 1)
        })
        .unwrap_or(7);
    if let Some(k) = node.get("multipleOf").and_then(Value::as_i64) {
        v = (v + k - 1) / k * k;
    }
    v
}

/// A non-integral number in range (so that an integer field shows up as a type mismatch).
fn num_sample(node: &Value) -> f64 {
    let lo = node.get("minimum").and_then(Value::as_f64);
    let hi = node.get("maximum").and_then(Value::as_f64);
    match (node.get("default").and_then(Value::as_f64), lo, hi) {
        (Some(d), _, _) if d.fract() != 0.0 => d,
        (_, Some(lo), Some(hi)) => lo + (hi - lo) * 0.37,
        (_, Some(lo), None) => lo + 0.37,
        _ => 0.37,
    }
}

/// An object with fal's required fields set to valid values.
fn required_sample(doc: &Value, node: &Value) -> Map<String, Value> {
    let node = resolve(doc, node);
    let mut out = Map::new();
    for name in node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let (list, _) = branches(doc, &node["properties"][name]);
        let b = list.first().copied().unwrap_or(&Value::Null);
        let v = if let Some(e) = b.get("enum").and_then(Value::as_array) {
            e[0].clone()
        } else {
            match b.get("type").and_then(Value::as_str) {
                Some("integer") => json!(int_sample(b)),
                Some("number") => json!(num_sample(b)),
                Some("boolean") => json!(true),
                _ if name.ends_with("url") => json!("https://example.com/files/photos.zip"),
                _ => json!(format!("sample {name}")),
            }
        };
        out.insert(name.to_owned(), v);
    }
    out
}

fn compare(t: &Typed, doc: &Document, enums: &BTreeMap<String, Vec<Value>>) -> Vec<Mismatch> {
    let mut check = Check {
        endpoint: t.endpoint,
        doc: &doc.doc,
        accept: Rc::clone(&t.accept),
        enums,
        found: Vec::new(),
    };
    let top = Place {
        prefix: String::new(),
        put: Rc::new(Value::Object),
        get: Rc::new(|sent| Some(sent.clone())),
    };
    let base = required_sample(&doc.doc, &doc.input);
    check.object(&doc.input, &base, &top, Some(t.fields));
    if check.accepts(&top, &base).is_ok() {
        let filled = (t.fal_defaults)(&Value::Object(base));
        check.defaults(&doc.input, &filled, t.fields);
    }
    check.found
}

/// The mismatches [`ALLOWED`] does not explain; records the entries used in `used`.
fn unexplained(found: Vec<Mismatch>, used: &mut BTreeSet<usize>) -> Vec<Mismatch> {
    let mut left = Vec::new();
    for m in found {
        let allowed = ALLOWED.iter().position(|(e, p, a, _)| {
            e.split_whitespace().any(|e| e == m.endpoint) && *p == m.path && *a == m.aspect
        });
        match allowed {
            Some(i) => {
                used.insert(i);
            }
            None => left.push(m),
        }
    }
    left
}

/// Compare every typed endpoint with its document: the mismatches not allowed, and the
/// allow-list entries no mismatch used.
fn run(
    typed: &[Typed],
) -> (
    Vec<Mismatch>,
    Vec<(&'static str, &'static str, &'static str)>,
) {
    let docs: Vec<Document> = typed.iter().map(|t| load(t.document)).collect();
    let enums = enum_values(&docs);
    let mut left = Vec::new();
    let mut used = BTreeSet::new();
    for (t, d) in typed.iter().zip(&docs) {
        left.extend(unexplained(compare(t, d, &enums), &mut used));
    }
    let stale = ALLOWED
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, (e, p, a, _))| (*e, *p, *a))
        .collect();
    left.sort();
    left.dedup();
    (left, stale)
}

fn report(mismatches: &[Mismatch], stale: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    if !mismatches.is_empty() {
        let _ = writeln!(
            out,
            "the typed inputs and fal's OpenAPI documents (tests/fixtures/openapi) disagree:\n"
        );
        let _ = writeln!(
            out,
            "  {:<38} {:<24} {:<10} {:<40} the crate",
            "endpoint", "field", "aspect", "fal's document"
        );
        for m in mismatches {
            let _ = writeln!(
                out,
                "  {:<38} {:<24} {:<10} {:<40} {}",
                m.endpoint, m.path, m.aspect, m.fal, m.krate
            );
        }
        let _ = writeln!(
            out,
            "\nFix the typed input, or, where the crate differs on purpose, add an entry with the \
             reason to ALLOWED in tests/schemas.rs."
        );
    }
    if !stale.is_empty() {
        let _ = writeln!(
            out,
            "\nallow-list entries that no longer match a difference (remove them): {stale:?}"
        );
    }
    out
}

#[test]
fn typed_inputs_match_fal_s_openapi_documents() {
    let typed = endpoints();
    let (mismatches, stale) = run(&typed);
    assert!(
        mismatches.is_empty() && stale.is_empty(),
        "\n{}",
        report(&mismatches, &stale)
    );
}

#[test]
fn every_typed_endpoint_is_compared() {
    let compared: BTreeSet<&str> = endpoints().iter().map(|t| t.endpoint).collect();
    let typed: BTreeSet<&str> = Trainer::ALL
        .iter()
        .map(|t| t.endpoint_id())
        .chain(Generator::ALL.iter().map(|g| g.endpoint_id()))
        .collect();
    assert_eq!(compared, typed);
    for t in endpoints() {
        assert!(!t.fields.is_empty(), "{}: no fields read", t.endpoint);
    }
}

/// The check itself finds differences: a document with one enum value changed, a bound moved and
/// a field added fails with those three rows.
#[test]
fn an_edited_document_is_reported_field_by_field() {
    let mut doc = load("flux-2_lora.openapi.json");
    let props = doc.input["properties"].as_object_mut().unwrap();
    props["output_format"]["enum"] = json!(["jpeg", "png", "avif"]);
    props["num_inference_steps"]["maximum"] = json!(60);
    props.insert(
        "negative_prompt".into(),
        json!({"type": "string", "default": ""}),
    );
    let t = typed::<Flux2Lora>(
        "flux-2_lora.openapi.json",
        Flux2LoraInput::with_fal_defaults,
    );
    let docs = vec![load("flux-2_lora.openapi.json")];
    let enums = enum_values(&docs);
    let found = unexplained(compare(&t, &doc, &enums), &mut BTreeSet::new());
    let rows: Vec<(&str, &str)> = found.iter().map(|m| (m.path.as_str(), m.aspect)).collect();
    assert_eq!(
        rows,
        [
            ("negative_prompt", "field"),
            ("num_inference_steps", "maximum"),
            ("output_format", "enum")
        ],
        "{}",
        report(&found, &[])
    );
    let text = report(&found, &[]);
    assert!(text.contains("avif | jpeg | png"), "{text}");
    assert!(text.contains("accepts jpeg | png | webp"), "{text}");
}
