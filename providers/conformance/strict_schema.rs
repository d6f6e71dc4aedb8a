//! A strict checker for the JSON Schema subset the conformance schemas
//! under `providers/*/tests/schema/` use, shared by the provider crates'
//! `tests/conformance.rs` through `#[path]`.
//!
//! Strict where a general validator is lenient, because the point is to
//! catch what a provider's parser refuses:
//!
//! - an object schema with `properties` is **closed** unless it says
//!   `additionalProperties` (`true` or a schema): an unknown field fails,
//!   as it does in a protobuf-backed API (Gemini) or a strict server;
//! - `allOf` branches are merged into one object (properties, required)
//!   before the check, so closedness spans the whole composition;
//! - `oneOf` needs exactly one matching branch, `anyOf` at least one.
//!
//! Supported keywords: `$ref` (`#/$defs/Name`), `type` (a name or a list),
//! `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `minItems`, `maxItems`, `minimum`, `maximum`, `minLength`,
//! `allOf`, `anyOf`, `oneOf`. `{}` accepts anything. Keys starting with
//! `x-`, `$comment` and `description` are notes. Any other keyword is an
//! error in the schema file itself, so a typo cannot silently pass.

use serde_json::{Map, Value};

/// A schema document: `{"$defs": {...}}` plus notes.
pub(crate) struct Schemas {
    defs: Map<String, Value>,
}

const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "allOf",
    "anyOf",
    "oneOf",
    "description",
    "$comment",
];

impl Schemas {
    /// Reads a schema document, checking that it uses only known keywords.
    pub(crate) fn parse(text: &str) -> Self {
        let doc: Value = serde_json::from_str(text).expect("the schema file is JSON");
        let defs = doc["$defs"].as_object().expect("a $defs object").clone();
        let s = Schemas { defs };
        for (name, def) in &s.defs {
            s.lint(def, name);
        }
        s
    }

    fn lint(&self, schema: &Value, at: &str) {
        let Some(obj) = schema.as_object() else {
            assert!(
                schema.is_boolean(),
                "{at}: a schema is an object or a boolean"
            );
            return;
        };
        for (k, v) in obj {
            if k.starts_with("x-") {
                continue;
            }
            assert!(KNOWN.contains(&k.as_str()), "{at}: unknown keyword `{k}`");
            match k.as_str() {
                "$ref" => {
                    let name = v.as_str().and_then(|r| r.strip_prefix("#/$defs/"));
                    assert!(
                        name.is_some_and(|n| self.defs.contains_key(n)),
                        "{at}: dangling $ref {v}"
                    );
                }
                "properties" => {
                    for (p, s) in v.as_object().expect("properties is an object") {
                        self.lint(s, &format!("{at}.{p}"));
                    }
                }
                "items" | "additionalProperties" => self.lint(v, &format!("{at}/{k}")),
                "allOf" | "anyOf" | "oneOf" => {
                    for (i, s) in v.as_array().expect("a list of schemas").iter().enumerate() {
                        self.lint(s, &format!("{at}/{k}[{i}]"));
                    }
                }
                _ => {}
            }
        }
    }

    /// Checks `value` against the definition `name`; the errors, each with
    /// the JSON path where it was found.
    pub(crate) fn check(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let def = self
            .defs
            .get(name)
            .unwrap_or_else(|| panic!("no definition {name}"));
        self.validate(def, value, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(&self.defs[r.trim_start_matches("#/$defs/")]),
            None => schema,
        }
    }

    /// `allOf` flattened: one object schema with every branch's
    /// properties and required fields, and the other keywords of the first
    /// branch that has them.
    fn merged(&self, schema: &Value) -> Value {
        let schema = self.resolve(schema);
        let Some(all) = schema.get("allOf").and_then(Value::as_array) else {
            return schema.clone();
        };
        let mut out = schema.as_object().cloned().unwrap_or_default();
        out.remove("allOf");
        let mut props = out
            .remove("properties")
            .and_then(|p| p.as_object().cloned())
            .unwrap_or_default();
        let mut required: Vec<Value> = out
            .remove("required")
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        for branch in all {
            let b = self.merged(branch);
            for (k, v) in b.as_object().into_iter().flatten() {
                match k.as_str() {
                    "properties" => props.extend(v.as_object().cloned().unwrap_or_default()),
                    "required" => required.extend(v.as_array().cloned().unwrap_or_default()),
                    _ => {
                        out.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        out.insert("properties".into(), Value::Object(props));
        out.insert("required".into(), Value::Array(required));
        Value::Object(out)
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if schema == &Value::Bool(true) {
            return;
        }
        if schema == &Value::Bool(false) {
            errors.push(format!("{at}: no value is allowed here"));
            return;
        }
        let schema = self.merged(schema);
        let s = schema.as_object().cloned().unwrap_or_default();
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.iter().any(|t| type_matches(t, value)) {
                errors.push(format!(
                    "{at}: expected {}, got {value}",
                    types.join(" or ")
                ));
                return;
            }
        }
        if let Some(Value::Array(allowed)) = s.get("enum") {
            if !allowed.contains(value) {
                errors.push(format!(
                    "{at}: {value} is not one of {}",
                    Value::Array(allowed.clone())
                ));
            }
        }
        if let Some(c) = s.get("const") {
            if c != value {
                errors.push(format!("{at}: expected {c}, got {value}"));
            }
        }
        if let (Some(n), Some(min)) = (value.as_f64(), s.get("minimum").and_then(Value::as_f64)) {
            if n < min {
                errors.push(format!("{at}: {n} is below the minimum {min}"));
            }
        }
        if let (Some(n), Some(max)) = (value.as_f64(), s.get("maximum").and_then(Value::as_f64)) {
            if n > max {
                errors.push(format!("{at}: {n} is above the maximum {max}"));
            }
        }
        if let (Some(text), Some(min)) =
            (value.as_str(), s.get("minLength").and_then(Value::as_u64))
        {
            if (text.chars().count() as u64) < min {
                errors.push(format!("{at}: shorter than {min} characters"));
            }
        }
        if let Value::Object(obj) = value {
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str() {
                    if !obj.contains_key(r) {
                        errors.push(format!("{at}: the required field `{r}` is missing"));
                    }
                }
            }
            for (k, v) in obj {
                let path = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(ps), _) => self.validate(ps, v, &path, errors),
                    (None, Some(extra)) => self.validate(extra, v, &path, errors),
                    (None, None) if props.is_some() => {
                        errors.push(format!("{at}: unknown field `{k}`"))
                    }
                    (None, None) => {}
                }
            }
        }
        if let Value::Array(items) = value {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    errors.push(format!("{at}: fewer than {min} items"));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if (items.len() as u64) > max {
                    errors.push(format!("{at}: more than {max} items"));
                }
            }
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.validate(item, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(branches) = s.get(key).and_then(Value::as_array) else {
                continue;
            };
            let results: Vec<Vec<String>> = branches
                .iter()
                .map(|b| {
                    let mut e = Vec::new();
                    self.validate(b, value, at, &mut e);
                    e
                })
                .collect();
            let matching = results.iter().filter(|e| e.is_empty()).count();
            if matching == 0 {
                // The branch that came closest says the most.
                let best = results
                    .iter()
                    .min_by_key(|e| e.len())
                    .cloned()
                    .unwrap_or_default();
                errors.push(format!(
                    "{at}: matches no branch of {key}; closest: {}",
                    best.join("; ")
                ));
            } else if exactly_one && matching > 1 {
                errors.push(format!("{at}: matches {matching} branches of oneOf"));
            }
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Panics with every error when `value` does not conform to `name`.
pub(crate) fn assert_conforms(schemas: &Schemas, name: &str, value: &Value, what: &str) {
    let errors = schemas.check(name, value);
    assert!(
        errors.is_empty(),
        "{what} does not conform to {name}:\n  {}\nbody: {value:#}",
        errors.join("\n  ")
    );
}
