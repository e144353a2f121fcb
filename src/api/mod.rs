//! The gRPC surface: one thin handler file per service, the conversions in
//! each direction, page tokens, and the one `Error` to `Status` mapping.
//!
//! A handler validates and converts the request (`from_proto`), calls the
//! store or the hub, and converts the result back (`to_proto`).

pub mod announcement;
pub mod export_report;
pub mod frames;
pub mod from_proto;
pub mod page_token;
pub mod routes;
pub mod status;
pub mod to_proto;
pub mod trade;
pub mod trade_routes;

use prost::Message;

use crate::store::RequestKey;
use from_proto::Check;

/// Takes the request id out of a request and fingerprints the rest, so a
/// retry matches whatever its request id was.
pub fn request_key<M: Message>(
    check: &mut Check,
    message: &mut M,
    take: impl FnOnce(&mut M) -> String,
) -> Option<RequestKey> {
    let raw = take(message);
    let request_id = from_proto::request_id(check, "request_id", &raw)?;
    Some(RequestKey {
        request_id,
        fingerprint: fingerprint(message),
    })
}

/// A stable 64-bit FNV-1a hash, used to fingerprint requests and filters.
/// Stable across builds, unlike `DefaultHasher`.
pub fn fingerprint(message: &impl Message) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    message.encode_to_vec().iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}
