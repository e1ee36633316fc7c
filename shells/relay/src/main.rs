//! `leanspec-relay`: the hosted relay. The relay issue embeds `iroh_relay::server::Server`
//! here; until then the binary only says so and exits non-zero, so nobody mistakes it for
//! a working relay.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("leanspec-relay: not implemented yet (see the relay issue); nothing was started");
    ExitCode::from(2)
}
