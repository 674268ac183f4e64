//! `condition`: turns the value of a condition step's `if:` into a branch.
//!
//! The host evaluates the expression (it owns the template language and the run context) and
//! passes the value plus the source text; this plugin only decides truthiness and reports it, so
//! the rule for what counts as true lives in one small, replaceable place.

use serde::Deserialize;
use wasmops_sdk::prelude::*;

/// The `with` block the host builds for a condition step. Not `deny_unknown_fields`: it is
/// machine-made, and a newer host may pass more.
#[derive(Debug, Deserialize)]
struct Config {
    /// The evaluated `if:` value, usually a JSON bool.
    #[serde(rename = "if")]
    value: Value,
    /// The expression's source text, for the summary.
    expression: Option<String>,
}

/// Whether a value counts as true: booleans as they are; `null` false; numbers when non-zero;
/// strings unless empty or `false`/`0`/`no`/`off` (any case, surrounding blanks ignored); lists and
/// maps when non-empty.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty()
                || ["false", "0", "no", "off"]
                    .iter()
                    .any(|falsy| s.eq_ignore_ascii_case(falsy)))
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

struct Condition;

impl Step for Condition {
    type Config = Config;

    fn describe() -> Info {
        Info::default()
            .with_schema(json!({
                "type": "object",
                "required": ["if"],
                "properties": {
                    "if": { "description": "The evaluated expression; truthiness decides the branch" },
                    "expression": { "type": "string", "description": "The expression's source text" }
                }
            }))
            .with_outputs(["result", "branch"])
    }

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let result = truthy(&config.value);
        let branch = if result { "then" } else { "else" };
        let subject = match config.expression.as_deref().map(str::trim) {
            Some(expr) if !expr.is_empty() => format!("`{expr}`"),
            _ => "condition".to_string(),
        };
        Ok(
            Outcome::summary(format!("{subject} is {result} → {branch}"))
                .with_output("result", result)
                .with_output("branch", branch),
        )
    }
}

wasmops_sdk::step_plugin!(Condition);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness() {
        for t in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("yes"),
            json!("False!"),
            json!(" x "),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(truthy(&t), "{t} should be true");
        }
        for f in [
            json!(false),
            json!(null),
            json!(0),
            json!(0.0),
            json!(""),
            json!("  "),
            json!("false"),
            json!("FALSE"),
            json!("0"),
            json!("No"),
            json!("off"),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&f), "{f} should be false");
        }
    }

    #[test]
    fn outcome() {
        let ctx = Context::for_tests("/ws");
        let config = Config {
            value: json!(false),
            expression: Some("steps.plan.outputs.to_destroy | int > 0".into()),
        };
        let outcome = Condition::run(&ctx, config).unwrap();
        assert_eq!(
            outcome,
            Outcome::summary("`steps.plan.outputs.to_destroy | int > 0` is false → else")
                .with_output("result", false)
                .with_output("branch", "else")
        );
        let config = Config {
            value: json!("yes"),
            expression: None,
        };
        let Outcome::Completed { summary, outputs } = Condition::run(&ctx, config).unwrap() else {
            panic!("not completed")
        };
        assert_eq!(summary.as_deref(), Some("condition is true → then"));
        assert_eq!(outputs["branch"], "then");
    }

    #[test]
    fn missing_if_is_an_error() {
        let err = wasmops_sdk::parse_config::<Config>(r#"{"expression": "x"}"#).unwrap_err();
        assert_eq!(err.message(), "missing field `if`");
        // An explicit null is a value (false), not a missing key.
        let config: Config = wasmops_sdk::parse_config(r#"{"if": null}"#).unwrap();
        assert!(!truthy(&config.value));
    }
}
