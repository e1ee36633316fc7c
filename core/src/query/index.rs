//! The ways a `depends_on` entry (or a user's selector) can name a spec of one project:
//! the full name, its last part, its number (`12` for `012-x`), or its slug (`x`, what
//! follows the number). Built once per project so each lookup is constant time (a scan
//! per entry took 37 s over 50,000 specs).

use std::collections::HashMap;

/// The number of a spec name (`042-x` → 42; nested names use the last part).
pub(crate) fn number(name: &str) -> Option<u64> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Names of one project's specs, by every form that can refer to them.
#[derive(Debug, Default)]
pub(crate) struct SpecIndex<'a> {
    names: HashMap<&'a str, Vec<&'a str>>,
    numbers: HashMap<u64, Vec<&'a str>>,
    slugs: HashMap<&'a str, Vec<&'a str>>,
}

fn add<'a, K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<&'a str>>, key: K, name: &'a str) {
    let names = map.entry(key).or_default();
    if !names.contains(&name) {
        names.push(name);
    }
}

impl<'a> SpecIndex<'a> {
    pub(crate) fn new(names: impl Iterator<Item = &'a str>) -> SpecIndex<'a> {
        let mut index = SpecIndex::default();
        for name in names {
            let last = name.rsplit('/').next().unwrap_or(name);
            add(&mut index.names, name, name);
            add(&mut index.names, last, name);
            if let Some(n) = number(name) {
                add(&mut index.numbers, n, name);
            }
            // Every suffix after a '-' (a slug may itself contain dashes).
            for (i, c) in last.char_indices() {
                if c == '-' {
                    add(&mut index.slugs, &last[i + 1..], name);
                }
            }
        }
        index
    }

    /// The spec names `entry` refers to: an exact name first, else a number, else a
    /// slug (several when a number or slug is shared).
    pub(crate) fn resolve(&self, entry: &str) -> &[&'a str] {
        if let Some(v) = self.names.get(entry) {
            return v;
        }
        if !entry.is_empty()
            && entry.chars().all(|c| c.is_ascii_digit())
            && let Some(v) = entry.parse().ok().and_then(|n: u64| self.numbers.get(&n))
        {
            return v;
        }
        self.slugs.get(entry).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_resolves() {
        let names = ["012-base", "042-web-ui", "nested/007-x", "042-other"];
        let index = SpecIndex::new(names.into_iter());
        assert_eq!(index.resolve("012-base"), ["012-base"]);
        assert_eq!(index.resolve("12"), ["012-base"]);
        assert_eq!(index.resolve("012"), ["012-base"]);
        assert_eq!(index.resolve("web-ui"), ["042-web-ui"]);
        assert_eq!(index.resolve("ui"), ["042-web-ui"]);
        assert_eq!(index.resolve("007-x"), ["nested/007-x"]);
        assert_eq!(index.resolve("42"), ["042-web-ui", "042-other"]);
        assert!(index.resolve("13").is_empty());
        assert!(index.resolve("").is_empty());
    }
}
