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
    /// Rescan every project's specs now.
    Scan,
    /// Scan a project folder and keep watching it (initialises on first use).
    Up(UpArgs),
    /// List specs, optionally filtered.
    Specs(SpecsArgs),
    /// Show one spec.
    Show {
        /// Project id, name or folder.
        project: String,
        /// Spec name, number or slug.
        spec: String,
    },
    /// Show this machine, its projects and its store.
    Status,
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

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Project folder to share (repeatable; default: the projects already added).
    #[arg(long = "project", value_name = "DIR")]
    pub(crate) projects: Vec<PathBuf>,
    /// Label for this machine, on first use.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Run one scan and exit instead of watching.
    #[arg(long)]
    pub(crate) once: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse::<Status>().map_err(|e| e.to_string())
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse::<Priority>().map_err(|e| e.to_string())
}
