//! Templates and expressions (`{{ properties.hostname }}`, `if: steps.plan.outputs.n | int > 0`),
//! one Jinja dialect for both, with bounded execution and strict undefined variables.
//!
//! The host parses templates (syntax, the variables they read); the renderer component
//! evaluates them, in an instance capped in memory and fuel (`wasmops_sandbox::TemplateRenderer`).

use crate::diagnostics::did_you_mean;
use minijinja::Environment;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use wasmops_sandbox::{RenderError, RenderSession, TemplateRenderer};
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
    render_value(&Value::String(text.to_string()), ctx).map(|rendered| match rendered {
        Value::String(text) => text,
        _ => unreachable!("a string renders to a string"),
    })
}

/// Renders every string inside a JSON value (keys stay as written), all in one instance.
pub fn render_value(value: &Value, ctx: &Value) -> Result<Value, String> {
    let mut templates = Vec::new();
    collect_templates(value, &mut templates);
    if templates.is_empty() {
        return Ok(value.clone());
    }
    let mut reads = Vec::new();
    for text in templates {
        let vars = variables(text, false);
        check_reads(&vars, ctx)?;
        reads.extend(vars);
    }
    Rendering::new(only_what_is_read(ctx, &reads)).value(value)
}

/// Evaluates an expression to a JSON value.
pub fn evaluate(expr: &str, ctx: &Value) -> Result<Value, String> {
    let reads = variables(expr, true);
    check_reads(&reads, ctx)?;
    let json = Rendering::new(only_what_is_read(ctx, &reads))
        .in_session(|session| session.evaluate(expr))?;
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

fn collect_templates<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::String(text) if is_template(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|v| collect_templates(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_templates(v, out)),
        _ => {}
    }
}

/// The part of `ctx` that `reads` (dotted paths, as [`variables`] finds them) reach: each path's
/// value, at its place. The renderer gets only this: the outputs of forty earlier steps are not
/// copied into it for a template that reads one property, and a secret the template does not
/// name never enters it.
fn only_what_is_read(ctx: &Value, reads: &[String]) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for path in reads {
        // The longest prefix of the path that `ctx` has: past it, the template reads into a
        // scalar (`name.upper`) or something the check let through, which the engine judges.
        let parts: Vec<&str> = path.split('.').collect();
        let mut found = Vec::new();
        let mut at = ctx;
        for part in &parts {
            match at.get(part) {
                Some(next) => {
                    found.push(*part);
                    at = next;
                }
                None => break,
            }
        }
        let Some((last, parents)) = found.split_last() else {
            continue;
        };
        let mut into = &mut out;
        for part in parents {
            let Value::Object(map) = into else { break };
            into = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
        // A parent copied whole already holds this value.
        if let Value::Object(map) = into {
            map.insert(last.to_string(), at.clone());
        }
    }
    out
}

include!(concat!(env!("OUT_DIR"), "/template_renderer.rs"));

/// Where the renderer's compilation is cached, when the caller has a place for it.
static RENDERER_CACHE: OnceLock<PathBuf> = OnceLock::new();

/// Caches the renderer's compilation in `dir` (the daemon's and the CLI's plugin cache), so a
/// process compiles it once per build, not once per start. Takes effect before the first render.
pub fn cache_renderer_in(dir: PathBuf) {
    let _ = RENDERER_CACHE.set(dir);
}

fn renderer() -> Result<&'static TemplateRenderer, String> {
    static RENDERER: OnceLock<Result<TemplateRenderer, String>> = OnceLock::new();
    RENDERER
        .get_or_init(|| {
            TemplateRenderer::new(
                TEMPLATE_RENDERER,
                RENDERER_CACHE.get().map(PathBuf::as_path),
            )
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Templates rendered against one set of variables, in one renderer instance made at the first
/// template (text without `{{`/`{%` needs none). The caller has checked what they read.
struct Rendering {
    ctx: Value,
    session: Option<RenderSession>,
}

impl Rendering {
    fn new(ctx: Value) -> Self {
        Rendering { ctx, session: None }
    }

    fn render(&mut self, text: &str) -> Result<String, String> {
        if !is_template(text) {
            return Ok(text.to_string());
        }
        let rendered = self.in_session(|session| session.render(text))?;
        if rendered.len() > MAX_STRING {
            return Err(format!(
                "the template renders to {} bytes, past the {MAX_STRING} a template may produce",
                rendered.len()
            ));
        }
        Ok(rendered)
    }

    fn value(&mut self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.value(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.value(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Runs `work` in this rendering's instance, taken on first use. An instance that trapped
    /// cannot be entered again: the next template gets another.
    fn in_session<T>(
        &mut self,
        work: impl FnOnce(&mut RenderSession) -> Result<T, RenderError>,
    ) -> Result<T, String> {
        let session = match &mut self.session {
            Some(session) => session,
            None => {
                let variables = serde_json::to_string(&self.ctx).map_err(|e| e.to_string())?;
                let session = renderer()?.session(&variables).map_err(|e| e.to_string())?;
                self.session.insert(session)
            }
        };
        let outcome = work(session);
        if session.is_spent() {
            self.session = None;
        }
        outcome.map_err(|e| e.to_string())
    }
}

/// Runs the host's parsing of a template so that a panic inside the engine (a lexer state nobody
/// foresaw) fails this template, not the process, and is not printed as a crash. Rendering does
/// not need this: it runs in the renderer component, where a panic is a trap.
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
fn check_reads(reads: &[String], ctx: &Value) -> Result<(), String> {
    for var in reads {
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
    wasmops_template::describe(&e)
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
    fn templates_that_grow_without_bound_stop_at_the_memory_cap() {
        // Each of these reached gigabytes before: fuel counts instructions, and one `~`, `*` or
        // `+` doubles a value.
        const MEMORY: &str = "the template needs more than 64 MiB of memory";
        let err = render(
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
            &json!({}),
        )
        .unwrap_err();
        // Copying a list costs fuel per item: it may run out of either first.
        assert!(err == MEMORY || err == "the template ran too long", "{err}");
        for template in [
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s * 2 %}{% endfor %}{{ ns.s | length }}",
            "{% set a = 'x' * 50000000 %}{% set b = a ~ a %}{{ (b ~ b) | length }}",
            "{{ ('x' * 100000000) | length }}",
        ] {
            let err = render(template, &json!({})).expect_err(template);
            assert_eq!(err, MEMORY, "{template}");
        }
        // Big intermediates within the cap are fine; only the rendered text is held to 1 MiB.
        assert_eq!(
            render("{{ ('x' * 10000000) | length }}", &json!({})).unwrap(),
            "10000000"
        );
    }

    #[test]
    fn a_template_that_fails_leaves_the_next_one_in_the_same_value_working() {
        let value = json!(["{{ ('x' * 100000000) | length }}", "{{ 1 + 1 }}"]);
        let err = render_value(&value, &json!({})).unwrap_err();
        assert!(err.contains("64 MiB"), "{err}");
        let mut rendering = Rendering::new(json!({}));
        assert!(
            rendering
                .render("{{ ('x' * 100000000) | length }}")
                .is_err()
        );
        assert_eq!(rendering.render("{{ 1 + 1 }}").unwrap(), "2");
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
