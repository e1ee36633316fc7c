//! LAN discovery, in network namespaces on one bridge (no relay, no internet): A and B
//! paired; B comes back at a new IP and cannot open a connection to A itself (an nftables
//! rule in B's namespace drops B's new flows to A's port), so only A can restore the
//! link, and A only knows B's old address. With `--no-lan` they stay apart; with LAN
//! discovery on, A finds B by mDNS and reconnects over a direct path.
//!
//! Second test (issue 38): a hostile host on the same bridge announces B's endpoint id
//! twice with addresses of its own; A still reaches B directly at the address that
//! worked before.
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs them). The namespaces and their
//! addresses (documentation range) exist only for the test and are removed after it.

mod common;

use common::{BIN, cli, cli_json, eventually, write_spec};
use leanspec_peer_tests::process::Proc;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const A_IP: &str = "198.51.100.1";
const B_OLD_IP: &str = "198.51.100.2";
const B_NEW_IP: &str = "198.51.100.3";
const SPOOF_IP: &str = "198.51.100.9";
const A_PORT: u16 = 7001;
const B_PORT: u16 = 7002;

/// The namespaces of one run; removed on drop (also when the test fails).
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    fn sh(&self, script: &str) {
        common::root_sh(script);
    }

    /// `tag` (one letter) keeps the tests of one run apart: they run at once.
    fn setup(tag: &str) -> Net {
        let net = Net {
            prefix: format!("lsp{tag}{}", std::process::id()),
        };
        let p = &net.prefix;
        net.sh(&format!(
            r#"ip netns add {p}_lan; ip -n {p}_lan link add br0 type bridge; ip -n {p}_lan link set br0 up
i=0; for n in a b s; do i=$((i+1))
  ip netns add {p}_$n; ip -n {p}_$n link set lo up
  ip link add {p}v$i netns {p}_lan type veth peer name eth0 netns {p}_$n
  ip -n {p}_lan link set {p}v$i master br0 up; ip -n {p}_$n link set eth0 up
  ip -n {p}_$n route add 224.0.0.0/4 dev eth0
done
ip -n {p}_a addr add {A_IP}/24 dev eth0
ip -n {p}_b addr add {B_OLD_IP}/24 dev eth0
ip -n {p}_s addr add {SPOOF_IP}/24 dev eth0
"#
        ));
        net
    }

    /// B moves to a new address and may no longer open flows to A's port (answers to
    /// A's own flows still pass: conntrack).
    fn move_b_and_block_its_dials(&self) {
        let p = &self.prefix;
        self.sh(&format!(
            r#"ip -n {p}_b addr flush dev eth0
ip -n {p}_b addr add {B_NEW_IP}/24 dev eth0
ip -n {p}_b route replace 224.0.0.0/4 dev eth0
printf 'table inet lsp {{\n chain out {{\n  type filter hook output priority 0;\n  ip daddr {A_IP} udp dport {A_PORT} ct state new drop\n }}\n}}\n' | ip netns exec {p}_b nft -f -
"#
        ));
    }

    fn up(&self, ns: &str, home: &Path, project: &Path, label: &str, port: u16, lan: bool) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(ns), BIN, "up", "--no-ui"])
            .args(["--bind", &format!("0.0.0.0:{port}"), "--label", label])
            .arg("--project")
            .arg(project)
            .env("LEANSPEC_PEER_HOME", home)
            .env("LEANSPEC_PEER_LOG", "info");
        if !lan {
            cmd.arg("--no-lan");
        }
        let p = Proc::spawn(&mut cmd);
        p.wait_line("Ctrl-C to stop");
        p
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["a", "b", "s", "lan"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

fn beta_on(home: &Path) -> serde_json::Value {
    cli_json(home, &["machines"])
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["label"] == "beta").cloned())
        .unwrap_or_default()
}

/// The homes and projects of A and B.
struct Homes {
    home_a: std::path::PathBuf,
    home_b: std::path::PathBuf,
    proj_a: std::path::PathBuf,
    proj_b: std::path::PathBuf,
}

/// A and B, with LAN discovery `lan`, paired and seen online, then B stopped (A saw it
/// go): A runs on.
fn paired_then_b_away(net: &Net, tmp: &Path, lan: bool) -> (Proc, Homes) {
    let homes = Homes {
        home_a: tmp.join("a"),
        home_b: tmp.join("b"),
        proj_a: tmp.join("pa"),
        proj_b: tmp.join("pb"),
    };
    write_spec(&homes.proj_a, "001-alpha", "planned");
    write_spec(&homes.proj_b, "001-beta", "planned");
    let a = net.up("a", &homes.home_a, &homes.proj_a, "alpha", A_PORT, lan);
    let b = net.up("b", &homes.home_b, &homes.proj_b, "beta", B_PORT, lan);
    let ticket = cli(&homes.home_a, &["invite"]);
    assert!(ticket.status.success());
    let ticket = String::from_utf8(ticket.stdout).expect("utf8");
    let joined = cli(&homes.home_b, &["join", ticket.trim()]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    eventually("A sees B online", || {
        beta_on(&homes.home_a)["online"] == true
    });
    assert!(b.stop().success());
    eventually("A sees B offline", || {
        beta_on(&homes.home_a)["online"] == false
    });
    (a, homes)
}

#[test]
fn members_find_each_other_on_the_lan_and_not_with_no_lan() {
    let net = Net::setup("l");
    let tmp = tempfile::tempdir().expect("tmp");
    // Paired with LAN discovery off: the ticket's address is enough on one bridge.
    let (
        a,
        Homes {
            home_a,
            home_b,
            proj_a,
            proj_b,
        },
    ) = paired_then_b_away(&net, tmp.path(), false);

    // B comes back at a new address; with --no-lan, A never learns it.
    net.move_b_and_block_its_dials();
    let b = net.up("b", &home_b, &proj_b, "beta", B_PORT, false);
    let window = Duration::from_secs(12);
    let started = Instant::now();
    while started.elapsed() < window {
        assert_eq!(
            beta_on(&home_a)["online"],
            false,
            "with --no-lan A must not find B at its new address"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(b.stop().success());
    assert!(a.stop().success());

    // With LAN discovery on (the default), A finds B by mDNS: a direct path, no relay.
    let a = net.up("a", &home_a, &proj_a, "alpha", A_PORT, true);
    let b = net.up("b", &home_b, &proj_b, "beta", B_PORT, true);
    let started = Instant::now();
    eventually("A reconnects to B found on the LAN", || {
        beta_on(&home_a)["online"] == true
    });
    eprintln!(
        "A reconnected to B at its new address in {} ms",
        started.elapsed().as_millis()
    );
    let beta = beta_on(&home_a);
    assert_eq!(beta["path"], "direct", "{beta}");
    // And they sync: a change on B reaches A.
    write_spec(&proj_b, "001-beta", "complete");
    eventually("A sees B's change", || {
        cli_json(&home_a, &["specs", "--machine", "beta"])[0]["status"] == "complete"
    });
    assert!(b.stop().success());
    assert!(a.stop().success());
}

/// Issue 38: spoofed LAN announcements are hints, not the address book. A and B are
/// paired with LAN discovery on; while B is away a host on the bridge announces B's id
/// with two announcements of four addresses of its own each (once, that pushed every
/// address that ever worked out of A's book, for good). B comes back at a new address
/// and may not dial A, so only A, finding B on the LAN, can restore the link: it does,
/// directly, within 10 s; and A's address book holds B's real address and none of the
/// spoofed ones (an address is stored only once a connection over it proved the key).
#[test]
fn spoofed_lan_announcements_do_not_evict_or_enter_the_address_book() {
    let net = Net::setup("s");
    let tmp = tempfile::tempdir().expect("tmp");
    let (
        a,
        Homes {
            home_a,
            home_b,
            proj_b,
            ..
        },
    ) = paired_then_b_away(&net, tmp.path(), true);
    let b_id = beta_on(&home_a)["id"].as_str().expect("id").to_string();

    // Two announcements of B's id, four addresses of the spoofer's each (in turn, so
    // each lands while A is not resolving B itself).
    let first: Vec<String> = (0..4).map(|i| format!("{SPOOF_IP}:{}", 9000 + i)).collect();
    let second: Vec<String> = (4..8).map(|i| format!("{SPOOF_IP}:{}", 9000 + i)).collect();
    let spoof = Proc::spawn(
        Command::new("ip")
            .args(["netns", "exec", &net.ns("s")])
            .arg(common::example("lan_spoof"))
            .args([b_id.as_str(), &first.join(","), &second.join(",")]),
    );
    spoof.wait_line("announced 2");
    for n in 1..=2 {
        a.line_within("found a member on the LAN", Duration::from_secs(40))
            .unwrap_or_else(|| panic!("A took spoofed announcement {n}"));
    }

    net.move_b_and_block_its_dials();
    let b = net.up("b", &home_b, &proj_b, "beta", B_PORT, true);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    while beta_on(&home_a)["online"] != true {
        assert!(
            Instant::now() < deadline,
            "A did not reach B within 10 s of B's start beside the spoofed announcements"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "A reached B at its new address in {} ms beside two spoofed announcements",
        started.elapsed().as_millis()
    );
    assert_eq!(beta_on(&home_a)["path"], "direct");
    spoof.kill9();
    assert!(b.stop().success());
    assert!(a.stop().success());
    let store =
        leanspec_peer_core::store::Store::open(&home_a.join("store.redb")).expect("A's store");
    let record = store
        .peers()
        .expect("peers")
        .into_iter()
        .find(|p| p.id.to_string() == b_id)
        .expect("B's record");
    assert!(
        record.addrs.iter().any(|a| a.starts_with(B_NEW_IP)),
        "the address that proved B is kept: {:?}",
        record.addrs
    );
    assert!(
        !record.addrs.iter().any(|a| a.starts_with(SPOOF_IP)),
        "no spoofed address was stored: {:?}",
        record.addrs
    );
}
