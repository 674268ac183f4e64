//! YAML loading that keeps where every node came from, so validation can say `file:line:column`.

mod bounds;

use crate::diagnostics::{Diagnostic, Location};
use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Number, Value};

pub type Node = MarkedYamlOwned;

/// Reads a YAML file as text; a byte that is not UTF-8 is an error at its line and column.
pub fn read_source(path: &std::path::Path) -> Result<String, Diagnostic> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Diagnostic {
        file: file.clone(),
        location: Location { line: 0, column: 0 },
        yaml_path: String::new(),
        message: format!("cannot read the file: {e}"),
        hint: None,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = &bytes[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        Diagnostic {
            file,
            location: Location {
                line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
                column,
            },
            yaml_path: String::new(),
            message: format!(
                "byte 0x{:02x} is not UTF-8 text",
                bytes[e.utf8_error().valid_up_to()]
            ),
            hint: Some("save the file as UTF-8".into()),
        }
    })
}

/// Parses one YAML document. Syntax errors come back as a located diagnostic.
pub fn load(file: &str, text: &str) -> Result<Node, Diagnostic> {
    bounds::check(file, text)?;
    let mut docs = Node::load_from_str(text).map_err(|e| Diagnostic {
        file: file.to_string(),
        location: within(text, e.marker().line(), e.marker().col() + 1),
        yaml_path: String::new(),
        message: format!("invalid YAML: {}", e.info()),
        hint: Some("check the indentation and quoting on this line and the one above".into()),
    })?;
    match docs.len() {
        0 => Err(Diagnostic {
            file: file.to_string(),
            location: Location { line: 1, column: 1 },
            yaml_path: String::new(),
            message: "the file is empty".into(),
            hint: Some("a workflow needs a top-level `steps:` list".into()),
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(Diagnostic {
            file: file.to_string(),
            location: location(&docs[1]),
            yaml_path: String::new(),
            message: "the file holds more than one YAML document".into(),
            hint: Some("put each workflow in its own file".into()),
        }),
    }
}

/// `line:column` as the parser reports it, moved back onto the text: at the end of a file
/// without a final newline the parser points at the line after the last.
fn within(text: &str, line: usize, column: usize) -> Location {
    let lines = text.lines().count().max(1);
    if line <= lines {
        return Location { line, column };
    }
    let last = text.lines().last().unwrap_or_default();
    Location {
        line: lines,
        column: last.chars().count() + 1,
    }
}

pub fn location(node: &Node) -> Location {
    // Block mappings and sequences may carry no span of their own; their first entry starts them.
    if node.span.start.line() == 0 {
        match &node.data {
            YamlDataOwned::Mapping(map) => {
                if let Some((key, _)) = map.iter().next() {
                    return location(key);
                }
            }
            YamlDataOwned::Sequence(seq) => {
                if let Some(first) = seq.first() {
                    return location(first);
                }
            }
            _ => {}
        }
    }
    Location {
        line: node.span.start.line().max(1),
        column: node.span.start.col() + 1,
    }
}

/// What kind of YAML value a node is, for messages like "expected a list, found a string".
pub fn describe(node: &Node) -> &'static str {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => "nothing (null)",
        YamlDataOwned::Value(ScalarOwned::Boolean(_)) => "a boolean",
        YamlDataOwned::Value(ScalarOwned::Integer(_)) => "an integer",
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(_)) => "a number",
        YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Representation(..) => {
            "a string"
        }
        YamlDataOwned::Sequence(_) => "a list",
        YamlDataOwned::Mapping(_) => "a mapping",
        _ => "an unsupported value",
    }
}

pub fn as_str(node: &Node) -> Option<&str> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
        YamlDataOwned::Representation(s, ..) => Some(s),
        _ => None,
    }
}

/// A scalar as text, the way a user who wrote `timeout: 30` or `attempts: "3"` means it.
pub fn scalar_text(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s.clone()),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Some(i.to_string()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => Some(f.to_string()),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(b.to_string()),
        YamlDataOwned::Representation(s, ..) => Some(s.clone()),
        _ => None,
    }
}

pub fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

pub fn as_seq(node: &Node) -> Option<&[Node]> {
    match &node.data {
        YamlDataOwned::Sequence(seq) => Some(seq),
        _ => None,
    }
}

/// Mapping entries with string keys, in document order. Non-string keys are returned as errors
/// by the caller's key check, so they are given their text form here.
pub fn as_map(node: &Node) -> Option<Vec<(String, &Node, &Node)>> {
    match &node.data {
        YamlDataOwned::Mapping(map) => Some(
            map.iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), k, v))
                .collect(),
        ),
        _ => None,
    }
}

/// Converts a node to JSON for plugin config and properties. Keys become strings.
pub fn to_json(node: &Node) -> Value {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Null) => Value::Null,
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Value::Bool(*b),
        YamlDataOwned::Value(ScalarOwned::Integer(i)) => Value::Number((*i).into()),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => {
            Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        YamlDataOwned::Value(ScalarOwned::String(s)) => Value::String(s.clone()),
        YamlDataOwned::Representation(s, ..) => Value::String(s.clone()),
        YamlDataOwned::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        YamlDataOwned::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        YamlDataOwned::Tagged(_, inner) => to_json(inner),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based() {
        let doc = load("w.yaml", "steps:\n  - name: a\n").unwrap();
        let map = as_map(&doc).unwrap();
        let steps = as_seq(map[0].2).unwrap();
        let step = as_map(&steps[0]).unwrap();
        assert_eq!(location(step[0].1), Location { line: 2, column: 5 });
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = load("w.yaml", "steps:\n  - name: [a\n").unwrap_err();
        assert_eq!(err.file, "w.yaml");
        assert!(err.location.line >= 2, "{err}");
    }

    #[test]
    fn converts_scalars_with_their_types() {
        let doc = load("w.yaml", "a: 1\nb: 'x'\nc: true\nd: [1.5, null]\n").unwrap();
        assert_eq!(
            to_json(&doc),
            serde_json::json!({"a": 1, "b": "x", "c": true, "d": [1.5, null]})
        );
    }
}
