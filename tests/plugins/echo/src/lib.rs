//! `echo`: returns the step request as outputs, so end-to-end tests can see exactly what the host
//! sends a plugin (attempt, idempotency key, workspace, properties, rendered config).

use wasmops_sdk::prelude::*;

struct Echo;

impl Step for Echo {
    type Config = Value;

    fn run(ctx: &Context, config: Value) -> Result<Outcome, Error> {
        // Proves the workspace preopen: the same absolute path is writable from inside.
        let marker = ctx.workspace.join("echo-was-here");
        std::fs::write(&marker, ctx.step_path.as_bytes())?;
        Ok(Outcome::summary(format!("echo from {}", ctx.step_path))
            .with_output("run_id", ctx.run_id.clone())
            .with_output("step_path", ctx.step_path.clone())
            .with_output("step_id", ctx.step_id.clone())
            .with_output("attempt", ctx.attempt)
            .with_output("idempotency_key", ctx.idempotency_key.clone())
            .with_output("workspace", ctx.workspace.display().to_string())
            .with_output(
                "source_dir",
                ctx.source_dir.as_ref().map(|d| d.display().to_string()),
            )
            .with_output("wrote_marker", marker.exists())
            .with_output("properties", ctx.properties().clone())
            .with_output("env", ctx.env().clone())
            .with_output("trigger", ctx.trigger().clone())
            .with_output("run", ctx.lookup("/run").cloned())
            .with_output("config", config))
    }
}

wasmops_sdk::step_plugin!(Echo);
