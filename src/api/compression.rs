//! When answers are compressed: the one place that decides.
//!
//! Every method reads requests compressed with gzip or zstd, and may
//! answer compressed when the client accepts it (`grpc-accept-encoding`).
//! Python `grpcio`, grpc-js and grpc-java accept gzip unasked, so the
//! server chooses (gRPC lets it; each message says whether it is
//! compressed):
//! - a unary answer under `MIN_COMPRESSED_ANSWER_BYTES` is sent plain:
//!   below about a TCP segment compression saves no packet, and gzip's
//!   set-up costs more server CPU than the rest of a Get;
//! - `SubscribeExportReports` streams plain (`accepting_compressed`): an
//!   event is a few hundred bytes encoded once for every subscriber, and
//!   compressing each copy sets gzip's state up per message to make it
//!   no smaller.

use tonic::codec::{CompressionEncoding, SingleMessageCompressionOverride};
use tonic::codegen::http;
use tonic::{Request, Response};

use super::pre_encoded::PreEncoded;

/// The encodings a call may be compressed with, in both directions.
pub(crate) const COMPRESSION: [CompressionEncoding; 2] =
    [CompressionEncoding::Gzip, CompressionEncoding::Zstd];

/// Unary answers smaller than this are sent plain.
const MIN_COMPRESSED_ANSWER_BYTES: usize = 1024;

/// A hand-answered method's `Grpc`, accepting and sending `COMPRESSION`.
pub(crate) fn compressing<C: tonic::codec::Codec>(codec: C) -> tonic::server::Grpc<C> {
    COMPRESSION
        .iter()
        .fold(accepting_compressed(codec), |grpc, &encoding| {
            grpc.send_compressed(encoding)
        })
}

/// A hand-answered method's `Grpc` that accepts `COMPRESSION` but always
/// answers plain.
pub(crate) fn accepting_compressed<C: tonic::codec::Codec>(codec: C) -> tonic::server::Grpc<C> {
    COMPRESSION
        .iter()
        .fold(tonic::server::Grpc::new(codec), |grpc, &encoding| {
            grpc.accept_compressed(encoding)
        })
}

/// Whether the client accepts compressed answers at all. On every unary
/// call: the header's name is made once, not parsed per lookup.
pub(crate) fn accepted<R>(request: &Request<R>) -> bool {
    static GRPC_ACCEPT_ENCODING: http::HeaderName =
        http::HeaderName::from_static("grpc-accept-encoding");
    let headers: &http::HeaderMap = request.metadata().as_ref();
    headers.contains_key(&GRPC_ACCEPT_ENCODING)
}

/// An answer's encoded length, which decides whether it is compressed.
pub(crate) trait EncodedLen {
    fn encoded_len(&self) -> usize;
}

impl<M: prost::Message> EncodedLen for M {
    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }
}

impl<M: prost::Message> EncodedLen for PreEncoded<M> {
    fn encoded_len(&self) -> usize {
        PreEncoded::encoded_len(self)
    }
}

/// `answer` as a unary response, compressed only if it is large enough to
/// gain. A client that accepts no compression gets plain answers anyway,
/// and its response carries no override (an extension map to allocate).
pub(crate) fn answer<T: EncodedLen>(accepted: bool, answer: T) -> Response<T> {
    let plain = accepted && answer.encoded_len() < MIN_COMPRESSED_ANSWER_BYTES;
    let mut response = Response::new(answer);
    if plain {
        response
            .extensions_mut()
            .insert(SingleMessageCompressionOverride::Disable);
    }
    response
}
