//! This machine's own changes committed without waiting for the disk, and the rule
//! that keeps that safe: **a change of ours is sent only once it is on disk.** A lost
//! change that a peer already holds would come back, after a restart, under the same
//! Automerge sequence number with other content. So the watcher's path commits lazily
//! ([`Machine::defer_own_flush`]), releases the machine, tells the sessions and only
//! then fsyncs ([`Machine::own_flusher`]); a session makes its message meanwhile and
//! sends it once [`crate::store::Durable::covers`] the [`SendGate`] it took with it.
//! Everything else commits our changes durably, as before.

use super::{DocKey, Machine};
use crate::store::{Durable, Flusher};
use automerge::ChangeHash;

/// Our lazy commits not known to be on disk.
#[derive(Debug)]
pub(super) struct OwnLazy {
    /// The newest lazy commit holding changes of ours.
    generation: u64,
    /// The store's loss count when it was made (see [`Durable::losses`]).
    losses: u64,
    /// Save cursors of our documents before the first of them: where to store from
    /// again if a reopen of the store loses them.
    cursors: Vec<(DocKey, Vec<ChangeHash>)>,
}

/// What a message made now must wait for before it is sent: the commit of the newest
/// change of ours it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendGate {
    generation: u64,
    losses: u64,
}

impl SendGate {
    /// `Some(true)`: send; `Some(false)`: wait for the next [`Durable`];
    /// `None`: never (the store lost a change the message may carry: drop it).
    pub fn open(&self, now: &Durable) -> Option<bool> {
        now.covers(self.generation, self.losses)
    }
}

impl Machine {
    /// While set, commits of this machine's document (its changes, their signatures,
    /// stat cache rows) do not wait for the disk; the caller must run
    /// [`Machine::own_flusher`]'s flush once it released the machine.
    pub fn defer_own_flush(&mut self, on: bool) {
        self.own_flush_deferred = on;
    }

    /// What makes our lazy commits durable, outside the machine's lock; `None` when
    /// there is nothing to flush (or the store awaits a reopen: the retry does it).
    pub fn own_flusher(&self) -> Option<Flusher> {
        self.own_lazy.as_ref()?;
        self.store.flusher().ok().flatten()
    }

    /// The gate for a message made now (see [`SendGate`]).
    pub fn send_gate(&self) -> SendGate {
        match &self.own_lazy {
            Some(o) => SendGate {
                generation: o.generation,
                losses: o.losses,
            },
            None => SendGate {
                generation: 0,
                losses: self.store.durable().losses,
            },
        }
    }

    /// Tells of every change of what is on disk, for [`SendGate::open`].
    pub fn durable_watch(&self) -> tokio::sync::watch::Receiver<Durable> {
        self.store.durable_watch()
    }

    /// Whether a commit of machine documents may skip the fsync because its caller
    /// flushes afterwards (never one of the mesh).
    pub(super) fn own_commit_may_wait(&self, keys: &[DocKey]) -> bool {
        self.own_flush_deferred && keys.iter().all(|k| matches!(k, DocKey::Machine(_)))
    }

    /// Records a commit: `Some(cursors)` (our documents' save cursors before it) when
    /// it was lazy and held changes of ours, `None` when it was durable (which makes
    /// every earlier one durable too).
    pub(super) fn note_own_commit(
        &mut self,
        generation: u64,
        lazy_own: Option<Vec<(DocKey, Vec<ChangeHash>)>>,
        lazy: bool,
    ) {
        if !lazy {
            self.own_lazy = None;
            return;
        }
        let Some(cursors) = lazy_own else {
            return;
        };
        let losses = self.store.durable().losses;
        match &mut self.own_lazy {
            Some(o) if o.losses == losses => o.generation = generation,
            _ => {
                self.own_lazy = Some(OwnLazy {
                    generation,
                    losses,
                    cursors,
                })
            }
        }
    }

    /// Forgets our lazy commits once the disk holds them.
    pub(super) fn prune_own_lazy(&mut self) {
        let now = self.store.durable();
        if let Some(o) = &self.own_lazy
            && now.covers(o.generation, o.losses) == Some(true)
        {
            self.own_lazy = None;
        }
    }

    /// After a reopen that lost lazy commits: our changes in them are still in memory
    /// (never sent: see the module doc); store them again from where the disk has them.
    pub(super) fn restore_lost_own(&mut self) {
        let Some(o) = self.own_lazy.take() else {
            return;
        };
        for (key, heads) in o.cursors {
            if let Some(t) = self.tracked(key) {
                t.rewind_save(heads);
            }
            self.unsaved.insert(key);
        }
        tracing::warn!(
            "the store lost changes of this machine not yet on disk; storing them again"
        );
    }
}
