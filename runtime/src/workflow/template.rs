//! Templates and expressions (`{{ properties.hostname }}`, `if: steps.plan.outputs.n | int > 0`),
//! one Jinja dialect for both, with bounded execution and strict undefined variables.

use crate::diagnostics::did_you_mean;
use minijinja::Environment;
use serde_json::Value;
use std::sync::OnceLock;
use wasmops_template::bounded_filters::MAX_STRING;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(wasmops_template::environment)
}

/// `{{ expr }}` → `expr`; anything else is returned unchanged.
pub fn strip_braces(text: &str) -> &str {
    let t = text.trim();
    match t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("{{") && !inner.contains("}}") => inner.trim(),
        _ => t,
    }
}

// Every call into the template engine goes through `contained`: its lexer panics on some
// inputs (`k}}k` as an expression: "empty lexer stack", found by fuzzing), and a workflow's
// text must fail its validation, not the process.

pub fn check_expression(expr: &str) -> Result<(), String> {
    contained(|| env().compile_expression(expr).map(drop).map_err(short))
}

pub fn check_template(text: &str) -> Result<(), String> {
    contained(|| env().template_from_str(text).map(drop).map_err(short))
}

/// Dotted variable paths a template or expression reads, e.g. `steps.plan.outputs.to_add`.
pub fn variables(text: &str, is_expression: bool) -> Vec<String> {
    let found = contained(|| {
        let found = if is_expression {
            env()
                .compile_expression(text)
                .map(|e| e.undeclared_variables(true))
        } else {
            env()
                .template_from_str(text)
                .map(|t| t.undeclared_variables(true))
        };
        Ok(found.unwrap_or_default())
    });
    let mut vars: Vec<String> = found.unwrap_or_default().into_iter().collect();
    vars.sort();
    vars
}

/// What a template reads of `secrets`: `Some(NAME)` for each `secrets.NAME`, `None` when it
/// reads `secrets` as a whole (`secrets[name]`, `secrets | tojson`, `{% set s = secrets %}`).
pub fn secret_reads(text: &str, is_expression: bool) -> Vec<Option<String>> {
    variables(text, is_expression)
        .into_iter()
        .filter_map(|var| {
            let mut parts = var.splitn(3, '.');
            (parts.next() == Some("secrets")).then(|| parts.next().map(str::to_string))
        })
        .collect()
}

pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

pub fn render(text: &str, ctx: &Value) -> Result<String, String> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    check_variables(text, false, ctx)?;
    let rendered = contained(|| env().render_str(text, ctx).map_err(short))?;
    if rendered.len() > MAX_STRING {
        return Err(format!(
            "the template renders to {} bytes, past the {MAX_STRING} a template may produce",
            rendered.len()
        ));
    }
    Ok(rendered)
}

/// Runs template code so that a panic inside the engine (a capacity overflow or a lexer state
/// nobody foresaw) fails this template, not the process, and is not printed as a crash.
fn contained<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    thread_local! {
        static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static QUIET_HOOK: OnceLock<()> = OnceLock::new();
    QUIET_HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INSIDE.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was_inside = INSIDE.with(|inside| inside.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    INSIDE.with(|inside| inside.set(was_inside));
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(format!(
            "the template engine failed on this template ({what})"
        ))
    })
}

/// Renders every string inside a JSON value (keys stay as written).
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, ctx)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Evaluates an expression to a JSON value.
pub fn evaluate(expr: &str, ctx: &Value) -> Result<Value, String> {
    check_variables(expr, true, ctx)?;
    contained(|| {
        let compiled = env().compile_expression(expr).map_err(short)?;
        let value = compiled.eval(ctx).map_err(short)?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    })
}

/// Jinja truthiness, for `if:` and `when:`.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Names the first variable the context lacks, with a suggestion, instead of minijinja's bare
/// "undefined value".
fn check_variables(text: &str, is_expression: bool, ctx: &Value) -> Result<(), String> {
    for var in variables(text, is_expression) {
        let first = var.split('.').next().unwrap_or_default();
        if first == "secrets" {
            // Only a plugin step's `with:` has `secrets`, holding what its plugin is granted.
            match (ctx.get("secrets"), var.split('.').nth(1)) {
                (None, _) => {
                    return Err(format!(
                        "`{var}` cannot be read here: secrets are only in the `with:` of a plugin step whose plugin is granted them"
                    ));
                }
                (Some(granted), Some(name)) if granted.get(name).is_none() => {
                    return Err(format!(
                        "secret `{name}` is not granted to this step's plugin, or is not set"
                    ));
                }
                _ => {}
            }
        }
        if ctx.get(first).is_none() && env().globals().any(|(name, _)| name == first) {
            continue; // `range`, `namespace`… are functions, not variables
        }
        let mut at = ctx;
        let mut walked = Vec::new();
        for part in var.split('.') {
            match at.get(part) {
                Some(next) => {
                    walked.push(part);
                    at = next;
                }
                None => {
                    // Reading into a string or number (`x.y` on a scalar) is minijinja's to judge.
                    let Value::Object(map) = at else { break };
                    let full = walked
                        .iter()
                        .copied()
                        .chain([part])
                        .collect::<Vec<_>>()
                        .join(".");
                    let hint = did_you_mean(part, map.keys().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            let known: Vec<&str> =
                                map.keys().map(String::as_str).take(12).collect();
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!("; known here: {}", known.join(", "))
                            }
                        });
                    return Err(format!("unknown variable `{full}`{hint}"));
                }
            }
        }
    }
    Ok(())
}

fn short(e: minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(detail) = e.detail()
        && !msg.contains(detail)
    {
        msg = format!("{msg}: {detail}");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_that_would_grow_without_bound_are_refused_and_ordinary_use_works() {
        let ctx = json!({"text": "a\nb", "items": ["x", "y", "z"]});
        for (template, expected) in [
            ("{{ text | indent(2) }}", "a\n  b"),
            ("{{ items | batch(2) | list | length }}", "2"),
            ("{{ items | slice(2) | list | length }}", "2"),
            ("{{ items | join(', ') }}", "x, y, z"),
            ("{{ text | replace('a', 'A') }}", "A\nb"),
            ("{{ items | tojson(indent=2) | length > 0 }}", "True"),
            ("{{ '%5s|' | format('x') }}", "    x|"),
        ] {
            assert_eq!(render(template, &ctx).unwrap(), expected, "{template}");
        }
        for template in [
            "{{ text | indent(10**15) }}",
            "{{ text | indent(width=10**15) }}",
            "{{ items | batch(10**15) | list }}",
            "{{ items | slice(10**15) | list }}",
            "{{ items | tojson(indent=10**9) }}",
            "{{ ('x' * 100000) | replace('x', 'y' * 100000) }}",
            "{{ range(10000) | join('x' * 1000) }}",
            "{{ '%1000000000s' | format('x') }}",
            "{{ '%*s' | format(10**12, 'x') }}",
        ] {
            let err = render(template, &ctx).expect_err(template);
            assert!(
                err.contains("larger than") || err.contains("at most"),
                "{template}: {err}"
            );
        }
    }

    #[test]
    fn a_rendered_value_is_bounded() {
        let err = render("{{ 'x' * 2000000 }}", &json!({})).unwrap_err();
        assert!(err.contains("renders to 2000000 bytes"), "{err}");
    }

    #[test]
    fn renders_nested_values_and_names_unknown_variables() {
        let ctx = json!({"properties": {"hostname": "web-1"}, "steps": {"plan": {"outputs": {"to_add": "3"}}}});
        assert_eq!(
            render("host={{ properties.hostname }}", &ctx).unwrap(),
            "host=web-1"
        );
        let err = render("{{ steps.plan.outputs.to_ad }}", &ctx).unwrap_err();
        assert_eq!(
            err,
            "unknown variable `steps.plan.outputs.to_ad`; did you mean `to_add`?"
        );
        let err = render("{{ steps.apply.outputs.x }}", &ctx).unwrap_err();
        assert!(err.starts_with("unknown variable `steps.apply`"), "{err}");
    }

    #[test]
    fn expressions_evaluate_bare_or_braced() {
        let ctx = json!({"steps": {"plan": {"outputs": {"to_destroy": "2"}}}});
        let expr = strip_braces("{{ steps.plan.outputs.to_destroy | int > 0 }}");
        assert_eq!(evaluate(expr, &ctx).unwrap(), json!(true));
        assert_eq!(evaluate("1 + 1 == 3", &ctx).unwrap(), json!(false));
    }

    #[test]
    fn secret_reads_are_found_by_name_or_whole() {
        assert_eq!(
            secret_reads(
                "{{ secrets.a }} {{ properties.x }} {{ secrets.b.c }}",
                false
            ),
            [Some("a".to_string()), Some("b".to_string())]
        );
        assert_eq!(secret_reads("{{ secrets['a'] }}", false), [None]);
        assert_eq!(secret_reads("secrets.a == 'x'", true), [Some("a".into())]);
        assert!(secret_reads("{% set secrets = 1 %}{{ secrets }}", false).is_empty());
        let ctx = json!({"properties": {}});
        let err = render("{{ secrets.a }}", &ctx).unwrap_err();
        assert!(err.contains("cannot be read here"), "{err}");
        let ctx = json!({"secrets": {"a": "1"}});
        let err = render("{{ secrets.b }}", &ctx).unwrap_err();
        assert!(err.contains("secret `b` is not granted"), "{err}");
        assert_eq!(render("{{ secrets.a }}", &ctx).unwrap(), "1");
    }

    #[test]
    fn runaway_templates_stop() {
        let err = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(err.contains("fuel"), "{err}");
    }
}
