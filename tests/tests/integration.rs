//! One integration-test binary (ripgrep's habit): every file is a module.

mod bad_input;
mod corpus;
mod network;
mod ops;
mod replication;
mod search;
mod store;
