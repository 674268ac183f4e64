//! Commands that talk to a running daemon over its API (`--server`, `--token`).

use super::{Output, RunsFilter};
use crate::project::ProjectSource;
use crate::records::{Run, RunStatus};
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct ServerOpts {
    /// The daemon's address [default: http://127.0.0.1:8480]. For `runs`, giving it (or
    /// WASMOPS_SERVER) asks the daemon instead of reading the local data directory.
    #[arg(long, env = "WASMOPS_SERVER")]
    pub server: Option<String>,
    /// API token (the config file stores its SHA-256).
    #[arg(long, env = "WASMOPS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(opts: &ServerOpts) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = opts.server.as_deref().unwrap_or("http://127.0.0.1:8480");
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: opts.token.clone(),
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.send(method, path, body).map(|(value, _)| value)
    }

    /// The answer, and the path of the next page when a `Link: <…>; rel="next"` names one.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Value, Option<String>)> {
        let url = format!("{}{path}", self.base);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default();
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            (m, body) => {
                let req = if m == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                req.header("authorization", &auth)
                    .send_json(body.unwrap_or_else(|| json!({})))
            }
        };
        self.answer(response)
    }

    /// Sends one project file's contents under their digest.
    fn put_file(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        let url = format!("{}/api/v1/files/{sha256}", self.base);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default();
        let response = self
            .agent
            .put(&url)
            .header("authorization", &auth)
            .header("content-type", "application/octet-stream")
            .send(bytes);
        self.answer(response).map(drop)
    }

    /// The JSON answer (or the error it carries), and the next page's path.
    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(Value, Option<String>)> {
        let mut response = response.with_context(|| {
            format!(
                "cannot reach the daemon at {} (is `wasmops up` running?)",
                self.base
            )
        })?;
        let status = response.status();
        let next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::daemon::api::next_page)
            .map(str::to_string);
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let error = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or_default();
            bail!("{} {error}: {detail}", status.as_u16());
        }
        Ok((value, next))
    }

    /// Every item of a paged listing, following `rel="next"` links to the last page.
    pub fn get_all(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(path) = next {
            let (page, link) = self.send("GET", &path, None)?;
            items.extend(page.as_array().into_iter().flatten().cloned());
            next = link;
        }
        Ok(items)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call("POST", path, Some(body))
    }
}

fn workflow_api_path(path: &str) -> Result<String> {
    match crate::records::split_workflow_path(path) {
        Some((p, w)) => Ok(format!("/api/v1/projects/{p}/workflows/{w}")),
        None => {
            bail!("`{path}` is not a workflow path; write /projects/PROJECT/workflows/WORKFLOW")
        }
    }
}

pub fn apply(path: &Path, server: &ServerOpts) -> Result<ExitCode> {
    let mut sources = ProjectSource::read_all(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = Client::new(server);
    // The files travel with the project: uploaded by content, then named in the apply. The
    // daemon never reads this machine's directories.
    let mut uploaded = std::collections::BTreeSet::new();
    for source in &mut sources {
        let Some(dir) = source.dir.take() else {
            continue;
        };
        let collected = crate::project_files::collect(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", source.file))?;
        for (sha256, bytes) in &collected.contents {
            if uploaded.insert(sha256.clone()) {
                client
                    .put_file(sha256, bytes)
                    .with_context(|| format!("uploading the files of {}", source.file))?;
            }
        }
        source.files = collected.files;
    }
    let result = client.post("/api/v1/apply", json!({"projects": sources}))?;
    let projects: Vec<&str> = result["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("applied projects: {}", projects.join(", "));
    for w in result["workflows"].as_array().into_iter().flatten() {
        println!("  draft updated: {}", w.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn workflows(
    action: &str,
    path: Option<&str>,
    extra: Option<&str>,
    output: Output,
    server: &ServerOpts,
) -> Result<ExitCode> {
    let client = Client::new(server);
    let value = match (action, path) {
        ("list", _) => client.get("/api/v1/workflows")?,
        ("show", Some(p)) => client.get(&workflow_api_path(p)?)?,
        ("history", Some(p)) => client.get(&format!("{}/history", workflow_api_path(p)?))?,
        ("delete", Some(p)) => client.call("DELETE", &workflow_api_path(p)?, None)?,
        ("duplicate", Some(p)) => {
            let code = extra.context("workflows duplicate PATH NEW_CODE")?;
            client.post(
                &format!("{}/duplicate", workflow_api_path(p)?),
                json!({"code": code}),
            )?
        }
        ("validate" | "publish" | "pause" | "resume", Some(p)) => {
            client.post(&format!("{}/{action}", workflow_api_path(p)?), json!({}))?
        }
        (_, None) => bail!("workflows {action} needs a workflow path"),
        (other, _) => bail!("unknown workflows command `{other}`"),
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Text => print_workflows(action, &value),
    }
    Ok(if action == "validate" && value["valid"] == false {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_workflows(action: &str, value: &Value) {
    match action {
        "list" => {
            for w in value.as_array().into_iter().flatten() {
                let version = w["latest_version"]
                    .as_u64()
                    .map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<50} {:<7} {}",
                    w["path"].as_str().unwrap_or_default(),
                    w["status"].as_str().unwrap_or_default(),
                    version
                );
            }
        }
        "history" => {
            for r in value.as_array().into_iter().flatten() {
                println!(
                    "{}  {:<10} v{}  {}",
                    r["id"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["version"],
                    r["created_at"].as_str().unwrap_or_default()
                );
            }
        }
        "validate" => {
            if value["valid"] == true {
                println!("valid");
            } else {
                for e in value["errors"].as_array().into_iter().flatten() {
                    eprintln!("{}", e.as_str().unwrap_or_default());
                }
            }
        }
        "delete" => println!("deleted"),
        _ => println!(
            "{} {} (latest version: {})",
            value["path"].as_str().unwrap_or_default(),
            value["status"].as_str().unwrap_or_default(),
            value["latest_version"]
        ),
    }
}

pub fn run(
    workflow: &str,
    overrides: Map<String, Value>,
    detach: bool,
    follow: bool,
    output: Output,
    server: &ServerOpts,
) -> Result<ExitCode> {
    let client = Client::new(server);
    let created = client.post(
        "/api/v1/runs",
        json!({"workflow": workflow, "property_overrides": overrides}),
    )?;
    let id = created["id"]
        .as_str()
        .context("the daemon returned no run id")?
        .to_string();
    if detach {
        print_value(&created, output)?;
        return Ok(ExitCode::SUCCESS);
    }
    if follow {
        client.follow(&id)?;
    }
    loop {
        let run: Run = serde_json::from_value(client.get(&format!("/api/v1/runs/{id}"))?)?;
        if !run.status.is_active() {
            print_value(&serde_json::to_value(&run)?, output)?;
            return Ok(if run.status == RunStatus::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Client {
    /// Renders the run's event stream (SSE) as progress lines on stderr until the run ends.
    fn follow(&self, id: &str) -> Result<()> {
        use std::io::BufRead;
        let url = format!("{}/api/v1/runs/{id}/events", self.base);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Bearer {t}"))
            .unwrap_or_default();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent.get(&url).header("authorization", &auth).call()?;
        if !response.status().is_success() {
            bail!(
                "cannot follow run {id}: HTTP {}",
                response.status().as_u16()
            );
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut event = String::new();
        for line in reader.lines() {
            let line = line?;
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                let value: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                match event.as_str() {
                    "step" => progress_line(&value),
                    "run" | "snapshot" => {
                        // The snapshot carries what happened before we were listening.
                        fn walk(steps: &Value) {
                            for step in steps.as_array().into_iter().flatten() {
                                if step["status"] != "pending" {
                                    progress_line(step);
                                }
                                walk(&step["children"]);
                            }
                        }
                        walk(&value["steps"]);
                        let status = value["status"].as_str().unwrap_or_default();
                        eprintln!("run {id}: {status}");
                        if matches!(status, "succeeded" | "failed" | "cancelled") {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn progress_line(step: &Value) {
    let status = step["status"].as_str().unwrap_or_default();
    let summary = step["summary"]
        .as_str()
        .map(|s| format!(" → {s}"))
        .unwrap_or_default();
    eprintln!(
        "[{}] {} {status}{summary}",
        step["path"].as_str().unwrap_or_default(),
        step["name"].as_str().unwrap_or_default()
    );
}

fn print_value(value: &Value, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Text => match serde_json::from_value::<Run>(value.clone()) {
            Ok(run) => print!("{}", crate::render::run_text(&run)),
            Err(_) => println!("{}", serde_json::to_string_pretty(value)?),
        },
    }
    Ok(())
}

/// One page of the daemon's runs (or every page with `--all`), filtered by the daemon.
pub fn runs_list(filter: &RunsFilter, output: Output, server: &ServerOpts) -> Result<ExitCode> {
    #[derive(serde::Serialize)]
    struct Query<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        workflow: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a str>,
        limit: u16,
    }
    let query = serde_urlencoded::to_string(Query {
        workflow: filter.workflow.as_deref(),
        status: filter.status.as_deref(),
        limit: if filter.all { 1000 } else { filter.limit },
    })?;
    let client = Client::new(server);
    let path = format!("/api/v1/runs?{query}");
    let (values, more) = if filter.all {
        (client.get_all(&path)?, false)
    } else {
        let (page, next) = client.send("GET", &path, None)?;
        (page.as_array().cloned().unwrap_or_default(), next.is_some())
    };
    let runs = values
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<Run>, _>>()
        .context("the daemon answered with runs this version cannot read")?;
    super::local::print_runs(&runs, more, output)
}

pub fn runs(
    action: &str,
    id: Option<&str>,
    step: Option<&str>,
    output: Output,
    server: &ServerOpts,
) -> Result<ExitCode> {
    let client = Client::new(server);
    match (action, id) {
        ("show", Some(id)) => print_value(&client.get(&format!("/api/v1/runs/{id}"))?, output)?,
        ("logs", Some(id)) => {
            let query = step.map(|s| format!("?step={s}")).unwrap_or_default();
            for line in client
                .get(&format!("/api/v1/runs/{id}/logs{query}"))?
                .as_array()
                .into_iter()
                .flatten()
            {
                println!(
                    "[{}] {}: {}",
                    line["step"].as_str().unwrap_or_default(),
                    line["stream"].as_str().unwrap_or_default(),
                    line["text"].as_str().unwrap_or_default()
                );
            }
        }
        ("cancel" | "retry", Some(id)) => print_value(
            &client.post(&format!("/api/v1/runs/{id}/{action}"), json!({}))?,
            output,
        )?,
        _ => bail!("runs {action} needs a run id"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn decide(
    decision: &str,
    run: &str,
    step: &str,
    comment: Option<String>,
    server: &ServerOpts,
) -> Result<ExitCode> {
    let record = Client::new(server).post(
        &format!("/api/v1/runs/{run}/steps/{step}/{decision}"),
        json!({"comment": comment}),
    )?;
    println!(
        "{} {}: {} by you",
        record["path"].as_str().unwrap_or(step),
        record["name"].as_str().unwrap_or_default(),
        match decision {
            "approve" => "approved",
            "reject" => "rejected",
            _ => "continued",
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn install_plugin(dir: &Path, server: &ServerOpts) -> Result<ExitCode> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no plugin folder at {}", dir.display()))?;
    let plugin = Client::new(server).post("/api/v1/plugins", json!({"dir": dir}))?;
    println!(
        "installed {} {} ({}) into the daemon",
        plugin["name"].as_str().unwrap_or_default(),
        plugin["version"].as_str().unwrap_or_default(),
        plugin["digest"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
