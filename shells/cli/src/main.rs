//! `leanspec-peer`: a thin shell over `leanspec_peer_core`. Parses arguments, calls the
//! core, prints text or JSON, owns exit codes (0 ok, 1 error, 2 usage).

mod args;
mod output;

use anyhow::Context;
use args::{Cli, Command, ProjectCommand, SpecsArgs, UpArgs};
use clap::Parser;
use leanspec_peer_core::{Machine, ScanProgress, SpecFilter};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEANSPEC_PEER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("leanspec-peer: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_home() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "leanspec-peer")
        .map(|d| d.data_dir().to_path_buf())
        .context(
            "cannot find a data folder for this user: pass --home DIR or set LEANSPEC_PEER_HOME",
        )
}

fn print(
    json: bool,
    value: serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", text())?;
    }
    Ok(())
}

/// Progress on stderr, only for people (a terminal) and only for long scans.
fn progress_printer(json: bool) -> impl FnMut(ScanProgress<'_>) {
    let show = !json && std::io::stderr().is_terminal();
    let mut last = Instant::now();
    move |p: ScanProgress<'_>| {
        if show
            && p.total >= 500
            && (last.elapsed() > Duration::from_millis(200) || p.done == p.total)
        {
            last = Instant::now();
            eprint!("\rscanning {}: {}/{}", p.project, p.done, p.total);
            if p.done == p.total {
                eprintln!();
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = match cli.home {
        Some(h) => h,
        None => default_home()?,
    };
    let json = cli.json;
    match cli.command {
        Command::Init { label } => {
            let (m, created) = Machine::init(&home, label.as_deref())?;
            let s = m.summary();
            print(
                json,
                json!({"created": created, "home": home.display().to_string(), "machine": output::machine_json(&s)}),
                || {
                    format!(
                        "{} machine {} ({}) in {}",
                        if created {
                            "created"
                        } else {
                            "already initialised:"
                        },
                        s.label,
                        s.id.short(),
                        home.display()
                    )
                },
            )?;
        }
        Command::Project(ProjectCommand::Add { dir, name }) => {
            let mut m = Machine::open(&home)?;
            let (p, scan) = m.add_project(&dir, name.as_deref())?;
            print(
                json,
                json!({"project": output::project_json(&p), "scan": output::scan_json(&scan)}),
                || {
                    format!(
                        "added project {} ({})\n{}",
                        p.name,
                        p.root.display(),
                        output::scan_text(&scan)
                    )
                },
            )?;
        }
        Command::Project(ProjectCommand::List) => {
            let m = Machine::open(&home)?;
            let projects = m.projects()?;
            print(
                json,
                json!(
                    projects
                        .iter()
                        .map(output::project_json)
                        .collect::<Vec<_>>()
                ),
                || {
                    if projects.is_empty() {
                        return "no projects yet: add one with `leanspec-peer project add DIR`"
                            .into();
                    }
                    projects
                        .iter()
                        .map(|p| {
                            format!(
                                "{}  {}  {} specs  {}",
                                p.id,
                                p.name,
                                p.specs,
                                p.root.display()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            )?;
        }
        Command::Project(ProjectCommand::Remove { project }) => {
            let mut m = Machine::open(&home)?;
            let p = m.remove_project(&project)?;
            print(json, json!({"removed": output::project_json(&p)}), || {
                format!(
                    "removed project {} ({}); its files were not touched",
                    p.name,
                    p.root.display()
                )
            })?;
        }
        Command::Scan => {
            let mut m = Machine::open(&home)?;
            let report = m.scan(&mut progress_printer(json))?;
            print(
                json,
                json!({"projects": report.projects.iter().map(output::scan_json).collect::<Vec<_>>(), "change_bytes": report.change_bytes}),
                || {
                    if report.projects.is_empty() {
                        return "no projects yet: add one with `leanspec-peer project add DIR`"
                            .into();
                    }
                    report
                        .projects
                        .iter()
                        .map(output::scan_text)
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            )?;
        }
        Command::Up(args) => return up(&home, args, json),
        Command::Specs(args) => {
            let m = Machine::open(&home)?;
            let rows = m.specs(&filter(args))?;
            print(
                json,
                json!(rows.iter().map(output::spec_row_json).collect::<Vec<_>>()),
                || output::specs_table(&rows),
            )?;
        }
        Command::Show { project, spec } => {
            let m = Machine::open(&home)?;
            let row = m.spec(&project, &spec)?;
            print(json, output::spec_detail_json(&row), || {
                output::spec_text(&row)
            })?;
        }
        Command::Status => {
            let m = Machine::open(&home)?;
            let s = m.summary();
            let projects = m.projects()?;
            let stats = m.doc_stats()?;
            let specs: usize = projects.iter().map(|p| p.specs).sum();
            let value = json!({
                "machine": output::machine_json(&s),
                "home": home.display().to_string(),
                "projects": projects.iter().map(output::project_json).collect::<Vec<_>>(),
                "specs": specs,
                "store": {"path": m.store().path().display().to_string(), "file_bytes": stats.file_bytes, "doc_chunks": stats.chunks, "doc_bytes": stats.chunk_bytes},
                "peers": [],
            });
            print(json, value, || {
                let mut out = format!(
                    "machine  {} ({})\n  id      {}\n  version {} on {}\n  home    {}\n  store   {} bytes, document {} bytes in {} chunk(s)\nprojects {} with {} specs",
                    s.label,
                    s.id.short(),
                    s.id,
                    s.version,
                    s.os,
                    home.display(),
                    stats.file_bytes,
                    stats.chunk_bytes,
                    stats.chunks,
                    projects.len(),
                    specs
                );
                for p in &projects {
                    out.push_str(&format!(
                        "\n  {}  {} specs  {}",
                        p.name,
                        p.specs,
                        p.root.display()
                    ));
                }
                out.push_str("\npeers    none (replication is not enabled in this version)");
                out
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn filter(a: SpecsArgs) -> SpecFilter {
    SpecFilter {
        machine: a.machine,
        project: a.project,
        status: a.status,
        priority: a.priority,
        tag: a.tag,
    }
}

/// Initialises on first use, adds the given project folders, scans, then keeps the
/// document current by rescanning (stat-only for unchanged files) until stopped.
fn up(home: &Path, args: UpArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (mut m, created) = Machine::init(home, args.label.as_deref())?;
    if created {
        eprintln!(
            "leanspec-peer: created machine {} ({}) in {}",
            m.label(),
            m.id().short(),
            home.display()
        );
    }
    for dir in &args.projects {
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot use project folder {}", dir.display()))?;
        if !m.projects()?.iter().any(|p| p.root == root) {
            let (p, _) = m.add_project(&root, None)?;
            eprintln!(
                "leanspec-peer: sharing project {} ({})",
                p.name,
                p.root.display()
            );
        }
    }
    if m.projects()?.is_empty() {
        anyhow::bail!("no projects to share: run `leanspec-peer up --project DIR`");
    }
    let mut progress = progress_printer(json);
    let report = m.scan(&mut progress)?;
    for p in &report.projects {
        eprintln!("leanspec-peer: {}", output::scan_text(p));
    }
    if args.once {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("leanspec-peer: watching for changes (Ctrl-C to stop)");
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let report = m.scan(&mut |_| {})?;
        for p in report
            .projects
            .iter()
            .filter(|p| p.added + p.updated + p.removed > 0)
        {
            eprintln!("leanspec-peer: {}", output::scan_text(p));
        }
    }
}
