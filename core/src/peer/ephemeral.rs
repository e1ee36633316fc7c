//! The task that removes ephemeral machines once they have stayed away (the rules are
//! [`crate::proto::ephemeral`]).

use super::{Shared, lock, session};
use crate::machine::{DocChange, DocKey, now_secs};
use std::sync::Arc;
use std::time::Duration;

/// How often the members are looked at: a removal lands within this much of being due.
const EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn sweep(shared: Arc<Shared>) {
    let up_since = now_secs();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = super::stopping(&mut shutdown) => return,
        }
        // Most meshes have no ephemeral member of ours: then the address book (a store
        // read, for presence) is not read at all.
        let me = shared.me.to_string();
        let members = lock(&shared.local.machine).mesh().members();
        let candidates = members
            .iter()
            .any(|x| x.ephemeral_after.is_some() && x.revoked_at.is_none() && x.added_by == me);
        if !candidates {
            continue;
        }
        let presence = session::presence_snapshot(&shared);
        let removed = {
            let mut m = lock(&shared.local.machine);
            let due =
                crate::proto::ephemeral::due(shared.me, &members, &presence, up_since, now_secs());
            if due.is_empty() {
                continue;
            }
            for id in &due {
                tracing::info!(machine = %id.short(), "removing an ephemeral machine that stayed away");
            }
            m.remove_ephemeral(&due)
        };
        match removed {
            Ok(()) => shared.announce(DocKey::Mesh, &[DocChange::MeshChanged]),
            Err(e) => tracing::warn!("cannot remove ephemeral machines: {e}"),
        }
    }
}
