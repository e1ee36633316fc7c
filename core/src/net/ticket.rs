//! Invitation tickets: how a machine learns where the inviter is and proves it was
//! invited. Text form: `lsp1` + base32 (lowercase, no padding) of a JSON object.

use crate::identity::MachineId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "lsp1";

/// An invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The inviter's machine id (hex).
    pub id: String,
    /// The inviter's direct addresses (`ip:port`).
    pub addrs: Vec<String>,
    /// Relay URLs the inviter uses.
    pub relays: Vec<String>,
    /// The secret (hex, 16 bytes). Only its SHA-256 is stored by the inviter.
    pub secret: String,
    /// Unix seconds after which the inviter refuses it.
    pub expires_at: u64,
    /// Whether it may be used more than once.
    pub reusable: bool,
}

/// A string that is not a ticket.
#[derive(Debug, thiserror::Error)]
#[error("not a leanspec-peer ticket ({0}); copy the whole line `leanspec-peer invite` printed")]
pub struct TicketError(&'static str);

impl Ticket {
    /// The inviter's machine id.
    pub fn machine(&self) -> Result<MachineId, TicketError> {
        self.id.parse().map_err(|_| TicketError("bad machine id"))
    }

    /// The secret bytes.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, TicketError> {
        hex::decode(&self.secret).map_err(|_| TicketError("bad secret"))
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_vec(self).map_err(|_| fmt::Error)?;
        write!(
            f,
            "{PREFIX}{}",
            data_encoding::BASE32_NOPAD
                .encode(&json)
                .to_ascii_lowercase()
        )
    }
}

impl FromStr for Ticket {
    type Err = TicketError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(TicketError("missing lsp1 prefix"))?;
        if body.len() > 8192 {
            return Err(TicketError("too long"));
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| TicketError("not base32"))?;
        let t: Ticket = serde_json::from_slice(&bytes).map_err(|_| TicketError("bad contents"))?;
        t.machine()?;
        t.secret_bytes()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let t = Ticket {
            id: "ab".repeat(32),
            addrs: vec!["127.0.0.1:4000".into()],
            relays: vec![],
            secret: "00".repeat(16),
            expires_at: 1,
            reusable: false,
        };
        let s = t.to_string();
        assert!(s.starts_with("lsp1"));
        assert_eq!(s.parse::<Ticket>().unwrap(), t);
        assert!("lsp1zzzz".parse::<Ticket>().is_err());
        assert!("hello".parse::<Ticket>().is_err());
    }
}
