//! Helpers every benchmark shares (each benchmark is its own crate: `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A number from the environment, or `default`.
pub(crate) fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..=1) of `v`, sorting it.
pub(crate) fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The LeanSpec corpus: `LEANSPEC_CORPUS`, else `../shared/corpus/lean-spec-specs`
/// beside the project.
pub(crate) fn corpus() -> PathBuf {
    std::env::var_os("LEANSPEC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/lean-spec-specs")
        })
}
