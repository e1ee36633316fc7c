//! What a received sync message would cost, found before Automerge sees it. Automerge
//! inflates compressed changes and document columns as it parses them, with no bound:
//! a 32 MiB frame of deflated zeros is tens of gigabytes. So the chunks of a message
//! are walked here first, every compressed part inflated into a counter that stops at
//! the budget, and only a message within [`Limits`] is parsed and applied.
//!
//! The chunk layout (Automerge's storage format): magic `85 6f 4a 83`, a 4-byte
//! checksum, a type byte (0 document, 1 change, 2 compressed change), a LEB128 length,
//! the data. A document's data starts with its actors, heads and two column tables
//! whose specs carry a deflate bit; its column data follows. Bundles (type 3) are not
//! sent by the sync protocol and are refused.

use crate::limits::{Exceeded, Limits};
use std::io::Read;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED: u8 = 2;
/// The deflate bit of a column spec.
const DEFLATE: u32 = 0b1000;

/// A message's chunks, measured: the change chunks (each one chunk's bytes, ready for
/// `Change::from_bytes`) and whether a whole document came along.
#[derive(Debug, Default)]
pub(crate) struct Inspected<'a> {
    pub(crate) changes: Vec<&'a [u8]>,
    pub(crate) documents: usize,
    pub(crate) inflated_bytes: u64,
}

/// Walks every chunk of `entries` (a message's chunk list; one entry may hold several
/// chunks back to back) within `limits`, inflating nothing beyond the budget.
pub(crate) fn inspect<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
    limits: &Limits,
) -> Result<Inspected<'a>, Exceeded> {
    let mut out = Inspected::default();
    for entry in entries {
        let mut rest = entry;
        while !rest.is_empty() {
            let Split {
                chunk,
                kind,
                data,
                rest: after,
            } = split_chunk(rest)?;
            rest = after;
            let budget = limits.max_inflated_bytes.saturating_sub(out.inflated_bytes);
            let inflated = match kind {
                CHANGE => data.len() as u64,
                COMPRESSED => inflate_within(data, budget)?,
                DOCUMENT => document_size(data, budget)?,
                _ => return Err(Exceeded::Malformed("not a change or document chunk")),
            };
            out.inflated_bytes = out.inflated_bytes.saturating_add(inflated);
            if out.inflated_bytes > limits.max_inflated_bytes {
                return Err(Exceeded::Inflated {
                    max: limits.max_inflated_bytes,
                });
            }
            if kind == DOCUMENT {
                out.documents += 1;
            } else {
                out.changes.push(chunk);
                if out.changes.len() > limits.max_changes_per_message {
                    return Err(Exceeded::Changes {
                        count: out.changes.len(),
                        max: limits.max_changes_per_message,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// One chunk split off the front of a byte string.
struct Split<'a> {
    chunk: &'a [u8],
    kind: u8,
    data: &'a [u8],
    rest: &'a [u8],
}

/// One chunk off the front of `bytes`.
fn split_chunk(bytes: &[u8]) -> Result<Split<'_>, Exceeded> {
    let short = Exceeded::Malformed("cut short");
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(Exceeded::Malformed("no chunk magic"));
    }
    let kind = *bytes.get(8).ok_or(short.clone())?;
    let mut at = 9;
    let len = uleb(bytes, &mut at)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|e| *e <= bytes.len())
        .ok_or(short)?;
    Ok(Split {
        chunk: &bytes[..end],
        kind,
        data: &bytes[at..end],
        rest: &bytes[end..],
    })
}

/// Reads an unsigned LEB128 number at `*at`, advancing it.
fn uleb(bytes: &[u8], at: &mut usize) -> Result<u64, Exceeded> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(Exceeded::Malformed("cut short"))?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Exceeded::Malformed("LEB128 number too long"))
}

/// Inflates raw-deflate `data` into a counter; stops as soon as the count passes
/// `budget` (the CPU spent is bounded by the budget too).
fn inflate_within(data: &[u8], budget: u64) -> Result<u64, Exceeded> {
    let decoder = flate2::bufread::DeflateDecoder::new(data);
    let mut limited = decoder.take(budget.saturating_add(1));
    let n = std::io::copy(&mut limited, &mut std::io::sink())
        .map_err(|_| Exceeded::Malformed("bad deflate data"))?;
    if n > budget {
        return Err(Exceeded::Inflated { max: budget });
    }
    Ok(n)
}

/// The inflated size of a document chunk's data: its uncompressed columns as they are,
/// its deflated columns inflated within `budget`.
fn document_size(data: &[u8], budget: u64) -> Result<u64, Exceeded> {
    let mut at = 0;
    let actors = uleb(data, &mut at)?;
    for _ in 0..actors {
        let len = uleb(data, &mut at)?;
        at = skip(data, at, len)?;
    }
    let heads = uleb(data, &mut at)?;
    at = skip(data, at, heads.saturating_mul(32))?;
    let mut columns = Vec::new();
    for _ in 0..2 {
        let n = uleb(data, &mut at)?;
        for _ in 0..n {
            let spec = uleb(data, &mut at)?;
            let len = uleb(data, &mut at)?;
            columns.push((spec, len));
            if columns.len() > 1024 {
                return Err(Exceeded::Malformed("too many columns"));
            }
        }
    }
    let mut total = at as u64;
    for (spec, len) in columns {
        let end = skip(data, at, len)?;
        let column = &data[at..end];
        at = end;
        total = total.saturating_add(if spec & u64::from(DEFLATE) != 0 {
            inflate_within(column, budget.saturating_sub(total))?
        } else {
            len
        });
        if total > budget {
            return Err(Exceeded::Inflated { max: budget });
        }
    }
    Ok(total.saturating_add((data.len() - at) as u64))
}

fn skip(data: &[u8], at: usize, len: u64) -> Result<usize, Exceeded> {
    usize::try_from(len)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|e| *e <= data.len())
        .ok_or(Exceeded::Malformed("cut short"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{AutoCommit, ReadDoc, transaction::Transactable};
    use std::io::Write;

    fn doc_with_text(n: usize) -> AutoCommit {
        let mut d = AutoCommit::new();
        for i in 0..n {
            d.put(automerge::ROOT, format!("key{i}"), "x".repeat(300))
                .expect("put");
            d.commit();
        }
        d
    }

    /// A compressed change chunk whose data inflates to `n` zero bytes.
    pub(crate) fn bomb(n: usize) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..n / zeros.len() {
            e.write_all(&zeros).expect("deflate");
        }
        let data = e.finish().expect("deflate");
        let mut chunk = MAGIC.to_vec();
        chunk.extend([0, 0, 0, 0, COMPRESSED]);
        let mut len = data.len() as u64;
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                chunk.push(b);
                break;
            }
            chunk.push(b | 0x80);
        }
        chunk.extend(data);
        chunk
    }

    #[test]
    fn honest_changes_and_documents_pass_and_are_measured() {
        let mut d = doc_with_text(20);
        let changes: Vec<Vec<u8>> = d
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        let compressed: Vec<Vec<u8>> = d
            .get_changes(&[])
            .into_iter()
            .map(|mut c| c.bytes().to_vec())
            .collect();
        let saved = d.save();
        let limits = Limits::default();
        let a = inspect(changes.iter().map(Vec::as_slice), &limits).expect("changes");
        assert_eq!(a.changes.len(), 20);
        let b = inspect(compressed.iter().map(Vec::as_slice), &limits).expect("compressed");
        assert_eq!(b.changes.len(), 20);
        assert!(b.inflated_bytes >= 20 * 300, "{}", b.inflated_bytes);
        let c = inspect([saved.as_slice()], &limits).expect("document");
        assert_eq!((c.documents, c.changes.len()), (1, 0));
        assert!(c.inflated_bytes >= saved.len() as u64);
        // Every chunk still parses the way Automerge reads it.
        for chunk in b.changes {
            automerge::Change::from_bytes(chunk.to_vec()).expect("a chunk as Automerge reads it");
        }
        assert_eq!(d.length(automerge::ROOT), 20);
    }

    #[test]
    fn a_decompression_bomb_is_stopped_at_the_budget() {
        let chunk = bomb(64 << 20);
        assert!(chunk.len() < 256 * 1024, "{} bytes", chunk.len());
        let limits = Limits {
            max_inflated_bytes: 8 << 20,
            ..Limits::default()
        };
        assert!(matches!(
            inspect([chunk.as_slice()], &limits),
            Err(Exceeded::Inflated { .. })
        ));
    }

    #[test]
    fn compressed_document_columns_count_inflated() {
        let mut d = doc_with_text(400);
        let saved = d.save();
        let full = inspect([saved.as_slice()], &Limits::default())
            .expect("document")
            .inflated_bytes;
        assert!(full > saved.len() as u64, "{full} vs {}", saved.len());
        let tight = Limits {
            max_inflated_bytes: full - 1,
            ..Limits::default()
        };
        assert!(matches!(
            inspect([saved.as_slice()], &tight),
            Err(Exceeded::Inflated { .. })
        ));
    }

    #[test]
    fn counts_and_shapes_are_checked() {
        let d = {
            let mut d = doc_with_text(5);
            d.get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        let limits = Limits {
            max_changes_per_message: 4,
            ..Limits::default()
        };
        assert!(matches!(
            inspect(d.iter().map(Vec::as_slice), &limits),
            Err(Exceeded::Changes { count: 5, max: 4 })
        ));
        // Two chunks in one entry are two changes.
        let joined = [d[0].clone(), d[1].clone()].concat();
        assert_eq!(
            inspect([joined.as_slice()], &Limits::default())
                .expect("two")
                .changes
                .len(),
            2
        );
        for bad in [
            &b"nope"[..],
            &[0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 3, 0][..],
            &[0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff][..],
            &d[0][..d[0].len() - 1],
        ] {
            assert!(
                matches!(
                    inspect([bad], &Limits::default()),
                    Err(Exceeded::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
