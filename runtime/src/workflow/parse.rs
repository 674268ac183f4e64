//! YAML → [`Workflow`]: structure checks, step type coercion, and located error messages.

use super::{Approvers, OnTimeout, Retry, RunAs, Step, StepKind, Workflow, parse_duration};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::yaml::{self, Node};
use serde_json::Value;
use std::time::Duration;

/// The most attempts a `retry` may make: enough for flaky steps, not a loop that never ends.
const MAX_ATTEMPTS: u32 = 100;

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "steps",
    "triggers",
    "notify",
    "properties",
    "concurrency",
];
const COMMON_KEYS: &[&str] = &[
    "type",
    "name",
    "id",
    "when",
    "timeout",
    "retry",
    "continue_on_error",
];
/// Step keys whose strings are templates or expressions.
const TEMPLATE_KEYS: &[&str] = &["name", "target", "targets", "with", "property_overrides"];
const STEP_TYPES: &[&str] = &["stage", "change", "plugin", "wait", "condition", "workflow"];

/// Keys each step type accepts besides [`COMMON_KEYS`].
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "stage" => &["children", "run_as"],
        "change" => &["target", "targets", "action", "run_as"],
        "plugin" => &["uses", "with"],
        "wait" => &["requires_approval_from", "on_timeout", "approves"],
        "condition" => &["if", "then", "else"],
        "workflow" => &["target", "version", "run_as", "property_overrides"],
        _ => &[],
    }
}

fn all_step_keys() -> impl Iterator<Item = &'static str> {
    COMMON_KEYS
        .iter()
        .chain(STEP_TYPES.iter().flat_map(|k| kind_keys(k)))
        .copied()
}

/// Parses and structurally validates a workflow. References to plugins, targets and other
/// workflows are checked separately, against what is installed and loaded.
pub fn parse_workflow(file: &str, text: &str) -> Result<Workflow, Diagnostics> {
    let root = yaml::load(file, text).map_err(|d| Diagnostics(vec![d]))?;
    let mut p = Parser {
        file,
        errors: Vec::new(),
    };
    let workflow = p.workflow(&root);
    if p.errors.is_empty() {
        Ok(workflow)
    } else {
        Err(Diagnostics(p.errors))
    }
}

/// Parses an asset template action: one step mapping or a list of steps.
pub fn parse_steps(file: &str, node: &Node, path: &str) -> Result<Vec<Step>, Vec<Diagnostic>> {
    let mut p = Parser {
        file,
        errors: Vec::new(),
    };
    let steps = if yaml::as_map(node).is_some() {
        p.step(node, path).into_iter().collect()
    } else {
        p.steps(node, path)
    };
    if p.errors.is_empty() {
        Ok(steps)
    } else {
        Err(p.errors)
    }
}

struct Parser<'f> {
    file: &'f str,
    errors: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn error(&mut self, node: &Node, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(Diagnostic {
            file: self.file.to_string(),
            location: yaml::location(node),
            yaml_path: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    fn workflow(&mut self, root: &Node) -> Workflow {
        let mut wf = Workflow {
            name: None,
            file: self.file.to_string(),
            properties: Default::default(),
            concurrency: 1,
            triggers: Vec::new(),
            notify: Vec::new(),
            steps: Vec::new(),
        };
        let Some(entries) = yaml::as_map(root) else {
            self.error(
                root,
                "",
                format!("a workflow is a mapping, found {}", yaml::describe(root)),
                Some("start the file with `steps:` followed by a list of steps".into()),
            );
            return wf;
        };
        let mut saw_steps = false;
        for (key, key_node, value) in entries {
            match key.as_str() {
                "name" => wf.name = self.string(value, "name"),
                "description" => {}
                "steps" => {
                    saw_steps = true;
                    wf.steps = self.steps(value, "steps");
                }
                "triggers" => wf.triggers = self.json_list(value, "triggers"),
                "notify" => wf.notify = self.json_list(value, "notify"),
                "properties" => match yaml::to_json(value) {
                    Value::Object(map) => wf.properties = map,
                    Value::Null => {}
                    _ => self.error(
                        value,
                        "properties",
                        format!("`properties` is a mapping, found {}", yaml::describe(value)),
                        None,
                    ),
                },
                "concurrency" => {
                    if let Some(n) = self.number(value, "concurrency") {
                        if n == 0 {
                            self.error(
                                value,
                                "concurrency",
                                "`concurrency` must be at least 1",
                                None,
                            );
                        } else {
                            wf.concurrency = n;
                        }
                    }
                }
                _ => self.unknown_key(key_node, &key, "", TOP_LEVEL_KEYS.iter().copied()),
            }
        }
        if !saw_steps {
            self.error(
                root,
                "",
                "the workflow has no `steps`",
                Some("add a top-level `steps:` list".into()),
            );
        }
        wf
    }

    fn unknown_key<'a>(
        &mut self,
        key_node: &Node,
        key: &str,
        path: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) {
        let known: Vec<&str> = known.into_iter().collect();
        let hint = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known keys here: {}", known.join(", ")),
        };
        let at = join(path, key);
        self.error(key_node, &at, format!("unknown key `{key}`"), Some(hint));
    }

    fn steps(&mut self, node: &Node, path: &str) -> Vec<Step> {
        if yaml::is_null(node) {
            self.error(
                node,
                path,
                format!("`{}` is empty", last(path)),
                Some("add at least one step".into()),
            );
            return Vec::new();
        }
        let Some(items) = yaml::as_seq(node) else {
            self.error(
                node,
                path,
                format!(
                    "`{}` is a list of steps, found {}",
                    last(path),
                    yaml::describe(node)
                ),
                Some("write each step on its own line starting with `- `".into()),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.step(item, &format!("{path}[{i}]")))
            .collect()
    }

    fn step(&mut self, node: &Node, path: &str) -> Option<Step> {
        let Some(entries) = yaml::as_map(node) else {
            self.error(
                node,
                path,
                format!("a step is a mapping, found {}", yaml::describe(node)),
                Some("give the step keys such as `name:` and `uses:`".into()),
            );
            return None;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, ..)| key == k)
                .map(|(_, _, v)| *v)
        };
        let has = |k: &str| get(k).is_some();

        let kind_name = match get("type") {
            Some(t) => {
                let t_str = yaml::as_str(t).unwrap_or_default().to_string();
                if !STEP_TYPES.contains(&t_str.as_str()) {
                    let hint = did_you_mean(&t_str, STEP_TYPES.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("step types: {}", STEP_TYPES.join(", ")));
                    self.error(
                        t,
                        &join(path, "type"),
                        format!("unknown step type `{t_str}`"),
                        Some(hint),
                    );
                    return None;
                }
                t_str
            }
            None => match self.coerce_kind(node, path, &has, get("target")) {
                Some(k) => k.to_string(),
                None => return None,
            },
        };

        let allowed: Vec<&str> = COMMON_KEYS
            .iter()
            .chain(kind_keys(&kind_name))
            .copied()
            .collect();
        for (key, key_node, _) in &entries {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            if all_step_keys().any(|k| k == key) {
                let owners: Vec<&str> = STEP_TYPES
                    .iter()
                    .copied()
                    .filter(|t| kind_keys(t).contains(&key.as_str()))
                    .collect();
                self.error(
                    key_node,
                    &join(path, key),
                    format!("`{key}` does not belong on a {kind_name} step"),
                    Some(format!(
                        "`{key}` is a key of {} steps",
                        owners.join(" and ")
                    )),
                );
            } else {
                self.unknown_key(key_node, key, path, all_step_keys());
            }
        }

        let mut step = Step {
            name: get("name").and_then(|n| self.string(n, &join(path, "name"))),
            id: get("id").and_then(|n| self.identifier(n, &join(path, "id"))),
            when: get("when").and_then(|n| self.expression(n, &join(path, "when"))),
            timeout: get("timeout").and_then(|n| self.duration(n, &join(path, "timeout"))),
            retry: get("retry")
                .map(|n| self.retry(n, &join(path, "retry")))
                .unwrap_or_default(),
            continue_on_error: get("continue_on_error")
                .and_then(|n| self.boolean(n, &join(path, "continue_on_error")))
                .unwrap_or(false),
            kind: StepKind::Wait {
                approvers: None,
                on_timeout: OnTimeout::Reject,
                approves: None,
            },
            location: yaml::location(node),
            yaml_path: path.to_string(),
            file: self.file.to_string(),
            templates: Default::default(),
        };
        for (key, _, value) in &entries {
            if key == "with" {
                // Where the plugin's own `validate` findings are reported.
                step.templates.insert(key.clone(), yaml::location(value));
            }
            if matches!(key.as_str(), "when" | "if") {
                // Expressions need no braces to be one.
                step.templates.insert(key.clone(), yaml::location(value));
            } else if TEMPLATE_KEYS.contains(&key.as_str()) {
                template_locations(value, key, &mut step.templates);
            }
        }
        let run_as = |p: &mut Self, required: bool| -> RunAs {
            match get("run_as") {
                Some(n) => p.run_as(n, &join(path, "run_as")),
                None if required => {
                    p.error(
                        node,
                        path,
                        "this step has `children` but no `run_as`",
                        Some("add `run_as: sequential` or `run_as: parallel`".into()),
                    );
                    RunAs::Sequential
                }
                None => RunAs::Sequential,
            }
        };
        step.kind = match kind_name.as_str() {
            "stage" => {
                let required = !has("type");
                let run_as = run_as(self, required);
                let children = match get("children") {
                    Some(c) => self.steps(c, &join(path, "children")),
                    None => {
                        self.error(
                            node,
                            path,
                            "a stage needs `children`",
                            Some("add a `children:` list of steps".into()),
                        );
                        Vec::new()
                    }
                };
                StepKind::Stage { run_as, children }
            }
            "change" => {
                let (targets, fan_out) = match (get("target"), get("targets")) {
                    (Some(_), Some(t)) => {
                        self.error(
                            t,
                            &join(path, "targets"),
                            "give either `target` or `targets`, not both",
                            None,
                        );
                        (Vec::new(), false)
                    }
                    (Some(t), None) => (
                        self.string(t, &join(path, "target")).into_iter().collect(),
                        false,
                    ),
                    (None, Some(t)) => (self.string_list(t, &join(path, "targets")), true),
                    (None, None) => {
                        self.error(
                            node,
                            path,
                            "a change step needs a `target` or `targets`",
                            Some("add `target: /projects/P/environments/E/assets/A`".into()),
                        );
                        (Vec::new(), false)
                    }
                };
                let action = match get("action") {
                    Some(a) => self.string(a, &join(path, "action")).unwrap_or_default(),
                    None => {
                        self.error(
                            node,
                            path,
                            "a change step needs an `action`",
                            Some(
                                "add `action: default` or another action of the asset's template"
                                    .into(),
                            ),
                        );
                        String::new()
                    }
                };
                StepKind::Change {
                    targets,
                    fan_out,
                    action,
                    run_as: run_as(self, false),
                }
            }
            "plugin" => {
                let uses = match get("uses") {
                    Some(u) => self.string(u, &join(path, "uses")).unwrap_or_default(),
                    None => {
                        self.error(
                            node,
                            path,
                            "a plugin step needs `uses`",
                            Some("add `uses: script` (or another installed plugin)".into()),
                        );
                        String::new()
                    }
                };
                let with = match get("with") {
                    Some(w) if yaml::as_map(w).is_some() || yaml::is_null(w) => {
                        match yaml::to_json(w) {
                            Value::Null => Value::Object(Default::default()),
                            v => v,
                        }
                    }
                    Some(w) => {
                        self.error(
                            w,
                            &join(path, "with"),
                            format!(
                                "`with` is a mapping of settings, found {}",
                                yaml::describe(w)
                            ),
                            None,
                        );
                        Value::Null
                    }
                    None => Value::Object(Default::default()),
                };
                StepKind::Plugin { uses, with }
            }
            "wait" => {
                let approvers = get("requires_approval_from")
                    .map(|n| self.approvers(n, &join(path, "requires_approval_from")));
                let on_timeout = match get("on_timeout") {
                    None => OnTimeout::Reject,
                    Some(n) => match yaml::as_str(n) {
                        Some("reject") => OnTimeout::Reject,
                        Some("approve") => OnTimeout::Approve,
                        _ => {
                            self.error(
                                n,
                                &join(path, "on_timeout"),
                                "`on_timeout` is `reject` or `approve`",
                                None,
                            );
                            OnTimeout::Reject
                        }
                    },
                };
                let approves =
                    get("approves").and_then(|n| self.string(n, &join(path, "approves")));
                StepKind::Wait {
                    approvers,
                    on_timeout,
                    approves,
                }
            }
            "condition" => {
                let condition = match get("if") {
                    Some(n) => self.expression(n, &join(path, "if")).unwrap_or_default(),
                    None => {
                        self.error(
                            node,
                            path,
                            "a condition step needs `if`",
                            Some("add `if: EXPRESSION`".into()),
                        );
                        String::new()
                    }
                };
                let then = match get("then") {
                    Some(n) => self.steps(n, &join(path, "then")),
                    None => {
                        self.error(
                            node,
                            path,
                            "a condition step needs `then`",
                            Some(
                                "add `then:` with the steps to run when the condition holds".into(),
                            ),
                        );
                        Vec::new()
                    }
                };
                let otherwise = get("else")
                    .map(|n| self.steps(n, &join(path, "else")))
                    .unwrap_or_default();
                StepKind::Condition {
                    condition,
                    then,
                    otherwise,
                }
            }
            "workflow" => {
                let target = match get("target") {
                    Some(t) => self.string(t, &join(path, "target")).unwrap_or_default(),
                    None => {
                        self.error(
                            node,
                            path,
                            "a workflow step needs a `target`",
                            Some("add `target: /projects/P/workflows/W`".into()),
                        );
                        String::new()
                    }
                };
                let version = get("version").and_then(|n| self.number(n, &join(path, "version")));
                let property_overrides = match get("property_overrides") {
                    None => Vec::new(),
                    Some(n) => match yaml::to_json(n) {
                        Value::Array(items) if items.iter().all(Value::is_object) => items
                            .into_iter()
                            .filter_map(|v| match v {
                                Value::Object(m) => Some(m),
                                _ => None,
                            })
                            .collect(),
                        _ => {
                            self.error(
                                n,
                                &join(path, "property_overrides"),
                                "`property_overrides` is a list of mappings",
                                Some("write `- env: dev` for each child run".into()),
                            );
                            Vec::new()
                        }
                    },
                };
                StepKind::Workflow {
                    target,
                    version,
                    run_as: run_as(self, false),
                    property_overrides,
                }
            }
            _ => unreachable!("kind names come from STEP_TYPES"),
        };
        Some(step)
    }

    /// Picks a step type from the keys present, or explains which keys would make one.
    fn coerce_kind(
        &mut self,
        node: &Node,
        path: &str,
        has: &dyn Fn(&str) -> bool,
        target: Option<&Node>,
    ) -> Option<&'static str> {
        let target_is_workflow = target
            .and_then(yaml::as_str)
            .is_some_and(|t| t.contains("/workflows/"));
        let kind = if has("uses") || has("with") {
            "plugin"
        } else if has("children") || has("run_as") && !has("target") && !has("targets") {
            "stage"
        } else if has("if") || has("then") || has("else") {
            "condition"
        } else if has("property_overrides") || has("version") || target_is_workflow {
            "workflow"
        } else if has("action") || has("target") || has("targets") {
            "change"
        } else if has("requires_approval_from") || has("on_timeout") || has("approves") {
            "wait"
        } else {
            self.error(
                node,
                path,
                "cannot tell what kind of step this is",
                Some(
                    "add `uses: PLUGIN` (plugin step), `children` + `run_as` (stage), `target` + `action` (change), \
                     `if` + `then` (condition), `target: /projects/P/workflows/W` (workflow), or `type: wait`"
                        .into(),
                ),
            );
            return None;
        };
        Some(kind)
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match yaml::scalar_text(node) {
            Some(s) => Some(s),
            None => {
                self.error(
                    node,
                    path,
                    format!(
                        "`{}` is a string, found {}",
                        last(path),
                        yaml::describe(node)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn identifier(&mut self, node: &Node, path: &str) -> Option<String> {
        let id = self.string(node, path)?;
        let valid = id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.error(
                node,
                path,
                format!("`{id}` is not a valid step id"),
                Some(format!(
                    "ids are letters, digits and `_`, so templates can say `steps.{}.outputs`; try `{}`",
                    id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                    id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                )),
            );
            return None;
        }
        Some(id)
    }

    fn expression(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = self.string(node, path)?;
        let expr = super::template::strip_braces(&text).to_string();
        if let Err(e) = super::template::check_expression(&expr) {
            self.error(
                node,
                path,
                format!("invalid expression `{expr}`: {e}"),
                None,
            );
            return None;
        }
        Some(expr)
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        match yaml::as_seq(node) {
            Some(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.string(n, &format!("{path}[{i}]")))
                .collect(),
            None => {
                self.error(
                    node,
                    path,
                    format!("`{}` is a list, found {}", last(path), yaml::describe(node)),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn json_list(&mut self, node: &Node, path: &str) -> Vec<Value> {
        match yaml::to_json(node) {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            _ => {
                self.error(
                    node,
                    path,
                    format!("`{path}` is a list, found {}", yaml::describe(node)),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn number(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.number_up_to(node, path, u32::MAX)
    }

    /// A whole number from 0 to `max`; past it (or past any integer) an error that says so.
    fn number_up_to(&mut self, node: &Node, path: &str, max: u32) -> Option<u32> {
        let text = yaml::scalar_text(node).unwrap_or_default();
        let text = text.trim();
        match text.parse::<u32>() {
            Ok(n) if n <= max => Some(n),
            _ if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                self.error(
                    node,
                    path,
                    format!("`{}` is at most {max}, found {text}", last(path)),
                    None,
                );
                None
            }
            _ => {
                self.error(
                    node,
                    path,
                    format!(
                        "`{}` is a whole number, found {}",
                        last(path),
                        yaml::describe(node)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match yaml::scalar_text(node)
            .as_deref()
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("true" | "yes" | "on") => Some(true),
            Some("false" | "no" | "off") => Some(false),
            _ => {
                self.error(
                    node,
                    path,
                    format!(
                        "`{}` is true or false, found {}",
                        last(path),
                        yaml::describe(node)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = yaml::scalar_text(node).unwrap_or_default();
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node,
                    path,
                    format!("`{text}` is not a duration: {e}"),
                    Some("write e.g. `30s`, `5m`, `1h30m`, or a number of seconds".into()),
                );
                None
            }
        }
    }

    fn run_as(&mut self, node: &Node, path: &str) -> RunAs {
        match yaml::as_str(node) {
            Some("sequential") => RunAs::Sequential,
            Some("parallel") => RunAs::Parallel,
            other => {
                let hint = other
                    .and_then(|o| did_you_mean(o, ["sequential", "parallel"]))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "use `sequential` or `parallel`".into());
                self.error(
                    node,
                    path,
                    format!(
                        "`run_as` is `sequential` or `parallel`, found `{}`",
                        other.unwrap_or("?")
                    ),
                    Some(hint),
                );
                RunAs::Sequential
            }
        }
    }

    fn retry(&mut self, node: &Node, path: &str) -> Retry {
        let mut retry = Retry::default();
        // A number, however large (past 2^64 YAML reads it as a float): attempts.
        let digits =
            |t: String| !t.trim().is_empty() && t.trim().bytes().all(|b| b.is_ascii_digit());
        if yaml::as_map(node).is_none() && yaml::scalar_text(node).is_some_and(digits) {
            if let Some(n) = self.number_up_to(node, path, MAX_ATTEMPTS) {
                retry.attempts = n.max(1);
            }
            return retry;
        }
        let Some(entries) = yaml::as_map(node) else {
            self.error(
                node,
                path,
                "`retry` is a number of attempts or a mapping",
                Some("write `retry: {attempts: 3, delay: 5s, backoff: 2}`".into()),
            );
            return retry;
        };
        for (key, key_node, value) in entries {
            let at = join(path, &key);
            match key.as_str() {
                "attempts" => {
                    if let Some(n) = self.number_up_to(value, &at, MAX_ATTEMPTS) {
                        retry.attempts = n.max(1);
                    }
                }
                "delay" => {
                    if let Some(d) = self.duration(value, &at) {
                        retry.delay = d;
                    }
                }
                "backoff" => {
                    let text = yaml::scalar_text(value).unwrap_or_default();
                    retry.backoff = match text.as_str() {
                        "exponential" => 2.0,
                        "fixed" | "constant" | "linear" => 1.0,
                        t => {
                            match t.parse::<f64>() {
                                Ok(f) if (1.0..=10.0).contains(&f) => f,
                                _ => {
                                    self.error(value, &at, "`backoff` is a factor from 1 to 10, `fixed` or `exponential`", None);
                                    1.0
                                }
                            }
                        }
                    };
                }
                _ => self.unknown_key(key_node, &key, path, ["attempts", "delay", "backoff"]),
            }
        }
        retry
    }

    fn approvers(&mut self, node: &Node, path: &str) -> Approvers {
        let mut approvers = Approvers::default();
        let Some(entries) = yaml::as_map(node) else {
            self.error(
                node,
                path,
                "`requires_approval_from` is a mapping",
                Some("write `user_names: [...]` and/or `ldap_groups: [...]` under it".into()),
            );
            return approvers;
        };
        for (key, key_node, value) in entries {
            let at = join(path, &key);
            match key.as_str() {
                "user_names" => approvers.user_names = self.string_list(value, &at),
                "ldap_groups" => approvers.ldap_groups = self.string_list(value, &at),
                _ => self.unknown_key(key_node, &key, path, ["user_names", "ldap_groups"]),
            }
        }
        if approvers.user_names.is_empty() && approvers.ldap_groups.is_empty() {
            self.error(
                node,
                path,
                "nobody could approve this step",
                Some("list at least one of `user_names` or `ldap_groups`".into()),
            );
        }
        approvers
    }
}

/// Records where each template string under `node` is, by its path (`with.env.TOKEN`).
fn template_locations(
    node: &Node,
    path: &str,
    out: &mut std::collections::BTreeMap<String, crate::diagnostics::Location>,
) {
    if let Some(text) = yaml::as_str(node) {
        if super::template::is_template(text) {
            out.insert(path.to_string(), yaml::location(node));
        }
    } else if let Some(items) = yaml::as_seq(node) {
        for (i, item) in items.iter().enumerate() {
            template_locations(item, &format!("{path}[{i}]"), out);
        }
    } else if let Some(entries) = yaml::as_map(node) {
        for (key, _, value) in entries {
            template_locations(value, &join(path, &key), out);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_workflow("w.yaml", text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn coerces_types_from_keys() {
        let wf = parse_workflow(
            "w.yaml",
            "steps:\n- name: s\n  run_as: parallel\n  children:\n  - uses: noop\n  - type: wait\n- target: /projects/p/environments/e/assets/a\n  action: default\n- if: 'true'\n  then: [{uses: noop}]\n",
        )
        .unwrap();
        let kinds: Vec<_> = wf.steps.iter().map(|s| s.kind.type_name()).collect();
        assert_eq!(kinds, ["stage", "change", "condition"]);
    }

    #[test]
    fn suggests_keys_and_run_as() {
        let errs = errors(
            "steps:\n  - name: s\n    run-as: parallel\n    children:\n      - uses: noop\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("w.yaml:3:5: unknown key `run-as`")
                    && e.contains("did you mean `run_as`?")),
            "{errs:?}"
        );
        let errs = errors("steps:\n  - name: s\n    children:\n      - uses: noop\n");
        assert!(
            errs.iter().any(|e| e
                .starts_with("w.yaml:2:5: this step has `children` but no `run_as`")
                && e.contains("add `run_as: sequential` or `run_as: parallel`")),
            "{errs:?}"
        );
    }

    #[test]
    fn explains_untyped_steps() {
        let errs = errors("steps:\n  - name: lonely\n");
        assert!(
            errs[0].contains("cannot tell what kind of step this is"),
            "{errs:?}"
        );
        assert!(errs[0].contains("`uses: PLUGIN`"));
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let errs = errors(
            "steps:\n  - uses: noop\n    timeout: soon\n  - uses: noop\n    retry: {attempts: x}\n",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("(at `steps[0].timeout`)"));
        assert!(errs[1].contains("(at `steps[1].retry.attempts`)"));
    }

    #[test]
    fn keys_of_another_kind_are_named() {
        let errs = errors("steps:\n  - uses: noop\n    action: default\n");
        assert!(
            errs[0].contains("`action` does not belong on a plugin step"),
            "{errs:?}"
        );
    }

    #[test]
    fn retry_backoff_grows() {
        let r = Retry {
            attempts: 4,
            delay: Duration::from_millis(100),
            backoff: 2.0,
        };
        assert_eq!(r.delay_before(2), Duration::from_millis(100));
        assert_eq!(r.delay_before(4), Duration::from_millis(400));
    }
}
