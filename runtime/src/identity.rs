//! Who is acting: a user name, the groups the directory gives them, and their role. The
//! daemon's auth produces it; the API checks the role against each route, and the engine checks
//! it against a step's approvers.

use serde::{Deserialize, Serialize};

/// Who is acting, with the groups the directory gives them and what the API lets them do.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub groups: Vec<String>,
    pub role: Role,
}

/// What a user may do through the API. Roles are ordered: each one can do all that the roles
/// before it can, so `role >= Role::Operator` reads "may at least operate".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads workflows, runs, logs, events, plugins and metrics.
    Viewer,
    /// Also starts runs and acts on them: cancel, retry, continue or reject a plain wait.
    Operator,
    /// Also changes projects and workflows: apply, edit, validate, publish, duplicate, pause,
    /// resume, delete.
    Editor,
    /// Also installs plugins.
    Admin,
}

impl Role {
    /// The name used in the config file and in API messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_the_ones_below_it() {
        let lowest_first = [Role::Viewer, Role::Operator, Role::Editor, Role::Admin];
        assert!(lowest_first.windows(2).all(|w| w[0] < w[1]));
        let names: Vec<&str> = lowest_first.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["viewer", "operator", "editor", "admin"]);
    }
}
