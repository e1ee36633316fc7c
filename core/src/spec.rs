//! Specs on disk: discovery, frontmatter parsing, hashes and the format-preserving
//! metadata editor. Pure: the only I/O is reading the folders and files it is given and
//! the editor's atomic write.

mod beneath;
mod discover;
mod edit;
mod frontmatter;
mod hash;
mod load;
mod model;
mod origin;
mod write;

pub use beneath::{EntryKind, OpenError, SpecsDir};
pub use discover::{
    MAX_DEPTH, SPECS_DIR_CANDIDATES, SpecFolder, Walk, find_specs_dir, walk, walk_path,
};
pub use edit::{EditError, EditOutcome, MetadataChange, apply_change, edit_file};
pub use frontmatter::{Frontmatter, Layout, Transition, layout, parse as parse_frontmatter, title};
pub use hash::sha256_hex;
pub use load::{
    Loaded, MAX_SPEC_BYTES, Readme, load, parse_bytes, read_capped, read_readme, sub_files,
};
pub use model::{Priority, Spec, Status, UnknownValue};
pub use origin::{fleet_id, normalize_remote, origin_url};
pub use write::write_atomic;
