//! `docs/openapi.yaml` against the daemon: the routes its router serves (from the route table
//! the router records as it is built) and the documented paths agree both ways, the document
//! hangs together, and a real daemon's responses match the documented schemas.

use crate::daemon_support::{Daemon, JANE, VIC};
use crate::support::{Sandbox, repo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use wasmops::daemon::api::Access;
use wasmops::identity::Role;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn spec() -> Value {
    let path = repo().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("docs/openapi.yaml does not parse: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The router's routes, as the router records them while it is built.

fn served_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for route in wasmops::daemon::api::route_table() {
        let (method, path) = (route.method.to_string(), route.path);
        assert!(
            out.insert((method.clone(), path.clone())),
            "{method} {path} is routed twice"
        );
    }
    out
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is a map") {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_router_list_the_same_routes() {
    let doc = spec();
    let served = served_routes();
    let documented = documented_routes(&doc);
    assert!(
        served.contains(&("GET".into(), "/healthz".into()))
            && served.contains(&("POST".into(), "/api/v1/runs".into())),
        "the route extraction is off: {served:#?}"
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "docs/openapi.yaml and the daemon's router disagree\n\
         routed but not documented: {undocumented:#?}\n\
         documented but not routed: {unserved:#?}"
    );
}

#[test]
fn the_document_names_the_role_each_route_needs() {
    let doc = spec();
    let mut problems = Vec::new();
    for route in wasmops::daemon::api::route_table() {
        let here = format!("{} {}", route.method, route.path);
        let op = &doc["paths"][&route.path][route.method.to_lowercase()];
        let documented = op.get("x-role").and_then(Value::as_str);
        match route.access {
            Access::Public if documented.is_some() => {
                problems.push(format!("{here}: public, yet documents x-role"));
            }
            Access::Public => {}
            access if documented != Some(access.as_str()) => problems.push(format!(
                "{here}: x-role is {documented:?}, the router says `{}`",
                access.as_str()
            )),
            _ => {}
        }
        // Only a route that needs more than a token can refuse one with 403.
        let can_refuse = !matches!(route.access, Access::Public | Access::Role(Role::Viewer));
        if can_refuse != op["responses"].get("403").is_some() {
            problems.push(format!(
                "{here}: {} a 403 response",
                if can_refuse {
                    "needs"
                } else {
                    "cannot answer, yet documents,"
                }
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/openapi.yaml:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The document itself.

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

/// An event stream's documented events: each `oneOf` branch of its per-event schema names its
/// type (`event: { const: … }`) and the schema of its JSON `data` (`contentSchema`).
fn sse_event_schemas(content: &Value) -> BTreeMap<&str, &Value> {
    content["schema"]["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|branch| {
            let event = branch["properties"]["event"]["const"].as_str()?;
            Some((event, &branch["properties"]["data"]["contentSchema"]))
        })
        .collect()
}

/// Follows a `$ref` object (a parameter, a response) to what it names.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc, resolve(doc, r)),
        None => v,
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), item, op));
            }
        }
    }
    out
}

fn walk_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                resolve(doc, r);
            }
            map.values().for_each(|x| walk_refs(doc, x));
        }
        Value::Array(items) => items.iter().for_each(|x| walk_refs(doc, x)),
        _ => {}
    }
}

/// Keywords the checker below enforces, and annotations it may ignore.
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "format",
    "oneOf",
    "anyOf",
    "allOf",
];
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "examples",
    "example",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    // Not enforced: no regex engine among the test's dependencies.
    "pattern",
    // An event's `data` as JSON: the event-stream check parses it and applies `contentSchema`.
    "contentMediaType",
    "contentSchema",
];

/// Fails on keywords the checker does not understand, so none is silently unchecked.
fn lint_schema(schema: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        if !schema.is_boolean() {
            problems.push(format!("{at}: a schema must be an object or a boolean"));
        }
        return;
    };
    for (key, value) in map {
        if !CHECKED.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
            problems.push(format!(
                "{at}: the checker in tests/e2e/openapi.rs does not know `{key}`"
            ));
        }
        match key.as_str() {
            "properties" => {
                for (name, s) in value.as_object().unwrap() {
                    lint_schema(s, &format!("{at}.properties.{name}"), problems);
                }
            }
            "items" | "additionalProperties" | "contentSchema" => {
                lint_schema(value, &format!("{at}.{key}"), problems);
            }
            "prefixItems" | "oneOf" | "anyOf" | "allOf" => {
                for (i, s) in value.as_array().unwrap().iter().enumerate() {
                    lint_schema(s, &format!("{at}.{key}[{i}]"), problems);
                }
            }
            "required" => {
                for name in value.as_array().unwrap() {
                    let listed = map
                        .get("properties")
                        .is_some_and(|p| p.get(name.as_str().unwrap()).is_some());
                    if !listed {
                        problems.push(format!(
                            "{at}: required `{name}` is not among its properties"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn the_document_is_complete_and_consistent() {
    let doc = spec();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "openapi: {}",
        doc["openapi"]
    );
    walk_refs(&doc, &doc);
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));

    let mut problems = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        lint_schema(
            schema,
            &format!("#/components/schemas/{name}"),
            &mut problems,
        );
    }
    let mut ids = BTreeSet::new();
    for (method, path, item, op) in operations(&doc) {
        let here = format!("{method} {path}");
        if let Some(id) = op["operationId"].as_str() {
            if !ids.insert(id.to_string()) {
                problems.push(format!("{here}: operationId `{id}` is used twice"));
            }
        } else {
            problems.push(format!("{here}: no operationId"));
        }
        // Auth: global bearer, except /healthz.
        if path == "/healthz" {
            if op["security"] != json!([]) {
                problems.push(format!("{here}: needs `security: []`"));
            }
        } else {
            if op.get("security").is_some() {
                problems.push(format!("{here}: overrides the global security"));
            }
            if op["responses"].get("401").is_none() {
                problems.push(format!("{here}: no 401 response"));
            }
        }
        // Path parameters: every `{name}` in the template is declared, required, and nothing else.
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(String::from)
            .collect();
        let mut declared = BTreeSet::new();
        for list in [&item["parameters"], &op["parameters"]] {
            for p in list.as_array().into_iter().flatten() {
                let p = deref(&doc, p);
                if p["in"] == "path" {
                    declared.insert(p["name"].as_str().unwrap().to_string());
                    if p["required"] != true {
                        problems.push(format!(
                            "{here}: path parameter {} is not required",
                            p["name"]
                        ));
                    }
                }
                if let Some(s) = p.get("schema") {
                    lint_schema(s, &format!("{here} parameter {}", p["name"]), &mut problems);
                }
            }
        }
        if in_template != declared {
            problems.push(format!(
                "{here}: path parameters {declared:?} do not match the template's {in_template:?}"
            ));
        }
        // Responses: a success, each described, each schema one the checker understands.
        let responses = op["responses"].as_object().unwrap();
        if !responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{here}: no 2xx response"));
        }
        for (status, response) in responses {
            let response = deref(&doc, response);
            if !response["description"].is_string() {
                problems.push(format!("{here} {status}: no description"));
            }
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                lint_schema(
                    &content["schema"],
                    &format!("{here} {status} {media}"),
                    &mut problems,
                );
                for (event, schema) in sse_event_schemas(content) {
                    lint_schema(
                        schema,
                        &format!("{here} {status} event {event}"),
                        &mut problems,
                    );
                }
            }
        }
        if let Some(body) = op.get("requestBody") {
            let media = body["content"].as_object();
            if media.is_none_or(serde_json::Map::is_empty) {
                problems.push(format!("{here} request body: no media type"));
            }
            for (media, content) in media.into_iter().flatten() {
                lint_schema(
                    &content["schema"],
                    &format!("{here} request body {media}"),
                    &mut problems,
                );
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/openapi.yaml:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// A JSON-Schema checker for the subset the document uses.

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type `{other}` in docs/openapi.yaml"),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let map = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: nothing is allowed here")),
        Value::Object(map) => map,
        other => panic!("{at}: not a schema: {other}"),
    };
    for key in map.keys() {
        if !CHECKED.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
            errors.push(format!("{at}: the checker does not know `{key}`"));
        }
    }
    if let Some(Value::String(r)) = map.get("$ref") {
        check(doc, resolve(doc, r), value, at, errors);
    }
    if let Some(t) = map.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("{at}: bad type {other}"),
        };
        if !types.iter().any(|t| type_matches(t, value)) {
            return errors.push(format!(
                "{at}: expected {}, got {} {}",
                types.join(" or "),
                kind_of(value),
                value
            ));
        }
    }
    if let Some(Value::Array(options)) = map.get("enum")
        && !options.contains(value)
    {
        errors.push(format!(
            "{at}: {value} is not one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(c) = map.get("const")
        && c != value
    {
        errors.push(format!("{at}: {value} is not {c}"));
    }
    if let (Some(Value::String(format)), Some(s)) = (map.get("format"), value.as_str())
        && format == "date-time"
        && chrono::DateTime::parse_from_rfc3339(s).is_err()
    {
        errors.push(format!("{at}: `{s}` is not an RFC 3339 date-time"));
    }
    if let (Some(min), Some(n)) = (map.get("minimum").and_then(Value::as_f64), value.as_f64())
        && n < min
    {
        errors.push(format!("{at}: {n} is below the minimum {min}"));
    }
    if let (Some(max), Some(n)) = (map.get("maximum").and_then(Value::as_f64), value.as_f64())
        && n > max
    {
        errors.push(format!("{at}: {n} is above the maximum {max}"));
    }
    if let Value::Object(object) = value {
        for name in map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                errors.push(format!("{at}: required `{name}` is missing"));
            }
        }
        let properties = map.get("properties").and_then(Value::as_object);
        for (name, v) in object {
            let here = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                map.get("additionalProperties"),
            ) {
                (Some(s), _) => check(doc, s, v, &here, errors),
                (None, Some(Value::Bool(false))) => errors.push(format!(
                    "{here}: not in the schema (additionalProperties: false)"
                )),
                (None, Some(s)) => check(doc, s, v, &here, errors),
                (None, None) => {}
            }
        }
    }
    if let Value::Array(items) = value {
        let prefix = map.get("prefixItems").and_then(Value::as_array);
        for (i, s) in prefix.into_iter().flatten().enumerate() {
            if let Some(v) = items.get(i) {
                check(doc, s, v, &format!("{at}[{i}]"), errors);
            }
        }
        if let Some(s) = map.get("items") {
            let skip = prefix.map_or(0, Vec::len);
            for (i, v) in items.iter().enumerate().skip(skip) {
                check(doc, s, v, &format!("{at}[{i}]"), errors);
            }
        }
        if let Some(min) = map.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = map.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
    }
    let failures = |list: &Value| -> Vec<Vec<String>> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let mut e = Vec::new();
                check(doc, s, value, at, &mut e);
                e
            })
            .collect()
    };
    if let Some(list) = map.get("allOf") {
        failures(list).into_iter().for_each(|e| errors.extend(e));
    }
    if let Some(list) = map.get("anyOf") {
        let results = failures(list);
        if results.iter().all(|e| !e.is_empty()) {
            errors.push(format!("{at}: matches none of anyOf: {results:?}"));
        }
    }
    if let Some(list) = map.get("oneOf") {
        let results = failures(list);
        let matching = results.iter().filter(|e| e.is_empty()).count();
        if matching != 1 {
            errors.push(format!(
                "{at}: matches {matching} of oneOf (must be 1): {results:?}"
            ));
        }
    }
}

fn problems(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    errors
}

fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    resolve(doc, &format!("#/components/schemas/{name}"))
}

#[test]
fn the_schema_checker_catches_drift() {
    let doc = spec();
    let error = component(&doc, "Error");
    assert!(problems(&doc, error, &json!({"error": "x", "detail": "y"})).is_empty());
    for wrong in [
        json!({"error": "x"}),
        json!({"error": 1, "detail": "y"}),
        json!({"error": "x", "detail": "y", "extra": true}),
        json!("not found"),
    ] {
        assert!(
            !problems(&doc, error, &wrong).is_empty(),
            "{wrong} passed as an Error"
        );
    }
    let step = json!({"path": "1", "name": "a", "kind": "plugin", "status": "succeeded",
                      "outputs": {}, "attempts": 1, "children": []});
    let run = json!({"id": "wfr_abcdefgh", "workflow": "w", "status": "running",
                     "trigger": {"kind": "manual"}, "created_at": "2025-01-01T00:00:00Z",
                     "steps": [step]});
    let schema = component(&doc, "Run");
    assert_eq!(problems(&doc, schema, &run), Vec::<String>::new());
    let mut broken = run.clone();
    broken.as_object_mut().unwrap().remove("steps");
    assert!(
        !problems(&doc, schema, &broken).is_empty(),
        "a Run without steps passed"
    );
    let mut broken = run.clone();
    broken["steps"][0]["status"] = json!("done");
    assert!(
        !problems(&doc, schema, &broken).is_empty(),
        "a bad step status passed"
    );
    let mut broken = run.clone();
    broken["steps"][0]["children"] = json!([{"path": "1.1"}]);
    assert!(
        !problems(&doc, schema, &broken).is_empty(),
        "an incomplete child step passed"
    );
    let mut broken = run;
    broken["created_at"] = json!("yesterday");
    assert!(
        !problems(&doc, schema, &broken).is_empty(),
        "a bad date-time passed"
    );
    let summary = component(&doc, "WorkflowSummary");
    let draft = json!({"path": "/projects/p/workflows/w", "project": "p", "code": "w",
                       "status": "draft", "latest_version": null, "versions": [], "draft": "",
                       "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"});
    assert_eq!(problems(&doc, summary, &draft), Vec::<String>::new());
    let mut broken = draft;
    broken["latest_version"] = json!("1");
    assert!(
        !problems(&doc, summary, &broken).is_empty(),
        "a string version passed"
    );
}

// ---------------------------------------------------------------------------------------------
// A live daemon against the document.

struct Live<'a> {
    doc: &'a Value,
    d: &'a Daemon,
}

impl Live<'_> {
    /// The documented path template a concrete path falls under (the most literal one).
    fn template(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            })
            .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
            .cloned()
    }

    /// Calls the daemon, expects `status`, and checks the request and response bodies against the
    /// documented operation (or the `Error` schema, for paths and methods nothing serves).
    fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        if let (Some(op), Some(body)) = (self.operation(method, path), &body) {
            let schema = op
                .pointer("/requestBody/content/application~1json/schema")
                .unwrap_or_else(|| {
                    panic!("{method} {path}: sends a body the document does not describe")
                });
            let errors = problems(self.doc, schema, body);
            assert!(
                errors.is_empty(),
                "{method} {path}: the request body {body} does not match the document:\n{}",
                errors.join("\n")
            );
        }
        let (got, value) = self.d.call(token, method, path, body);
        self.check(method, path, got, &value, status);
        value
    }

    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let template = self.template(path)?;
        self.doc["paths"][&template].get(method.to_lowercase())
    }

    /// Checks a response against the document.
    fn check(&self, method: &str, path: &str, got: u16, value: &Value, status: u16) {
        let here = format!("{method} {path}");
        assert_eq!(got, status, "{here}: {value:#}");
        let schema = match self.operation(method, path) {
            None => {
                assert!(
                    [404, 405].contains(&status),
                    "{here}: answered {status} but is not documented"
                );
                component(self.doc, "Error")
            }
            Some(op) => {
                let response = op["responses"]
                    .get(status.to_string())
                    .or_else(|| op["responses"].get("default"))
                    .unwrap_or_else(|| {
                        panic!("{here}: status {status} is not documented: {value:#}")
                    });
                match deref(self.doc, response).pointer("/content/application~1json/schema") {
                    Some(schema) => schema,
                    None => {
                        assert_eq!(*value, json!(""), "{here}: documented without a body");
                        return;
                    }
                }
            }
        };
        let errors = problems(self.doc, schema, value);
        assert!(
            errors.is_empty(),
            "{here} → {status}: the body does not match docs/openapi.yaml:\n{}\nbody: {value:#}",
            errors.join("\n")
        );
    }

    fn get(&self, path: &str) -> Value {
        self.call(Some(JANE), "GET", path, None, 200)
    }

    /// GETs a route that answers something other than JSON (metrics, server-sent events) and checks
    /// the status, the content type and what the document says of the content; returns the text.
    fn get_text(&self, path: &str) -> String {
        let here = format!("GET {path}");
        let (status, content_type, text) = raw_get(&self.d.url, path);
        assert_eq!(status, 200, "{here}: {text}");
        let op = self
            .operation("GET", path)
            .unwrap_or_else(|| panic!("{here} is not documented"));
        let response = deref(self.doc, &op["responses"]["200"]);
        let base = |media: &str| media.split(';').next().unwrap().trim().to_ascii_lowercase();
        let (media, content) = response["content"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(media, _)| base(media) == base(&content_type))
            .unwrap_or_else(|| {
                panic!(
                    "{here}: answered `{content_type}`, documented {}",
                    response["content"]
                )
            });
        assert_eq!(
            content_type.replace(' ', ""),
            media.replace(' ', ""),
            "{here}: the content type's parameters differ from the document's"
        );
        let events = sse_event_schemas(content);
        if events.is_empty() {
            let errors = problems(self.doc, &content["schema"], &Value::String(text.clone()));
            assert!(errors.is_empty(), "{here}: {}", errors.join("\n"));
        } else {
            for (event, data) in sse_events(&text) {
                let schema = events.get(event.as_str()).unwrap_or_else(|| {
                    panic!("{here}: event `{event}` is not among the documented {events:?}")
                });
                let data: Value = serde_json::from_str(&data).unwrap_or_else(|e| {
                    panic!("{here}: event `{event}` data is not JSON ({e}): {data}")
                });
                let errors = problems(self.doc, schema, &data);
                assert!(
                    errors.is_empty(),
                    "{here}: event `{event}` does not match docs/openapi.yaml:\n{}\ndata: {data:#}",
                    errors.join("\n")
                );
            }
        }
        if let Some(metrics) = content.get("x-metrics") {
            let documented: BTreeSet<&str> = metrics
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect();
            let exposed: BTreeSet<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            assert_eq!(
                exposed, documented,
                "{here}: the metrics differ from the document's x-metrics"
            );
        }
        text
    }

    fn wait_for(&self, run: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let value = self.get(&format!("/api/v1/runs/{run}"));
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {run} never became {what}: {value:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A GET as jane: status, content type and body text.
fn raw_get(base: &str, path: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("{base}{path}"))
        .header("authorization", &format!("Bearer {JANE}"))
        .call()
        .unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), content_type, text)
}

/// (event, data) pairs of a server-sent event stream; comments (keep-alives) are skipped.
fn sse_events(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::from("message");
        let mut data: Vec<&str> = Vec::new();
        let mut any = false;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
                any = true;
            }
        }
        if any {
            out.push((event, data.join("\n")));
        }
    }
    out
}

const PROBE: &str = "steps:
  - name: Say hello
    id: hello
    uses: script
    with:
      run: echo hello
  - type: wait
    name: Hold
  - uses: noop
    with: { summary: done }
";

#[test]
fn the_daemon_answers_as_documented() {
    let doc = spec();
    let sb = Sandbox::new();
    let d = Daemon::start(sb.dir.path());
    let live = Live { doc: &doc, d: &d };

    // No token needed for the probe; every other route wants one, and says so in an Error.
    assert_eq!(
        live.call(None, "GET", "/healthz", None, 200)["status"],
        "ok"
    );
    let body = live.call(None, "GET", "/api/v1/runs", None, 401);
    assert_eq!(body["error"], "unauthorized");
    live.call(Some("not-a-token"), "GET", "/api/v1/workflows", None, 401);
    live.call(Some(JANE), "GET", "/api/v1/nope", None, 404);
    live.call(Some(JANE), "DELETE", "/api/v1/runs", None, 405);
    live.call(
        Some(JANE),
        "POST",
        "/api/v1/runs",
        Some(json!({"workflow": "x"})),
        400,
    );
    live.call(Some(JANE), "GET", "/api/v1/runs/wfr_00000000", None, 404);
    // A role below the route's is a documented 403 with an Error body.
    let body = live.call(
        Some(VIC),
        "POST",
        "/api/v1/apply",
        Some(json!({"projects": []})),
        403,
    );
    assert_eq!(body["error"], "forbidden");

    assert_eq!(live.get("/api/v1/workflows"), json!([]));
    let plugins = live.get("/api/v1/plugins");
    let names: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"script") && names.contains(&"noop"),
        "{names:?}"
    );

    // Projects and the workflow lifecycle.
    let applied = live.call(
        Some(JANE),
        "POST",
        "/api/v1/apply",
        Some(
            json!({"projects": [{"file": "project.yaml", "yaml": "project: probe\n",
                                  "workflows": {"probe": PROBE}}]}),
        ),
        200,
    );
    assert_eq!(
        applied,
        json!({"projects": ["probe"], "workflows": ["/projects/probe/workflows/probe"]})
    );
    let listed = live.get("/api/v1/workflows");
    assert_eq!(listed[0]["status"], "draft");
    let api = "/api/v1/projects/probe/workflows/probe";
    live.call(Some(JANE), "PUT", api, Some(json!({"yaml": PROBE})), 200);
    let validated = live.call(
        Some(JANE),
        "POST",
        &format!("{api}/validate"),
        Some(json!({})),
        200,
    );
    assert_eq!(validated["valid"], true, "{validated:#}");
    let published = live.call(
        Some(JANE),
        "POST",
        &format!("{api}/publish"),
        Some(json!({})),
        200,
    );
    assert_eq!(published["latest_version"], 1);
    live.call(
        Some(JANE),
        "POST",
        &format!("{api}/duplicate"),
        Some(json!({"code": "probe-copy"})),
        201,
    );
    live.call(
        Some(JANE),
        "POST",
        &format!("{api}/duplicate"),
        Some(json!({"code": "probe-copy"})),
        409,
    );
    live.call(
        Some(JANE),
        "DELETE",
        "/api/v1/projects/probe/workflows/probe-copy",
        None,
        204,
    );
    live.call(
        Some(JANE),
        "GET",
        "/api/v1/projects/probe/workflows/probe-copy",
        None,
        404,
    );
    live.call(Some(JANE), "GET", &format!("{api}/publish"), None, 405);

    // A run through a plain wait.
    let start = json!({"workflow": "/projects/probe/workflows/probe"});
    let run = live.call(Some(JANE), "POST", "/api/v1/runs", Some(start), 201);
    let id = run["id"].as_str().unwrap().to_string();
    live.wait_for(&id, "waiting at step 2", |r| {
        r["status"] == "waiting" && r["steps"][1]["status"] == "waiting"
    });
    let decide = format!("/api/v1/runs/{id}/steps/2/continue");
    let comment = json!({"comment": "ok"});
    let started = Instant::now();
    let decided = loop {
        let (status, body) = d.call(Some(JANE), "POST", &decide, Some(comment.clone()));
        // 409 until the run is active in the daemon.
        if status == 409 && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        live.check("POST", &decide, status, &body, 200);
        break body;
    };
    assert_eq!(decided["wait"]["decision"]["comment"], "ok", "{decided:#}");
    let run = live.wait_for(&id, "succeeded", |r| r["status"] == "succeeded");
    assert_eq!(
        run["steps"][1]["wait"]["decision"]["kind"], "continue",
        "{run:#}"
    );
    live.call(Some(JANE), "POST", &decide, Some(json!({})), 409);
    live.call(
        Some(JANE),
        "POST",
        &format!("/api/v1/runs/{id}/steps/9/continue"),
        None,
        404,
    );

    let logs = live.get(&format!("/api/v1/runs/{id}/logs"));
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"] == "hello"),
        "{logs:#}"
    );
    live.get(&format!("/api/v1/runs/{id}/logs?step=hello"));
    live.call(
        Some(JANE),
        "GET",
        &format!("/api/v1/runs/{id}/logs?step=nope"),
        None,
        404,
    );
    let runs = live.get("/api/v1/runs?status=succeeded");
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    let history = live.get(&format!("{api}/history"));
    assert_eq!(history[0]["id"], id.as_str());
    live.call(
        Some(JANE),
        "POST",
        &format!("/api/v1/runs/{id}/retry"),
        None,
        409,
    );
    live.call(
        Some(JANE),
        "POST",
        &format!("/api/v1/runs/{id}/cancel"),
        None,
        409,
    );

    // Events: a finished run's stream is its snapshot alone.
    let text = live.get_text(&format!("/api/v1/runs/{id}/events"));
    let events = sse_events(&text);
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0].0, "snapshot");
    live.call(
        Some(JANE),
        "GET",
        "/api/v1/runs/wfr_00000000/events",
        None,
        404,
    );
    live.call(None, "GET", &format!("/api/v1/runs/{id}/events"), None, 401);

    // A live run's stream, followed to its end while the run is continued past its wait.
    let start = json!({"workflow": "/projects/probe/workflows/probe"});
    let second = live.call(Some(JANE), "POST", "/api/v1/runs", Some(start), 201);
    let second = second["id"].as_str().unwrap().to_string();
    let events_path = format!("/api/v1/runs/{second}/events");
    let text = std::thread::scope(|s| {
        let watcher = s.spawn(|| live.get_text(&events_path));
        live.wait_for(&second, "waiting at step 2", |r| {
            r["steps"][1]["status"] == "waiting"
        });
        std::thread::sleep(Duration::from_millis(300));
        let decide = format!("/api/v1/runs/{second}/steps/2/continue");
        let started = Instant::now();
        loop {
            let (status, body) = d.call(Some(JANE), "POST", &decide, None);
            if status == 409 && started.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            live.check("POST", &decide, status, &body, 200);
            break;
        }
        watcher.join().unwrap()
    });
    let events = sse_events(&text);
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("snapshot"),
        "{text}"
    );
    let (kind, data) = events.last().unwrap();
    let last: Value = serde_json::from_str(data).unwrap();
    assert!(
        ["run", "snapshot"].contains(&kind.as_str()) && last["status"] == "succeeded",
        "the stream should end with the finished run: {text}"
    );

    // Metrics: Prometheus text, behind the token like the API.
    live.call(None, "GET", "/metrics", None, 401);
    let metrics = live.get_text("/metrics");
    assert!(
        metrics.contains("wasmops_runs{status=\"succeeded\"} 2"),
        "{metrics}"
    );
}
