//! Workflow records as the catalog keeps them: a draft, numbered published versions, and
//! whether triggers fire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    pub number: u32,
    pub yaml: String,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// `/projects/{p}/workflows/{w}`
    pub path: String,
    pub project: String,
    pub code: String,
    /// The draft being edited; what `publish` turns into the next version.
    pub draft: String,
    pub versions: Vec<Version>,
    /// Paused: triggers do not fire; manual runs still work.
    pub paused: bool,
    /// Where script files of this workflow are read from.
    pub source_dir: Option<std::path::PathBuf>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowRecord {
    /// `draft` (never published), `active` or `paused`.
    pub fn status(&self) -> &'static str {
        match (self.versions.is_empty(), self.paused) {
            (true, _) => "draft",
            (false, false) => "active",
            (false, true) => "paused",
        }
    }

    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn version(&self, number: u32) -> Option<&Version> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// What the API returns: the record and its status, without every version's text.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "project": self.project,
            "code": self.code,
            "status": self.status(),
            "latest_version": self.latest().map(|v| v.number),
            "versions": self.versions.iter().map(|v| serde_json::json!({
                "number": v.number, "published_at": v.published_at, "published_by": v.published_by
            })).collect::<Vec<_>>(),
            "draft": self.draft,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

pub fn workflow_path(project: &str, code: &str) -> String {
    format!("/projects/{project}/workflows/{code}")
}

/// `/projects/p/workflows/w` → (p, w).
pub fn split_workflow_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts[..] {
        ["projects", p, "workflows", w] if !p.is_empty() && !w.is_empty() => Some((p, w)),
        _ => None,
    }
}
