//! The published JSON Schema of every event (`docs/events.schema.json`),
//! compiled once (draft 2020-12, the `jsonschema` crate), and the check the
//! suites run on what they receive and store: [`check_body`] for a standard
//! webhook body, [`check_row`] for an `events` row (its `data` in the body it
//! is sent as).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The schema as published.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
        let text = std::fs::read_to_string(path).expect("docs/events.schema.json");
        serde_json::from_str(&text).expect("the schema is JSON")
    })
}

/// The `type` each `oneOf` branch is for, and the name of its `$defs` entry.
pub fn branches() -> BTreeMap<String, String> {
    let s = schema();
    s["oneOf"]
        .as_array()
        .expect("a oneOf of branches")
        .iter()
        .map(|branch| {
            let reference = branch["$ref"].as_str().expect("a $ref per branch");
            let name = reference.strip_prefix("#/$defs/").expect("a local $ref");
            let event_type = s["$defs"][name]["properties"]["type"]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no `type` const"));
            (event_type.to_owned(), name.to_owned())
        })
        .collect()
}

fn whole() -> &'static jsonschema::Validator {
    static WHOLE: OnceLock<jsonschema::Validator> = OnceLock::new();
    WHOLE.get_or_init(|| jsonschema::draft202012::new(schema()).expect("a valid JSON Schema"))
}

/// The errors of `instance` against the schema's branch `name` (for
/// messages that name the field, where `oneOf` only says "none matched").
fn branch_errors(name: &str, instance: &Value) -> Vec<String> {
    let mut one = schema().clone();
    let object = one.as_object_mut().unwrap();
    object.remove("oneOf");
    object.insert("$ref".into(), json!(format!("#/$defs/{name}")));
    let validator = jsonschema::draft202012::new(&one).expect("a valid branch");
    validator
        .iter_errors(instance)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Whether a standard webhook body (`{"type", "timestamp", "data"}`) is valid
/// against the schema; the errors, with the fields they are about, if not.
pub fn check_body(body: &Value) -> Result<(), String> {
    if whole().is_valid(body) {
        return Ok(());
    }
    let event_type = body["type"].as_str().unwrap_or("(no type)");
    let detail = match branches().get(event_type) {
        Some(name) => branch_errors(name, body).join("; "),
        None => format!("no schema for type {event_type:?}"),
    };
    Err(format!("{event_type}: {detail}\n  body: {body}"))
}

/// [`check_body`] for an `events` row: its data as the body it is sent in.
pub fn check_row(event_type: &str, occurred_at: &str, data: &Value) -> Result<(), String> {
    check_body(&json!({ "type": event_type, "timestamp": occurred_at, "data": data }))
}
