//! Fleet queries: LeanSpec's search language over the specs of every machine. One
//! implementation; the CLI, the bindings and the servers to come call it through
//! [`crate::Node::search`].

mod check;
mod folded;
mod parse;
mod search;
mod stats;
mod view;

pub use check::{CheckReport, Place, Problem, SpecCopy, check};
pub use folded::{Folded, FoldedText};
pub use parse::{Cmp, Field, MAX_QUERY_BYTES, Query, QueryError, Term, parse};
pub use search::{SearchHit, score, search};
pub use stats::{Counts, MachineStats, Stats, stats};
pub use view::{MachineSpecs, SpecView, all_views};
