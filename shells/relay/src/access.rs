//! Who may use the relay: a shared token and/or an allowlist of machine ids. Every
//! decision is logged with the machine id, so the operator sees refusals.

use iroh_relay::server::{Access, AccessControl, ClientRequest};
use std::collections::HashSet;

#[derive(Debug)]
pub(crate) struct RelayAccess {
    pub(crate) tokens: Vec<String>,
    pub(crate) allow: HashSet<[u8; 32]>,
}

/// Compares without an early exit, so timing does not reveal how much of a token
/// matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl RelayAccess {
    fn decide(&self, id: &[u8; 32], token: Option<&str>) -> Result<(), &'static str> {
        if !self.tokens.is_empty() {
            let Some(token) = token else {
                return Err(
                    "not authorized: this relay needs a token (leanspec-peer up --relay-token)",
                );
            };
            if !self
                .tokens
                .iter()
                .any(|t| same(t.as_bytes(), token.as_bytes()))
            {
                return Err("not authorized: wrong relay token");
            }
        }
        if !self.allow.is_empty() && !self.allow.contains(id) {
            return Err("not authorized: this machine is not on the relay's allowlist");
        }
        Ok(())
    }
}

impl AccessControl for RelayAccess {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let id = *request.endpoint_id().as_bytes();
        let short = hex::encode(&id[..5]);
        match self.decide(&id, request.auth_token().as_deref()) {
            Ok(()) => {
                tracing::info!(machine = %short, "relay client connected");
                Access::Allow
            }
            Err(reason) => {
                tracing::warn!(machine = %short, reason, "relay client refused");
                Access::Deny {
                    reason: Some(reason.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_allowlist() {
        let open = RelayAccess {
            tokens: vec![],
            allow: HashSet::new(),
        };
        assert!(open.decide(&[1; 32], None).is_ok());
        let tok = RelayAccess {
            tokens: vec!["0123456789abcdef".into()],
            allow: HashSet::new(),
        };
        assert!(tok.decide(&[1; 32], Some("0123456789abcdef")).is_ok());
        assert!(tok.decide(&[1; 32], Some("0123456789abcdeX")).is_err());
        assert!(tok.decide(&[1; 32], Some("0123456789abcdef0")).is_err());
        assert!(tok.decide(&[1; 32], None).is_err());
        let list = RelayAccess {
            tokens: vec![],
            allow: [[2u8; 32]].into_iter().collect(),
        };
        assert!(list.decide(&[2; 32], None).is_ok());
        assert!(list.decide(&[3; 32], None).is_err());
    }
}
