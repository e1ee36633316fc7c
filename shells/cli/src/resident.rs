//! What `up` keeps resident while it is quiet.
//!
//! Linux maps an executable's pages in as code first runs (each fault maps the
//! neighbouring pages of its page-cache folio too: up to ~1 MB here) and leaves them
//! mapped, counted in the process's RSS, until memory runs short. The daemon's startup
//! runs much more code than its idle life: the first scan, the store's checks, iroh's
//! endpoint and QUIC handshakes, rustls, the first sync of every document. With the
//! LeanSpec corpus and one peer that left ~19 MB of the binary's text resident while
//! ~1 MB of it runs in an idle minute (BENCHMARKS.md, "Idle memory").
//!
//! So once a quiet period passes with no events, `up` unmaps its code images'
//! read-only pages and returns free heap pages to the kernel. Nothing is lost: the pages
//! stay in the page cache and the next instruction or constant that needs one maps it
//! back with a minor fault (measured: BENCHMARKS.md, the first save after a trim, and
//! the idle CPU). Hosts that embed the core choose their own policy; this is the CLI
//! daemon's (`up --trim-after`, default 60 s, then every 30 s while quiet; `0s` turns
//! it off).

use leanspec_peer_core::Node;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// What one [`hand_back`] released.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandedBack {
    /// Resident bytes of the unmapped mappings before they were unmapped.
    pub(crate) code_bytes: u64,
    /// Mappings unmapped.
    pub(crate) mappings: usize,
    /// The process's resident set (VmRSS) before and after, in bytes (0 if unknown).
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
}

/// While quiet, trims again this often: idle work maps code back too (iroh refreshes
/// its addresses every ~25 s, the periodic rescan runs each minute), and what it maps
/// back is small and quickly faulted in again (BENCHMARKS.md, idle CPU).
const RETRIM: Duration = Duration::from_secs(30);

/// Hands resident pages back ([`hand_back`]) once `quiet` has passed with no event on
/// `node` (the startup counts as an event), then every [`RETRIM`] (or `quiet`, if
/// shorter) while no event comes. An event starts the wait for `quiet` again: the
/// first change after a trim pays for mapping its code back (~3 ms here), so `quiet`
/// is long enough that a working user's saves rarely do. The node's quiet time is
/// polled when a wait ends, not followed event by event: a subscription would wake
/// this task for every change, on the threads that carry it to the peers and hosts.
pub(crate) async fn trim_when_quiet(node: Arc<Node>, quiet: Duration) {
    let mut last_trim: Option<Instant> = None;
    loop {
        let since_event = node.quiet_for();
        // Worked: an event came after the last trim (or there was none yet).
        let worked = last_trim.is_none_or(|t| since_event < t.elapsed());
        let (due, since) = match last_trim {
            Some(t) if !worked => (quiet.min(RETRIM), t.elapsed()),
            _ => (quiet, since_event),
        };
        if since < due {
            tokio::time::sleep(due - since).await;
            continue;
        }
        last_trim = Some(Instant::now());
        // Reading smaps and madvise are quick but blocking system calls.
        match tokio::task::spawn_blocking(hand_back).await {
            Ok(Ok(h)) if worked => tracing::info!(
                "quiet for {quiet:?}: unmapped {:.1} MB of code pages in {} mappings, returned free heap; resident {:.1} MB -> {:.1} MB",
                mb(h.code_bytes),
                h.mappings,
                mb(h.rss_before),
                mb(h.rss_after)
            ),
            Ok(Ok(h)) => tracing::debug!(
                "still quiet: resident {:.1} MB -> {:.1} MB",
                mb(h.rss_before),
                mb(h.rss_after)
            ),
            Ok(Err(e)) => {
                tracing::info!("cannot hand resident code back ({e}); not trying again");
                return;
            }
            Err(e) => tracing::warn!("resident trim task failed: {e}"),
        }
    }
}

/// Unmaps the resident pages of the read-only, unmodified mappings of this process's
/// code images (the executable and its shared libraries) and returns free heap pages to
/// the kernel (Linux; elsewhere nothing).
///
/// A mapping qualifies only if it is not writable and holds no private (copied-on-write)
/// page: the RELRO segments, whose relocated pages are private, never do, and neither
/// does a page a debugger patched. For the others `MADV_DONTNEED` drops page-table
/// entries only; the bytes are the file's, which do not change under a running process
/// (writes to a running executable fail with ETXTBSY; package managers and cargo replace
/// files rather than rewrite them, as rewriting a mapped library in place would break
/// every process that has yet to touch a page of it anyway).
#[cfg(target_os = "linux")]
pub(crate) fn hand_back() -> std::io::Result<HandedBack> {
    let smaps = std::fs::read("/proc/self/smaps")?;
    let all = mappings(&smaps);
    let mut out = HandedBack {
        rss_before: vm_rss(),
        ..HandedBack::default()
    };
    for m in qualifying(&all) {
        // SAFETY: [start, end) is a whole mapping the kernel just listed: private,
        // read-only, of a code image (a file this process executes), with no anonymous
        // page (see `qualifying`), so dropping its page-table entries loses no data; any
        // later access maps the same file bytes again. Nothing in this process makes it
        // writable.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        out.code_bytes += m.rss_kib * 1024;
        out.mappings += 1;
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of glibc's heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    out.rss_after = vm_rss();
    Ok(out)
}

/// This process's VmRSS in bytes (0 if unreadable).
#[cfg(target_os = "linux")]
fn vm_rss() -> u64 {
    std::fs::read("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.split(|&b| b == b'\n')
                .find_map(|l| l.strip_prefix(b"VmRSS:").map(field_kib))
        })
        .map_or(0, |kib| kib * 1024)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The mappings [`hand_back`] unmaps: the read-only mappings of code images (files with
/// an executable mapping here: the executable, libc, the loader) that are resident and
/// hold no private page. `[vdso]` and other special mappings are not files.
fn qualifying<'a>(all: &'a [Mapping<'a>]) -> impl Iterator<Item = &'a Mapping<'a>> {
    let images: std::collections::HashSet<&[u8]> = all
        .iter()
        .filter(|m| m.executable && m.path.starts_with(b"/"))
        .map(|m| m.path)
        .collect();
    all.iter().filter(move |m| {
        images.contains(m.path) && !m.writable && m.anonymous_kib == 0 && m.rss_kib > 0
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn hand_back() -> std::io::Result<HandedBack> {
    Ok(HandedBack::default())
}

/// One mapping of `/proc/self/smaps`: what [`hand_back`] decides on.
#[derive(Debug, PartialEq, Eq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    writable: bool,
    executable: bool,
    /// The mapped file (bytes: a path need not be UTF-8); empty for anonymous memory.
    path: &'a [u8],
    rss_kib: u64,
    anonymous_kib: u64,
}

/// The mappings of an smaps text. A header line is `start-end perms offset dev inode
/// [path]`, the path possibly with spaces; field lines are `Name: value [kB]`. A header
/// that does not parse ends its mapping's record: it is skipped, not guessed at.
fn mappings(smaps: &[u8]) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping<'_>> = Vec::new();
    let mut current: Option<Mapping<'_>> = None;
    for line in smaps.split(|&b| b == b'\n') {
        let first = line.split(|&b| b == b' ').next().unwrap_or_default();
        if first.ends_with(b":") {
            if let Some(m) = current.as_mut() {
                let kib = || field_kib(&line[first.len()..]);
                match first {
                    b"Rss:" => m.rss_kib = kib(),
                    b"Anonymous:" => m.anonymous_kib = kib(),
                    _ => {}
                }
            }
            continue;
        }
        out.extend(current.take());
        current = header(line);
    }
    out.extend(current);
    out
}

fn header(line: &[u8]) -> Option<Mapping<'_>> {
    let mut rest = line;
    let mut fields = [&b""[..]; 5];
    for f in &mut fields {
        rest = trim_start(rest);
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        *f = &rest[..end];
        rest = &rest[end..];
    }
    let [range, perms, ..] = fields;
    let (start, end) = std::str::from_utf8(range).ok()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    if end <= start || perms.len() != 4 {
        return None;
    }
    Some(Mapping {
        start,
        end,
        writable: perms[1] == b'w',
        executable: perms[2] == b'x',
        path: trim_start(rest),
        rss_kib: 0,
        anonymous_kib: 0,
    })
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ').count();
    &b[n..]
}

/// `   1234 kB` → 1234; anything else → 0 (which makes [`hand_back`] skip the mapping for
/// `Rss:`, and is never reached for `Anonymous:` on a kernel that has the field).
fn field_kib(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &[u8] = b"\
5581c0a00000-5581c1241000 r--p 00000000 fd:01 393 /opt/my bin/leanspec-peer
Size:               8452 kB
Rss:                4100 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
5581c1242000-5581c2c96000 r-xp 00841000 fd:01 393 /opt/my bin/leanspec-peer
Rss:               19000 kB
Anonymous:             0 kB
5581c2c98000-5581c2d81000 r--p 02294000 fd:01 393 /opt/my bin/leanspec-peer
Rss:                 928 kB
Anonymous:           928 kB
5581c2d81000-5581c2d8a000 rw-p 0237c000 fd:01 393 /opt/my bin/leanspec-peer
Rss:                  36 kB
Anonymous:            20 kB
5581c3000000-5581c3300000 rw-p 00000000 00:00 0                          [heap]
Rss:                3000 kB
Anonymous:          3000 kB
7f0000000000-7f0000001000 ---p 00000000 00:00 0
Rss:                   0 kB
7f1000000000-7f1000100000 r-xp 00000000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
7f2000000000-7f2000100000 r--p 00000000 fd:01 78 /home/u/notes.db
Rss:                 100 kB
Anonymous:             0 kB
7fff00000000-7fff00002000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
";

    #[test]
    fn only_unmodified_read_only_mappings_of_code_images_qualify() {
        let all = mappings(SMAPS);
        assert_eq!(all.len(), 9);
        let chosen: Vec<_> = qualifying(&all)
            .map(|m| (m.start, m.end, m.rss_kib))
            .collect();
        assert_eq!(
            chosen,
            vec![
                (0x5581c0a00000, 0x5581c1241000, 4100),
                (0x5581c1242000, 0x5581c2c96000, 19000),
                (0x7f1000000000, 0x7f1000100000, 900),
            ],
            "not RELRO (private pages), not data, not a file that is not code, not the vdso"
        );
        assert_eq!(all[4].path, b"[heap]");
        assert_eq!(all[5].path, b"");
        assert!(all[3].writable);
    }

    #[test]
    fn a_header_that_does_not_parse_is_skipped_with_its_fields() {
        let text = b"zz-yy r-xp 0 0 0 /x\nRss: 5 kB\n1000-2000 r-xp 0 0 0 /x\nRss: 4 kB\n";
        let all = mappings(text);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].start, all[0].rss_kib), (0x1000, 4));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn handing_back_unmaps_code_that_runs_again_afterwards() {
        let rss_of_exe = || {
            let exe = std::fs::read_link("/proc/self/exe").unwrap();
            let smaps = std::fs::read("/proc/self/smaps").unwrap();
            use std::os::unix::ffi::OsStrExt;
            mappings(&smaps)
                .iter()
                .filter(|m| m.path == exe.as_os_str().as_bytes() && !m.writable)
                .map(|m| m.rss_kib)
                .sum::<u64>()
        };
        let before = rss_of_exe();
        let h = hand_back().unwrap();
        assert!(h.mappings >= 1, "{h:?}");
        assert!(h.code_bytes > 0);
        // Still runs (this very code was unmapped), and less of the binary is resident.
        let after = rss_of_exe();
        assert!(after < before, "before {before} KiB, after {after} KiB");
    }
}
