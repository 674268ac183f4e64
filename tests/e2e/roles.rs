//! Roles through the real daemon: every route declares the role it needs, a viewer is refused
//! everything that changes something, each role gets what its rank allows, and approval gates
//! answer to their `requires_approval_from` list, not to roles.

use crate::daemon_support::{BOB, Daemon, ED, JANE, VIC};
use crate::support::{Sandbox, step};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wasmops::daemon::api::{Access, route_table};
use wasmops::identity::Role;

const PROJECT: &str = "probe";
const WORKFLOW: &str = "/projects/probe/workflows/probe";
const API: &str = "/api/v1/projects/probe/workflows/probe";
/// A plain wait, so a run of it parks where anyone with the right role may continue it.
const PLAIN_WAIT: &str = "steps:\n  - type: wait\n    name: Hold\n  - uses: noop\n";

/// A daemon with the `probe` project applied and its workflow published (as jane, the admin).
fn daemon_with(sb: &Sandbox, yaml: &str) -> Daemon {
    let d = Daemon::start(sb.dir.path());
    let project = json!({"file": "project.yaml", "yaml": format!("project: {PROJECT}\n"),
                         "workflows": {"probe": yaml}});
    let (status, body) = d.post(JANE, "/api/v1/apply", json!({"projects": [project]}));
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.post(JANE, &format!("{API}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    d
}

/// Starts a run as `token`, and waits until its first step waits.
fn start_waiting(d: &Daemon, token: &str) -> String {
    let (status, run) = d.post(token, "/api/v1/runs", json!({"workflow": WORKFLOW}));
    assert_eq!(status, 201, "{run:#}");
    let id = run["id"].as_str().unwrap().to_string();
    d.wait_for(&id, "waiting at step 1", |r| {
        r["status"] == "waiting" && step(r, "1")["status"] == "waiting"
    });
    id
}

/// POSTs a decision, retrying while the daemon answers 409 because the run it just recovered or
/// started is not registered yet.
fn decide(d: &Daemon, token: &str, path: &str) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let (status, body) = d.post(token, path, json!({}));
        let settling = status == 409
            && body["detail"]
                .as_str()
                .is_some_and(|s| s.contains("not active"));
        if !settling || started.elapsed() > Duration::from_secs(30) {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_forbidden(status: u16, body: &Value, needed: &str, who: &str, role: &str, here: &str) {
    assert_eq!(status, 403, "{here}: {body:#}");
    assert_eq!(body["error"], "forbidden", "{here}: {body:#}");
    let detail = body["detail"].as_str().unwrap_or_default();
    let says = format!("needs the {needed} role; {who} has the {role} role");
    assert!(
        detail.contains(&says),
        "{here}: `{detail}` should say `{says}`"
    );
}

#[test]
fn reads_need_a_viewer_and_every_change_needs_more() {
    let table = route_table();
    assert!(table.len() > 15, "the route table is off: {table:#?}");
    for route in table {
        let here = format!("{} {}", route.method, route.path);
        match (route.method, route.access) {
            ("GET", Access::Public) => assert_eq!(route.path, "/healthz", "{here} needs no token"),
            ("GET", access) => assert_eq!(access, Access::Role(Role::Viewer), "{here}"),
            // Decisions: the step's approvers, or an operator for a plain wait (tested below).
            (_, Access::Approver) => assert!(route.path.ends_with("/{decision}"), "{here}"),
            (_, Access::Role(role)) => assert!(role > Role::Viewer, "{here} lets a viewer in"),
            (_, Access::Public) => panic!("{here} changes something without a token"),
        }
    }
}

#[test]
fn a_viewer_is_refused_every_route_that_changes_something() {
    let sb = Sandbox::new();
    let d = daemon_with(&sb, PLAIN_WAIT);
    let run = start_waiting(&d, JANE);
    let before = d.get(API);

    let mut tried = 0;
    for route in route_table().into_iter().filter(|r| r.method != "GET") {
        // Every value a path parameter takes on a real route: the route must refuse them all.
        let mut paths = vec![
            route
                .path
                .replace("{p}", PROJECT)
                .replace("{w}", "probe")
                .replace("{id}", &run)
                .replace("{step}", "1"),
        ];
        for (param, values) in [
            (
                "{action}",
                &["validate", "publish", "duplicate", "pause", "resume"][..],
            ),
            ("{decision}", &["continue", "reject"][..]),
        ] {
            paths = paths
                .iter()
                .flat_map(|p| values.iter().map(move |v| p.replace(param, v)))
                .collect();
        }
        let needed = match route.access {
            Access::Role(role) => role.as_str(),
            // The run's step 1 is a plain wait: deciding it is an operator's.
            Access::Approver => "operator",
            Access::Public => panic!("{} {} is public", route.method, route.path),
        };
        for path in paths {
            let (status, body) = d.call(Some(VIC), route.method, &path, Some(json!({})));
            let here = format!("{} {path}", route.method);
            assert_forbidden(status, &body, needed, "vic@example.com", "viewer", &here);
            tried += 1;
        }
    }
    assert!(tried >= 15, "only {tried} refusals were tried");

    // Nothing changed: the workflow, its versions and state, the run and its parked step.
    let after = d.get(API);
    assert_eq!(before, after);
    assert_eq!(d.get("/api/v1/workflows").as_array().unwrap().len(), 1);
    let now = d.get(&format!("/api/v1/runs/{run}"));
    assert_eq!(now["status"], "waiting", "{now:#}");
    assert!(step(&now, "1")["wait"]["decision"].is_null(), "{now:#}");
    assert_eq!(d.get("/api/v1/runs").as_array().unwrap().len(), 1);

    // The CLI shows the refusal as the API words it.
    let cancelled = d.cli_as(VIC, &["runs", "cancel", &run]);
    assert_ne!(cancelled.code, 0);
    let says = format!(
        "403 forbidden: POST /api/v1/runs/{run}/cancel needs the operator role; \
         vic@example.com has the viewer role"
    );
    assert!(cancelled.stderr.contains(&says), "{}", cancelled.stderr);

    // What a viewer may do: read all of it.
    for path in [
        "/api/v1/workflows",
        API,
        &format!("{API}/history"),
        "/api/v1/runs",
        &format!("/api/v1/runs/{run}"),
        &format!("/api/v1/runs/{run}/logs"),
        "/api/v1/plugins",
    ] {
        let (status, body) = d.call(Some(VIC), "GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body:#}");
    }
}

#[test]
fn each_role_does_what_its_rank_allows() {
    let sb = Sandbox::new();
    let d = daemon_with(&sb, PLAIN_WAIT);
    let project = json!({"projects": [{"file": "project.yaml", "yaml": "project: probe\n",
                                       "workflows": {"probe": PLAIN_WAIT}}]});
    let draft = json!({"yaml": PLAIN_WAIT});
    let echo = crate::support::test_plugins().join("echo");
    let install = json!({"dir": echo});

    // An operator runs, continues and cancels, but changes no project, workflow or plugin.
    let bob = "bob@example.com";
    let (status, body) = d.post(BOB, "/api/v1/apply", project.clone());
    assert_forbidden(status, &body, "editor", bob, "operator", "apply");
    let (status, body) = d.call(Some(BOB), "PUT", API, Some(draft.clone()));
    assert_forbidden(status, &body, "editor", bob, "operator", "edit");
    let (status, body) = d.post(BOB, &format!("{API}/publish"), json!({}));
    assert_forbidden(status, &body, "editor", bob, "operator", "publish");
    let (status, body) = d.call(Some(BOB), "DELETE", API, None);
    assert_forbidden(status, &body, "editor", bob, "operator", "delete");
    let (status, body) = d.post(BOB, "/api/v1/plugins", install.clone());
    assert_forbidden(status, &body, "admin", bob, "operator", "install");
    let run = start_waiting(&d, BOB);
    let (status, body) = decide(&d, BOB, &format!("/api/v1/runs/{run}/steps/1/continue"));
    assert_eq!(status, 200, "{body:#}");
    d.wait_status(&run, "succeeded");
    let run = start_waiting(&d, BOB);
    let (status, body) = d.post(BOB, &format!("/api/v1/runs/{run}/cancel"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.post(BOB, &format!("/api/v1/runs/{run}/retry"), json!({}));
    assert_eq!(status, 200, "{body:#}");

    // An editor changes projects and workflows (and can run them), but installs no plugin.
    let ed = "ed@example.com";
    let (status, body) = d.post(ED, "/api/v1/apply", project);
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.call(Some(ED), "PUT", API, Some(draft));
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.post(ED, &format!("{API}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["latest_version"], 2, "{body:#}");
    for action in ["pause", "resume"] {
        let (status, body) = d.post(ED, &format!("{API}/{action}"), json!({}));
        assert_eq!(status, 200, "{action}: {body:#}");
    }
    let (status, body) = d.post(ED, &format!("{API}/duplicate"), json!({"code": "copy"}));
    assert_eq!(status, 201, "{body:#}");
    let copy = "/api/v1/projects/probe/workflows/copy";
    let (status, body) = d.call(Some(ED), "DELETE", copy, None);
    assert_eq!(status, 204, "{body:#}");
    let (status, body) = d.post(ED, "/api/v1/plugins", install.clone());
    assert_forbidden(status, &body, "admin", ed, "editor", "install");
    let (status, body) = d.post(ED, "/api/v1/runs", json!({"workflow": WORKFLOW}));
    assert_eq!(status, 201, "an editor also operates: {body:#}");

    // An admin installs plugins.
    let (status, body) = d.post(JANE, "/api/v1/plugins", install);
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["name"], "echo");
}

#[test]
fn an_approval_gate_answers_to_its_list_not_to_roles() {
    let sb = Sandbox::new();
    let gate = "steps:\n  - type: wait\n    name: Gate\n    requires_approval_from: { user_names: [vic@example.com] }\n  - uses: noop\n";
    let d = daemon_with(&sb, gate);
    let run = start_waiting(&d, BOB);
    let approve = format!("/api/v1/runs/{run}/steps/1/approve");

    // The admin is not on the list: refused, and nothing is recorded.
    let (status, body) = decide(&d, JANE, &approve);
    assert_eq!(status, 403, "{body:#}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("approvers are vic@example.com"),
        "{body:#}"
    );
    let (status, body) = decide(&d, BOB, &format!("/api/v1/runs/{run}/steps/1/reject"));
    assert_eq!(status, 403, "an operator is no approver either: {body:#}");

    // vic is a viewer, and on the list: the list is the grant.
    let (status, body) = decide(&d, VIC, &approve);
    assert_eq!(status, 200, "{body:#}");
    let done = d.wait_status(&run, "succeeded");
    assert_eq!(step(&done, "1")["approved_by"], "vic@example.com");
}
