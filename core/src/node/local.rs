//! The part of a node that exists whether or not the network runs: the machine (its
//! store held open), the event stream hosts listen to, and the members last reported.
//! The network half ([`crate::peer`]) shares it while it runs, so a query or a local
//! change takes the same path in both states.

use crate::identity::MachineId;
use crate::machine::{DocChange, DocKey, Machine};
use crate::mesh::Member;
use crate::peer::{Event, lock};
use crate::store::Flusher;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// [`Local::change_own_with`]'s answer: `f`'s result, what it changed (`None`: nothing)
/// and what makes its commits durable (`None`: they are).
pub(crate) type OwnChange<R> = (R, Option<Vec<DocChange>>, Option<Flusher>);

/// Invariant: `machine` is locked only for document work, never across an await.
pub(crate) struct Local {
    pub(crate) machine: Mutex<Machine>,
    pub(crate) me: MachineId,
    events: broadcast::Sender<Event>,
    /// When this was made, and the last event after it (nanoseconds): how long the node
    /// has been quiet, for hosts to poll rather than wake for every event.
    born: Instant,
    last_event_ns: AtomicU64,
    /// Members as last announced (label, revoked), to turn a mesh change into
    /// added / renamed / revoked events, once each across restarts of the network.
    members_seen: Mutex<HashMap<MachineId, (String, bool)>>,
    /// What was refused without being stored (see [`super::Refusals`]).
    pub(crate) refusals: super::Refusals,
    /// Operations each member may still send (see [`crate::proto::budget`]).
    pub(crate) op_budget: Mutex<crate::proto::budget::OpBudget>,
    /// Held by a bucket round: one at a time (each uses and moves this machine's
    /// object sequence).
    pub(crate) bucket_round: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Local {
    pub(crate) fn new(machine: Machine, limits: &crate::limits::Limits) -> Local {
        let members_seen = machine
            .mesh()
            .members()
            .iter()
            .map(|x| (x.id, member_state(x)))
            .collect();
        let (events, _) = broadcast::channel(1024);
        Local {
            me: machine.id(),
            machine: Mutex::new(machine),
            events,
            born: Instant::now(),
            last_event_ns: AtomicU64::new(0),
            members_seen: Mutex::new(members_seen),
            refusals: super::Refusals::default(),
            op_budget: Mutex::new(crate::proto::budget::OpBudget::new(
                limits.op_burst,
                limits.ops_per_second,
            )),
            bucket_round: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn emit(&self, e: Event) {
        let now = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_event_ns.store(now, Ordering::Relaxed);
        let _ = self.events.send(e);
    }

    /// How long since the last event (or since this was made, before any).
    pub(crate) fn quiet_for(&self) -> Duration {
        let last = Duration::from_nanos(self.last_event_ns.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs `f` on the machine (locked) and returns whether it changed this machine's
    /// document (`None`: it did not) and, when a host listens, the spec-level changes,
    /// for the caller to announce once the lock is released. Nobody listening (a scan
    /// before `up` starts, a command with no daemon): no diff is computed, which for a
    /// first scan of a large project is most of the work and of the memory it leaves
    /// behind (BENCHMARKS.md, idle RSS). While a host listens, `f`'s changes are logged
    /// as they are made, so listing them reads the log, not every op of the document.
    pub(crate) fn change_own<R, E>(
        &self,
        f: impl FnOnce(&mut Machine) -> Result<R, E>,
    ) -> Result<(R, Option<Vec<DocChange>>), E> {
        let (r, changes, _) = self.change_own_with(false, f)?;
        Ok((r, changes))
    }

    /// [`Local::change_own`]; with `flush_after`, `f`'s commits of our document do not
    /// wait for the disk, and the returned [`Flusher`] must be run once the caller has
    /// told the sessions (they send nothing of it before: `machine::own_flush`).
    pub(crate) fn change_own_with<R, E>(
        &self,
        flush_after: bool,
        f: impl FnOnce(&mut Machine) -> Result<R, E>,
    ) -> Result<OwnChange<R>, E> {
        let mut m = lock(&self.machine);
        m.defer_own_flush(flush_after);
        let before = m.own_heads();
        let listening = self.events.receiver_count() > 0;
        if listening {
            m.log_own_changes(true);
        }
        let r = f(&mut m);
        m.defer_own_flush(false);
        let flusher = if flush_after { m.own_flusher() } else { None };
        let changed = m.own_heads() != before;
        let changes = if listening && changed {
            m.own_changes_since(&before)
        } else {
            Vec::new()
        };
        if listening {
            m.log_own_changes(false);
        }
        drop(m);
        match r {
            Ok(r) => Ok((r, changed.then_some(changes), flusher)),
            Err(e) => {
                // A failed rescan may have committed part of its work: nobody is told,
                // but what is stored must reach the disk as promptly.
                if let Some(f) = flusher
                    && let Err(e) = f.flush()
                {
                    tracing::warn!("cannot make this machine's changes durable: {e}");
                }
                Err(e)
            }
        }
    }

    /// Tells hosts about changes: one event per change, and after a mesh change the
    /// member events it implies. (The network half adds what sessions must do.)
    pub(crate) fn announce(&self, key: DocKey, changes: &[DocChange]) {
        for c in changes {
            self.emit(Event::from_change(c));
        }
        if key == DocKey::Mesh && !changes.is_empty() {
            let members = lock(&self.machine).mesh().members();
            self.member_events(&members);
        }
    }

    /// Compares the members with those last seen and emits what changed.
    fn member_events(&self, members: &[Member]) {
        let mut seen = lock(&self.members_seen);
        for x in members {
            let now = member_state(x);
            let before = seen.insert(x.id, now.clone());
            let machine = x.id.to_string();
            let was_revoked = before.as_ref().is_some_and(|b| b.1);
            match before {
                None => self.emit(Event::MachineAdded {
                    machine: machine.clone(),
                    label: now.0.clone(),
                }),
                Some((label, _)) if label != now.0 => self.emit(Event::MachineRenamed {
                    machine: machine.clone(),
                    label: now.0.clone(),
                }),
                Some(_) => {}
            }
            if now.1 && !was_revoked {
                if x.removed {
                    self.emit(Event::MachineRemoved {
                        machine,
                        label: x.label.clone(),
                    });
                } else {
                    self.emit(Event::MachineRevoked { machine });
                }
            }
        }
    }
}

/// What member events compare: the label and whether it is revoked.
fn member_state(x: &Member) -> (String, bool) {
    (x.label.clone(), x.revoked_at.is_some())
}
