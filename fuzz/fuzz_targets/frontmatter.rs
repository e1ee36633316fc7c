//! Any bytes as a spec file: parsing never panics, the hashes are always there, and
//! the layout's ranges are in bounds and on char boundaries.
#![no_main]

use leanspec_peer_core::spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = spec::parse_bytes("001-fuzz", data, Vec::new());
    assert_eq!(s.file_hash.len(), 64);
    if let Ok(text) = std::str::from_utf8(data) {
        let l = spec::layout(text);
        let _ = &text[l.body.clone()];
        if let Some(y) = l.yaml {
            let _ = spec::parse_frontmatter(&text[y]);
        }
    }
});
