//! Printing control replies and events (JSON stable per docs/cli-json.md, or text).

use crate::output::{scan_text, spec_text, specs_table};
use leanspec_peer_core::control::{MachineReport, Reply, StatusReport};
use leanspec_peer_core::json;
use leanspec_peer_core::machine::InviteInfo;
use leanspec_peer_core::ops::{AuditRecord, Direction, Outcome, Verdict};
use leanspec_peer_core::peer::Event;
use leanspec_peer_core::{Project, ScanReport};
use serde_json::{Value, json};
use std::io::Write;

/// Prints a reply: JSON or text on stdout, errors on stderr; a board is fitted to
/// `width` columns.
pub(crate) fn print_reply(reply: &Reply, json: bool, width: usize) -> anyhow::Result<()> {
    let (value, text): (Value, String) = match reply {
        Reply::Error { kind, message } => {
            eprintln!("leanspec-peer: {message}");
            if json {
                crate::print_error_json(Some(*kind), message);
            }
            return Ok(());
        }
        Reply::Specs(rows) => (
            serde_json::to_value(rows.iter().map(json::spec_row).collect::<Vec<_>>())?,
            specs_table(rows),
        ),
        Reply::Spec(row) => (
            serde_json::to_value(json::spec_detail(row))?,
            spec_text(row),
        ),
        Reply::Check(r) => (serde_json::to_value(r)?, check_text(r)),
        Reply::Stats(s) => (serde_json::to_value(s)?, stats_text(s)),
        Reply::Body(b) => (serde_json::to_value(b)?, body_text(b)),
        Reply::Url(u) => (json!({ "url": u }), u.clone()),
        Reply::UiUser(a) => (
            serde_json::to_value(a)?,
            format!("account {} ({})", a.name, a.role.as_str()),
        ),
        Reply::UiUsers(list) => (
            serde_json::to_value(list)?,
            if list.is_empty() {
                "no web UI accounts: add one with `leanspec-peer ui-user add NAME --role viewer|editor|admin`".to_string()
            } else {
                list.iter()
                    .map(|a| {
                        format!(
                            "{:<24} {:<7} password changed {}",
                            a.name,
                            a.role.as_str(),
                            leanspec_peer_core::time::rfc3339_millis(
                                std::time::UNIX_EPOCH
                                    + std::time::Duration::from_millis(
                                        a.password_changed_ms.max(0) as u64
                                    )
                            )
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        ),
        Reply::UiUserRemoved { name } => (
            json!({ "removed": name }),
            format!("removed account {name}"),
        ),
        Reply::Board(b) => (
            serde_json::to_value(json::board(b))?,
            crate::board::board_text(b, width),
        ),
        Reply::Deps(d) => (serde_json::to_value(d)?, deps_text(d)),
        Reply::Hits(hits) => (
            serde_json::to_value(json::hits(hits))?,
            if hits.is_empty() {
                "no spec matches".to_string()
            } else {
                let rows: Vec<_> = hits.iter().map(|h| h.row.clone()).collect();
                specs_table(&rows)
            },
        ),
        Reply::Status(s) => (json::status(s), status_text(s)),
        Reply::Machines(rows) => (
            json!(rows.iter().map(json::machine_report).collect::<Vec<_>>()),
            machines_text(rows),
        ),
        Reply::Scan(r) => (json::scan_report(r), scan_report_text(r)),
        Reply::ProjectAdded { project, scan } => (
            json!({"project": json::project(project), "scan": json::scan(scan)}),
            format!(
                "added project {} ({})\n{}",
                project.name,
                project.root.display(),
                scan_text(scan)
            ),
        ),
        Reply::Projects(ps) => (
            json!(ps.iter().map(json::project).collect::<Vec<_>>()),
            projects_text(ps),
        ),
        Reply::ProjectRemoved(p) => (
            json!({"removed": json::project(p)}),
            format!(
                "removed project {} ({}); its files were not touched",
                p.name,
                p.root.display()
            ),
        ),
        Reply::Ticket {
            ticket,
            expires_at,
            reusable,
        } => {
            if !json {
                eprintln!(
                    "leanspec-peer: on the other machine run `leanspec-peer join <ticket>`; valid until {} ({}){}",
                    leanspec_peer_core::time::rfc3339_millis(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(*expires_at)
                    ),
                    if *reusable { "reusable" } else { "one use" },
                    if *reusable {
                        "; also usable as `up --authkey`"
                    } else {
                        ""
                    }
                );
            }
            (json::ticket(ticket, *expires_at, *reusable), ticket.clone())
        }
        Reply::Invites(list) => (
            json!(list.iter().map(json::invite).collect::<Vec<_>>()),
            invites_text(list),
        ),
        Reply::InviteRevoked(i) => (
            json::invite(i),
            format!(
                "revoked invitation {}: every later join with it is refused",
                i.id
            ),
        ),
        Reply::Joined {
            inviter,
            inviter_label,
            members,
        } => (
            json!({"inviter": inviter.to_string(), "inviter_label": inviter_label, "members": members}),
            format!(
                "joined the mesh of {inviter_label} ({}); {members} machine(s) in it; `leanspec-peer up` keeps them in sync",
                inviter.short()
            ),
        ),
        Reply::Done => (json!({"ok": true}), "done".into()),
        Reply::Buckets(list) => (serde_json::to_value(list)?, buckets_text(list)),
        Reply::BucketRounds(rounds) => (serde_json::to_value(rounds)?, rounds_text(rounds)),
        Reply::Event(ev) => (serde_json::to_value(ev)?, event_text(ev)),
        Reply::Verdict(v) => (json::verdict(v), verdict_text(v)),
        Reply::Audit(records) => (
            json!(records.iter().map(json::audit).collect::<Vec<_>>()),
            audit_text(records),
        ),
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", crate::output::terminal_safe(&text, true))?;
    }
    Ok(())
}

fn body_text(b: &leanspec_peer_core::machine::SpecBody) -> String {
    use leanspec_peer_core::machine::BodySource;
    match (&b.source, &b.note) {
        (BodySource::Cache, note) => {
            let age_s = (leanspec_peer_core::time::now_ms() - b.fetched_at).max(0) / 1000;
            format!(
                "{}\n(a copy kept from {} ago: {})",
                b.text.trim_end(),
                humantime::format_duration(std::time::Duration::from_secs(age_s as u64)),
                note.as_deref().unwrap_or("the owner is unavailable")
            )
        }
        _ => b.text.trim_end().to_string(),
    }
}

fn deps_text(d: &leanspec_peer_core::query::Deps) -> String {
    use leanspec_peer_core::query::{DepEntry, DepSpec};
    let describe = |s: &DepSpec| {
        format!(
            "{}  {}  [{}]  on {}",
            s.name,
            s.title,
            s.status.map_or("no status", |v| v.as_str()),
            s.machines.join(", ")
        )
    };
    let tree = |title: &str, entries: &[DepEntry]| {
        let mut out = format!("{title}:");
        if entries.is_empty() {
            out.push_str(" none");
        }
        for e in entries {
            let indent = "  ".repeat(e.depth);
            let line = match &e.spec {
                Some(s) if e.repeated => format!("{} (shown above)", s.name),
                Some(s) => describe(s),
                None => format!("{}  (no machine has this spec)", e.entry),
            };
            out.push_str(&format!("\n{indent}{line}"));
        }
        out
    };
    let mut out = format!("{}  ({})", describe(&d.spec), d.fleet);
    if let Some(up) = &d.upstream {
        out.push('\n');
        out.push_str(&tree("depends on", up));
    }
    if let Some(down) = &d.downstream {
        out.push('\n');
        out.push_str(&tree("required by", down));
    }
    out
}

fn stats_text(s: &leanspec_peer_core::query::Stats) -> String {
    let line = |name: &str, c: &leanspec_peer_core::query::Counts| {
        let join = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{name}: {} specs, {:.0}% complete\n  status: {}\n  priority: {}",
            c.specs,
            c.completion_rate * 100.0,
            join(&c.by_status),
            join(&c.by_priority)
        )
    };
    let mut out: Vec<String> = s
        .machines
        .iter()
        .map(|m| line(&m.machine_label, &m.counts))
        .collect();
    out.push(line("fleet (each spec once)", &s.fleet));
    out.join("\n")
}

fn check_text(r: &leanspec_peer_core::query::CheckReport) -> String {
    let mut out = String::new();
    for p in &r.problems {
        out.push_str(&p.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} problem(s) in {} spec(s) of {} project(s)",
        r.problems.len(),
        r.specs,
        r.projects
    ));
    out
}

fn invites_text(list: &[InviteInfo]) -> String {
    if list.is_empty() {
        return "no invitations yet: make one with `leanspec-peer invite`".into();
    }
    let mut out = format!(
        "{:<16}  {:<19}  {:<20}  {:<24}  {}\n",
        "ID", "KIND", "STATE", "EXPIRES", "USED BY"
    );
    for i in list {
        let state = serde_json::to_value(i.state)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default();
        let used = i
            .used_by
            .iter()
            .map(|u| {
                let name = if u.label.is_empty() {
                    u.id.short()
                } else {
                    format!("{} ({})", u.label, u.id.short())
                };
                if u.revoked {
                    format!("{name}, revoked")
                } else if u.removed {
                    format!("{name}, removed")
                } else {
                    name
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push_str(&format!(
            "{:<16}  {:<19}  {:<20}  {:<24}  {}\n",
            i.id,
            match (i.reusable, i.ephemeral_after.is_some()) {
                (true, true) => "reusable, ephemeral",
                (true, false) => "reusable",
                (false, true) => "one use, ephemeral",
                (false, false) => "one use",
            },
            state,
            leanspec_peer_core::time::rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(i.expires_at)
            ),
            if used.is_empty() {
                "-".to_string()
            } else {
                used
            }
        ));
    }
    out.push_str(&format!(
        "{} invitation(s); revoke one with `leanspec-peer invite revoke ID`",
        list.len()
    ));
    out
}

fn scan_report_text(r: &ScanReport) -> String {
    if r.projects.is_empty() {
        return "no projects yet: add one with `leanspec-peer project add DIR`".into();
    }
    r.projects
        .iter()
        .map(scan_text)
        .collect::<Vec<_>>()
        .join("\n")
}

fn projects_text(ps: &[Project]) -> String {
    if ps.is_empty() {
        return "no projects yet: add one with `leanspec-peer project add DIR`".into();
    }
    ps.iter()
        .map(|p| {
            format!(
                "{}  {}  {} specs  {}  ({})",
                p.id,
                p.name,
                p.specs,
                p.root.display(),
                p.fleet
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ago(last_seen: u64) -> String {
    if last_seen == 0 {
        return "never".into();
    }
    let now = leanspec_peer_core::machine::now_secs().max(0) as u64;
    let d = now.saturating_sub(last_seen);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

fn state_of(r: &MachineReport) -> &'static str {
    if r.machine.revoked {
        "revoked"
    } else if r.machine.is_self {
        "self"
    } else if r.online {
        "online"
    } else {
        "offline"
    }
}

fn machines_text(rows: &[MachineReport]) -> String {
    let mut out = format!(
        "{:<10}  {:<20}  {:<8}  {:<8}  {:>5}  {:<10}  {}\n",
        "ID", "LABEL", "STATE", "SYNC", "SPECS", "SEEN", "PATH"
    );
    for r in rows {
        let sync = match (r.machine.is_self, r.in_sync, r.online) {
            (true, _, _) => "-",
            (false, true, _) => "in sync",
            (false, false, true) => "syncing",
            _ => "-",
        };
        let seen = if r.machine.is_self {
            "now".to_string()
        } else {
            ago(r.last_seen)
        };
        let path = if r.path.is_empty() {
            "-"
        } else {
            r.path.as_str()
        };
        out.push_str(&format!(
            "{:<10}  {:<20}  {:<8}  {:<8}  {:>5}  {:<10}  {}\n",
            r.machine.id.short(),
            r.machine.label,
            state_of(r),
            sync,
            r.machine.specs,
            seen,
            path
        ));
    }
    out.push_str(&format!("{} machine(s)", rows.len()));
    out
}

fn status_text(s: &StatusReport) -> String {
    let m = &s.machine;
    let mut out = format!(
        "machine  {} ({})\n  id      {}\n  version {} on {}\n  home    {}\n  peer    {}\n  store   {} bytes, document {} bytes in {} chunk(s)\nprojects {} with {} specs",
        m.label,
        m.id.short(),
        m.id,
        m.version,
        m.os,
        s.home.display(),
        if s.running {
            "running"
        } else {
            "not running (start it with `leanspec-peer up`)"
        },
        s.store.file_bytes,
        s.store.doc_bytes,
        s.store.doc_chunks,
        s.projects.len(),
        s.specs
    );
    for p in &s.projects {
        out.push_str(&format!(
            "\n  {}  {} specs  {}",
            p.name,
            p.specs,
            p.root.display()
        ));
    }
    for u in &s.unreadable {
        let what = match &u.spec {
            Some(spec) => format!("{}/{spec}", u.project),
            None => u.project.clone(),
        };
        out.push_str(&format!(
            "
unreadable  {what}: {} (since {}; its last known state is kept, retrying)",
            u.reason,
            ago((u.since_ms / 1000).max(0) as u64)
        ));
    }
    let r = &s.refused;
    if r.strangers + r.revoked + r.rate_limited + r.over_limit + r.joins > 0 {
        out.push_str(&format!(
            "\nrefused  {} stranger and {} revoked connection(s), {} operation(s) over the rate, {} sync message(s) over a limit, {} join(s)",
            r.strangers, r.revoked, r.rate_limited, r.over_limit, r.joins
        ));
    }
    if s.peers.is_empty() {
        out.push_str("\npeers    none yet: pair with `leanspec-peer invite` here and `leanspec-peer join` there");
        return out;
    }
    let online = s.peers.iter().filter(|p| p.online).count();
    out.push_str(&format!(
        "\npeers    {} known, {} connected, {} of our changes not yet acknowledged by every peer",
        s.peers.len(),
        online,
        s.pending
    ));
    for p in &s.peers {
        let state = if p.machine.revoked {
            "revoked".to_string()
        } else if p.online {
            let path = if p.path.is_empty() {
                "direct"
            } else {
                p.path.as_str()
            };
            format!(
                "online ({path}, {})",
                if p.in_sync { "in sync" } else { "syncing" }
            )
        } else {
            format!("offline, seen {}", ago(p.last_seen))
        };
        out.push_str(&format!(
            "\n  {} ({})  {}  {} specs",
            p.machine.label,
            p.machine.id.short(),
            state,
            p.machine.specs
        ));
        if p.pending > 0 {
            out.push_str(&format!(", {} of our changes pending", p.pending));
        }
    }
    out
}

/// One line per event, for people.
/// One line for an event, safe for a terminal (fields come from other machines).
pub(crate) fn event_text(ev: &Event) -> String {
    crate::output::terminal_safe(&event_line(ev), false)
}

fn event_line(ev: &Event) -> String {
    let short = |id: &str| id.chars().take(10).collect::<String>();
    match ev {
        Event::SpecChanged {
            machine,
            project,
            spec,
            fields,
            ..
        } if fields.is_empty() => {
            format!("spec added    {} {project}/{spec}", short(machine))
        }
        Event::SpecChanged {
            machine,
            project,
            spec,
            fields,
            values,
        } => {
            // `status=complete`: strings bare, lists as JSON, hashes shortened.
            let field = |f: &String| match values.get(f) {
                Some(Value::String(v)) if f.ends_with("_hash") => {
                    format!("{f}={}", v.chars().take(12).collect::<String>())
                }
                Some(Value::String(v)) => format!("{f}={v}"),
                Some(v) => format!("{f}={v}"),
                None => f.clone(),
            };
            format!(
                "spec changed  {} {project}/{spec} [{}]",
                short(machine),
                fields.iter().map(field).collect::<Vec<_>>().join(", ")
            )
        }
        Event::SpecRemoved {
            machine,
            project,
            spec,
        } => format!("spec removed  {} {project}/{spec}", short(machine)),
        Event::MachineOnline { machine } => format!("online        {}", short(machine)),
        Event::MachineOffline { machine } => format!("offline       {}", short(machine)),
        Event::SyncState { machine, in_sync } => {
            format!(
                "sync          {} {}",
                short(machine),
                if *in_sync { "in sync" } else { "syncing" }
            )
        }
        Event::MeshChanged => "mesh changed".into(),
        Event::MachineAdded { machine, label } => {
            format!("joined        {} as {label:?}", short(machine))
        }
        Event::MachineRenamed { machine, label } => {
            format!("renamed       {} to {label:?}", short(machine))
        }
        Event::MachineRevoked { machine } => format!("revoked       {}", short(machine)),
        Event::MachineRemoved { machine, label } => {
            format!(
                "removed       {} {label:?} (ephemeral, away too long)",
                short(machine)
            )
        }
        Event::RelayStatus {
            relay,
            connected,
            error,
        } => {
            if *connected {
                format!("relay ok      {relay}")
            } else {
                format!("relay refused {relay}: {error}")
            }
        }
        Event::EditReceived {
            machine,
            project,
            spec,
            result,
            reason,
            ..
        } => {
            if reason.is_empty() {
                format!("edit {result:<8} from {} {project}/{spec}", short(machine))
            } else {
                format!(
                    "edit {result:<8} from {} {project}/{spec}: {reason}",
                    short(machine)
                )
            }
        }
        Event::ExecRequest {
            machine,
            op_id,
            payload,
        } => format!(
            "exec request  from {} (op {}): {payload}",
            short(machine),
            short(op_id)
        ),
        Event::Refused { machine, reason } => format!("refused       {}: {reason}", short(machine)),
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v.result {
        Outcome::Applied => format!(
            "applied; the file hash is now {}",
            v.file_hash.as_deref().unwrap_or("?")
        ),
        Outcome::Delivered => "delivered to the host application".into(),
        Outcome::Rejected => {
            let mut s = format!(
                "rejected ({}): {}",
                v.reason.map(json::reason).unwrap_or_default(),
                v.message
            );
            if let Some(h) = &v.current_file_hash {
                s.push_str(&format!("\n  current file hash: {h} (retry with --base-hash {h} if you still want this change)"));
            }
            s
        }
        Outcome::Unavailable => format!("unavailable: {}", v.message),
    }
}

fn audit_text(records: &[AuditRecord]) -> String {
    if records.is_empty() {
        return "the audit log is empty".into();
    }
    let short = |id: &str| id.chars().take(10).collect::<String>();
    let mut out = String::new();
    for r in records {
        let when = leanspec_peer_core::time::rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.at_ms.max(0) as u64),
        );
        let what = match r.kind.as_str() {
            "edit" => format!("edit {}/{}", r.project, r.spec),
            "exec_request" => "exec request".to_string(),
            other => other.to_string(),
        };
        let (dir, other) = match r.direction {
            Direction::Sent => ("sent to", short(&r.target)),
            Direction::Received => ("from", short(&r.author)),
        };
        out.push_str(&format!(
            "{:>5}  {when}  {dir:<7} {other:<10}  {what}  {}",
            r.seq,
            r.result.as_str()
        ));
        if let Some(reason) = r.reason {
            out.push_str(&format!(" ({}): {}", json::reason(reason), r.message));
        }
        if let Some(account) = &r.account {
            out.push_str(&format!("  [for web UI account {account}]"));
        }
        out.push('\n');
    }
    out.pop();
    out
}

fn when(secs: Option<i64>) -> String {
    match secs {
        Some(s) => leanspec_peer_core::time::rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s.max(0) as u64),
        ),
        None => "never".into(),
    }
}

fn buckets_text(list: &[leanspec_peer_core::bucket::BucketReport]) -> String {
    if list.is_empty() {
        return "no bucket: add one with `leanspec-peer bucket add s3://BUCKET/PREFIX [--endpoint URL]`".into();
    }
    list.iter()
        .map(|b| {
            let s = &b.state;
            let mut t = format!(
                "{}\n  endpoint     {}\n  retention    a snapshot every {} objects, {} kept\n  credentials  {}\n  last push    {} ({} objects, {} bytes, next {})\n  last pull    {} ({} objects, {} bytes)",
                b.url,
                b.endpoint,
                b.snapshot_every,
                b.keep_snapshots,
                b.credentials.as_deref().unwrap_or("missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for `up`"),
                when(s.last_push_at),
                s.objects_pushed,
                s.bytes_pushed,
                s.seq + 1,
                when(s.last_pull_at),
                s.objects_pulled,
                s.bytes_pulled,
            );
            if s.refused > 0 {
                t.push_str(&format!(
                    "\n  refused      {} (last: {})",
                    s.refused,
                    s.last_refusal.as_deref().unwrap_or("")
                ));
            }
            if let Some(e) = &s.last_error {
                t.push_str(&format!("\n  error        {e} ({})", when(s.last_error_at)));
            }
            match &s.accepted {
                Some(a) => t.push_str(&format!("\n  accepted     {}", when(Some(a.at)))),
                None => t.push_str(&format!(
                    "\n  PROPOSED     by {}; this machine sends it nothing until you run `leanspec-peer bucket accept {}`",
                    b.added_by.get(..8).unwrap_or(&b.added_by),
                    b.url
                )),
            }
            t
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rounds_text(rounds: &[leanspec_peer_core::bucket::Round]) -> String {
    if rounds.is_empty() {
        return "no bucket: add one with `leanspec-peer bucket add s3://BUCKET/PREFIX [--endpoint URL]`".into();
    }
    rounds
        .iter()
        .map(|r| {
            if let Some(why) = &r.skipped {
                return format!("{}: not contacted ({why})", r.url);
            }
            let pushed = match &r.pushed {
                Some((seq, kind, bytes)) => format!("pushed {kind} {seq} ({bytes} bytes)"),
                None => "nothing to push".into(),
            };
            let mut t = format!("{}: {pushed}, imported {} objects", r.url, r.imported);
            for why in &r.refused {
                t.push_str(&format!("\n  refused {why}"));
            }
            if let Some(e) = &r.error {
                t.push_str(&format!("\n  error: {e}"));
            }
            t
        })
        .collect::<Vec<_>>()
        .join("\n")
}
