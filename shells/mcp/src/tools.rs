//! The tools an agent sees: name, description, input schema, and how each becomes a
//! control [`Request`]. Every answer is the core's JSON (`structuredContent`, and the
//! same text in `content`); every failure a tool error naming its kind and what to do.

use leanspec_peer_core::control::{Reply, Request};
use leanspec_peer_core::ops::{Change, Outcome};
use leanspec_peer_core::query::DepsQuery;
use leanspec_peer_core::spec::{Priority, Status};
use leanspec_peer_core::{ErrorKind, SpecFilter};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

fn schema(properties: Value, required: &[&str]) -> Arc<JsonObject> {
    let mut s = JsonObject::new();
    s.insert("type".into(), json!("object"));
    s.insert("properties".into(), properties);
    s.insert("required".into(), json!(required));
    s.insert("additionalProperties".into(), json!(false));
    Arc::new(s)
}

const MACHINE: &str = "A machine: its label, short id or full id (see list_machines).";
const PROJECT: &str =
    "A project: its name, id, or git origin URL in any form (git@host:a/b.git, https://host/a/b).";
const SPEC: &str = "A spec: its folder name (042-web-ui), number (42) or slug (web-ui).";

/// Every tool, in the order `tools/list` gives them.
pub(crate) fn all() -> Vec<Tool> {
    let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    let priorities: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
    vec![
        Tool::new(
            "list_machines",
            "Every machine of the mesh (this one first): label, id, online, last seen, \
             in sync, projects and spec counts, revoked. Use a machine's label or id in \
             the other tools.",
            schema(json!({}), &[]),
        ),
        Tool::new(
            "list_specs",
            "Specs of every machine (or one), with their metadata: status, priority, tags, \
             depends_on, parent, assignee, file_hash (needed by update_spec). Filters \
             combine with AND.",
            schema(
                json!({
                    "machine": {"type": "string", "description": MACHINE},
                    "project": {"type": "string", "description": PROJECT},
                    "status": {"type": "string", "enum": statuses},
                    "priority": {"type": "string", "enum": priorities},
                    "tag": {"type": "string", "description": "Only specs with this tag."}
                }),
                &[],
            ),
        ),
        Tool::new(
            "search_specs",
            "Search the specs of every machine with LeanSpec's query language: words, \
             \"phrases\", word~ (typos), status: priority: tag: assignee: machine: project: \
             title: name: parent: depends_on: created:>2025-11, AND OR NOT and \
             parentheses. Results ranked best first, each with its machine.",
            schema(
                json!({
                    "query": {"type": "string", "description": "The query, e.g. `status:in-progress tag:api`."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
                }),
                &["query"],
            ),
        ),
        Tool::new(
            "get_spec",
            "One spec's metadata on one machine (this one by default), with its \
             file_hash; with include_body, also its README.md read from the machine that \
             owns it (source `owner`; `local` for this machine's; `cache` with \
             `fetched_at` when the owner is offline and a copy was kept here).",
            schema(
                json!({
                    "machine": {"type": "string", "description": MACHINE},
                    "project": {"type": "string", "description": PROJECT},
                    "spec": {"type": "string", "description": SPEC},
                    "include_body": {"type": "boolean", "default": false}
                }),
                &["project", "spec"],
            ),
        ),
        Tool::new(
            "update_spec",
            "Change a spec's metadata on the machine that owns it, as a signed operation. \
             Pass the file_hash you read (list_specs/get_spec): the owner applies the \
             change only if its file still has that hash, else the result is `rejected` \
             with `current_file_hash` (read again and retry). `unavailable`: the owner is \
             offline; nothing is queued. Only the touched frontmatter lines change.",
            schema(
                json!({
                    "machine": {"type": "string", "description": MACHINE},
                    "project": {"type": "string", "description": PROJECT},
                    "spec": {"type": "string", "description": SPEC},
                    "file_hash": {"type": "string", "description": "The spec's file_hash as you read it (64 hex digits)."},
                    "status": {"type": "string", "enum": statuses},
                    "priority": {"type": "string", "enum": priorities},
                    "add_tags": {"type": "array", "items": {"type": "string"}},
                    "remove_tags": {"type": "array", "items": {"type": "string"}},
                    "add_depends_on": {"type": "array", "items": {"type": "string"}},
                    "remove_depends_on": {"type": "array", "items": {"type": "string"}},
                    "parent": {"type": "string", "description": "New parent spec; empty removes it."},
                    "assignee": {"type": "string", "description": "New assignee; empty removes it."}
                }),
                &["machine", "project", "spec", "file_hash"],
            ),
        ),
        Tool::new(
            "request_execution",
            "Hand a request (free text or JSON, at most 16 KiB) to the host application of \
             a machine, signed by this one. `delivered` means its application received it; \
             `unavailable` that the machine is offline.",
            schema(
                json!({
                    "machine": {"type": "string", "description": MACHINE},
                    "payload": {"type": "string", "description": "What to ask for."}
                }),
                &["machine", "payload"],
            ),
        ),
        Tool::new(
            "check_fleet",
            "What is wrong across machines: a spec number used twice in one project, one \
             spec with different metadata on different machines (and which changed it \
             last), unreadable specs, depends_on naming no spec.",
            schema(json!({}), &[]),
        ),
        Tool::new(
            "spec_deps",
            "What a spec depends on (upstream) and what depends on it (downstream), \
             resolved across every machine holding its project.",
            schema(
                json!({
                    "spec": {"type": "string", "description": SPEC},
                    "project": {"type": "string", "description": PROJECT},
                    "depth": {"type": "integer", "minimum": 1, "maximum": 50, "default": 3}
                }),
                &["spec"],
            ),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSpecs {
    machine: Option<String>,
    project: Option<String>,
    status: Option<Status>,
    priority: Option<Priority>,
    tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    query: String,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetSpec {
    machine: Option<String>,
    project: String,
    spec: String,
    #[serde(default)]
    include_body: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSpec {
    machine: String,
    project: String,
    spec: String,
    file_hash: String,
    status: Option<Status>,
    priority: Option<Priority>,
    #[serde(default)]
    add_tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
    #[serde(default)]
    add_depends_on: Vec<String>,
    #[serde(default)]
    remove_depends_on: Vec<String>,
    parent: Option<String>,
    assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecRequest {
    machine: String,
    payload: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deps {
    spec: String,
    project: Option<String>,
    depth: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

/// Runs tool `name` with `arguments` for the home `home`.
pub(crate) async fn call(home: &Path, name: &str, arguments: JsonObject) -> CallToolResult {
    match run(home, name, arguments).await {
        Ok(r) => r,
        Err((kind, message)) => error(kind, &message),
    }
}

type Failed = (ErrorKind, String);

fn args<T: for<'de> Deserialize<'de>>(arguments: JsonObject) -> Result<T, Failed> {
    serde_json::from_value(Value::Object(arguments)).map_err(|e| {
        (
            ErrorKind::InvalidArgument,
            format!("invalid arguments: {e}; see the tool's input schema"),
        )
    })
}

async fn run(home: &Path, name: &str, arguments: JsonObject) -> Result<CallToolResult, Failed> {
    let req = match name {
        "list_machines" => {
            args::<NoArguments>(arguments)?;
            Request::Machines
        }
        "list_specs" => {
            let a: ListSpecs = args(arguments)?;
            Request::Specs {
                filter: SpecFilter {
                    machine: a.machine,
                    project: a.project,
                    status: a.status,
                    priority: a.priority,
                    tag: a.tag,
                },
            }
        }
        "search_specs" => {
            let a: Search = args(arguments)?;
            Request::Search {
                query: a.query,
                limit: a.limit.unwrap_or(50).clamp(1, 1000),
            }
        }
        "get_spec" => {
            let a: GetSpec = args(arguments)?;
            return get_spec(home, a).await;
        }
        "update_spec" => {
            let a: UpdateSpec = args(arguments)?;
            Request::Edit {
                machine: a.machine,
                project: a.project,
                spec: a.spec,
                change: Change {
                    status: a.status.map(|s| s.as_str().to_string()),
                    priority: a.priority.map(|p| p.as_str().to_string()),
                    set_tags: None,
                    add_tags: a.add_tags,
                    remove_tags: a.remove_tags,
                    add_depends_on: a.add_depends_on,
                    remove_depends_on: a.remove_depends_on,
                    parent: a.parent,
                    assignee: a.assignee,
                },
                base_file_hash: Some(a.file_hash),
            }
        }
        "request_execution" => {
            let a: ExecRequest = args(arguments)?;
            Request::ExecRequest {
                machine: a.machine,
                payload: a.payload,
            }
        }
        "check_fleet" => {
            args::<NoArguments>(arguments)?;
            Request::Check
        }
        "spec_deps" => {
            let a: Deps = args(arguments)?;
            Request::Deps {
                project: a.project,
                spec: a.spec,
                query: DepsQuery {
                    depth: a
                        .depth
                        .unwrap_or(leanspec_peer_core::query::DEFAULT_DEPTH)
                        .clamp(1, 50),
                    ..DepsQuery::default()
                },
            }
        }
        other => {
            return Err((
                ErrorKind::InvalidArgument,
                format!("no tool named {other:?}; see tools/list"),
            ));
        }
    };
    answer(crate::ask::ask(home, req).await)
}

/// A reply as a tool result: verdicts other than applied/delivered are tool errors
/// (the agent must act on them), with the verdict as structured content.
fn answer(reply: Reply) -> Result<CallToolResult, Failed> {
    let value = match reply {
        Reply::Error { kind, message } => return Err((kind, message)),
        Reply::Verdict(v) => {
            let ok = matches!(v.result, Outcome::Applied | Outcome::Delivered);
            let value = serde_json::to_value(&v).map_err(internal)?;
            return Ok(if ok {
                CallToolResult::structured(value)
            } else {
                CallToolResult::structured_error(value)
            });
        }
        Reply::Specs(rows) => json!({ "specs": rows }),
        Reply::Hits(hits) => json!({ "hits": hits }),
        Reply::Machines(m) => json!({ "machines": m }),
        other => serde_json::to_value(&other).map_err(internal)?["data"].take(),
    };
    Ok(CallToolResult::structured(value))
}

fn internal(e: serde_json::Error) -> Failed {
    (ErrorKind::Io, format!("could not encode the answer: {e}"))
}

fn error(kind: ErrorKind, message: &str) -> CallToolResult {
    let kind_text = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut r = CallToolResult::error(vec![ContentBlock::text(format!("{kind_text}: {message}"))]);
    r.structured_content = Some(json!({ "error": kind_text, "message": message }));
    r
}

/// `get_spec`: the metadata; with `include_body`, the README from its owner (or the
/// copy kept here, marked, when the owner is offline).
async fn get_spec(home: &Path, a: GetSpec) -> Result<CallToolResult, Failed> {
    let row = match crate::ask::ask(
        home,
        Request::Show {
            machine: a.machine.clone(),
            project: a.project.clone(),
            spec: a.spec.clone(),
        },
    )
    .await
    {
        Reply::Spec(row) => row,
        other => return answer(other),
    };
    let mut value = json!({ "spec": row });
    if a.include_body {
        let req = Request::Body {
            machine: Some(row.machine.clone()),
            project: row.project_id.clone(),
            spec: row.spec.name.clone(),
        };
        match crate::ask::ask(home, req).await {
            Reply::Body(b) => value["body"] = serde_json::to_value(&b).map_err(internal)?,
            Reply::Error { kind, message } => {
                value["body_unavailable"] = json!({ "error": kind, "message": message });
            }
            _ => {
                value["body_unavailable"] = json!({ "error": "io", "message": "unexpected answer" })
            }
        }
    }
    Ok(CallToolResult::structured(value))
}
