//! Fleet queries: LeanSpec's search language over the specs of every machine. One
//! implementation; the CLI, the bindings and the servers to come call it through
//! [`crate::Node::search`].

mod check;
mod parse;
mod search;
mod stats;

pub use check::{CheckReport, Place, Problem, SpecCopy, check};
pub use parse::{Cmp, Field, MAX_QUERY_BYTES, Query, QueryError, Term, parse};
pub use search::{SearchHit, score, search};
pub use stats::{Counts, MachineStats, Stats, stats};
