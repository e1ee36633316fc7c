//! Machine A behind a NAT (nftables masquerade) in network namespaces, machine B and the
//! relay on the "WAN" side; B cannot open anything toward A. A invites (its ticket holds
//! only its private address and the relay), B joins: pairing and sync must go through
//! the relay (with TLS from a test CA, as a hosted relay would run).
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs them). Namespaces and their
//! addresses (documentation ranges) exist only for the test and are removed after it.

use leanspec_peer_tests::process::{Proc, eventually, run, run_json, write_spec};
use std::path::{Path, PathBuf};
use std::process::Command;

const RELAY: &str = env!("CARGO_BIN_EXE_leanspec-relay");

fn peer_bin() -> PathBuf {
    let p = Path::new(RELAY).with_file_name("leanspec-peer");
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace`",
        p.display()
    );
    p
}

/// The namespaces of one run; removed on drop (also when the test fails).
struct Net {
    prefix: String,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    fn setup() -> Net {
        let net = Net {
            prefix: format!("lsp{}", std::process::id()),
        };
        let p = &net.prefix;
        let script = format!(
            r#"set -e
for n in hosta hostb relay nat wan; do ip netns add {p}_$n; ip -n {p}_$n link set lo up; done
ip -n {p}_wan link add br0 type bridge; ip -n {p}_wan link set br0 up
i=0; for n in relay hostb nat; do i=$((i+1))
  ip link add {p}v$i netns {p}_wan type veth peer name eth0 netns {p}_$n
  ip -n {p}_wan link set {p}v$i master br0 up; ip -n {p}_$n link set eth0 up; done
ip -n {p}_relay addr add 198.51.100.10/24 dev eth0
ip -n {p}_hostb addr add 198.51.100.20/24 dev eth0
ip -n {p}_nat addr add 198.51.100.1/24 dev eth0
ip link add {p}a1 netns {p}_nat type veth peer name eth0 netns {p}_hosta
ip -n {p}_nat link set {p}a1 name eth1
ip -n {p}_nat addr add 10.77.0.1/24 dev eth1; ip -n {p}_nat link set eth1 up
ip -n {p}_hosta addr add 10.77.0.2/24 dev eth0; ip -n {p}_hosta link set eth0 up
ip -n {p}_hosta route add default via 10.77.0.1
ip netns exec {p}_nat sysctl -qw net.ipv4.ip_forward=1
printf 'table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  oifname "eth0" masquerade\n }}\n}}\n' | ip netns exec {p}_nat nft -f -
"#
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "cannot build the test network (needs root, iproute2 and nftables; .ci/run installs them): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    fn exec(&self, ns: &str, bin: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(ns)]).arg(bin);
        c
    }

    /// Whether `ns` can open a TCP connection to `addr` within 2 s.
    fn can_connect(&self, ns: &str, addr: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "timeout", "2", "bash", "-c"])
            .arg(format!(
                "exec 3<>/dev/tcp/{}/{}",
                addr.split(':').next().unwrap_or(""),
                addr.split(':').nth(1).unwrap_or("")
            ))
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in ["hosta", "hostb", "relay", "nat", "wan"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

/// A test CA and a relay certificate for 198.51.100.10 signed by it.
fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["198.51.100.10".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("relay.pem"),
        dir.join("relay.key"),
    );
    std::fs::write(&ca_path, ca.pem()).expect("write");
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    (ca_path, cert_path, key_path)
}

#[test]
fn a_machine_behind_nat_pairs_and_syncs_through_the_relay() {
    let net = Net::setup();
    // The NAT does its job: A reaches the WAN, the WAN cannot reach A.
    let listener = Proc::spawn(
        Command::new("ip")
            .args(["netns", "exec", &net.ns("hosta")])
            .args(["python3", "-c"])
            .arg("import socket,sys;s=socket.socket();s.bind(('0.0.0.0',7000));s.listen();sys.stderr.write('listening\\n');sys.stderr.flush();s.accept()"),
    );
    listener.wait_line("listening");
    assert!(
        !net.can_connect("hostb", "10.77.0.2:7000"),
        "B must not reach A directly"
    );
    drop(listener);

    let tmp = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = certs(tmp.path());
    let relay = Proc::spawn(
        net.exec("relay", Path::new(RELAY))
            .args([
                "--https-bind",
                "198.51.100.10:443",
                "--http-bind",
                "198.51.100.10:80",
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    relay.wait_line("relay url https://198.51.100.10:443");
    let url = "https://198.51.100.10:443";

    let (home_a, home_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (proj_a, proj_b) = (tmp.path().join("pa"), tmp.path().join("pb"));
    write_spec(&proj_a, "001-alpha", "planned");
    write_spec(&proj_b, "001-beta", "planned");
    let up = |ns: &str, home: &Path, proj: &Path, label: &str| {
        let p = Proc::spawn(
            net.exec(ns, &peer_bin())
                .args(["up", "--relay", url, "--relay-ca"])
                .arg(&ca)
                .args(["--label", label, "--project"])
                .arg(proj)
                .env("LEANSPEC_PEER_HOME", home)
                .env("LEANSPEC_PEER_LOG", "info"),
        );
        p.wait_line("Ctrl-C to stop");
        p.wait_line("relay ok");
        p
    };
    let a = up("hosta", &home_a, &proj_a, "alpha");
    let b = up("hostb", &home_b, &proj_b, "beta");
    let peer = peer_bin();

    // A invites: its ticket has only 10.77.0.2 (unreachable from B) and the relay.
    let ticket = String::from_utf8(run(&peer, &home_a, &["invite"]).stdout).expect("utf8");
    let joined = run_json(&peer, &home_b, &["join", ticket.trim()]);
    assert_eq!(joined["inviter_label"], "alpha");
    eventually("B lists A's spec", || {
        run_json(&peer, &home_b, &["specs", "--machine", "alpha"])[0]["status"] == "planned"
    });
    write_spec(&proj_a, "001-alpha", "complete");
    eventually("B sees A's edit", || {
        run_json(&peer, &home_b, &["specs", "--machine", "alpha"])[0]["status"] == "complete"
    });
    write_spec(&proj_b, "001-beta", "in-progress");
    eventually("A sees B's edit", || {
        run_json(&peer, &home_a, &["specs", "--machine", "beta"])[0]["status"] == "in-progress"
    });
    // A remote edit from B to the machine behind the NAT.
    let out = run(
        &peer,
        &home_b,
        &["edit", "alpha", "pa", "001", "--priority", "low", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        std::fs::read_to_string(proj_a.join("specs/001-alpha/README.md"))
            .expect("read")
            .contains("priority: low")
    );
    assert!(a.stop().success());
    assert!(b.stop().success());
    relay.stop();
}
