//! Reading one spec folder into a [`Spec`], through [`SpecsDir`] (never out of the specs
//! folder). What the file says, however bad, becomes a [`Spec`] with `parse_error`; a
//! read that failed ([`Loaded::Unreadable`]) is kept apart, because a failed read is
//! not an absence and not an empty spec: callers keep the last known state.

use super::beneath::{EntryKind, OpenError, SpecsDir};
use super::frontmatter::{self, Frontmatter};
use super::hash::sha256_hex;
use super::model::Spec;
use std::fs::File;
use std::io::Read;

/// Spec files larger than this are not read (a spec is prose; 4 MiB is ~1,000 pages).
/// The cap keeps a stray log or binary renamed to README.md from costing memory and time.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// What reading a spec's README.md gave.
#[derive(Debug)]
pub enum Readme {
    /// The file's bytes (at most [`MAX_SPEC_BYTES`]).
    Bytes(Vec<u8>),
    /// There is something, and it is not to be read (a symlink out of the specs folder,
    /// not a regular file, too large): a sentence for `parse_error`.
    Refused(String),
    /// The filesystem says there is no README.md.
    NotFound,
    /// The read failed (EMFILE, EACCES, EIO, ...): the file's state is unknown.
    Unreadable(String),
}

/// Reads spec `name`'s README.md beneath `specs`, with the size cap.
pub fn read_readme(specs: &SpecsDir, name: &str) -> Readme {
    match specs.open_file(&format!("{name}/README.md")) {
        Ok(file) => read_capped(file),
        Err(OpenError::NotFound) => Readme::NotFound,
        Err(OpenError::Refused(why)) => Readme::Refused(format!("README.md refused: {why}")),
        Err(OpenError::Io(e)) => Readme::Unreadable(format!("cannot read README.md: {e}")),
    }
}

/// Reads an open file with the size cap.
pub fn read_capped(file: File) -> Readme {
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes) {
        return Readme::Unreadable(format!("cannot read README.md: {e}"));
    }
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Readme::Refused(format!(
            "README.md is larger than the {} MiB limit; not read (is it really a spec?)",
            MAX_SPEC_BYTES / (1024 * 1024)
        ));
    }
    Readme::Bytes(bytes)
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

/// Lists the other `.md` files of spec folder `name`, sorted. Non-UTF-8 names are
/// skipped (they cannot be named in the replicated document) and reported in
/// `warnings`. `Err` is the failure: the folder could not be listed.
pub fn sub_files(
    specs: &SpecsDir,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, OpenError> {
    let entries = specs.list(name)?;
    let mut out = Vec::new();
    for (file, kind) in entries {
        let Some(file) = file.to_str() else {
            warnings.push(format!(
                "skipped sub-file with a non-UTF-8 name in {}",
                specs.path().join(name).display()
            ));
            continue;
        };
        if file != "README.md"
            && file.ends_with(".md")
            && matches!(kind, EntryKind::File | EntryKind::Symlink)
        {
            out.push(file.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// What loading a spec folder gave.
#[derive(Debug)]
pub enum Loaded {
    /// The spec as its file says (with `parse_error` when the file is not usable).
    Spec(Box<Spec>),
    /// The folder or its README.md is not there (any more).
    NotFound,
    /// Reading failed: keep the last known state. A sentence with the error.
    Unreadable(String),
}

/// Loads spec folder `name`: lists sub-files, reads `README.md` (capped), parses.
pub fn load(specs: &SpecsDir, name: &str, warnings: &mut Vec<String>) -> Loaded {
    let subs = match sub_files(specs, name, warnings) {
        Ok(s) => s,
        Err(OpenError::NotFound) => return Loaded::NotFound,
        Err(e) => return Loaded::Unreadable(format!("cannot list the folder: {e}")),
    };
    match read_readme(specs, name) {
        Readme::Bytes(bytes) => Loaded::Spec(Box::new(parse_bytes(name, &bytes, subs))),
        Readme::Refused(reason) => Loaded::Spec(Box::new(Spec {
            name: name.to_string(),
            title: name.rsplit('/').next().unwrap_or(name).to_string(),
            sub_files: subs,
            parse_error: Some(reason),
            ..Spec::default()
        })),
        Readme::NotFound => Loaded::NotFound,
        Readme::Unreadable(reason) => Loaded::Unreadable(reason),
    }
}
