//! A spec's README as HTML for the detail page. The text comes from another machine and
//! is untrusted: raw HTML in it is shown as text (never passed through), and a link or
//! image may only point at http(s), mailto or a relative address. The page's
//! Content-Security-Policy (no inline script, images from this origin only) is the
//! second wall behind this one.

use leanspec_peer_core::spec::{layout, parse_frontmatter};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde::Serialize;

/// The parts of a spec file the detail page shows besides the metadata.
#[derive(Debug, Serialize)]
pub(crate) struct Rendered {
    /// The body (after the frontmatter) as sanitised HTML.
    pub html: String,
    /// `transitions` from the frontmatter: `{status, at}`, oldest first.
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Transition {
    status: Option<String>,
    at: Option<String>,
}

pub(crate) fn render(text: &str) -> Rendered {
    let l = layout(text);
    let transitions = l
        .yaml
        .clone()
        .map(|y| parse_frontmatter(&text[y]).transitions)
        .unwrap_or_default()
        .into_iter()
        .map(|t| Transition {
            status: t.status.map(|s| s.as_str().to_string()),
            at: t.at,
        })
        .collect();
    Rendered {
        html: to_html(&text[l.body]),
        transitions,
    }
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon after a slash, `?` or `#` is not a scheme (`a/b:c`, `#x:y`).
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(markdown, options).map(|ev| match ev {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#unsafe-link"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed(""),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_text_and_bad_links_go() {
        let r = render(
            "---\nstatus: complete\ntransitions:\n- status: planned\n  at: '2026-01-01T00:00:00Z'\n- status: complete\n  at: '2026-02-01T00:00:00Z'\n---\n# T <img src=x onerror=alert(1)>\n\n<script>alert(2)</script>\n\n[a](javascript:alert(3)) [b](JaVaScRiPt:x) [c](https://ok.example/) [d](../002-x/README.md) ![i](data:text/html,x)\n\n- [x] done\n",
        );
        assert!(!r.html.contains("<img src=x"), "{}", r.html);
        assert!(!r.html.contains("<script"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        assert!(
            !r.html.to_ascii_lowercase().contains("javascript:"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("data:text"), "{}", r.html);
        assert!(r.html.contains("href=\"https://ok.example/\""));
        assert!(r.html.contains("href=\"../002-x/README.md\""));
        assert!(r.html.contains("checkbox"));
        assert_eq!(r.transitions.len(), 2);
        assert_eq!(r.transitions[1].status.as_deref(), Some("complete"));
        assert!(!r.html.contains("transitions"), "frontmatter is not body");
    }
}
