//! What the commands print: JSON documents (stable; see docs/cli-json.md) and the
//! human text. No logic beyond formatting.

use leanspec_peer_core::{ProjectScan, SpecRow};

pub(crate) fn scan_text(s: &ProjectScan) -> String {
    let mut out = format!(
        "{}: {} specs ({} added, {} updated, {} removed; {} read, {} unchanged)",
        s.name,
        s.specs,
        s.added,
        s.updated,
        s.removed,
        s.read,
        s.specs.saturating_sub(s.read)
    );
    if s.parse_errors > 0 {
        out.push_str(&format!(
            "\n  {} spec(s) have parse errors: see `leanspec-peer specs --project {}` (column ERR)",
            s.parse_errors, s.name
        ));
    }
    for w in &s.warnings {
        out.push_str(&format!("\n  warning: {w}"));
    }
    out
}

fn cell(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

pub(crate) fn specs_table(rows: &[SpecRow]) -> String {
    let mut out = String::new();
    let name_w = rows
        .iter()
        .map(|r| r.spec.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    let proj_w = rows
        .iter()
        .map(|r| r.project.len())
        .max()
        .unwrap_or(7)
        .clamp(7, 24);
    out.push_str(&format!(
        "{:<proj_w$}  {:<name_w$}  {:<11}  {:<8}  {}\n",
        "PROJECT", "SPEC", "STATUS", "PRIORITY", "TITLE"
    ));
    for r in rows {
        let s = &r.spec;
        let err = if s.parse_error.is_some() {
            " [ERR]"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<proj_w$}  {:<name_w$}  {:<11}  {:<8}  {}{err}\n",
            r.project,
            s.name,
            cell(s.status.map(|v| v.as_str())),
            cell(s.priority.map(|v| v.as_str())),
            s.title
        ));
    }
    out.push_str(&format!("{} spec(s)", rows.len()));
    out
}

pub(crate) fn spec_text(r: &SpecRow) -> String {
    let s = &r.spec;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!(
        "{}\n  spec:         {}\n  project:      {}\n  machine:      {} ({})\n  status:       {}\n  priority:     {}\n  tags:         {}\n  depends_on:   {}\n  parent:       {}\n  assignee:     {}\n  created:      {}\n  updated_at:   {}\n  completed_at: {}\n  sub-files:    {}\n  content_hash: {}\n  file_hash:    {}",
        s.title,
        s.name,
        r.project,
        r.machine_label,
        &r.machine[..10.min(r.machine.len())],
        cell(s.status.map(|v| v.as_str())),
        cell(s.priority.map(|v| v.as_str())),
        list(&s.tags),
        list(&s.depends_on),
        cell(s.parent.as_deref()),
        cell(s.assignee.as_deref()),
        cell(s.created.as_deref()),
        cell(s.updated_at.as_deref()),
        cell(s.completed_at.as_deref()),
        list(&s.sub_files),
        if s.content_hash.is_empty() {
            "-"
        } else {
            &s.content_hash
        },
        if s.file_hash.is_empty() {
            "-"
        } else {
            &s.file_hash
        },
    );
    if let Some(e) = &s.parse_error {
        out.push_str(&format!("\n  parse error:  {e}"));
    }
    out
}

/// Text for a terminal, with every character that could drive it escaped (`\u{1b}`):
/// control characters (escape sequences, carriage returns that rewrite a line) and
/// bidirectional overrides (which reorder what is shown). Titles, labels, tags and
/// reasons come from other machines' files and documents. Line breaks are kept only
/// when `newlines` (a multi-line table); an event is one line.
pub(crate) fn terminal_safe(text: &str, newlines: bool) -> String {
    let unsafe_char = |c: char| {
        (c.is_control() && !(newlines && c == '\n') && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    };
    if !text.chars().any(unsafe_char) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` as a QR code of Unicode half blocks, two modules per character cell, light
/// modules drawn (as `qrencode -t UTF8` does): right for the usual dark terminal
/// background, with the quiet zone around it. `None` if it does not fit a QR code.
pub(crate) fn qr_block(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}
