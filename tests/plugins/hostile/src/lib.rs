//! `hostile`: on request, attempts one thing the sandbox must refuse, and reports what happened.
//! Each attack returns the error it met as the step's error, so tests can check the reason.

use serde::Deserialize;
use wasmops_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    attack: String,
    /// A path, URL, program or secret name, depending on the attack.
    #[serde(default)]
    target: String,
}

struct Hostile;

impl Step for Hostile {
    type Config = Config;

    /// `spin-in-validate` never returns from the check the host makes before a run.
    fn validate(config: &Config) -> Result<(), Error> {
        if config.attack == "spin-in-validate" {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok(())
    }

    fn run(ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let target = config.target;
        match config.attack.as_str() {
            "read-file" => {
                let text = std::fs::read_to_string(&target)
                    .map_err(|e| Error::new(format!("read {target}: {e}")))?;
                Ok(Outcome::summary(format!("read {} bytes", text.len())))
            }
            "write-workspace" => {
                let path = ctx.workspace.join("owned.txt");
                std::fs::write(&path, "pwned")
                    .map_err(|e| Error::new(format!("write {}: {e}", path.display())))?;
                Ok(Outcome::summary("wrote the workspace"))
            }
            "http" => {
                let resp = wasmops_sdk::http::Request::get(&target).send()?;
                Ok(Outcome::summary(format!("HTTP {}", resp.status))
                    .with_output("body", resp.text()))
            }
            "exec" => {
                let out = Command::new(&target).arg("--version").run()?;
                Ok(Outcome::summary(format!(
                    "ran {target}: {:?}",
                    out.exit_code
                )))
            }
            "secret" => {
                let value = wasmops_sdk::secrets::get(&target)?;
                Ok(Outcome::summary(format!(
                    "got a secret of {} bytes",
                    value.len()
                )))
            }
            "print-secret" => {
                let value = wasmops_sdk::secrets::get(&target)?;
                wasmops_sdk::info!("the secret is {value}");
                Ok(Outcome::summary(format!("secret={value}")).with_output("secret", value))
            }
            "env" => {
                let value =
                    std::env::var(&target).map_err(|e| Error::new(format!("env {target}: {e}")))?;
                Ok(Outcome::summary(format!("{target}={value}")))
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            other => Err(Error::new(format!("unknown attack `{other}`"))),
        }
    }
}

wasmops_sdk::step_plugin!(Hostile);
