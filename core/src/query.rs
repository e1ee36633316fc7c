//! Fleet queries: LeanSpec's search language over the specs of every machine. One
//! implementation; the CLI, the bindings and the servers to come call it through
//! [`crate::Node::search`].

mod board;
mod check;
mod deps;
mod folded;
mod index;
mod parse;
mod search;
mod stats;
mod view;

pub use board::{Board, Column, GroupBy, NONE_COLUMN, board};
pub use check::{CheckReport, Place, Problem, SpecCopy, check};
pub use deps::{DEFAULT_DEPTH, DepEntry, DepSpec, Deps, DepsQuery, deps};
pub use folded::{Folded, FoldedText};
pub use parse::{Cmp, Field, MAX_QUERY_BYTES, Query, QueryError, Term, parse};
pub use search::{SearchHit, best, filter, score, search};
pub use stats::{Counts, MachineStats, Stats, stats};
pub use view::{MachineSpecs, SpecView, all_views};
