//! The sensor daemon as a library: `main.rs` only calls [`cli::main`].

pub mod api;
pub mod cli;
pub mod containers;
pub mod daemon;
pub mod events;
pub mod hooks;
pub mod http;
pub mod identity;
pub mod inventory;
pub mod kernel;
pub mod loader;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod object_tests;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod policy_bench;
pub mod probe;
pub mod summaries;
pub mod syscalls;
pub mod time;
