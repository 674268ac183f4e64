//! Projects, environments, assets and asset templates: where `change` steps find their target,
//! the action to run on it and the properties that action sees.

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::workflow::{Step, parse_steps};
use crate::yaml::{self, Node};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Project {
    pub code: String,
    /// Where its files are: on this machine's disk (read with `project_files::collect`), or,
    /// in a run's planning, the copy in the run's workspace.
    pub dir: Option<PathBuf>,
    /// Its files by digest, when it came through `apply` (contents in the catalog).
    pub files: crate::project_files::FileSet,
    pub properties: Map<String, Value>,
    pub templates: BTreeMap<String, AssetTemplate>,
    pub environments: BTreeMap<String, Environment>,
    /// `workflows/*.yaml` in the project directory: code → (file, text).
    pub workflows: BTreeMap<String, (PathBuf, String)>,
}

#[derive(Clone, Debug)]
pub struct AssetTemplate {
    /// Action name → the steps it runs.
    pub actions: BTreeMap<String, Vec<Step>>,
}

#[derive(Clone, Debug, Default)]
pub struct Environment {
    pub properties: Map<String, Value>,
    pub assets: BTreeMap<String, Asset>,
}

#[derive(Clone, Debug)]
pub struct Asset {
    pub template: String,
    pub properties: Map<String, Value>,
}

/// Every project loaded for a run or by the daemon.
#[derive(Clone, Debug, Default)]
pub struct Projects {
    pub projects: BTreeMap<String, Project>,
    /// What they were parsed from: a run stores them (once per digest) so that its retry and
    /// resume plan against the projects it started with, not against what was applied since.
    pub sources: Vec<ProjectSource>,
    /// The hex SHA-256 of `sources` as JSON, computed once.
    digest: std::sync::OnceLock<String>,
    /// Set once the store has the snapshot, so each run start need not serialize it again.
    kept: std::sync::OnceLock<()>,
}

/// Projects as a run stores them: the sources as JSON, and their digest.
pub struct ProjectsSnapshot {
    pub sha256: String,
    pub json: Vec<u8>,
}

/// A `change` target after lookup: what to run and with which properties.
#[derive(Clone, Debug)]
pub struct ResolvedTarget {
    pub path: String,
    pub project: String,
    pub environment: String,
    pub asset: String,
    pub steps: Vec<Step>,
    /// project → environment → asset, merged deep, later wins.
    pub properties: Map<String, Value>,
    pub dir: Option<PathBuf>,
}

impl Projects {
    /// Loads a `project.yaml`-style file, or every `project.yaml` under a directory.
    pub fn load(path: &Path) -> Result<Projects, Diagnostics> {
        Projects::from_sources(&ProjectSource::read_all(path)?)
    }

    pub fn from_sources(sources: &[ProjectSource]) -> Result<Projects, Diagnostics> {
        let mut projects = Projects {
            sources: sources.to_vec(),
            ..Projects::default()
        };
        let mut errors = Vec::new();
        for source in sources {
            match source.parse() {
                Ok(p) => {
                    projects.projects.insert(p.code.clone(), p);
                }
                Err(mut e) => errors.append(&mut e.0),
            }
        }
        if errors.is_empty() {
            Ok(projects)
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// The digest of the sources (see [`Projects::snapshot`]); none without projects.
    pub fn digest(&self) -> Option<&str> {
        if self.sources.is_empty() {
            return None;
        }
        Some(self.digest.get_or_init(|| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(self.sources_json()))
        }))
    }

    /// The sources to store with a run, and their digest; none without projects, or once
    /// [`Projects::kept`] was called.
    pub fn snapshot_to_keep(&self) -> Option<ProjectsSnapshot> {
        if self.kept.get().is_some() {
            return None;
        }
        Some(ProjectsSnapshot {
            sha256: self.digest()?.to_string(),
            json: self.sources_json(),
        })
    }

    /// The store has the snapshot.
    pub fn kept(&self) {
        let _ = self.kept.set(());
    }

    fn sources_json(&self) -> Vec<u8> {
        // Plain data (strings, maps, digests) always serializes.
        serde_json::to_vec(&self.sources).unwrap_or_default()
    }

    /// Looks up `/projects/{p}/environments/{e}/assets/{a}` and the named action.
    pub fn resolve(&self, target: &str, action: &str) -> Result<ResolvedTarget, String> {
        let parts: Vec<&str> = target.trim_matches('/').split('/').collect();
        let ["projects", p, "environments", e, "assets", a] = parts[..] else {
            return Err(format!(
                "`{target}` is not an asset path; write /projects/PROJECT/environments/ENV/assets/ASSET"
            ));
        };
        let project = self.projects.get(p).ok_or_else(|| {
            not_found(
                "project",
                p,
                self.projects.keys(),
                "load it with --project DIR",
            )
        })?;
        let env = project
            .environments
            .get(e)
            .ok_or_else(|| not_found("environment", e, project.environments.keys(), ""))?;
        let asset = env
            .assets
            .get(a)
            .ok_or_else(|| not_found("asset", a, env.assets.keys(), ""))?;
        let template = project.templates.get(&asset.template).ok_or_else(|| {
            format!(
                "asset `{a}` uses template `{}`, which project `{p}` does not define",
                asset.template
            )
        })?;
        let steps = template.actions.get(action).ok_or_else(|| {
            not_found("action", action, template.actions.keys(), "").replace(
                "not found",
                &format!("not found in template `{}`", asset.template),
            )
        })?;
        let mut properties = project.properties.clone();
        merge(&mut properties, &env.properties);
        merge(&mut properties, &asset.properties);
        Ok(ResolvedTarget {
            path: format!("/projects/{p}/environments/{e}/assets/{a}"),
            project: p.to_string(),
            environment: e.to_string(),
            asset: a.to_string(),
            steps: steps.clone(),
            properties,
            dir: project.dir.clone(),
        })
    }
}

fn not_found<'a>(
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
    extra: &str,
) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    let mut msg = format!("{what} `{name}` not found");
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
        None if !known.is_empty() => msg.push_str(&format!("; known: {}", known.join(", "))),
        None => {}
    }
    if !extra.is_empty() {
        msg.push_str(&format!(" ({extra})"));
    }
    msg
}

/// Deep merge: objects merge key by key, anything else in `over` replaces what `base` had.
pub fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn find_project_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let candidate = dir.join("project.yaml");
    if candidate.is_file() {
        out.push(candidate);
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        find_project_files(&d, out);
    }
}

/// A project as files: what `wasmops apply` sends and the daemon stores.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ProjectSource {
    /// The project file's name, for messages.
    pub file: String,
    pub yaml: String,
    /// The project directory, when it is read from this machine's disk (`wasmops run
    /// --project`); never accepted through the API, where `files` carries what runs need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// `workflows/*.yaml`: code → YAML.
    #[serde(default)]
    pub workflows: BTreeMap<String, String>,
    /// The project's files (scripts, playbooks, Terraform directories) by digest.
    #[serde(default)]
    pub files: crate::project_files::FileSet,
}

impl ProjectSource {
    /// Reads a `project.yaml`-style file, or every `project.yaml` under a directory.
    pub fn read_all(path: &Path) -> Result<Vec<ProjectSource>, Diagnostics> {
        let mut files = Vec::new();
        if path.is_dir() {
            find_project_files(path, &mut files);
            if files.is_empty() {
                return Err(Diagnostics(vec![Diagnostic {
                    file: path.display().to_string(),
                    location: Default::default(),
                    yaml_path: String::new(),
                    message: "no project.yaml found in this directory".into(),
                    hint: Some(
                        "a project directory holds project.yaml and workflows/*.yaml".into(),
                    ),
                }]));
            }
        } else {
            files.push(path.to_path_buf());
        }
        files.iter().map(|f| ProjectSource::read(f)).collect()
    }

    fn read(file: &Path) -> Result<ProjectSource, Diagnostics> {
        let name = file.display().to_string();
        let yaml = yaml::read_source(file).map_err(|d| Diagnostics(vec![d]))?;
        let dir = file
            .parent()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf()));
        let mut workflows = BTreeMap::new();
        if let Some(dir) = &dir
            && let Ok(entries) = std::fs::read_dir(dir.join("workflows"))
        {
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if let (true, Some(stem)) = (is_yaml, path.file_stem()) {
                    let text = yaml::read_source(&path).map_err(|d| Diagnostics(vec![d]))?;
                    workflows.insert(stem.to_string_lossy().into_owned(), text);
                }
            }
        }
        Ok(ProjectSource {
            file: name,
            yaml,
            dir,
            workflows,
            files: Default::default(),
        })
    }

    pub fn parse(&self) -> Result<Project, Diagnostics> {
        let root = yaml::load(&self.file, &self.yaml).map_err(|d| Diagnostics(vec![d]))?;
        let mut loader = Loader {
            file: &self.file,
            errors: Vec::new(),
        };
        let mut project = loader.project(&root);
        project.dir = self.dir.clone();
        project.files = self.files.clone();
        if let Some(dir) = &self.dir {
            for (code, text) in &self.workflows {
                project.workflows.insert(
                    code.clone(),
                    (
                        dir.join("workflows").join(format!("{code}.yaml")),
                        text.clone(),
                    ),
                );
            }
        }
        if loader.errors.is_empty() {
            Ok(project)
        } else {
            Err(Diagnostics(loader.errors))
        }
    }
}

struct Loader<'f> {
    file: &'f str,
    errors: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn error(&mut self, node: &Node, path: &str, message: String, hint: Option<String>) {
        self.errors.push(Diagnostic {
            file: self.file.to_string(),
            location: yaml::location(node),
            yaml_path: path.to_string(),
            message,
            hint,
        });
    }

    /// The mapping's entries, complaining about keys outside `known`.
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> Vec<(String, &'n Node)> {
        let Some(entries) = yaml::as_map(node) else {
            self.error(
                node,
                path,
                format!("expected a mapping, found {}", yaml::describe(node)),
                None,
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, key_node, value) in entries {
            if known.contains(&key.as_str()) {
                out.push((key, value));
            } else {
                let hint = did_you_mean(&key, known.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")));
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                self.error(key_node, &at, format!("unknown key `{key}`"), Some(hint));
            }
        }
        out
    }

    /// Entries of a free-form map (templates, environments, assets), whose keys are codes.
    fn any_entries<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(String, &'n Node)> {
        match yaml::as_map(node) {
            Some(entries) => entries.into_iter().map(|(k, _, v)| (k, v)).collect(),
            None => {
                self.error(
                    node,
                    path,
                    format!("expected a mapping, found {}", yaml::describe(node)),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn properties(&mut self, node: &Node, path: &str) -> Map<String, Value> {
        match yaml::to_json(node) {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                self.error(
                    node,
                    path,
                    format!("`properties` is a mapping, found {}", yaml::describe(node)),
                    None,
                );
                Map::new()
            }
        }
    }

    fn project(&mut self, root: &Node) -> Project {
        let mut project = Project {
            code: String::new(),
            dir: None,
            files: Default::default(),
            properties: Map::new(),
            templates: BTreeMap::new(),
            environments: BTreeMap::new(),
            workflows: BTreeMap::new(),
        };
        let entries = self.entries(
            root,
            "",
            &[
                "project",
                "name",
                "description",
                "properties",
                "templates",
                "environments",
            ],
        );
        for (key, value) in entries {
            match key.as_str() {
                "project" => project.code = yaml::scalar_text(value).unwrap_or_default(),
                "properties" => project.properties = self.properties(value, "properties"),
                "templates" => {
                    for (name, tnode) in self.any_entries(value, "templates") {
                        let path = format!("templates.{name}");
                        let mut actions = BTreeMap::new();
                        for (k, anode) in self.entries(tnode, &path, &["actions", "description"]) {
                            if k != "actions" {
                                continue;
                            }
                            for (action, steps) in
                                self.any_entries(anode, &format!("{path}.actions"))
                            {
                                let at = format!("{path}.actions.{action}");
                                match parse_steps(self.file, steps, &at) {
                                    Ok(s) => {
                                        actions.insert(action, s);
                                    }
                                    Err(mut e) => self.errors.append(&mut e),
                                }
                            }
                        }
                        project.templates.insert(name, AssetTemplate { actions });
                    }
                }
                "environments" => {
                    for (env_code, enode) in self.any_entries(value, "environments") {
                        let path = format!("environments.{env_code}");
                        let mut env = Environment::default();
                        for (k, v) in self.entries(
                            enode,
                            &path,
                            &["name", "description", "properties", "assets"],
                        ) {
                            match k.as_str() {
                                "properties" => {
                                    env.properties =
                                        self.properties(v, &format!("{path}.properties"));
                                }
                                "assets" => {
                                    for (asset_code, anode) in
                                        self.any_entries(v, &format!("{path}.assets"))
                                    {
                                        let apath = format!("{path}.assets.{asset_code}");
                                        let mut asset = Asset {
                                            template: String::new(),
                                            properties: Map::new(),
                                        };
                                        for (k, v) in self.entries(
                                            anode,
                                            &apath,
                                            &["template", "properties", "description"],
                                        ) {
                                            match k.as_str() {
                                                "template" => {
                                                    asset.template =
                                                        yaml::scalar_text(v).unwrap_or_default();
                                                }
                                                "properties" => {
                                                    asset.properties = self.properties(
                                                        v,
                                                        &format!("{apath}.properties"),
                                                    );
                                                }
                                                _ => {}
                                            }
                                        }
                                        if asset.template.is_empty() {
                                            self.error(anode, &apath, format!("asset `{asset_code}` has no `template`"), Some("add `template: NAME` naming one of the project's templates".into()));
                                        }
                                        env.assets.insert(asset_code, asset);
                                    }
                                }
                                _ => {}
                            }
                        }
                        project.environments.insert(env_code, env);
                    }
                }
                _ => {}
            }
        }
        if project.code.is_empty() {
            self.error(
                root,
                "",
                "the project has no `project:` code".into(),
                Some("add `project: my_project` at the top".into()),
            );
        }
        for (env_code, env) in &project.environments {
            for (asset_code, asset) in &env.assets {
                if !asset.template.is_empty() && !project.templates.contains_key(&asset.template) {
                    let hint = did_you_mean(
                        &asset.template,
                        project.templates.keys().map(String::as_str),
                    )
                    .map(|s| format!("did you mean `{s}`?"));
                    self.error(
                        root,
                        &format!("environments.{env_code}.assets.{asset_code}.template"),
                        format!(
                            "template `{}` is not defined in this project",
                            asset.template
                        ),
                        hint,
                    );
                }
            }
        }
        project
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_and_later_wins() {
        let mut base = serde_json::json!({"a": 1, "disk": {"threshold": 80, "path": "/"}})
            .as_object()
            .unwrap()
            .clone();
        let over = serde_json::json!({"disk": {"threshold": 90}, "b": 2})
            .as_object()
            .unwrap()
            .clone();
        merge(&mut base, &over);
        assert_eq!(
            Value::Object(base),
            serde_json::json!({"a": 1, "b": 2, "disk": {"threshold": 90, "path": "/"}})
        );
    }
}
