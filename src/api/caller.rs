//! Who is calling: the connection, which the accept path puts in every
//! request's extensions (through tonic's connect info), and the name of the
//! caller's token, which admission puts there. Handlers read them to
//! log who wrote what and to count subscriber shares.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::Request;

use crate::hub::Owner;

/// The connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Unique per process.
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
}

/// The name of the caller's token, or "anonymous".
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<str>);

/// The caller's name, "anonymous" when no token was checked.
pub(crate) fn name<T>(request: &Request<T>) -> Arc<str> {
    request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| Arc::from("anonymous"), |c| Arc::clone(&c.0))
}

/// Logs a write that succeeded: who made it, with which method, on what,
/// and whether it was a retry of a request already done (which wrote
/// nothing now).
pub(crate) fn log_write(caller: &str, method: &str, id: &dyn std::fmt::Display, replayed: bool) {
    tracing::info!(caller, method, %id, replayed, "write");
}

/// Whose subscription this is, for the per-connection and per-token
/// shares of subscriber slots.
pub(crate) fn owner<T>(request: &Request<T>) -> Owner {
    let token = request
        .extensions()
        .get::<Caller>()
        .map(|c| Arc::clone(&c.0))
        .filter(|name| &**name != "anonymous");
    Owner {
        connection: request.extensions().get::<Peer>().map(|p| p.id),
        token,
    }
}
