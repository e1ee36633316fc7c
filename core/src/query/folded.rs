//! Lower-cased title, name and tags of a project's specs in one buffer, built with the
//! spec table. Text queries scan it front to back: over 50,000 specs, chasing each
//! spec's own strings on the heap cost ~200 ns a row in cache misses.

use crate::spec::Spec;

/// Tags are joined with this; a tag's own line breaks become spaces.
pub(crate) const TAG_SEPARATOR: char = '\n';

/// The folded text of every spec of a project, in the table's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldedText {
    text: String,
    /// Per spec: where its title, name, tags, title words and name words start, and
    /// where the name words end.
    spans: Vec<[u32; 6]>,
}

/// One spec's folded text.
#[derive(Debug, Clone, Copy, Default)]
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
        }
        FoldedText { text, spans }
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
        let b = f.get(1);
        assert_eq!((b.title, b.name, b.tags().count()), ("", "002-x", 0));
        assert_eq!(f.get(2).name, "");
    }
}
