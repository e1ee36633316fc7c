//! Reading one spec folder into a [`Spec`]. Never fails: whatever cannot be read is
//! recorded in `parse_error` and the rest of the record is still filled in.

use super::frontmatter::{self, Frontmatter};
use super::hash::sha256_hex;
use super::model::Spec;
use std::fs;
use std::io::Read;
use std::path::Path;

/// Spec files larger than this are not read (a spec is prose; 4 MiB is ~1,000 pages).
/// The cap keeps a stray log or binary renamed to README.md from costing memory and time.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// Reads `README.md` with the size cap. `Err` is a sentence for `parse_error`.
pub fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot read README.md: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read README.md: {e}"))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(format!(
            "README.md is larger than the {} MiB limit; not read (is it really a spec?)",
            MAX_SPEC_BYTES / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

/// Parses spec file bytes. `name` is the folder path relative to the specs folder.
pub fn parse_bytes(name: &str, bytes: &[u8], sub_files: Vec<String>) -> Spec {
    let fallback_title = name.rsplit('/').next().unwrap_or(name);
    let mut spec = Spec {
        name: name.to_string(),
        title: fallback_title.to_string(),
        file_hash: sha256_hex(bytes),
        sub_files,
        ..Spec::default()
    };
    if bytes.contains(&0) {
        spec.parse_error = Some("README.md is a binary file (it contains NUL bytes)".into());
        return spec;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            spec.parse_error = Some(format!(
                "README.md is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ));
            return spec;
        }
    };
    let layout = frontmatter::layout(text);
    let body = &text[layout.body.clone()];
    spec.content_hash = sha256_hex(body.as_bytes());
    spec.title = frontmatter::title(body, fallback_title);
    let fm = match &layout.yaml {
        Some(range) => frontmatter::parse(&text[range.clone()]),
        None => {
            spec.parse_error = Some(if layout.unterminated {
                "frontmatter opens with --- but never closes: add a closing --- line".into()
            } else {
                "no frontmatter: the file must start with a --- block holding status and created"
                    .into()
            });
            return spec;
        }
    };
    fill(&mut spec, fm);
    spec
}

fn fill(spec: &mut Spec, fm: Frontmatter) {
    let s = |k| fm.string(k).map(str::to_string);
    spec.status = fm.status;
    spec.priority = fm.priority;
    spec.tags = fm.tags.clone();
    spec.depends_on = fm.depends_on.clone();
    spec.parent = s("parent");
    spec.assignee = s("assignee");
    spec.created = fm.created.clone();
    spec.created_at = s("created_at");
    spec.updated_at = s("updated_at");
    spec.completed_at = s("completed_at");
    if !fm.problems.is_empty() {
        spec.parse_error = Some(fm.problems.join("; "));
    }
}

/// Lists the other `.md` files of a spec folder, sorted. Non-UTF-8 names are skipped
/// (they cannot be named in the replicated document) and reported in `warnings`.
pub fn sub_files(dir: &Path, warnings: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            warnings.push(format!(
                "skipped sub-file with a non-UTF-8 name in {}",
                dir.display()
            ));
            continue;
        };
        if name != "README.md"
            && name.ends_with(".md")
            && entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink())
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    out
}

/// Loads one spec folder: reads `README.md` (capped), lists sub-files, parses.
pub fn load(name: &str, dir: &Path, warnings: &mut Vec<String>) -> Spec {
    let subs = sub_files(dir, warnings);
    match read_capped(&dir.join("README.md")) {
        Ok(bytes) => parse_bytes(name, &bytes, subs),
        Err(reason) => Spec {
            name: name.to_string(),
            title: name.rsplit('/').next().unwrap_or(name).to_string(),
            sub_files: subs,
            parse_error: Some(reason),
            ..Spec::default()
        },
    }
}
