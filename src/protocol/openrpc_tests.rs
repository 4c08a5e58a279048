use super::*;

fn names(doc: &Value) -> Vec<&str> {
    doc["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect()
}

#[test]
fn every_method_of_the_table_is_described_once() {
    let doc = generate();
    assert_eq!(names(&doc), Request::names());
    assert_eq!(doc["openrpc"], OPENRPC_VERSION);
}

#[test]
fn params_become_one_descriptor_per_member() {
    let doc = generate();
    let m = doc["methods"].as_array().unwrap();
    let get = m.iter().find(|m| m["name"] == "session.get").unwrap();
    assert_eq!(
        get["params"],
        json!([{"name": "id", "schema": {"type": "string", "description": "The session id."}, "required": true, "description": "The session id."}])
    );
    let ping = m.iter().find(|m| m["name"] == "daemon.ping").unwrap();
    assert_eq!(ping["params"], json!([]));
    assert_eq!(ping["result"]["schema"]["$ref"], "#/components/schemas/Pong");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["SessionCreate"]["additionalProperties"], false);
    assert_eq!(schemas["Pong"], json!({"type": "string", "const": "pong"}));
}

/// A sent schema differing from the accepted one of the same name is kept
/// apart, and no `$ref` dangles.
#[test]
fn every_ref_resolves() {
    let doc = generate();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    fn walk(v: &Value, schemas: &Map<String, Value>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix("#/components/schemas/").expect(r);
                    assert!(schemas.contains_key(name), "dangling {r}");
                }
                o.values().for_each(|x| walk(x, schemas));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, schemas)),
            _ => {}
        }
    }
    walk(&doc, schemas);
}

#[test]
fn renamed_refs_follow() {
    let mut v = json!({"a": {"$ref": "#/x/A"}, "b": [{"$ref": "#/x/A"}, {"$ref": "#/x/B"}]});
    rename_ref(&mut v, "#/x/A", "#/x/ASent");
    assert_eq!(
        v,
        json!({"a": {"$ref": "#/x/ASent"}, "b": [{"$ref": "#/x/ASent"}, {"$ref": "#/x/B"}]})
    );
}

#[test]
#[ignore = "prints the document"]
fn print() {
    println!("{}", serde_json::to_string_pretty(&generate()).unwrap());
}
