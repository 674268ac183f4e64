//! Reading Terraform's machine-readable UI stream (`-json`: one JSON object a line,
//! `planned_change`, `change_summary`, `outputs`, `diagnostic`, …). A plan is counted from its
//! `planned_change` messages rather than from `terraform show -json`, whose plan representation
//! carries sensitive values in the clear and would put them in the step log.

use wasmops_sdk::exec::Output;
use wasmops_sdk::prelude::*;
use wasmops_sdk::serde_json;

/// What a plan will do, or what an apply or destroy did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
}

/// Counts a plan's `planned_change` messages by action: a replacement is one to add and one to
/// destroy; `read`, `noop`, `move`, `import` and `remove` (from state only) change nothing.
pub fn plan_counts(stdout: &[u8]) -> Counts {
    let mut counts = Counts::default();
    for message in messages(stdout).filter(|m| m["type"] == "planned_change") {
        match message["change"]["action"].as_str() {
            Some("create") => counts.add += 1,
            Some("update") => counts.change += 1,
            Some("delete") => counts.destroy += 1,
            Some("replace") => {
                counts.add += 1;
                counts.destroy += 1;
            }
            _ => {}
        }
    }
    counts
}

fn messages(stdout: &[u8]) -> impl Iterator<Item = Value> + '_ {
    stdout
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
}

/// What an apply or destroy stream said.
#[derive(Debug, Default)]
pub struct Stream {
    pub change_summary: Option<Counts>,
    /// Output name → value; sensitive ones as `(sensitive)`.
    pub outputs: Vec<(String, Value)>,
    /// `Error: summary: detail (file:line)` for each error diagnostic.
    pub errors: Vec<String>,
}

impl Stream {
    pub fn parse(stdout: &[u8]) -> Stream {
        let mut stream = Stream::default();
        for message in messages(stdout) {
            match message["type"].as_str() {
                Some("change_summary") => {
                    let c = &message["changes"];
                    let n = |key: &str| c[key].as_u64().unwrap_or(0);
                    stream.change_summary = Some(Counts {
                        add: n("add"),
                        change: n("change"),
                        destroy: n("remove"),
                    });
                }
                Some("outputs") => {
                    let outputs = message["outputs"].as_object().into_iter().flatten();
                    stream.outputs = outputs
                        .map(|(name, output)| {
                            let value = if output["sensitive"].as_bool() == Some(true) {
                                json!("(sensitive)")
                            } else {
                                output["value"].clone()
                            };
                            (name.clone(), value)
                        })
                        .collect();
                }
                Some("diagnostic") if message["diagnostic"]["severity"] == "error" => {
                    stream.errors.push(diagnostic(&message["diagnostic"]));
                }
                _ => {}
            }
        }
        stream
    }
}

/// `Error: Invalid reference: A reference to a resource type must be followed by… (main.tf:3)`.
fn diagnostic(d: &Value) -> String {
    let mut text = format!("Error: {}", d["summary"].as_str().unwrap_or("(no summary)"));
    if let Some(detail) = d["detail"].as_str().filter(|s| !s.is_empty()) {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let (Some(file), Some(line)) = (
        d["range"]["filename"].as_str(),
        d["range"]["start"]["line"].as_u64(),
    ) {
        text.push_str(&format!(" ({file}:{line})"));
    }
    text
}

/// A failed command as Terraform explains it: its error diagnostics from the `-json` stream,
/// else the end of what it printed.
pub fn failure(output: &Output) -> Result<(), Error> {
    if output.exit_code == Some(0) {
        return Ok(());
    }
    let errors = Stream::parse(&output.stdout).errors;
    if errors.is_empty() {
        return output.clone().check().map(drop);
    }
    Err(Error::new(errors.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_counts_as_one_to_add_and_one_to_destroy() {
        let lines: String = ["create", "update", "replace", "noop", "read", "delete"]
            .iter()
            .map(|action| {
                let change = json!({"resource": {"addr": "a.x"}, "action": action});
                format!("{}\n", json!({"type": "planned_change", "change": change}))
            })
            .collect();
        let plan = format!("{}\nnot json\n{lines}", json!({"type": "version"}));
        let counts = plan_counts(plan.as_bytes());
        assert_eq!((counts.add, counts.change, counts.destroy), (2, 1, 2));
    }

    #[test]
    fn the_stream_gives_changes_outputs_and_errors() {
        let lines = [
            json!({"type": "version", "terraform": "1.11.4", "ui": "1.2"}),
            json!({"type": "change_summary", "changes": {"add": 3, "change": 1, "remove": 0, "operation": "apply"}}),
            json!({"type": "outputs", "outputs": {
                "url": {"sensitive": false, "type": "string", "value": "https://x"},
                "token": {"sensitive": true, "type": "string"}
            }}),
            json!({"type": "diagnostic", "diagnostic": {"severity": "error", "summary": "Invalid reference",
                "detail": "A managed resource \"x\" \"y\" has not been declared.",
                "range": {"filename": "main.tf", "start": {"line": 7}}}}),
            json!({"type": "diagnostic", "diagnostic": {"severity": "warning", "summary": "Deprecated"}}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\nnot json\n")).collect();
        let stream = Stream::parse(text.as_bytes());
        assert_eq!(
            stream.change_summary,
            Some(Counts {
                add: 3,
                change: 1,
                destroy: 0
            })
        );
        assert_eq!(
            stream.outputs,
            [
                ("token".to_string(), json!("(sensitive)")),
                ("url".to_string(), json!("https://x"))
            ]
        );
        assert_eq!(
            stream.errors,
            [
                "Error: Invalid reference: A managed resource \"x\" \"y\" has not been declared. (main.tf:7)"
            ]
        );
    }
}
