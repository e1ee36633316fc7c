//! Command-line arguments. Validation only; `main` turns them into core calls.

use clap::{Args, Parser, Subcommand};
use leanspec_peer_core::spec::{Priority, Status};
use std::path::PathBuf;

/// See and edit LeanSpec specs on all your machines, peer to peer.
#[derive(Debug, Parser)]
#[command(name = "leanspec-peer", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Home folder holding this machine's key and store.
    #[arg(long, global = true, env = "LEANSPEC_PEER_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,

    /// Print JSON on stdout (stable keys, see docs/cli-json.md) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create this machine's identity and store (safe to run again).
    Init {
        /// Human label for this machine (default: the hostname).
        #[arg(long)]
        label: Option<String>,
    },
    /// Manage the projects this machine shares.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Run `up` as a service of your session (systemd user unit on Linux, launchd agent
    /// on macOS): started at login, restarted when it fails.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Rescan every project's specs now.
    Scan,
    /// Scan a project folder and keep watching it (initialises on first use).
    Up(UpArgs),
    /// List specs, optionally filtered.
    Specs(SpecsArgs),
    /// Counts by status, priority and tag, per machine and for the fleet (a spec held by
    /// several machines counts once), with the completion rate.
    Stats,
    /// What is wrong across machines: a spec number used twice in one project, one spec
    /// with different metadata on different machines, unreadable specs, dangling
    /// depends_on. Exit 1 when it finds any (for CI).
    Check,
    /// Specs of every machine in columns (by status unless --group-by), fitted to the
    /// terminal's width; only those matching QUERY when given (the search language).
    Board {
        /// Only specs matching this query (quote it for the shell).
        query: Option<String>,
        /// Columns by: status, priority, assignee, tag, machine or parent.
        #[arg(long, default_value = "status")]
        group_by: leanspec_peer_core::query::GroupBy,
        /// Width to fit (default: the terminal's, else 100).
        #[arg(long)]
        width: Option<usize>,
    },
    /// What a spec depends on and what depends on it, across every machine that holds
    /// its project (a depends_on entry may name a spec only another machine has).
    Deps {
        /// Spec name, number or slug.
        spec: String,
        /// Project id, name or fleet identity (git origin URL in any form).
        #[arg(long)]
        project: Option<String>,
        /// Only what the spec depends on.
        #[arg(long)]
        upstream: bool,
        /// Only what depends on the spec.
        #[arg(long)]
        downstream: bool,
        /// How many links to follow.
        #[arg(long, default_value_t = leanspec_peer_core::query::DEFAULT_DEPTH)]
        depth: usize,
    },
    /// Search the specs of every machine: words, "phrases", word~ (typos),
    /// status: priority: tag: assignee: machine: project: title: name: parent:
    /// depends_on: created:>2025-11, AND OR NOT and parentheses.
    Search {
        /// The query (quote it for the shell).
        query: String,
        /// At most this many results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one spec.
    Show {
        /// Machine (id, short id or label); default: this one.
        #[arg(long)]
        machine: Option<String>,
        /// Project id, name or folder.
        project: String,
        /// Spec name, number or slug.
        spec: String,
    },
    /// Print a spec's README.md: another machine's is read from it (members only) and
    /// a copy kept; when it is offline, that copy is shown with its age.
    Body {
        /// Machine (id, short id or label); default: this one.
        #[arg(long)]
        machine: Option<String>,
        /// Project id, name or folder.
        project: String,
        /// Spec name, number or slug.
        spec: String,
    },
    /// Show this machine, its projects, its peers and its store.
    Status,
    /// List every machine of the mesh with its presence.
    Machines,
    /// Create a ticket another machine can join with (needs `up` running); `invite list`
    /// and `invite revoke ID` manage the invitations made.
    #[command(args_conflicts_with_subcommands = true)]
    Invite {
        /// `list` or `revoke ID`; none: make a new invitation.
        #[command(subcommand)]
        action: Option<InviteAction>,
        /// How long the ticket stays valid (`10m`, `1h`, `7d`; a reusable key at most
        /// 90 days).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        ttl: std::time::Duration,
        /// Allow many machines to join with it (a headless/CI auth key).
        #[arg(long)]
        reusable: bool,
        /// Machines that join with it leave the mesh by themselves once this machine has
        /// not heard from them for `--ephemeral-after` (CI runners, throwaway VMs): they
        /// are removed from every member's machine list.
        #[arg(long)]
        ephemeral: bool,
        /// How long an ephemeral machine may be away before it is removed.
        #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "ephemeral")]
        ephemeral_after: std::time::Duration,
        /// Also show the ticket as a QR code (on stderr, for a phone's camera; the
        /// ticket itself stays the only thing on stdout).
        #[arg(long)]
        qr: bool,
    },
    /// Join the mesh of the machine that printed TICKET.
    Join {
        /// The ticket (`lsp1...`).
        ticket: String,
        /// Local address for the join when `up` is not running (default: 0.0.0.0:0).
        #[arg(long, value_name = "ADDR")]
        bind: Option<std::net::SocketAddr>,
    },
    /// Change a machine's label, for every member.
    Rename {
        /// Machine id, short id or label.
        machine: String,
        /// New label.
        label: String,
    },
    /// Remove a machine from the mesh: every member disconnects and refuses it.
    Revoke {
        /// Machine id, short id or label.
        machine: String,
    },
    /// Print a one-time login URL for the web UI the running `up` serves (valid 5
    /// minutes; it sets a session cookie).
    Ui {
        /// Also open it in the default browser.
        #[arg(long)]
        open: bool,
    },
    /// Manage the accounts that may log in to this machine's web UI from other
    /// devices (stored here only, passwords as argon2id hashes).
    #[command(subcommand)]
    UiUser(UiUserCommand),
    /// Use an S3-compatible bucket as an encrypted mailbox and off-site copy: members
    /// that are never on at the same time catch up from it (docs/bucket.md).
    /// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or
    /// ~/.aws/credentials of each machine, never from the mesh.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Print one line per event while `up` runs (spec changes, machines, sync).
    Events,
    /// Serve MCP (Model Context Protocol) on stdin/stdout for AI agents: list machines
    /// and specs, search, get a spec, check the fleet, dependencies; with
    /// --allow-edits also signed metadata edits and execution requests. Answers
    /// through the running `up` when there is one.
    Mcp {
        /// Offer the write tools (update_spec, request_execution). Off by default: a
        /// spec written on another machine can carry instructions for an agent
        /// (docs/mcp.md).
        #[arg(long)]
        allow_edits: bool,
    },
    /// Change a spec's metadata on any machine (this one too): a signed request the
    /// owner applies only if the file is still what you saw. Exit 0 applied, 3 rejected,
    /// 4 unavailable.
    Edit(EditArgs),
    /// Hand a request to the host application on MACHINE (nothing runs by itself).
    ExecRequest {
        /// Machine id, short id or label.
        machine: String,
        /// The payload (at most 16 KiB), e.g. a JSON object your app understands.
        payload: String,
    },
    /// Show the audit log: operations sent and received, with their answers.
    Audit {
        /// How many records, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
pub(crate) struct EditArgs {
    /// Machine id, short id or label.
    pub(crate) machine: String,
    /// Project id or name (as `specs` shows it).
    pub(crate) project: String,
    /// Spec name, number or slug.
    pub(crate) spec: String,
    /// New status (draft, planned, in-progress, complete, archived).
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<Status>,
    /// New priority (low, medium, high, critical).
    #[arg(long, value_parser = parse_priority)]
    pub(crate) priority: Option<Priority>,
    /// Add a tag (repeatable).
    #[arg(long = "add-tag", value_name = "TAG")]
    pub(crate) add_tags: Vec<String>,
    /// Remove a tag (repeatable).
    #[arg(long = "remove-tag", value_name = "TAG")]
    pub(crate) remove_tags: Vec<String>,
    /// Add a dependency (repeatable).
    #[arg(long = "add-dep", value_name = "SPEC")]
    pub(crate) add_deps: Vec<String>,
    /// Remove a dependency (repeatable).
    #[arg(long = "remove-dep", value_name = "SPEC")]
    pub(crate) remove_deps: Vec<String>,
    /// New parent ("" removes it).
    #[arg(long)]
    pub(crate) parent: Option<String>,
    /// New assignee ("" removes it).
    #[arg(long)]
    pub(crate) assignee: Option<String>,
    /// The file hash you saw (default: the one in the replicated document).
    #[arg(long, value_name = "HASH")]
    pub(crate) base_hash: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// Add a project folder (one holding specs/) and scan it.
    Add {
        /// The project folder.
        dir: PathBuf,
        /// Display name (default: the folder name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List projects.
    List,
    /// Stop sharing a project (its files are not touched).
    Remove {
        /// Project id, name or folder.
        project: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SpecsArgs {
    /// Only this machine (id, short id or label).
    #[arg(long)]
    pub(crate) machine: Option<String>,
    /// Only this project (id or name).
    #[arg(long)]
    pub(crate) project: Option<String>,
    /// Only this status (draft, planned, in-progress, complete, archived).
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<Status>,
    /// Only this priority (low, medium, high, critical).
    #[arg(long, value_parser = parse_priority)]
    pub(crate) priority: Option<Priority>,
    /// Only specs with this tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Write the service (with `up`'s flags given here) and start it. Tokens and keys go
    /// to a file only you can read, not onto the command line.
    Install {
        #[command(flatten)]
        up: Box<UpArgs>,
        /// Write the files but do not enable or start the service.
        #[arg(long)]
        no_start: bool,
        /// Print the service definition instead of installing it.
        #[arg(long)]
        dry_run: bool,
        /// The service manager (default: this OS's).
        #[arg(long, value_enum, hide = true)]
        manager: Option<crate::service::Manager>,
    },
    /// Stop the service and remove what `install` wrote (the machine's home stays).
    Uninstall {
        /// The service manager (default: this OS's).
        #[arg(long, value_enum, hide = true)]
        manager: Option<crate::service::Manager>,
    },
    /// Whether the service is installed and running.
    Status {
        /// The service manager (default: this OS's).
        #[arg(long, value_enum, hide = true)]
        manager: Option<crate::service::Manager>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Project folder to share (repeatable; default: the projects already added).
    #[arg(long = "project", value_name = "DIR")]
    pub(crate) projects: Vec<PathBuf>,
    /// Label for this machine, on first use.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Run one scan and exit instead of running the peer.
    #[arg(long)]
    pub(crate) once: bool,
    /// Address to listen on (default: 0.0.0.0 and the port used last time).
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Option<std::net::SocketAddr>,
    /// Relay server URL (repeatable). No relay is used unless given or learned.
    #[arg(long = "relay", value_name = "URL")]
    pub(crate) relays: Vec<String>,
    /// Use no relay, even one learned from a ticket.
    #[arg(long)]
    pub(crate) no_relay: bool,
    /// Use relays only (no direct connections).
    #[arg(long)]
    pub(crate) no_direct: bool,
    /// Do not look for members on the local network (mDNS). On by default: machines of
    /// one mesh on a LAN find each other's current addresses with no relay and no
    /// internet; only this machine's endpoint id and addresses are announced.
    #[arg(long)]
    pub(crate) no_lan: bool,
    /// Token for relays that require one (ask the relay's operator).
    #[arg(
        long,
        env = "LEANSPEC_PEER_RELAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) relay_token: Option<String>,
    /// Also trust this CA certificate (PEM) for relays, e.g. a self-signed relay.
    #[arg(long, value_name = "PEM")]
    pub(crate) relay_ca: Option<PathBuf>,
    /// Join a mesh on start with this (reusable) ticket, unless already a member.
    #[arg(
        long,
        env = "LEANSPEC_PEER_AUTHKEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) authkey: Option<String>,
    /// Serve the web UI on this address (`127.0.0.1:0` for any free port). Default:
    /// 127.0.0.1:7434, or any free port when that one is taken. Beyond loopback
    /// (`0.0.0.0:8443`) it needs TLS and accounts (`ui-user add`); `leanspec-peer ui`
    /// prints a one-time login URL for this machine's own user.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_ui")]
    pub(crate) ui: Option<std::net::SocketAddr>,
    /// Do not serve the web UI.
    #[arg(long)]
    pub(crate) no_ui: bool,
    /// Serve the web UI over HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key", conflicts_with_all = ["tls_self_signed", "no_ui"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Serve the web UI over HTTPS with a self-signed certificate made once and kept
    /// in the home folder; its SHA-256 fingerprint is printed, to compare with the
    /// browser's.
    #[arg(long, conflicts_with = "no_ui")]
    pub(crate) tls_self_signed: bool,
    /// A name or address the self-signed certificate is for, besides localhost and the
    /// --ui address (repeatable; read when the certificate is first made).
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls_self_signed")]
    pub(crate) tls_names: Vec<String>,
    /// How often the mesh's buckets are read for other members' changes (`bucket`).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) bucket_pull_every: std::time::Duration,
    /// After this long with no events (and every 30 s while it stays quiet), hand back
    /// the memory that startup and past work left resident (code pages, free heap); it
    /// maps back on use, which costs the next change ~3 ms. `0s` keeps everything.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) trim_after: std::time::Duration,
}

/// What `bucket` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BucketCommand {
    /// Record a bucket for the whole mesh (replicated to members without credentials).
    Add {
        /// `s3://BUCKET/PREFIX` (the prefix defaults to leanspec-peer).
        url: String,
        /// The S3 endpoint for R2, B2, MinIO, Garage… (`https://…`); AWS when absent.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// The bucket's region (default us-east-1).
        #[arg(long)]
        region: Option<String>,
        /// Chunks each machine stores between two snapshots of its documents
        /// (default 64).
        #[arg(long, value_name = "N")]
        snapshot_every: Option<u64>,
        /// Snapshots each machine keeps, each with the chunks after it; older objects
        /// are deleted when it stores a snapshot (default 2).
        #[arg(long, value_name = "N")]
        keep_snapshots: Option<u64>,
        /// Allow an `http://` endpoint on another host (credentials and signatures
        /// then travel in clear); loopback endpoints need no flag.
        #[arg(long)]
        allow_http: bool,
    },
    /// Use a bucket another member added: until you accept it, this machine sends it
    /// nothing (not even its credentials' key id).
    Accept {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// Allow an `http://` endpoint on another host (credentials and signatures
        /// then travel in clear).
        #[arg(long)]
        allow_http: bool,
    },
    /// The mesh's buckets.
    List,
    /// Remove a bucket from the mesh (its objects stay in the bucket).
    Remove {
        /// `s3://BUCKET/PREFIX`.
        url: String,
    },
    /// Last push and pull, objects, bytes, refusals and errors, per bucket.
    Status,
    /// Push this machine's changes and pull the other members' now.
    Sync,
}

/// What `ui-user` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum UiUserCommand {
    /// Add an account (the password is asked for, or read from stdin when it is not a
    /// terminal).
    Add {
        /// Login name (letters, digits, '.', '_', '-', '@').
        name: String,
        /// What it may do: viewer (read), editor (also edit specs), admin (also
        /// machines, invitations).
        #[arg(long, value_parser = parse_role)]
        role: leanspec_peer_core::node::Role,
    },
    /// List the accounts.
    List,
    /// Remove an account and end its sessions.
    Remove {
        /// Login name.
        name: String,
    },
    /// Change an account's password and end its sessions everywhere.
    Passwd {
        /// Login name.
        name: String,
    },
}

fn parse_role(s: &str) -> Result<leanspec_peer_core::node::Role, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 10m, 1h, 7d)"))
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse::<Status>().map_err(|e| e.to_string())
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse::<Priority>().map_err(|e| e.to_string())
}

/// What `invite` does besides making a ticket.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum InviteAction {
    /// List the invitations this machine made: id, expiry, state, who joined with each.
    List,
    /// Refuse every later join with an invitation.
    Revoke {
        /// The invitation's id (from `invite list`), or 4 or more of its first characters.
        id: String,
    },
}
