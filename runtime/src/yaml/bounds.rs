//! Bounds on a YAML text checked from its events before any tree is built: how deep it nests,
//! how many nodes its aliases expand to, and no key twice in one mapping.
//!
//! The loader copies an anchored node at every alias, so a few hundred bytes of nested
//! `&a [*b, *b, …]` expand to billions of nodes; and every later pass over the tree (loading,
//! converting, validating, dropping) recurses, so ten thousand nested lists overflow the
//! stack. Counting on the event stream costs one pass and memory for the open containers only.

use crate::diagnostics::{Diagnostic, Location};
use saphyr_parser::{Event, Parser, Span};
use std::collections::HashMap;

/// How deep lists and mappings may nest. Workflows nest a few levels per stage of children;
/// 64 leaves room for deep trees and none for a stack overflow.
pub const MAX_DEPTH: usize = 64;
/// How many nodes a document may hold once every alias is expanded. A 6,000-step workflow
/// has about 60,000.
pub const MAX_NODES: u64 = 500_000;

/// A list or mapping that has started and not yet ended.
struct Open {
    anchor: usize,
    /// Nodes beneath it so far, aliases expanded.
    nodes: u64,
    /// For a mapping: its keys so far, where each was, and whether the next node is a key.
    keys: Option<(HashMap<String, Location>, bool)>,
}

/// Checks `text` against the bounds; a text the parser rejects passes, for the loader to
/// report with its own message.
pub fn check(file: &str, text: &str) -> Result<(), Diagnostic> {
    let error = |span: &Span, message: String, hint: &str| Diagnostic {
        file: file.to_string(),
        location: at(span),
        yaml_path: String::new(),
        message,
        hint: Some(hint.to_string()),
    };
    let mut open: Vec<Open> = Vec::new();
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut expanded: u64 = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        // A node starts here: note it as a key or a value of the mapping it is in.
        let key = match &event {
            Event::Scalar(value, ..) => Some(Some(value.to_string())),
            Event::Alias(_) | Event::SequenceStart(..) | Event::MappingStart(..) => Some(None),
            _ => None,
        };
        if let (
            Some(key),
            Some(Open {
                keys: Some((seen, is_key)),
                ..
            }),
        ) = (key, open.last_mut())
        {
            if *is_key && let Some(key) = key {
                if let Some(first) = seen.get(&key) {
                    return Err(error(
                        &span,
                        format!(
                            "the key `{key}` appears twice in this mapping (first at line {}, \
                             column {})",
                            first.line, first.column
                        ),
                        "keep one of them: YAML would silently keep only the last",
                    ));
                }
                seen.insert(key, at(&span));
            }
            *is_key = !*is_key;
        }
        // (its anchor, its size with aliases expanded, what the loader builds for it now)
        let done = match event {
            Event::Scalar(_, _, anchor, _) => Some((anchor, 1, 1)),
            Event::Alias(id) => {
                let size = sizes.get(&id).copied().unwrap_or(1);
                Some((0, size, size))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(error(
                        &span,
                        format!("the document nests lists and mappings more than {MAX_DEPTH} deep"),
                        "flatten the structure; a workflow needs only a few levels",
                    ));
                }
                let is_map = matches!(event, Event::MappingStart(..));
                open.push(Open {
                    anchor,
                    nodes: 0,
                    keys: is_map.then(|| (HashMap::new(), true)),
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop().map(|o| (o.anchor, o.nodes.saturating_add(1), 1))
            }
            _ => None,
        };
        let Some((anchor, nodes, built)) = done else {
            continue;
        };
        expanded = expanded.saturating_add(built);
        if anchor != 0 {
            sizes.insert(anchor, nodes);
        }
        if let Some(parent) = open.last_mut() {
            parent.nodes = parent.nodes.saturating_add(nodes);
        }
        if expanded > MAX_NODES {
            return Err(error(
                &span,
                format!("the document expands to more than {MAX_NODES} nodes"),
                "YAML copies an anchored node at every alias that names it: write the repeated \
                 part once, or split the workflow",
            ));
        }
    }
    Ok(())
}

fn at(span: &Span) -> Location {
    Location {
        line: span.start.line().max(1),
        column: span.start.col() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Diagnostic {
        check("w.yaml", text).expect_err("the bound should refuse this")
    }

    #[test]
    fn an_alias_bomb_is_refused_where_it_crosses_the_bound() {
        // Nine levels of ten aliases each: 10^9 nodes from under 500 bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(text.len() < 600);
        let d = refused(&text);
        assert!(d.message.contains("expands to more than"), "{d:?}");
        // Where the expansion crossed the bound: the sixth level (10^6 nodes).
        assert_eq!(d.location.line, 6, "{d:?}");
    }

    #[test]
    fn modest_anchors_and_a_large_workflow_pass() {
        let text = "defaults: &d { retries: 2, timeout: 5s }\nsteps:\n  - with: *d\n  - with: *d\n";
        assert!(check("w.yaml", text).is_ok());
        let mut big = String::from("steps:\n");
        for i in 0..6_000 {
            big.push_str(&format!(
                "  - id: s{i}\n    uses: noop\n    with: {{ summary: x }}\n"
            ));
        }
        assert!(check("w.yaml", &big).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_before_anything_recurses() {
        let block: String = (0..1_000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        let d = refused(&block);
        assert!(d.message.contains("more than 64 deep"), "{d:?}");
        assert_eq!(d.location.line, 65, "{d:?}");
        // Flow collections the parser itself stops, at its own limit, with a position.
        let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let d = crate::yaml::load("w.yaml", &flow).expect_err("too deep");
        assert!(d.message.contains("recursion limit"), "{d:?}");
        assert_eq!(d.location.line, 1, "{d:?}");
    }

    #[test]
    fn a_key_twice_names_both_places() {
        let d = refused("name: a\nsteps: []\nname: b\n");
        assert_eq!(d.location.line, 3, "{d:?}");
        assert!(d.message.contains("`name` appears twice"), "{d:?}");
        assert!(d.message.contains("line 1, column 1"), "{d:?}");
        // The same key in different mappings is fine; so are equal values.
        assert!(check("w.yaml", "a: { x: 1 }\nb: { x: 1 }\nc: x\nd: x\n").is_ok());
    }
}
