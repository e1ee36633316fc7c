//! `service install|uninstall|status`: `up` started with the user's session and
//! restarted when it fails: a systemd user unit on Linux, a launchd agent on macOS.
//!
//! Secrets given to `install` (`--relay-token`, `--authkey`) go to an environment file
//! readable by the user only (systemd `EnvironmentFile=`), or into the agent's plist,
//! made 0600 (launchd), never onto a command line other users can see.

use crate::args::UpArgs;
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit's (and agent's) name.
pub(crate) const NAME: &str = "leanspec-peer";
const LAUNCHD_LABEL: &str = "dev.leanspec.peer";

/// Which service manager a definition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Manager {
    /// A systemd user unit (Linux).
    Systemd,
    /// A launchd agent (macOS).
    Launchd,
}

impl Manager {
    pub(crate) fn native() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }
}

/// What the service runs.
#[derive(Debug)]
pub(crate) struct Service {
    /// The `leanspec-peer` binary (absolute).
    pub bin: PathBuf,
    /// The machine's home (absolute).
    pub home: PathBuf,
    /// Arguments after `up`.
    pub up_args: Vec<String>,
    /// Secrets, passed by environment.
    pub env: Vec<(&'static str, String)>,
}

impl Service {
    /// The service for `up` with `args`: paths made absolute (a service starts in
    /// another folder), secrets moved to the environment.
    pub(crate) fn new(bin: PathBuf, home: PathBuf, args: UpArgs) -> anyhow::Result<Service> {
        if args.once {
            bail!("--once runs one scan and exits: a service runs `up` until stopped");
        }
        let mut up_args = Vec::new();
        for p in &args.projects {
            let abs = std::fs::canonicalize(p)
                .with_context(|| format!("cannot use project folder {}", p.display()))?;
            up_args.push("--project".into());
            up_args.push(path_text(&abs)?);
        }
        if let Some(l) = args.label {
            up_args.extend(["--label".into(), l]);
        }
        if let Some(b) = args.bind {
            up_args.extend(["--bind".into(), b.to_string()]);
        }
        for r in args.relays {
            up_args.extend(["--relay".into(), r]);
        }
        if args.no_relay {
            up_args.push("--no-relay".into());
        }
        if args.no_direct {
            up_args.push("--no-direct".into());
        }
        if let Some(ca) = args.relay_ca {
            let abs = std::fs::canonicalize(&ca)
                .with_context(|| format!("cannot use --relay-ca {}", ca.display()))?;
            up_args.extend(["--relay-ca".into(), path_text(&abs)?]);
        }
        if let Some(ui) = args.ui {
            up_args.extend(["--ui".into(), ui.to_string()]);
        }
        if args.no_ui {
            up_args.push("--no-ui".into());
        }
        let mut env = Vec::new();
        if let Some(t) = args.relay_token {
            env.push(("LEANSPEC_PEER_RELAY_TOKEN", t));
        }
        if let Some(k) = args.authkey {
            env.push(("LEANSPEC_PEER_AUTHKEY", k));
        }
        for (_, v) in &env {
            if v.contains(['\n', '\r', '\0']) {
                bail!("a token or key cannot contain a line break");
            }
        }
        Ok(Service {
            bin,
            home,
            up_args,
            env,
        })
    }

    fn argv(&self) -> anyhow::Result<Vec<String>> {
        let mut v = vec![
            path_text(&self.bin)?,
            "--home".into(),
            path_text(&self.home)?,
            "up".into(),
        ];
        v.extend(self.up_args.iter().cloned());
        Ok(v)
    }
}

fn path_text(p: &Path) -> anyhow::Result<String> {
    p.to_str().map(str::to_string).with_context(|| {
        format!(
            "{} is not valid UTF-8: a service file cannot name it",
            p.display()
        )
    })
}

/// One `ExecStart=` word: quoted when it must be, with systemd's specifiers (`%`) and
/// variable expansion (`$`) escaped.
fn systemd_word(w: &str) -> String {
    let escaped = w
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty() || escaped.contains(|c: char| c.is_whitespace() || c == ';' || c == '\'')
    {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// The systemd user unit. `env_file`: where the secrets are, if any.
pub(crate) fn systemd_unit(s: &Service, env_file: Option<&Path>) -> anyhow::Result<String> {
    let exec: Vec<String> = s.argv()?.iter().map(|w| systemd_word(w)).collect();
    let mut u = String::new();
    let _ = writeln!(
        u,
        "# Written by `leanspec-peer service install`; `leanspec-peer service uninstall` removes it."
    );
    let _ = writeln!(u, "[Unit]");
    let _ = writeln!(
        u,
        "Description=leanspec-peer: LeanSpec specs shared with your other machines"
    );
    let _ = writeln!(u, "Wants=network-online.target");
    let _ = writeln!(u, "After=network-online.target");
    let _ = writeln!(u);
    let _ = writeln!(u, "[Service]");
    let _ = writeln!(u, "Type=simple");
    let _ = writeln!(u, "ExecStart={}", exec.join(" "));
    if let Some(f) = env_file {
        let _ = writeln!(u, "EnvironmentFile={}", systemd_word(&path_text(f)?));
    }
    let _ = writeln!(u, "Restart=on-failure");
    let _ = writeln!(u, "RestartSec=5");
    // `up` stops cleanly on SIGTERM (stores what it shares first).
    let _ = writeln!(u, "KillSignal=SIGTERM");
    let _ = writeln!(u, "TimeoutStopSec=30");
    let _ = writeln!(u, "NoNewPrivileges=yes");
    let _ = writeln!(u);
    let _ = writeln!(u, "[Install]");
    let _ = writeln!(u, "WantedBy=default.target");
    Ok(u)
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd agent's plist. `log`: where stdout and stderr go.
pub(crate) fn launchd_plist(s: &Service, log: &Path) -> anyhow::Result<String> {
    let mut p = String::new();
    let _ = writeln!(p, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        p,
        r#"<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">"#
    );
    let _ = writeln!(p, r#"<plist version="1.0">"#);
    let _ = writeln!(p, "<dict>");
    let _ = writeln!(p, "  <key>Label</key><string>{LAUNCHD_LABEL}</string>");
    let _ = writeln!(p, "  <key>ProgramArguments</key>");
    let _ = writeln!(p, "  <array>");
    for w in s.argv()? {
        let _ = writeln!(p, "    <string>{}</string>", xml_text(&w));
    }
    let _ = writeln!(p, "  </array>");
    if !s.env.is_empty() {
        let _ = writeln!(p, "  <key>EnvironmentVariables</key>");
        let _ = writeln!(p, "  <dict>");
        for (k, v) in &s.env {
            let _ = writeln!(p, "    <key>{k}</key><string>{}</string>", xml_text(v));
        }
        let _ = writeln!(p, "  </dict>");
    }
    let _ = writeln!(p, "  <key>RunAtLoad</key><true/>");
    // Restarted when it fails, not after a clean stop.
    let _ = writeln!(p, "  <key>KeepAlive</key>");
    let _ = writeln!(p, "  <dict><key>SuccessfulExit</key><false/></dict>");
    let _ = writeln!(p, "  <key>ThrottleInterval</key><integer>5</integer>");
    let log = xml_text(&path_text(log)?);
    let _ = writeln!(p, "  <key>StandardOutPath</key><string>{log}</string>");
    let _ = writeln!(p, "  <key>StandardErrorPath</key><string>{log}</string>");
    let _ = writeln!(p, "</dict>");
    let _ = writeln!(p, "</plist>");
    Ok(p)
}

/// Where a manager's files go for this user.
pub(crate) struct Paths {
    /// The unit or plist.
    pub definition: PathBuf,
    /// The secrets (systemd only).
    pub env_file: Option<PathBuf>,
    /// The log (launchd only; systemd logs to the journal).
    pub log: Option<PathBuf>,
}

pub(crate) fn paths(manager: Manager) -> anyhow::Result<Paths> {
    let base = directories::BaseDirs::new()
        .context("cannot find this user's home folder (is HOME set?)")?;
    Ok(match manager {
        Manager::Systemd => Paths {
            definition: base
                .config_dir()
                .join("systemd/user")
                .join(format!("{NAME}.service")),
            env_file: Some(base.config_dir().join(NAME).join("service.env")),
            log: None,
        },
        Manager::Launchd => Paths {
            definition: base
                .home_dir()
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist")),
            env_file: None,
            log: Some(base.home_dir().join("Library/Logs/leanspec-peer.log")),
        },
    })
}

/// Writes `text` to `path` (its folder created), readable by the user only when
/// `private`.
fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a service manager command; its failure as a sentence.
fn manager_cmd(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// What `install` did.
pub(crate) struct Installed {
    pub definition: PathBuf,
    pub env_file: Option<PathBuf>,
    /// `None`: enabled and started; else why not, with what to run.
    pub not_started: Option<String>,
}

pub(crate) fn install(s: &Service, manager: Manager, start: bool) -> anyhow::Result<Installed> {
    let p = paths(manager)?;
    let mut env_file = None;
    match manager {
        Manager::Systemd => {
            if let (Some(f), false) = (&p.env_file, s.env.is_empty()) {
                let text: String = s.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                write_file(f, &text, true)?;
                env_file = Some(f.clone());
            } else if let Some(f) = &p.env_file {
                // No secrets now: none left from an earlier install either.
                let _ = std::fs::remove_file(f);
            }
            write_file(&p.definition, &systemd_unit(s, env_file.as_deref())?, false)?;
        }
        Manager::Launchd => {
            let log = p
                .log
                .clone()
                .unwrap_or_else(|| PathBuf::from("/tmp/leanspec-peer.log"));
            if let Some(dir) = log.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            write_file(&p.definition, &launchd_plist(s, &log)?, true)?;
        }
    }
    let unit = format!("{NAME}.service");
    let def = path_text(&p.definition)?;
    let not_started = if !start {
        Some(match manager {
            Manager::Systemd => {
                format!("not started (--no-start): `systemctl --user enable --now {unit}`")
            }
            Manager::Launchd => format!("not started (--no-start): `launchctl load -w {def}`"),
        })
    } else {
        let r = match manager {
            Manager::Systemd => manager_cmd("systemctl", &["--user", "daemon-reload"])
                .and_then(|()| manager_cmd("systemctl", &["--user", "enable", "--now", &unit])),
            Manager::Launchd => {
                let _ = manager_cmd("launchctl", &["unload", &def]);
                manager_cmd("launchctl", &["load", "-w", &def])
            }
        };
        r.err()
    };
    Ok(Installed {
        definition: p.definition,
        env_file,
        not_started,
    })
}

/// Stops and removes what `install` wrote; the files removed.
pub(crate) fn uninstall(manager: Manager) -> anyhow::Result<Vec<PathBuf>> {
    let p = paths(manager)?;
    let def = path_text(&p.definition)?;
    if p.definition.exists() {
        // Stopping may fail (no session manager here): the files go anyway.
        let _ = match manager {
            Manager::Systemd => manager_cmd(
                "systemctl",
                &["--user", "disable", "--now", &format!("{NAME}.service")],
            ),
            Manager::Launchd => manager_cmd("launchctl", &["unload", "-w", &def]),
        };
    }
    let mut removed = Vec::new();
    for f in [Some(p.definition), p.env_file].into_iter().flatten() {
        match std::fs::remove_file(&f) {
            Ok(()) => removed.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", f.display())),
        }
    }
    if manager == Manager::Systemd && !removed.is_empty() {
        let _ = manager_cmd("systemctl", &["--user", "daemon-reload"]);
    }
    Ok(removed)
}

/// Whether the service is installed, and what the manager says of it.
pub(crate) fn status(manager: Manager) -> anyhow::Result<(PathBuf, bool, String)> {
    let p = paths(manager)?;
    let installed = p.definition.exists();
    let state = if !installed {
        "not installed".to_string()
    } else {
        let out = match manager {
            Manager::Systemd => Command::new("systemctl")
                .args(["--user", "is-active", &format!("{NAME}.service")])
                .output(),
            Manager::Launchd => Command::new("launchctl")
                .args(["list", LAUNCHD_LABEL])
                .output(),
        };
        match out {
            Ok(o) if manager == Manager::Systemd => {
                let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if s.is_empty() {
                    "unknown (no user service manager answered)".into()
                } else {
                    s
                }
            }
            Ok(o) if o.status.success() => "loaded".into(),
            Ok(_) => "not loaded".into(),
            Err(e) => format!("unknown (cannot ask the service manager: {e})"),
        }
    };
    Ok((p.definition, installed, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            bin: "/opt/lsp/leanspec-peer".into(),
            home: "/home/a b/.local/share/leanspec-peer".into(),
            up_args: vec![
                "--project".into(),
                "/src/my proj 100%".into(),
                "--label".into(),
                "x$y".into(),
            ],
            env: vec![("LEANSPEC_PEER_AUTHKEY", "lsp1secret".into())],
        }
    }

    #[test]
    fn exec_start_quotes_and_escapes() {
        let u = systemd_unit(
            &service(),
            Some(Path::new("/home/a/.config/leanspec-peer/service.env")),
        )
        .expect("unit");
        assert!(u.contains(
            "ExecStart=/opt/lsp/leanspec-peer --home \"/home/a b/.local/share/leanspec-peer\" up --project \"/src/my proj 100%%\" --label x$$y\n"
        ), "{u}");
        assert!(!u.contains("lsp1secret"), "secrets stay out of the unit");
        assert!(u.contains("Restart=on-failure"));
    }

    #[test]
    fn plist_escapes_xml() {
        let mut s = service();
        s.up_args.push("<&>".into());
        let p =
            launchd_plist(&s, Path::new("/Users/a/Library/Logs/leanspec-peer.log")).expect("plist");
        assert!(p.contains("<string>&lt;&amp;&gt;</string>"), "{p}");
        assert!(p.contains("<key>LEANSPEC_PEER_AUTHKEY</key><string>lsp1secret</string>"));
    }
}
