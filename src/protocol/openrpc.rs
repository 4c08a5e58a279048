//! `rpc.discover`: the OpenRPC 1.x document of this build's protocol,
//! generated from the method table ([`Request::describe`]) and the
//! `JsonSchema` derives of the params and result types, so it cannot drift
//! from what the daemon parses and sends.
//!
//! Shape of the document:
//! - one method object per table line, `paramStructure: "by-name"`, one
//!   content descriptor per member of the params object, and `x-params`: a
//!   `$ref` to the whole params object's schema (with
//!   `additionalProperties: false` where the daemon refuses unknown members:
//!   validate a request's params against it to get the daemon's answer);
//! - params schemas use schemars' deserialize contract (what the daemon
//!   accepts: a member with a default is optional), results the serialize
//!   contract (what it sends: a member always written is required);
//! - `components.schemas`: every named type; `components.errors`: the
//!   JSON-RPC codes and one per `data.kind`;
//! - `x-notifications`: `session.output`, `session.reset`, `session.exit`
//!   (OpenRPC 1.x has no notifications; an `x-` member is its extension
//!   point), each like a method without a result;
//! - the test-hooks methods (`debug.*`, built only with the `test-hooks`
//!   feature) are listed when the build answers them, marked
//!   `x-test-only: true`: the document describes exactly what this daemon
//!   answers, and a release build has none of them.

use std::borrow::Cow;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::envelope::{
    ErrorKind, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
use super::methods::{Described, Request};
use super::streams::{notification, Exit, Output, Reset};

/// The OpenRPC specification version the document follows.
pub const OPENRPC_VERSION: &str = "1.2.6";

/// Where the document keeps its named schemas (a JSON pointer).
const SCHEMAS: &str = "/components/schemas";

/// The `rpc.discover` result: an OpenRPC document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpenRpcDocument(pub Value);

impl JsonSchema for OpenRpcDocument {
    fn schema_name() -> Cow<'static, str> {
        "OpenRpcDocument".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An OpenRPC 1.x document (https://spec.open-rpc.org).",
            "type": "object",
            "required": ["openrpc", "info", "methods"],
        })
    }
}

/// The document, built once per process.
pub fn document() -> &'static OpenRpcDocument {
    static DOC: OnceLock<OpenRpcDocument> = OnceLock::new();
    DOC.get_or_init(|| OpenRpcDocument(generate()))
}

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = SCHEMAS.into();
        s.meta_schema = None;
    });
    let settings = if serialize { settings.for_serialize() } else { settings.for_deserialize() };
    settings.into_generator()
}

/// Builds the document.
pub fn generate() -> Value {
    let mut params = generator(false);
    let mut results = generator(true);
    let methods = Request::describe(&mut params, &mut results);
    let notifications = [
        (notification::OUTPUT, params.subschema_for::<Output>(), "Output since the last one."),
        (
            notification::RESET,
            params.subschema_for::<Reset>(),
            "Draw the screen, then output continues at offset.",
        ),
        (
            notification::EXIT,
            params.subschema_for::<Exit>(),
            "The session ended; the subscription is over.",
        ),
    ];
    let mut schemas = params.take_definitions(true);
    let mut sent = results.take_definitions(true);
    // A type both accepted and sent whose two schemas differ keeps both: the
    // sent one as `<Name>Sent`.
    let clashes: Vec<String> = sent
        .iter()
        .filter(|(name, schema)| schemas.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| name.clone())
        .collect();
    let mut result_schemas: Vec<Value> =
        methods.iter().map(|m| m.result.as_value().clone()).collect();
    for name in &clashes {
        let from = format!("#{SCHEMAS}/{name}");
        let to = format!("#{SCHEMAS}/{name}Sent");
        for v in sent.values_mut().chain(result_schemas.iter_mut()) {
            rename_ref(v, &from, &to);
        }
        if let Some(v) = sent.remove(name) {
            sent.insert(format!("{name}Sent"), v);
        }
    }
    for (name, schema) in sent {
        schemas.entry(name).or_insert(schema);
    }

    let methods: Vec<Value> =
        methods.iter().zip(result_schemas).map(|(m, result)| method(m, result, &schemas)).collect();
    let notifications: Vec<Value> = notifications
        .into_iter()
        .map(|(name, schema, summary)| {
            let schema = schema.to_value();
            json!({
                "name": name,
                "summary": summary,
                "paramStructure": "by-name",
                "params": descriptors(&schema, &schemas),
                "x-params": schema,
            })
        })
        .collect();
    json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "ccmanagerd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "JSON-RPC 2.0 over a Unix socket, one JSON text per line. docs/protocol.md is the prose reference.",
            "license": {"name": env!("CARGO_PKG_LICENSE")},
        },
        "methods": methods,
        "components": {"schemas": schemas, "errors": errors()},
        "x-notifications": notifications,
    })
}

fn method(m: &Described, result: Value, schemas: &Map<String, Value>) -> Value {
    let params = m.params.as_value().clone();
    let mut out = json!({
        "name": m.name,
        "paramStructure": "by-name",
        "params": descriptors(&params, schemas),
        "result": {"name": result_name(m.result_type), "schema": result},
        "x-params": params,
    });
    if !m.summary.is_empty() {
        out["summary"] = m.summary.into();
    }
    if m.name.starts_with("debug.") {
        out["x-test-only"] = true.into();
    }
    out
}

/// `Session` -> `Session`; `()` -> `null`.
fn result_name(ty: &str) -> String {
    let name: String = ty.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if name.is_empty() {
        "null".into()
    } else {
        name
    }
}

/// One content descriptor per member of the params object `schema` (a
/// `$ref` into `schemas`, or the object itself).
fn descriptors(schema: &Value, schemas: &Map<String, Value>) -> Vec<Value> {
    let object = resolve(schema, schemas);
    let required: Vec<&str> = object
        .and_then(|o| o.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = object.and_then(|o| o.get("properties")).and_then(Value::as_object)
    else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut d = json!({"name": name, "schema": schema, "required": required.contains(&name.as_str())});
            if let Some(text) = schema.get("description") {
                d["description"] = text.clone();
            }
            d
        })
        .collect()
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Map<String, Value>) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => schemas.get(r.strip_prefix(&format!("#{SCHEMAS}/"))?),
        None => Some(schema),
    }
}

fn rename_ref(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "$ref" && x.as_str() == Some(from) {
                    *x = to.into();
                } else {
                    rename_ref(x, from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_ref(x, from, to)),
        _ => {}
    }
}

/// Every application error kind. Adding one to [`ErrorKind`] breaks the
/// `match` in [`errors`] until it is listed here too.
const KINDS: [ErrorKind; 11] = [
    ErrorKind::SessionNotFound,
    ErrorKind::LimitReached,
    ErrorKind::TmuxUnavailable,
    ErrorKind::PermissionDenied,
    ErrorKind::TooManyConnections,
    ErrorKind::ShuttingDown,
    ErrorKind::InvalidState,
    ErrorKind::InvalidConfig,
    ErrorKind::TmuxError,
    ErrorKind::SpawnFailed,
    ErrorKind::StateNotSaved,
];

fn errors() -> Map<String, Value> {
    let mut out = Map::new();
    for (name, code, message) in [
        ("ParseError", PARSE_ERROR, "Parse error"),
        ("InvalidRequest", INVALID_REQUEST, "Invalid request"),
        ("MethodNotFound", METHOD_NOT_FOUND, "Method not found"),
        ("InvalidParams", INVALID_PARAMS, "Invalid params: the message names the member"),
        ("InternalError", INTERNAL_ERROR, "Internal error"),
    ] {
        out.insert(name.into(), json!({"code": code, "message": message}));
    }
    for kind in KINDS {
        match kind {
            ErrorKind::SessionNotFound
            | ErrorKind::LimitReached
            | ErrorKind::TmuxUnavailable
            | ErrorKind::PermissionDenied
            | ErrorKind::TooManyConnections
            | ErrorKind::ShuttingDown
            | ErrorKind::InvalidState
            | ErrorKind::InvalidConfig
            | ErrorKind::TmuxError
            | ErrorKind::SpawnFailed
            | ErrorKind::StateNotSaved => {}
        }
        out.insert(
            kind.as_str().into(),
            json!({"code": kind.code(), "message": kind.as_str(), "data": {"kind": kind.as_str()}}),
        );
    }
    out
}

#[cfg(test)]
#[path = "openrpc_tests.rs"]
mod tests;
