//! The template dialect of workflows (Jinja through minijinja, strict about undefined variables,
//! bounded in fuel, recursion and filter output), defined once for the host, which parses and
//! checks templates, and for the renderer component, which evaluates them.

pub mod bounded_filters;

use minijinja::{Environment, UndefinedBehavior};

/// Enough for any sensible template; a runaway loop in a template stops here instead of spinning.
pub const FUEL: u64 = 100_000;

/// The environment every template is parsed and rendered in.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    bounded_filters::register(&mut env);
    env
}

/// An error as one line: minijinja's message, with its detail when the message lacks it.
pub fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(detail) = e.detail()
        && !msg.contains(detail)
    {
        msg = format!("{msg}: {detail}");
    }
    msg
}
