//! The gRPC surface: one thin handler file per service, the routes that
//! answer some methods from pre-encoded bytes, the conversions in each
//! direction, page tokens, and the one `Error` to `Status` mapping.
//!
//! A handler validates and converts the request (`from_proto`), calls the
//! store or the hub, and converts the result back (`to_proto`).

pub(crate) mod announcement;
pub(crate) mod caller;
pub(crate) mod compression;
pub(crate) mod delivery_turn;
pub(crate) mod export_report;
pub(crate) mod export_report_routes;
pub(crate) mod from_proto;
pub(crate) mod page_token;
pub(crate) mod pre_encoded;
pub(crate) mod routes;
pub(crate) mod status;
pub(crate) mod to_proto;
pub(crate) mod trade;
pub(crate) mod trade_routes;

use prost::Message;

/// A stable 64-bit FNV-1a hash, used to fingerprint requests and filters.
/// Stable across builds, unlike `DefaultHasher`.
pub(crate) fn fingerprint(message: &impl Message) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    message.encode_to_vec().iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}
