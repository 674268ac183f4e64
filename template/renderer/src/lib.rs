//! The renderer component: workflow templates and expressions evaluated in the dialect of
//! `wasmops-template`, against the variables the host hands in as JSON.

use minijinja::{Environment, Value};
use std::cell::RefCell;
use std::sync::OnceLock;

wit_bindgen::generate!({ path: "wit", world: "renderer" });

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(wasmops_template::environment)
}

thread_local! {
    static CONTEXT: RefCell<Value> = const { RefCell::new(Value::UNDEFINED) };
}

fn context() -> Value {
    CONTEXT.with(|c| c.borrow().clone())
}

struct Renderer;

impl Guest for Renderer {
    fn set_context(json: String) -> Result<(), String> {
        let variables: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| format!("the variables are not JSON: {e}"))?;
        CONTEXT.with(|c| *c.borrow_mut() = Value::from_serialize(variables));
        Ok(())
    }

    fn render(template: String) -> Result<String, String> {
        env()
            .render_str(&template, context())
            .map_err(|e| wasmops_template::describe(&e))
    }

    fn evaluate(expression: String) -> Result<String, String> {
        let compiled = env()
            .compile_expression(&expression)
            .map_err(|e| wasmops_template::describe(&e))?;
        let value = compiled
            .eval(context())
            .map_err(|e| wasmops_template::describe(&e))?;
        serde_json::to_string(&value).map_err(|e| e.to_string())
    }
}

export!(Renderer);
