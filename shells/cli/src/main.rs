//! `leanspec-peer`: a thin shell over `leanspec_peer_core`. Parses arguments, turns
//! them into a control [`Request`], gets the [`Reply`] from the running peer (or from
//! the store when none runs), prints text or JSON, and owns exit codes (0 ok, 1 error
//! of no known kind, 2 usage, 3/4 edit rejected/unavailable, 5.. by error kind).

mod args;
mod board;
mod output;
mod reply;
mod resident;
mod service;

use anyhow::{Context, bail};
use args::{
    BucketCommand, Cli, Command, InviteAction, ProjectCommand, ServiceCommand, SpecsArgs,
    UiUserCommand, UpArgs,
};
use clap::Parser;
use leanspec_peer_core::control::{self, Reply, Request};
use leanspec_peer_core::ops::{Change, Outcome};
use leanspec_peer_core::peer::PeerOptions;
use leanspec_peer_core::{ErrorKind, Node, ScanProgress, SpecFilter};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    let json = cli.json;
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
            let kind = error_kind(&err);
            if json {
                print_error_json(kind, &format!("{err:#}"));
            }
            kind.map_or(ExitCode::FAILURE, exit_code)
        }
    }
}

/// The kind of a failure that happened in this process (not on the daemon, whose
/// replies carry their kind), found by type along the error's chain, never by text.
fn error_kind(err: &anyhow::Error) -> Option<ErrorKind> {
    use leanspec_peer_core::control::ControlError;
    use leanspec_peer_core::net::TicketError;
    use leanspec_peer_core::peer::PeerError;
    use leanspec_peer_core::store::StoreError;
    err.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<leanspec_peer_core::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<PeerError>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<ControlError>() {
            Some(match e {
                ControlError::NotRunning | ControlError::Interrupted => ErrorKind::NotRunning,
                _ => ErrorKind::Io,
            })
        } else if c.downcast_ref::<TicketError>().is_some() {
            Some(ErrorKind::Ticket)
        } else if c.downcast_ref::<StoreError>().is_some() {
            Some(ErrorKind::Store)
        } else if c.downcast_ref::<std::io::Error>().is_some() {
            Some(ErrorKind::Io)
        } else {
            None
        }
    })
}

/// Exit codes by error kind (README, "Exit codes"): a script can tell "start the
/// peer" from "no such spec" from "the other machine is down" without parsing text.
/// 1 stays for failures of no known kind, 2 is clap's usage error, 3 and 4 are
/// `edit`'s rejected and unavailable.
fn exit_code(kind: ErrorKind) -> ExitCode {
    ExitCode::from(match kind {
        ErrorKind::NotRunning => 5,
        ErrorKind::NotInitialized => 6,
        ErrorKind::NotFound => 7,
        ErrorKind::Ambiguous => 8,
        ErrorKind::InvalidArgument => 9,
        ErrorKind::Ticket => 10,
        ErrorKind::Unreachable => 11,
        ErrorKind::Refused => 12,
        ErrorKind::Store => 13,
        ErrorKind::Io => 14,
        ErrorKind::Network => 15,
        ErrorKind::Busy => 16,
    })
}

/// `{"error": {"kind", "message"}}` on stdout, so `--json` callers always get JSON.
fn print_error_json(kind: Option<ErrorKind>, message: &str) {
    let value = json!({"error": {"kind": kind, "message": message}});
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
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

/// glibc gives every thread that allocates its own arena; with the runtime's threads
/// that is ~1 MB of mostly idle heap. The daemon allocates little and rarely, so one
/// arena costs nothing measurable in speed (BENCHMARKS.md, idle RSS).
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists; mallopt only
    // changes an allocator tunable.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Gets the reply to `req`: from the running peer if there is one, else from a node
/// opened here (stopped: it answers from the store, and opens a short-lived endpoint for
/// join, edit and execution requests). A peer that starts while we wait for its store is
/// asked instead.
fn request(home: &Path, req: Request, options: PeerOptions, json: bool) -> anyhow::Result<Reply> {
    if control::is_running(home) {
        return daemon_call(home, &req);
    }
    match local_request(home, req.clone(), options, json) {
        Err(e) if store_in_use(&e) && control::is_running(home) => daemon_call(home, &req),
        other => other,
    }
}

fn daemon_call(home: &Path, req: &Request) -> anyhow::Result<Reply> {
    let timeout = match req {
        Request::Join { .. } | Request::Scan | Request::ProjectAdd { .. } => {
            Duration::from_secs(120)
        }
        _ => Duration::from_secs(30),
    };
    Ok(control::call(home, req, timeout)?)
}

/// The store is held by another process (the error's kind, not its text).
fn store_in_use(e: &anyhow::Error) -> bool {
    use leanspec_peer_core::store::StoreError;
    matches!(
        e.downcast_ref::<leanspec_peer_core::peer::PeerError>(),
        Some(leanspec_peer_core::peer::PeerError::Machine(
            leanspec_peer_core::Error::Store(StoreError::InUse { .. })
        ))
    )
}

/// Answers `req` on a node opened here, with no peer running.
fn local_request(
    home: &Path,
    req: Request,
    options: PeerOptions,
    json: bool,
) -> anyhow::Result<Reply> {
    let node = Node::open(home, options)?;
    if let Request::Scan = req {
        // The one request with progress for people.
        return Ok(Reply::Scan(node.scan(&mut progress_printer(json))?));
    }
    let rt = runtime()?;
    Ok(rt.block_on(control::handle(&node, req)))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = match cli.home {
        Some(h) => h,
        None => default_home()?,
    };
    let json = cli.json;
    // A command run with no daemon opens the node here; one that needs the network
    // (join, edit, exec-request) gets a short-lived endpoint that `up` replaces.
    let mut local_options = PeerOptions::default();
    let mut board_width = None;
    let mut open_url = false;
    let mut show_qr = false;
    let req = match cli.command {
        Command::Init { label } => return init(&home, label.as_deref(), json),
        Command::Up(args) => return up(&home, args, json),
        Command::Service(cmd) => return service_command(&home, cmd, json),
        Command::Events => return events(&home, json),
        Command::Mcp { allow_edits } => {
            runtime()?
                .block_on(leanspec_peer_mcp::serve_stdio(home, allow_edits))
                .map_err(|e| anyhow::anyhow!("mcp: {e}"))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Project(ProjectCommand::Add { dir, name }) => {
            let dir = std::fs::canonicalize(&dir)
                .with_context(|| format!("cannot use project folder {}", dir.display()))?;
            Request::ProjectAdd { dir, name }
        }
        Command::Project(ProjectCommand::List) => Request::ProjectList,
        Command::Project(ProjectCommand::Remove { project }) => Request::ProjectRemove { project },
        Command::Scan => Request::Scan,
        Command::Specs(args) => Request::Specs {
            filter: filter(args),
        },
        Command::Search { query, limit } => Request::Search { query, limit },
        Command::Board {
            query,
            group_by,
            width,
        } => {
            board_width = width;
            Request::Board { query, group_by }
        }
        Command::Deps {
            spec,
            project,
            upstream,
            downstream,
            depth,
        } => Request::Deps {
            project,
            spec,
            // Neither flag: both directions.
            query: leanspec_peer_core::query::DepsQuery {
                upstream: upstream || !downstream,
                downstream: downstream || !upstream,
                depth,
            },
        },
        Command::Body {
            machine,
            project,
            spec,
        } => Request::Body {
            machine,
            project,
            spec,
        },
        Command::Ui { open } => {
            open_url = open;
            Request::UiLogin
        }
        Command::UiUser(UiUserCommand::Add { name, role }) => Request::UiUserAdd {
            password: read_password(&name, true)?,
            name,
            role,
        },
        Command::UiUser(UiUserCommand::List) => Request::UiUserList,
        Command::Bucket(BucketCommand::Add {
            url,
            endpoint,
            region,
            snapshot_every,
            keep_snapshots,
            allow_http,
        }) => Request::BucketAdd {
            url,
            endpoint,
            region,
            snapshot_every,
            keep_snapshots,
            allow_http,
        },
        Command::Bucket(BucketCommand::Accept { url, allow_http }) => {
            Request::BucketAccept { url, allow_http }
        }
        Command::Bucket(BucketCommand::List | BucketCommand::Status) => Request::BucketList,
        Command::Bucket(BucketCommand::Remove { url }) => Request::BucketRemove { url },
        Command::Bucket(BucketCommand::Sync) => Request::BucketSync,
        Command::UiUser(UiUserCommand::Remove { name }) => Request::UiUserRemove { name },
        Command::UiUser(UiUserCommand::Passwd { name }) => Request::UiUserPasswd {
            password: read_password(&name, true)?,
            name,
        },
        Command::Check => Request::Check,
        Command::Stats => Request::Stats,
        Command::Show {
            machine,
            project,
            spec,
        } => Request::Show {
            machine,
            project,
            spec,
        },
        Command::Status => Request::Status,
        Command::Machines => Request::Machines,
        Command::Invite {
            action: None,
            ttl,
            reusable,
            ephemeral,
            ephemeral_after,
            qr,
        } => {
            show_qr = qr;
            Request::Invite {
                ttl_secs: ttl.as_secs(),
                reusable,
                ephemeral_after_secs: ephemeral.then(|| ephemeral_after.as_secs().max(1)),
            }
        }
        Command::Invite {
            action: Some(InviteAction::List),
            ..
        } => Request::InviteList,
        Command::Invite {
            action: Some(InviteAction::Revoke { id }),
            ..
        } => Request::InviteRevoke { id },
        Command::Join { ticket, bind } => {
            local_options.bind = bind;
            Request::Join { ticket }
        }
        Command::Rename { machine, label } => Request::Rename { machine, label },
        Command::Revoke { machine } => Request::Revoke { machine },
        Command::Edit(args) => Request::Edit {
            change: Change {
                status: args.status.map(|s| s.as_str().to_string()),
                priority: args.priority.map(|p| p.as_str().to_string()),
                set_tags: None,
                add_tags: args.add_tags,
                remove_tags: args.remove_tags,
                add_depends_on: args.add_deps,
                remove_depends_on: args.remove_deps,
                parent: args.parent,
                assignee: args.assignee,
            },
            machine: args.machine,
            project: args.project,
            spec: args.spec,
            base_file_hash: args.base_hash,
        },
        Command::ExecRequest { machine, payload } => Request::ExecRequest { machine, payload },
        Command::Audit { limit } => Request::Audit { limit },
    };
    let reply = request(&home, req, local_options, json)?;
    let width = board_width.unwrap_or_else(|| {
        terminal_size::terminal_size().map_or(100, |(terminal_size::Width(w), _)| usize::from(w))
    });
    reply::print_reply(&reply, json, width)?;
    if let (true, Reply::Url(url)) = (open_url, &reply) {
        open_in_browser(url);
    }
    if let (true, Reply::Ticket { ticket, .. }) = (show_qr, &reply) {
        match output::qr_block(ticket) {
            Some(code) => eprintln!("{code}"),
            None => eprintln!("leanspec-peer: the ticket is too long for a QR code"),
        }
    }
    Ok(match &reply {
        Reply::Error { kind, .. } => exit_code(*kind),
        Reply::Verdict(v) => match v.result {
            Outcome::Applied | Outcome::Delivered => ExitCode::SUCCESS,
            Outcome::Rejected => ExitCode::from(3),
            Outcome::Unavailable => ExitCode::from(4),
        },
        Reply::Check(r) if !r.problems.is_empty() => ExitCode::from(1),
        Reply::BucketRounds(r) if r.iter().any(|r| r.error.is_some() || !r.refused.is_empty()) => {
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    })
}

/// `service install|uninstall|status`.
fn service_command(home: &Path, cmd: ServiceCommand, json: bool) -> anyhow::Result<ExitCode> {
    use service::Manager;
    match cmd {
        ServiceCommand::Install {
            up,
            no_start,
            dry_run,
            manager,
        } => {
            let manager = manager.unwrap_or_else(Manager::native);
            let bin = std::env::current_exe()
                .and_then(std::fs::canonicalize)
                .context("cannot find this program's own path")?;
            let home = std::path::absolute(home)
                .with_context(|| format!("cannot use home {}", home.display()))?;
            let s = service::Service::new(bin, home, *up)?;
            if dry_run {
                let paths = service::paths(manager)?;
                let text = match manager {
                    Manager::Systemd => service::systemd_unit(
                        &s,
                        paths.env_file.as_deref().filter(|_| !s.env.is_empty()),
                    )?,
                    Manager::Launchd => service::launchd_plist(
                        &s,
                        paths
                            .log
                            .as_deref()
                            .unwrap_or(Path::new("/tmp/leanspec-peer.log")),
                    )?,
                };
                print(
                    json,
                    json!({"definition": paths.definition.display().to_string(), "text": text}),
                    || text.clone(),
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let done = service::install(&s, manager, !no_start)?;
            if let Some(why) = &done.not_started {
                eprintln!("leanspec-peer: installed, {why}");
            }
            print(
                json,
                json!({
                    "definition": done.definition.display().to_string(),
                    "env_file": done.env_file.as_ref().map(|f| f.display().to_string()),
                    "started": done.not_started.is_none(),
                    "note": done.not_started,
                }),
                || {
                    let mut t = format!("wrote {}", done.definition.display());
                    if let Some(f) = &done.env_file {
                        t.push_str(&format!(
                            "\nwrote {} (tokens and keys; readable by you only)",
                            f.display()
                        ));
                    }
                    if done.not_started.is_none() {
                        t.push_str(&format!("\nstarted; it starts with your session and restarts when it fails (`leanspec-peer service status`; logs: {})", match manager {
                            Manager::Systemd => "`journalctl --user -u leanspec-peer`".to_string(),
                            Manager::Launchd => "~/Library/Logs/leanspec-peer.log".to_string(),
                        }));
                    }
                    t
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Uninstall { manager } => {
            let removed = service::uninstall(manager.unwrap_or_else(Manager::native))?;
            let list: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            print(json, json!({"removed": list}), || {
                if list.is_empty() {
                    "no service was installed".to_string()
                } else {
                    format!(
                        "stopped and removed {}; the machine's home is untouched",
                        list.join(", ")
                    )
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Status { manager } => {
            let (definition, installed, state) =
                service::status(manager.unwrap_or_else(Manager::native))?;
            print(
                json,
                json!({"definition": definition.display().to_string(), "installed": installed, "state": state}),
                || {
                    if installed {
                        format!("installed ({}): {state}", definition.display())
                    } else {
                        "not installed: `leanspec-peer service install --project DIR`".to_string()
                    }
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Hands `url` to the desktop's opener; says so when there is none (the URL is printed).
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("leanspec-peer: cannot start {opener} ({e}): open the URL above yourself");
    }
}

/// A new password for `account`: asked twice on a terminal (not echoed), else the
/// first line of stdin (for scripts: `printf '%s\n' "$PW" | leanspec-peer ui-user add …`).
fn read_password(account: &str, confirm: bool) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let pw = rpassword::prompt_password(format!("password for {account}: "))
            .context("cannot read the password")?;
        if confirm {
            let again =
                rpassword::prompt_password("again: ").context("cannot read the password")?;
            if again != pw {
                bail!("the two passwords differ; nothing was changed");
            }
        }
        return Ok(pw);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("no password on stdin: pipe one line, or run this in a terminal to be asked");
    }
    Ok(pw)
}

/// The UI's certificate as the flags say (`None`: plain HTTP, loopback only).
fn ui_tls(home: &Path, args: &UpArgs) -> anyhow::Result<Option<leanspec_peer_web::Tls>> {
    use leanspec_peer_web::TlsSource;
    let source = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true) => {
            let mut names = args.tls_names.clone();
            if let Some(addr) = args.ui
                && !addr.ip().is_unspecified()
            {
                names.push(addr.ip().to_string());
            }
            TlsSource::SelfSigned {
                dir: home.to_path_buf(),
                names,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(
        source
            .load()
            .context("cannot serve the web UI over HTTPS")?,
    ))
}

/// Serves the web UI: on `addr` if given (its failure is an error), else on the default
/// port, or any free port when another program holds it (said on stderr).
async fn serve_ui(
    node: &std::sync::Arc<Node>,
    addr: Option<std::net::SocketAddr>,
    tls: Option<leanspec_peer_web::Tls>,
) -> anyhow::Result<leanspec_peer_web::Ui> {
    use leanspec_peer_web::UiConfig;
    use std::net::{Ipv4Addr, SocketAddr};
    if let Some(addr) = addr {
        return leanspec_peer_web::serve(node.clone(), UiConfig { addr, tls })
            .await
            .with_context(|| format!("cannot serve the web UI on {addr}"));
    }
    let default = SocketAddr::from((Ipv4Addr::LOCALHOST, leanspec_peer_web::DEFAULT_PORT));
    let config = UiConfig {
        addr: default,
        tls: tls.clone(),
    };
    match leanspec_peer_web::serve(node.clone(), config).await {
        Ok(ui) => Ok(ui),
        Err(e) => {
            eprintln!(
                "leanspec-peer: port {} is taken ({e}): serving the web UI on another port",
                leanspec_peer_web::DEFAULT_PORT
            );
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            leanspec_peer_web::serve(node.clone(), UiConfig { addr, tls })
                .await
                .context("cannot serve the web UI (use --no-ui to run without it)")
        }
    }
}

fn init(home: &Path, label: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    if control::is_running(home) {
        bail!(
            "leanspec-peer is running for {}: it is initialised already (see `leanspec-peer status`)",
            home.display()
        );
    }
    let (node, created) = Node::init(home, label, PeerOptions::default())?;
    let s = node.summary();
    print(
        json,
        json!({"created": created, "home": home.display().to_string(), "machine": leanspec_peer_core::json::machine_summary(&s)}),
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
    Ok(ExitCode::SUCCESS)
}

fn events(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    control::stream_events(home, |ev| {
        let line = if json {
            serde_json::to_string(&ev).unwrap_or_default()
        } else {
            reply::event_text(&ev)
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            failed = Some(e);
            return false;
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e.into());
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

/// The peer in the foreground: initialises and adds projects on first use, scans,
/// syncs with every member, serves the control socket, stops cleanly on SIGINT/SIGTERM.
fn up(home: &Path, args: UpArgs, json: bool) -> anyhow::Result<ExitCode> {
    if control::is_running(home) {
        bail!(
            "leanspec-peer is already running for {} (stop it first, or use another --home)",
            home.display()
        );
    }
    // Refused before anything starts: a UI beyond loopback without TLS.
    if let Some(addr) = args.ui {
        let tls_given = args.tls_self_signed || args.tls_cert.is_some();
        if !addr.ip().is_loopback() && !tls_given {
            bail!(
                "refusing to serve the web UI on {addr} without TLS: passwords and session cookies would cross the network in clear. Add --tls-self-signed (a certificate kept in the home folder) or --tls-cert FILE --tls-key FILE, or serve on 127.0.0.1"
            );
        }
    }
    // The port of the last run and the relays learned from tickets: policy of the
    // core (`PeerOptions::remember_port`, `learned_relays`), the same for every host.
    let options = PeerOptions {
        bind: Some(
            args.bind
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        ),
        relays: if args.no_relay {
            Vec::new()
        } else {
            args.relays.clone()
        },
        learned_relays: !args.no_relay,
        remember_port: true,
        direct: !args.no_direct,
        lan: !args.no_lan,
        bucket_pull_every: args.bucket_pull_every,
        relay_token: args.relay_token.clone(),
        relay_ca: args.relay_ca.clone(),
        ..PeerOptions::default()
    };
    let (node, created) = Node::init(home, args.label.as_deref(), options)?;
    let me = node.summary();
    if created {
        eprintln!(
            "leanspec-peer: created machine {} ({}) in {}",
            me.label,
            me.id.short(),
            home.display()
        );
    }
    for dir in &args.projects {
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot use project folder {}", dir.display()))?;
        if !node.projects()?.iter().any(|p| p.root == root) {
            let (p, _) = node.add_project(&root, None)?;
            eprintln!(
                "leanspec-peer: sharing project {} ({})",
                p.name,
                p.root.display()
            );
        }
    }
    let tls = if args.no_ui {
        None
    } else {
        ui_tls(home, &args)?
    };
    let report = node.scan(&mut progress_printer(json))?;
    for p in &report.projects {
        eprintln!("leanspec-peer: {}", output::scan_text(p));
    }
    if args.once {
        return Ok(ExitCode::SUCCESS);
    }
    let node = Arc::new(node);
    let rt = runtime()?;
    rt.block_on(async move {
        // Handlers first: a supervisor may send SIGTERM as soon as it sees the ready
        // line, and the default action would kill us without a clean stop.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        node.start().await?;
        let server = control::serve(node.clone(), home)
            .await
            .context("cannot open the control socket")?;
        eprintln!(
            "leanspec-peer: {} ({}) listening on {}; Ctrl-C to stop",
            me.label,
            me.id.short(),
            node.addrs()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let ui = if args.no_ui {
            None
        } else {
            let fingerprint = tls.as_ref().map(|t| t.fingerprint.clone());
            let ui = serve_ui(&node, args.ui, tls).await?;
            let scheme = if fingerprint.is_some() { "https" } else { "http" };
            eprintln!(
                "leanspec-peer: web UI at {scheme}://{} (log in: `leanspec-peer ui`{})",
                ui.addr,
                if ui.addr.ip().is_loopback() {
                    ""
                } else {
                    ", or with an account from `leanspec-peer ui-user add`"
                }
            );
            if let Some(f) = fingerprint {
                eprintln!("leanspec-peer: web UI certificate SHA-256 fingerprint {f}");
            }
            if !ui.addr.ip().is_loopback() && node.ui_users().map_or(true, |u| u.is_empty()) {
                eprintln!(
                    "leanspec-peer: no web UI accounts yet: add one with `leanspec-peer ui-user add NAME --role viewer|editor|admin`"
                );
            }
            Some(ui)
        };
        // An unreachable inviter (busy, or not up yet: a CI runner may start first) is
        // tried again with backoff; a refusal (expired, revoked, used) ends `up`.
        let mut stop_now = false;
        if let Some(key) = args.authkey {
            let mut wait = std::time::Duration::from_secs(1);
            loop {
                match node.join_authkey(&key).await {
                    Ok(None) => tracing::info!("already a member of the authkey's mesh"),
                    Ok(Some(j)) => eprintln!(
                        "leanspec-peer: joined the mesh of {} ({} members)",
                        j.inviter.short(),
                        j.members
                    ),
                    Err(e) if e.kind() == ErrorKind::Unreachable => {
                        eprintln!(
                            "leanspec-peer: {e}; trying the authkey again in {} s",
                            wait.as_secs()
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = interrupt.recv() => stop_now = true,
                            _ = term.recv() => stop_now = true,
                        }
                        if stop_now {
                            break;
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(30));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                break;
            }
        }
        let (earlier, mut events) = node.subscribe();
        for ev in &earlier {
            log_event(ev);
        }
        let log = tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                log_event(&ev);
            }
        });
        let trim = (!args.trim_after.is_zero())
            .then(|| tokio::spawn(resident::trim_when_quiet(node.clone(), args.trim_after)));
        if !stop_now {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
        }
        eprintln!("leanspec-peer: stopping");
        server.abort();
        log.abort();
        if let Some(t) = trim {
            t.abort();
        }
        if let Some(ui) = ui {
            ui.stop();
        }
        let _ = std::fs::remove_file(home.join(control::SOCKET_FILE));
        node.stop().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes an event's line to stderr in one write (`eprintln!` makes one per piece, on
/// the daemon's way from a change to the peers).
fn log_event(ev: &leanspec_peer_core::peer::Event) {
    let line = format!("leanspec-peer: {}\n", reply::event_text(ev));
    let _ = std::io::stderr().write_all(line.as_bytes());
}
