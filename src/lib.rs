//! tradewire: a gRPC service for bilateral trade intelligence.
//!
//! Module map (see ARCHITECTURE.md for the write and subscribe paths):
//! - [`pb`]: the generated `tradewire.v1` messages, clients and servers;
//! - [`domain`]: wire-independent types and their rules;
//! - [`store`]: the in-memory store, its indexes and numbered logs;
//! - [`hub`]: the subscription contract (replay, live, catch-up, shutdown);
//! - [`api`]: thin gRPC handlers, conversions, `Error` to `Status`;
//! - [`server`]: assembly, health, reflection, shutdown;
//! - [`demo`]: the seed article's facts as a data set;
//! - [`error`]: the one error type.

pub mod api;
pub mod demo;
pub mod domain;
pub mod error;
pub mod hub;
pub mod server;
pub mod store;

/// Generated `tradewire.v1` types, clients and servers.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tradewire.v1");

    /// Encoded descriptors of `tradewire.v1`, with comments, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tradewire_descriptor");
}

pub use error::{Error, Result};
pub use server::{App, Config, serve};
