//! The built-in template filters whose output can be far larger than their input (`indent`,
//! `batch`, `slice`, `tojson`, `replace`, `join`, `format`), registered again under their own
//! names with their size arguments checked before the built-in allocates anything.
//!
//! Fuel bounds how many instructions a template runs, not how much one instruction
//! allocates: `indent(10**15)` or `batch(10**15)` asked for petabytes in one call and aborted
//! the daemon. Each wrapper estimates the output from its arguments, refuses past
//! [`MAX_STRING`], and otherwise calls the built-in, kept under a hidden name.

use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// The most bytes one filter may produce, and one rendered template.
pub const MAX_STRING: usize = 1 << 20;
/// The most groups `batch` and `slice` may make.
const MAX_GROUPS: usize = 10_000;
/// The widest indentation `indent` and `tojson` may use.
const MAX_INDENT: usize = 256;
/// The widest field a `format` conversion may pad to.
const MAX_FORMAT_WIDTH: usize = 10_000;

/// Registers the bounded filters over the built-ins of the same names.
pub fn register(env: &mut Environment<'static>) {
    use minijinja::filters;
    env.add_filter("__builtin_indent", filters::indent);
    env.add_filter("__builtin_batch", filters::batch);
    env.add_filter("__builtin_slice", filters::slice);
    env.add_filter("__builtin_tojson", filters::tojson);
    env.add_filter("__builtin_replace", filters::replace);
    env.add_filter("__builtin_join", filters::join);
    env.add_filter("__builtin_format", filters::format);
    env.add_filter("indent", indent);
    env.add_filter("batch", |s: &State, args: Rest<Value>| {
        groups(s, "batch", args)
    });
    env.add_filter("slice", |s: &State, args: Rest<Value>| {
        groups(s, "slice", args)
    });
    env.add_filter("tojson", tojson);
    env.add_filter("replace", replace);
    env.add_filter("join", join);
    env.add_filter("format", format);
}

fn too_large(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what}: the result would be larger than {MAX_STRING} bytes"),
    )
}

/// Positional argument `index` (after the value), or keyword `name`.
fn argument(args: &[Value], index: usize, name: &str) -> Option<Value> {
    let (kwargs, positional) = match args.last() {
        Some(last) if last.is_kwargs() => {
            (Kwargs::try_from(last.clone()).ok(), &args[..args.len() - 1])
        }
        _ => (None, args),
    };
    positional
        .get(index)
        .cloned()
        .or_else(|| kwargs.and_then(|k| k.peek::<Value>(name).ok()))
}

/// A size argument as a number; a boolean (as `indent(true)` means 2) or a string passes.
fn size(value: Option<Value>) -> Option<usize> {
    let value = value?;
    if value.is_number() && !matches!(value.kind(), minijinja::value::ValueKind::Bool) {
        return Some(usize::try_from(value).unwrap_or(usize::MAX));
    }
    None
}

fn text_len(value: Option<&Value>) -> usize {
    value.and_then(Value::as_str).map_or(0, str::len)
}

fn indent(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(width) = size(argument(&args, 1, "width")) {
        let lines = args
            .first()
            .and_then(Value::as_str)
            .map_or(1, |s| s.lines().count() + 1);
        let estimate = width
            .saturating_mul(lines)
            .saturating_add(text_len(args.first()));
        if width > MAX_INDENT || estimate > MAX_STRING {
            return Err(too_large(&format!("indent({width})")));
        }
    }
    state.apply_filter("__builtin_indent", &args)
}

fn groups(state: &State, name: &str, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(count) = size(argument(&args, 1, "count"))
        && count > MAX_GROUPS
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{name}({count}): at most {MAX_GROUPS} groups"),
        ));
    }
    state.apply_filter(&format!("__builtin_{name}"), &args)
}

fn tojson(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(indent) = size(argument(&args, 1, "indent"))
        && indent > MAX_INDENT
    {
        return Err(too_large(&format!("tojson({indent})")));
    }
    state.apply_filter("__builtin_tojson", &args)
}

fn replace(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    if let (Some(text), Some(from), Some(to)) = (
        args.first().and_then(Value::as_str),
        args.get(1).and_then(Value::as_str),
        args.get(2).and_then(Value::as_str),
    ) {
        // An empty pattern matches between every two characters.
        let matches = if from.is_empty() {
            text.chars().count() + 1
        } else {
            text.matches(from).count()
        };
        let estimate = text.len().saturating_add(matches.saturating_mul(to.len()));
        if estimate > MAX_STRING {
            return Err(too_large("replace"));
        }
    }
    state.apply_filter("__builtin_replace", &args)
}

fn join(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    let joiner = text_len(args.get(1));
    if let Some(items) = args.first().and_then(Value::len) {
        let items_len: usize = args
            .first()
            .and_then(|v| v.try_iter().ok())
            .map_or(0, |iter| iter.map(|v| text_len(Some(&v))).sum());
        let estimate = items.saturating_mul(joiner).saturating_add(items_len);
        if estimate > MAX_STRING {
            return Err(too_large("join"));
        }
    }
    state.apply_filter("__builtin_join", &args)
}

fn format(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(spec) = args.first().and_then(Value::as_str) {
        // Every number in a conversion (`%-20s`, `%.5f`, `%*d` takes its width from an
        // argument, which is checked too).
        for conversion in spec.split('%').skip(1) {
            let flags: String = conversion
                .chars()
                .take_while(|c| c.is_ascii_digit() || "-+ #.*".contains(*c))
                .collect();
            let widest = flags
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| {
                    n.parse::<usize>()
                        .ok()
                        .or((!n.is_empty()).then_some(usize::MAX))
                })
                .max()
                .unwrap_or(0);
            if widest > MAX_FORMAT_WIDTH
                || (flags.contains('*')
                    && args[1..]
                        .iter()
                        .any(|a| size(Some(a.clone())).is_some_and(|n| n > MAX_FORMAT_WIDTH)))
            {
                return Err(too_large("format"));
            }
        }
    }
    state.apply_filter("__builtin_format", &args)
}
