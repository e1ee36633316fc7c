//! Lower-cased title, name and tags of a project's specs in one buffer, built with the
//! spec table. Text queries scan it front to back: over 50,000 specs, chasing each
//! spec's own strings on the heap cost ~200 ns a row in cache misses. Fuzzy terms use
//! the project's vocabulary instead: each distinct word is judged once per query, and
//! a spec matches when one of its word ids was.

use crate::spec::Spec;
use std::collections::HashMap;

/// Tags are joined with this; a tag's own line breaks become spaces.
pub(crate) const TAG_SEPARATOR: char = '\n';

/// The folded text of every spec of a project, in the table's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedText {
    text: String,
    /// Per spec: where its title, name, tags, title words and name words start, and
    /// where the name words end.
    spans: Vec<[u32; 6]>,
    /// Every distinct word of the titles and names, and every distinct tag.
    vocabulary: Vec<String>,
    /// Spec `i`'s words are `word_ids[word_at[i]..word_at[i + 1]]` (into `vocabulary`).
    word_ids: Vec<u32>,
    word_at: Vec<u32>,
}

static NO_TEXT: FoldedText = FoldedText {
    text: String::new(),
    spans: Vec::new(),
    vocabulary: Vec::new(),
    word_ids: Vec::new(),
    word_at: Vec::new(),
};

/// One spec's folded text.
#[derive(Debug, Clone, Copy)]
pub struct Folded<'a> {
    /// The title, lower case.
    pub title: &'a str,
    /// The spec name, lower case.
    pub name: &'a str,
    /// The tags, lower case, joined by a line break.
    pub tags: &'a str,
    /// The title's words (runs of letters and digits), lower case, joined by a space.
    pub title_words: &'a str,
    /// The name's words, likewise.
    pub name_words: &'a str,
    /// Its words and tags, as ids into [`FoldedText::vocabulary`] of `table`.
    pub word_ids: &'a [u32],
    /// The project's folded text this comes from.
    pub table: &'a FoldedText,
}

impl Default for Folded<'_> {
    fn default() -> Self {
        Folded {
            title: "",
            name: "",
            tags: "",
            title_words: "",
            name_words: "",
            word_ids: &[],
            table: &NO_TEXT,
        }
    }
}

impl<'a> Folded<'a> {
    /// Each tag.
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tags.split(TAG_SEPARATOR).filter(|t| !t.is_empty())
    }

    /// Each word of the title.
    pub fn title_words(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.title_words.split(' ').filter(|w| !w.is_empty())
    }

    /// Each word of the title, then of the name (split once, when the table was built:
    /// splitting 50,000 titles by character per query cost more than matching them).
    pub fn words(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.title_words()
            .chain(self.name_words.split(' ').filter(|w| !w.is_empty()))
    }
}

impl FoldedText {
    /// The folded text of `specs`.
    pub fn of(specs: &[Spec]) -> FoldedText {
        let mut text = String::new();
        let mut spans = Vec::with_capacity(specs.len());
        let mut vocabulary: Vec<String> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut word_ids: Vec<u32> = Vec::new();
        let mut word_at: Vec<u32> = Vec::with_capacity(specs.len() + 1);
        let at = |t: &String| u32::try_from(t.len()).unwrap_or(u32::MAX);
        for spec in specs {
            let title = at(&text);
            text.push_str(&spec.title.to_lowercase());
            let name = at(&text);
            text.push_str(&spec.name.to_lowercase());
            let tags = at(&text);
            for (i, tag) in spec.tags.iter().enumerate() {
                if i > 0 {
                    text.push(TAG_SEPARATOR);
                }
                text.push_str(&tag.to_lowercase().replace(TAG_SEPARATOR, " "));
            }
            let title_words = at(&text);
            push_words(&mut text, &spec.title);
            let name_words = at(&text);
            push_words(&mut text, &spec.name);
            spans.push([title, name, tags, title_words, name_words, at(&text)]);
            word_at.push(u32::try_from(word_ids.len()).unwrap_or(u32::MAX));
            let part = |from: u32, to: usize| text.get(from as usize..to).unwrap_or("");
            let end = text.len();
            let all: Vec<String> = part(title_words, name_words as usize)
                .split(' ')
                .chain(part(name_words, end).split(' '))
                .chain(part(tags, title_words as usize).split(TAG_SEPARATOR))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            for w in all {
                let next = u32::try_from(vocabulary.len()).unwrap_or(u32::MAX);
                let id = *ids.entry(w.clone()).or_insert_with(|| {
                    vocabulary.push(w);
                    next
                });
                word_ids.push(id);
            }
        }
        word_at.push(u32::try_from(word_ids.len()).unwrap_or(u32::MAX));
        FoldedText {
            text,
            spans,
            vocabulary,
            word_ids,
            word_at,
        }
    }

    /// Every distinct word and tag of the project, lower case.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// Spec `i`'s folded text (empty past the end or beyond 4 GiB of text).
    pub fn get(&self, i: usize) -> Folded<'_> {
        let Some([title, name, tags, title_words, name_words, end]) = self.spans.get(i).copied()
        else {
            return Folded::default();
        };
        let part = |from: u32, to: u32| self.text.get(from as usize..to as usize).unwrap_or("");
        Folded {
            title: part(title, name),
            name: part(name, tags),
            tags: part(tags, title_words),
            title_words: part(title_words, name_words),
            name_words: part(name_words, end),
            word_ids: match (self.word_at.get(i), self.word_at.get(i + 1)) {
                (Some(&from), Some(&to)) => {
                    self.word_ids.get(from as usize..to as usize).unwrap_or(&[])
                }
                _ => &[],
            },
            table: self,
        }
    }
}

/// Appends the lower-cased words of `s` (runs of letters and digits), space-separated.
fn push_words(text: &mut String, s: &str) {
    let mut first = true;
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !first {
            text.push(' ');
        }
        first = false;
        text.push_str(&w.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_lower_case() {
        let specs = vec![
            Spec {
                name: "001-Web".into(),
                title: "Über UI".into(),
                tags: vec!["CLI".into(), "two\nlines".into()],
                ..Spec::default()
            },
            Spec {
                name: "002-x".into(),
                ..Spec::default()
            },
        ];
        let f = FoldedText::of(&specs);
        let a = f.get(0);
        assert_eq!((a.title, a.name), ("über ui", "001-web"));
        assert_eq!(a.tags().collect::<Vec<_>>(), vec!["cli", "two lines"]);
        assert_eq!(
            a.words().collect::<Vec<_>>(),
            vec!["über", "ui", "001", "web"]
        );
        assert_eq!(a.title_words().collect::<Vec<_>>(), vec!["über", "ui"]);
        let vocabulary = |x: &Folded<'_>| -> Vec<String> {
            x.word_ids
                .iter()
                .map(|&id| f.vocabulary()[id as usize].clone())
                .collect()
        };
        assert_eq!(
            vocabulary(&a),
            vec!["über", "ui", "001", "web", "cli", "two lines"]
        );
        let b = f.get(1);
        assert_eq!((b.title, b.name, b.tags().count()), ("", "002-x", 0));
        assert_eq!(vocabulary(&b), vec!["002", "x"]);
        assert_eq!(f.vocabulary().len(), 8, "each distinct word once");
        assert!(f.get(2).word_ids.is_empty());
        assert_eq!(f.get(2).name, "");
    }
}
