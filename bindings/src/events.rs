//! Events for hosts: a listener the host implements, and the handle that stops it.

use leanspec_peer_core::peer::Event;
use std::sync::Mutex;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Something that happened on this machine or arrived from another one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PeerEvent {
    /// A spec was added or changed on some machine.
    SpecChanged {
        /// Machine id (hex).
        machine: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// Changed fields (empty: the whole spec is new).
        fields: Vec<String>,
        /// The new value of each changed field (of every set field when the spec is
        /// new), as JSON text: a string, a list of strings, or `null` when unset.
        values: std::collections::HashMap<String, String>,
    },
    /// A spec was removed on some machine.
    SpecRemoved {
        /// Machine id (hex).
        machine: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
    },
    /// A machine connected.
    MachineOnline {
        /// Machine id (hex).
        machine: String,
    },
    /// A machine disconnected.
    MachineOffline {
        /// Machine id (hex).
        machine: String,
    },
    /// Whether both sides hold the same documents.
    SyncState {
        /// Peer id (hex).
        machine: String,
        /// In sync.
        in_sync: bool,
    },
    /// Members, labels or revocations changed; the specific events follow.
    MeshChanged,
    /// A machine joined the mesh.
    MachineAdded {
        /// Machine id (hex).
        machine: String,
        /// Its label.
        label: String,
    },
    /// A machine's label changed.
    MachineRenamed {
        /// Machine id (hex).
        machine: String,
        /// The new label.
        label: String,
    },
    /// A machine was revoked from the mesh.
    MachineRevoked {
        /// Machine id (hex).
        machine: String,
    },
    /// An ephemeral machine was removed after staying away.
    MachineRemoved {
        /// Machine id (hex).
        machine: String,
        /// Its label.
        label: String,
    },
    /// An edit from some machine was decided here.
    EditReceived {
        /// Author id (hex).
        machine: String,
        /// Operation id (hex).
        op_id: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// `applied` or `rejected`.
        result: String,
        /// Why, when rejected.
        reason: String,
    },
    /// An execution request passed verification; the host decides what to do.
    ExecRequest {
        /// Author id (hex).
        machine: String,
        /// Operation id (hex).
        op_id: String,
        /// The payload, as sent.
        payload: String,
    },
    /// A relay's reachability changed.
    RelayStatus {
        /// Relay URL.
        relay: String,
        /// Accepted this machine.
        connected: bool,
        /// What went wrong ("" when connected).
        error: String,
    },
    /// A connection was refused.
    Refused {
        /// Remote id (hex).
        machine: String,
        /// Why.
        reason: String,
    },
    /// The listener fell behind and missed this many events: re-read what it shows.
    Lagged {
        /// Events missed.
        missed: u64,
    },
}

impl From<Event> for PeerEvent {
    fn from(e: Event) -> PeerEvent {
        match e {
            Event::SpecChanged {
                machine,
                project,
                spec,
                fields,
                values,
            } => PeerEvent::SpecChanged {
                machine,
                project,
                spec,
                fields,
                values: values
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect(),
            },
            Event::SpecRemoved {
                machine,
                project,
                spec,
            } => PeerEvent::SpecRemoved {
                machine,
                project,
                spec,
            },
            Event::MachineOnline { machine } => PeerEvent::MachineOnline { machine },
            Event::MachineOffline { machine } => PeerEvent::MachineOffline { machine },
            Event::SyncState { machine, in_sync } => PeerEvent::SyncState { machine, in_sync },
            Event::MeshChanged => PeerEvent::MeshChanged,
            Event::MachineAdded { machine, label } => PeerEvent::MachineAdded { machine, label },
            Event::MachineRenamed { machine, label } => {
                PeerEvent::MachineRenamed { machine, label }
            }
            Event::MachineRevoked { machine } => PeerEvent::MachineRevoked { machine },
            Event::MachineRemoved { machine, label } => {
                PeerEvent::MachineRemoved { machine, label }
            }
            Event::EditReceived {
                machine,
                op_id,
                project,
                spec,
                result,
                reason,
            } => PeerEvent::EditReceived {
                machine,
                op_id,
                project,
                spec,
                result,
                reason,
            },
            Event::ExecRequest {
                machine,
                op_id,
                payload,
            } => PeerEvent::ExecRequest {
                machine,
                op_id,
                payload,
            },
            Event::RelayStatus {
                relay,
                connected,
                error,
            } => PeerEvent::RelayStatus {
                relay,
                connected,
                error,
            },
            Event::Refused { machine, reason } => PeerEvent::Refused { machine, reason },
        }
    }
}

/// Implemented by the host; called on a library thread, one event at a time, in order.
/// Return quickly: events wait while it runs.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: PeerEvent);
}

/// A running subscription; stops when cancelled or dropped.
#[derive(Debug, uniffi::Object)]
pub struct Subscription {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Subscription {
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        earlier: Vec<Event>,
        mut events: broadcast::Receiver<Event>,
        listener: std::sync::Arc<dyn EventListener>,
    ) -> Subscription {
        let task = runtime.spawn(async move {
            for e in earlier {
                listener.on_event(e.into());
            }
            loop {
                match events.recv().await {
                    Ok(e) => listener.on_event(e.into()),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        listener.on_event(PeerEvent::Lagged { missed });
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Subscription {
            task: Mutex::new(Some(task)),
        }
    }
}

#[uniffi::export]
impl Subscription {
    /// Stops delivering events (also done when the handle is dropped).
    pub fn cancel(&self) {
        let task = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(t) = task {
            t.abort();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}
