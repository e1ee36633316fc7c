//! The board in a terminal: columns side by side, as many as fit the width at
//! [`MIN_COLUMN`] characters each; the rest continue below, band after band.

use leanspec_peer_core::SpecRow;
use leanspec_peer_core::query::{Board, GroupBy};

/// Narrowest column: a number and a few words of the title.
const MIN_COLUMN: usize = 20;
const GAP: &str = "  ";

/// `b` fitted to `width` characters.
pub(crate) fn board_text(b: &Board, width: usize) -> String {
    if b.columns.iter().all(|c| c.specs.is_empty()) {
        return "no specs".into();
    }
    let mut machines: Vec<&str> = b
        .columns
        .iter()
        .flat_map(|c| c.specs.iter().map(|r| r.machine.as_str()))
        .collect();
    machines.sort_unstable();
    machines.dedup();
    let show_machine = machines.len() > 1 && b.group_by != GroupBy::Machine;
    let per_band = ((width + GAP.len()) / (MIN_COLUMN + GAP.len())).clamp(1, b.columns.len());
    let col = ((width.saturating_sub(GAP.len() * (per_band - 1))) / per_band).max(MIN_COLUMN);
    let mut out: Vec<String> = Vec::new();
    for band in b.columns.chunks(per_band) {
        if !out.is_empty() {
            out.push(String::new());
        }
        let row = |cells: Vec<String>| {
            cells
                .iter()
                .map(|c| format!("{:<col$}", fit(c, col)))
                .collect::<Vec<_>>()
                .join(GAP)
                .trim_end()
                .to_string()
        };
        out.push(row(band
            .iter()
            .map(|c| format!("{} ({})", c.key.to_uppercase(), c.specs.len()))
            .collect()));
        out.push(row(band.iter().map(|_| "-".repeat(col)).collect()));
        let depth = band.iter().map(|c| c.specs.len()).max().unwrap_or(0);
        for i in 0..depth {
            out.push(row(band
                .iter()
                .map(|c| {
                    c.specs
                        .get(i)
                        .map_or(String::new(), |r| card(r, show_machine, col))
                })
                .collect()));
        }
    }
    out.join("\n")
}

/// `042 Title @machine` in `width` characters: the number (or the name when it has
/// none), the title cut to fit, the machine kept whole.
fn card(r: &SpecRow, show_machine: bool, width: usize) -> String {
    let last = r.spec.name.rsplit('/').next().unwrap_or(&r.spec.name);
    let number: String = last.chars().take_while(char::is_ascii_digit).collect();
    let id = if number.is_empty() { last } else { &number };
    let title = if r.spec.title.is_empty() {
        last
    } else {
        &r.spec.title
    };
    let machine = if show_machine {
        format!(" @{}", r.machine_label)
    } else {
        String::new()
    };
    let room = width.saturating_sub(id.chars().count() + 1 + machine.chars().count());
    fit(&format!("{id} {}{machine}", fit(title, room.max(1))), width)
}

/// At most `width` characters, with an ellipsis when cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use leanspec_peer_core::query::Column;
    use leanspec_peer_core::spec::Spec;

    fn row(machine: &str, name: &str, title: &str) -> SpecRow {
        SpecRow {
            machine: machine.repeat(32),
            machine_label: machine.into(),
            project_id: "p".into(),
            project: "p".into(),
            fleet: "p".into(),
            spec: Spec {
                name: name.into(),
                title: title.into(),
                ..Spec::default()
            },
        }
    }

    #[test]
    fn columns_fit_the_width_and_wrap_into_bands() {
        let columns: Vec<Column> = ["draft", "planned", "in-progress", "complete", "archived"]
            .iter()
            .map(|k| Column {
                key: k.to_string(),
                specs: vec![row(
                    "aa",
                    "042-x",
                    "A title long enough to be cut somewhere",
                )],
            })
            .collect();
        let mut b = Board {
            group_by: GroupBy::Status,
            columns,
        };
        b.columns[1].specs.push(row("bb", "007-y", "Other"));
        let text = board_text(&b, 100);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
        // 100 columns fit 4 of 20 (+ gaps); the fifth starts a second band.
        assert!(lines[0].starts_with("DRAFT (1)") && lines[0].contains("COMPLETE (1)"));
        assert!(!lines[0].contains("ARCHIVED"));
        assert!(text.contains("\n\nARCHIVED (1)"), "{text}");
        assert!(lines[2].starts_with("042 A title") && lines[2].contains('…'));
        assert!(lines[2].contains("@aa"), "two machines: cards name theirs");
        assert!(lines[3].contains("007 Other @bb"), "{text}");
        let narrow = board_text(&b, 10);
        assert!(narrow.lines().next().is_some_and(|l| l == "DRAFT (1)"));
    }
}
