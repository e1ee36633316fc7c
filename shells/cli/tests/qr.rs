//! `invite --qr`: the ticket as a QR code in the terminal, decoded back by a QR reader
//! (rqrr) from the characters printed, as a phone's camera would read the screen.

mod common;

use common::{Daemon, MachineDirs, cli};

/// The code's modules from the printed half-block characters (two modules per cell;
/// a drawn half is a light module), scaled up to an image rqrr reads; its text.
fn decode(printed: &str) -> Option<String> {
    let rows: Vec<Vec<u8>> = printed
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| matches!(c, ' ' | '▀' | '▄' | '█')))
        .map(|l| {
            l.chars()
                .map(|c| match c {
                    '█' => 3,
                    '▀' => 2,
                    '▄' => 1,
                    _ => 0,
                })
                .collect()
        })
        .collect();
    let width = rows.iter().map(Vec::len).max()?;
    let height = rows.len() * 2;
    let light = |x: usize, y: usize| {
        let cell = rows[y / 2].get(x).copied().unwrap_or(0);
        let bit = if y.is_multiple_of(2) {
            cell >> 1
        } else {
            cell & 1
        };
        bit == 1
    };
    const SCALE: usize = 4;
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(width * SCALE, height * SCALE, |x, y| {
            if light(x / SCALE, y / SCALE) { 255 } else { 0 }
        });
    let grids = img.detect_grids();
    let (_, text) = grids.first()?.decode().ok()?;
    Some(text)
}

#[test]
fn invite_qr_prints_a_code_that_reads_back_as_the_ticket() {
    let m = MachineDirs::with_spec("001-alpha", "planned");
    let up = Daemon::start(m.home(), m.project(), "desk");
    let out = cli(m.home(), &["invite", "--qr", "--ttl", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(
        ticket.starts_with("lsp1"),
        "only the ticket on stdout: {ticket}"
    );
    let printed = String::from_utf8(out.stderr).expect("utf8");
    assert_eq!(
        decode(&printed).as_deref(),
        Some(ticket.as_str()),
        "{printed}"
    );
    // Without --qr, no code.
    let out = cli(m.home(), &["invite"]);
    assert!(decode(&String::from_utf8_lossy(&out.stderr)).is_none());
    up.stop();
}
