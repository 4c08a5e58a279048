//! `rpc.discover` through the daemon's real socket: the document is valid
//! OpenRPC (checked against the published meta-schema with the `jsonschema`
//! crate), names exactly the methods the daemon answers, and its schemas
//! accept and refuse the same params the daemon does and describe the
//! results it really sends.
//!
//! The meta-schema comes from the npm registry (`@open-rpc/meta-schema`,
//! which `$ref`s `@json-schema-tools/meta-schema`), fetched once with
//! `npm pack` into this build's target dir: nothing vendored, no other
//! network.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ccmanagerd::client::ClientError;
use ccmanagerd::protocol::Request;
use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};

use common::daemon::TestDaemon;

const OPENRPC_META: &str = "@open-rpc/meta-schema@1.14.9";
const JSON_SCHEMA_TOOLS_META: &str = "@json-schema-tools/meta-schema@1.8.0";

/// Unpacks npm package `spec` into `dir/<name>/package` (once) and returns
/// that path.
fn npm_package(dir: &Path, name: &str, spec: &str) -> PathBuf {
    let out = dir.join(name);
    let package = out.join("package");
    if package.join("package.json").exists() {
        return package;
    }
    std::fs::create_dir_all(&out).unwrap();
    let pack = Command::new("npm")
        .args(["pack", "--silent", spec, "--pack-destination"])
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("npm (to fetch {spec}) cannot run: {e}"));
    assert!(pack.status.success(), "npm pack {spec}: {}", String::from_utf8_lossy(&pack.stderr));
    let tgz = String::from_utf8_lossy(&pack.stdout).trim().to_string();
    let tar = Command::new("tar").arg("xzf").arg(out.join(&tgz)).arg("-C").arg(&out).status();
    assert!(tar.unwrap().success(), "unpacking {tgz}");
    package
}

/// The OpenRPC meta-schema, and the JSON Schema meta-schema it refers to.
fn meta_schemas() -> (Value, Value) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openrpc-meta");
    let openrpc = npm_package(&dir, "openrpc", OPENRPC_META);
    // The package ships it as `exports.openrpcDocument = {JSON};` in index.js.
    let js = std::fs::read_to_string(openrpc.join("index.js")).unwrap();
    let line = js
        .lines()
        .filter_map(|l| l.strip_prefix("exports.openrpcDocument = "))
        .find(|rest| rest.starts_with('{'))
        .expect("openrpcDocument in index.js");
    let mut openrpc: Value = serde_json::from_str(line.trim_end().trim_end_matches(';')).unwrap();
    let tools = npm_package(&dir, "json-schema-tools", JSON_SCHEMA_TOOLS_META);
    let mut tools: Value =
        serde_json::from_str(&std::fs::read_to_string(tools.join("schema.json")).unwrap()).unwrap();
    // Both name a custom meta-schema URL as `$schema`; they are draft 7.
    openrpc.as_object_mut().unwrap().remove("$schema");
    tools.as_object_mut().unwrap().remove("$schema");
    (openrpc, tools)
}

fn openrpc_validator(doc: &Value) -> Vec<String> {
    let (meta, tools) = meta_schemas();
    let tools = Draft::Draft7.create_resource(tools);
    let registry = Registry::new()
        .add("https://meta.json-schema.tools", tools.clone())
        .unwrap()
        .add("https://meta.json-schema.tools/", tools)
        .unwrap()
        .prepare()
        .unwrap();
    let v = jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_registry(&registry)
        .build(&meta)
        .expect("the meta-schema compiles");
    // Not vacuous: a document without methods is refused.
    assert!(!v.is_valid(&json!({"openrpc": "1.2.6", "info": {"title": "x", "version": "1"}})));
    v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// A validator of `schema` (a `$ref` into the document or a whole schema)
/// with the document's components beside it.
fn validator(doc: &Value, schema: &Value) -> Validator {
    let root = json!({"allOf": [schema], "components": doc["components"]});
    jsonschema::options().with_draft(Draft::Draft7).build(&root).expect("schema compiles")
}

fn method<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the document"))
}

fn code(r: &Result<Value, ClientError>) -> Option<i64> {
    match r {
        Err(ClientError::Rpc(e)) => Some(e.code),
        Err(e) => panic!("{e}"),
        Ok(_) => None,
    }
}

#[test]
fn the_document_is_valid_openrpc_and_lists_every_method() {
    let d = TestDaemon::start("");
    let doc = d.ok("rpc.discover", json!({}));
    let errors = openrpc_validator(&doc);
    assert!(errors.is_empty(), "not valid OpenRPC:\n{}", errors.join("\n"));
    // And a broken document is caught (the validation is not vacuous).
    let mut broken = doc.clone();
    broken["methods"][0]["paramStructure"] = json!("by-magic");
    assert!(!openrpc_validator(&broken).is_empty());

    let mut listed: Vec<&str> =
        doc["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    // Every name the daemon's table parses is documented, and nothing else.
    let mut table = Request::names();
    listed.sort_unstable();
    table.sort_unstable();
    assert_eq!(listed, table);
    // Every documented name is answered (an error about the params is an
    // answer; -32601 is not).
    for name in &listed {
        let r = d.call(name, json!({}));
        assert_ne!(code(&r), Some(-32601), "{name} is documented but not answered");
    }
    for unknown in ["rpc.nothing", "session.restart2", "nope"] {
        assert_eq!(code(&d.call(unknown, json!({}))), Some(-32601), "{unknown}");
    }
    assert!(doc["x-notifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["name"] == "session.output"));
    println!("rpc.discover: {} methods, {} bytes", listed.len(), doc.to_string().len());
}

/// The params schemas refuse what the daemon refuses (-32602) and accept
/// what it accepts, and the results it sends match the result schemas.
#[test]
fn schemas_agree_with_the_daemon() {
    let d = TestDaemon::start("");
    let doc = d.ok("rpc.discover", json!({}));
    let cases = [
        ("daemon.ping", json!({"x": 1}), false),
        ("daemon.ping", json!({}), true),
        ("session.create", json!({"command": ["sh"], "bogus": 1}), false),
        ("session.create", json!({"command": "ls -l"}), false),
        ("session.create", json!({"command": ["true"], "limits": {"nofile": "lots"}}), false),
        ("session.create", json!({"command": ["true"], "limits": {"nofiles": 64}}), false),
        ("session.create", json!({"command": ["true"], "user": -1}), false),
        ("session.get", json!({"id": 5}), false),
        ("session.get", json!({}), false),
        ("session.resize", json!({"id": "zz", "cols": 70000, "rows": 10}), false),
        ("session.subscribe", json!({"id": "zz", "from": "later"}), false),
        ("session.subscribe", json!({"id": "zz", "from": -1}), false),
        ("session.subscribe", json!({"id": "zz", "from": "now"}), true),
        ("session.write", json!({"id": "zz", "data": "%%"}), false),
        ("session.write", json!({"id": "zz", "data": "aGk="}), true),
        ("session.list", json!({"state": "sleeping"}), false),
        ("session.list", json!({"fields": ["id", "colour"]}), false),
        ("session.list", json!({"state": "running", "fields": ["id"]}), true),
        ("cleanup.run", json!({"dry_run": "yes"}), false),
    ];
    for (name, params, accepted) in cases {
        let schema = &method(&doc, name)["x-params"];
        let by_schema = validator(&doc, schema).is_valid(&params);
        let by_daemon = code(&d.call(name, params.clone())) != Some(-32602);
        assert_eq!(by_schema, accepted, "schema of {name} on {params}");
        assert_eq!(by_daemon, accepted, "daemon on {name} {params}");
    }

    // Results as sent validate against the result schemas.
    let created = d
        .ok("session.create", json!({"command": ["cat"], "name": "x", "limits": {"nofile": "1K"}}));
    let id = created["id"].as_str().unwrap().to_string();
    let calls = [
        ("session.create", json!({"command": ["sh", "-c", "echo hi; sleep 30"]})),
        ("session.get", json!({"id": id})),
        ("session.list", json!({})),
        ("session.capture", json!({"id": id})),
        ("session.read", json!({"id": id})),
        ("session.send", json!({"id": id, "text": "hello", "enter": true})),
        ("session.write", json!({"id": id, "data": "aGkK"})),
        ("session.attach", json!({"id": id})),
        ("session.subscribe", json!({"id": id})),
        ("daemon.ping", json!({})),
        ("daemon.status", json!({})),
        ("daemon.metrics", json!({})),
        ("health.check", json!({})),
        ("cleanup.run", json!({"dry_run": true})),
        ("session.kill", json!({"id": id})),
    ];
    for (name, params) in calls {
        let m = method(&doc, name);
        assert!(validator(&doc, &m["x-params"]).is_valid(&params), "{name} {params}");
        let result = d.ok(name, params);
        let v = validator(&doc, &m["result"]["schema"]);
        let errors: Vec<String> =
            v.iter_errors(&result).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{name} result {result}:\n{}", errors.join("\n"));
    }
    // Not vacuous: a Session without its id is refused.
    let mut partial = created.clone();
    partial.as_object_mut().unwrap().remove("id");
    assert!(!validator(&doc, &method(&doc, "session.get")["result"]["schema"]).is_valid(&partial));
}
