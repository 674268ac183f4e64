//! Text output of a run, as ops0's "Execution Result" shows it: step results, total duration,
//! trigger, and a timeline when a stage ran in parallel.

use crate::records::{Run, RunStatus, StepRun, StepStatus};
use chrono::{DateTime, Utc};
use std::fmt::Write;

pub fn run_text(run: &Run) -> String {
    let mut out = String::new();
    let (word, mark) = run_status(run.status);
    let _ = writeln!(out, "Workflow: {}", run.workflow);
    let _ = writeln!(out, "Run ID:   {}", run.id);
    let _ = writeln!(out, "Status:   {word} {mark}");
    if let Some(error) = &run.error {
        let _ = writeln!(out, "Error:    {}", error.replace('\n', "\n          "));
    }
    if !run.steps.is_empty() {
        let _ = writeln!(out, "\nStep Results:");
        let _ = writeln!(out, "{}", "─".repeat(45));
        let width = name_width(&run.steps, 0);
        for (i, step) in run.steps.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            step_lines(&mut out, step, 0, width);
        }
    }
    out.push('\n');
    if let Some(ms) = run.duration_ms {
        let _ = writeln!(out, "Total Duration: {}", duration(ms));
    }
    let _ = writeln!(out, "Triggered By:   {}", trigger(run));
    if has_parallel(&run.steps)
        && let Some(start) = run.started_at
    {
        let _ = writeln!(out, "\nExecution Timeline\n");
        for line in timeline(&run.steps, start) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn run_status(status: RunStatus) -> (&'static str, &'static str) {
    match status {
        RunStatus::Queued => ("Queued", "…"),
        RunStatus::Running => ("Running", "…"),
        RunStatus::Waiting => ("Waiting", "⏸"),
        RunStatus::Succeeded => ("Completed", "✓"),
        RunStatus::Failed => ("Failed", "✗"),
        RunStatus::Cancelled => ("Cancelled", "✗"),
    }
}

fn step_status(step: &StepRun) -> (&'static str, &'static str) {
    match step.status {
        StepStatus::Succeeded if step.approved_by.is_some() => ("✓", "Approved"),
        StepStatus::Succeeded => ("✓", "Completed"),
        StepStatus::Failed => ("✗", "Failed"),
        StepStatus::Skipped => ("⊘", "Skipped"),
        StepStatus::Running => ("…", "Running"),
        StepStatus::Waiting => ("⏸", "Waiting"),
        StepStatus::Pending => ("·", "Not run"),
        StepStatus::Cancelled => ("✗", "Cancelled"),
    }
}

fn label(step: &StepRun, depth: usize) -> String {
    format!("{}{}. {}", "   ".repeat(depth), step.path, step.name)
}

fn name_width(steps: &[StepRun], depth: usize) -> usize {
    steps
        .iter()
        .map(|s| {
            label(s, depth)
                .chars()
                .count()
                .max(name_width(&s.children, depth + 1))
        })
        .max()
        .unwrap_or(0)
}

fn step_lines(out: &mut String, step: &StepRun, depth: usize, width: usize) {
    let (mark, word) = step_status(step);
    let name = label(step, depth);
    let pad = width.saturating_sub(name.chars().count());
    let took = step.duration_ms.map(duration).unwrap_or_default();
    let _ = writeln!(out, "{name}{}  {mark}  {word:<10} {took}", " ".repeat(pad));
    let indent = "   ".repeat(depth + 1);
    if let Some(by) = &step.approved_by {
        let _ = writeln!(out, "{indent}→ Approved by {by}");
    } else if let Some(summary) = &step.summary
        && !summary.is_empty()
    {
        let _ = writeln!(out, "{indent}→ {summary}");
    }
    if let Some(bound) = step.wait.as_ref().and_then(|w| w.approves.as_ref()) {
        let what = bound.summary.as_deref().unwrap_or("its outputs");
        let short: String = bound.sha256.chars().take(12).collect();
        let _ = writeln!(
            out,
            "{indent}→ Approves {}: {what} (sha256 {short}…)",
            bound.step
        );
    }
    if let Some(error) = &step.error {
        for line in error.lines().skip(1).take(20) {
            let _ = writeln!(out, "{indent}  {line}");
        }
    }
    for child in &step.children {
        step_lines(out, child, depth + 1, width);
    }
}

/// `450ms`, `12s`, `4m 32s`, `1h 5m`.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 if ms < 10_000 => format!("{:.1}s", ms as f64 / 1000.0),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn trigger(run: &Run) -> String {
    let t = &run.trigger;
    let mut kind = match t.kind.as_str() {
        "manual" => "Manual".to_string(),
        "git" => "Git Push".to_string(),
        "cron" => "Schedule".to_string(),
        "webhook" => "Webhook".to_string(),
        "incident" => "Incident".to_string(),
        "workflow" => "Workflow".to_string(),
        other => other.to_string(),
    };
    let detail = match (t.inputs.get("branch"), t.inputs.get("commit")) {
        (Some(b), Some(c)) => Some(format!(
            "{} @ {}",
            b.as_str().unwrap_or_default(),
            c.as_str()
                .unwrap_or_default()
                .chars()
                .take(7)
                .collect::<String>()
        )),
        _ => t.by.clone(),
    };
    if let Some(d) = detail {
        kind.push_str(&format!(" ({d})"));
    }
    kind
}

fn has_parallel(steps: &[StepRun]) -> bool {
    steps
        .iter()
        .any(|s| s.run_as.as_deref() == Some("parallel") || has_parallel(&s.children))
}

/// Start and end events of the top-level steps and of every child of a parallel stage.
fn timeline(steps: &[StepRun], start: DateTime<Utc>) -> Vec<String> {
    struct Event {
        at: DateTime<Utc>,
        order: usize,
        text: String,
    }
    fn collect(steps: &[StepRun], events: &mut Vec<Event>, order: &mut usize) {
        for step in steps {
            let parallel = step.run_as.as_deref() == Some("parallel");
            if parallel {
                let started: Vec<&StepRun> = step
                    .children
                    .iter()
                    .filter(|c| c.started_at.is_some())
                    .collect();
                for (i, child) in started.iter().enumerate() {
                    let connector = match (i, started.len()) {
                        (_, 1) => "",
                        (0, _) => " ─┬─ (parallel)",
                        (i, n) if i + 1 == n => " ─┘",
                        _ => " ─┤",
                    };
                    *order += 1;
                    events.push(Event {
                        at: child.started_at.unwrap(),
                        order: *order,
                        text: format!("{} started{connector}", child.name),
                    });
                }
                for child in &step.children {
                    if let Some(end) = child.finished_at {
                        *order += 1;
                        events.push(Event {
                            at: end,
                            order: *order,
                            text: format!("{} {}", child.name, finished_word(child)),
                        });
                    }
                }
            } else if step.started_at.is_some()
                && step.children.iter().any(|c| {
                    has_parallel(std::slice::from_ref(c)) || c.run_as.as_deref() == Some("parallel")
                })
            {
                collect(&step.children, events, order);
            } else {
                if let Some(s) = step.started_at {
                    *order += 1;
                    events.push(Event {
                        at: s,
                        order: *order,
                        text: format!("{} started", step.name),
                    });
                }
                if let Some(e) = step.finished_at {
                    *order += 1;
                    events.push(Event {
                        at: e,
                        order: *order,
                        text: format!("{} {}", step.name, finished_word(step)),
                    });
                }
            }
        }
    }
    let mut events = Vec::new();
    collect(steps, &mut events, &mut 0);
    events.sort_by_key(|e| (e.at, e.order));
    events
        .into_iter()
        .map(|e| {
            let ms = (e.at - start).num_milliseconds().max(0);
            format!(
                "{:02}:{:02}.{:03}  {}",
                ms / 60_000,
                (ms / 1000) % 60,
                ms % 1000,
                e.text
            )
        })
        .collect()
}

fn finished_word(step: &StepRun) -> &'static str {
    match step.status {
        StepStatus::Succeeded => "completed",
        StepStatus::Failed => "failed",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Skipped => "skipped",
        _ => "ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_ops0() {
        assert_eq!(duration(450), "450ms");
        assert_eq!(duration(2_300), "2.3s");
        assert_eq!(duration(12_000), "12s");
        assert_eq!(duration(272_000), "4m 32s");
    }
}
