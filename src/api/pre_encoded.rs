//! Answers written from bytes that are already encoded.
//!
//! A stored item never changes, so its encoding is made once and copied
//! into every answer that carries it. tonic's generated servers only take
//! messages, so the methods answered this way go through
//! `tonic::server::Grpc` with `PreEncodedCodec`, which decodes requests
//! with prost and writes a `PreEncoded` answer: a message to encode, the
//! bytes of one, or a message written as its length-delimited fields
//! around cached encodings (a Get or List answer).

// Public for `bench_hooks` (feature `testing`), which re-exports them.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// A response to send: a message to encode, the bytes of one, or a
/// message written as its length-delimited fields, each already encoded
/// (a Get or List answer around cached record encodings).
#[derive(Debug)]
pub enum PreEncoded<M> {
    /// A message, encoded when sent.
    Message(M),
    /// The encoding of a whole message.
    Bytes(Bytes),
    /// A message of one length-delimited field whose value is already
    /// encoded (a Get answer; no vector to allocate).
    Field(EncodedField),
    /// A message's length-delimited fields, each value already encoded.
    Fields(Vec<EncodedField>),
}

/// A length-delimited field (a message, string or bytes) whose value is
/// already encoded.
#[derive(Debug, Clone)]
pub struct EncodedField {
    /// The field number.
    pub number: u32,
    /// The encoded value, without its key and length.
    pub value: Bytes,
}

impl EncodedField {
    fn write(&self, dst: &mut impl BufMut) {
        prost::encoding::encode_key(self.number, prost::encoding::WireType::LengthDelimited, dst);
        prost::encoding::encode_varint(self.value.len() as u64, dst);
        dst.put_slice(&self.value);
    }

    fn encoded_len(&self) -> usize {
        prost::encoding::key_len(self.number)
            + prost::encoding::encoded_len_varint(self.value.len() as u64)
            + self.value.len()
    }
}

impl<M: Message> PreEncoded<M> {
    /// Writes the response's encoding into `dst`.
    pub fn write(&self, dst: &mut impl BufMut) -> Result<(), Status> {
        match self {
            PreEncoded::Message(message) => message
                .encode(dst)
                .map_err(|e| Status::internal(format!("encoding a response: {e}"))),
            PreEncoded::Bytes(bytes) => {
                dst.put_slice(bytes);
                Ok(())
            }
            PreEncoded::Field(field) => {
                field.write(dst);
                Ok(())
            }
            PreEncoded::Fields(fields) => {
                fields.iter().for_each(|field| field.write(dst));
                Ok(())
            }
        }
    }

    /// The encoded length of the whole response.
    pub fn encoded_len(&self) -> usize {
        match self {
            PreEncoded::Message(message) => message.encoded_len(),
            PreEncoded::Bytes(bytes) => bytes.len(),
            PreEncoded::Field(field) => field.encoded_len(),
            PreEncoded::Fields(fields) => fields.iter().map(EncodedField::encoded_len).sum(),
        }
    }
}

/// Decodes requests with prost; writes `PreEncoded` answers, copying
/// cached bytes.
#[derive(Debug)]
pub struct PreEncodedCodec<Req, Resp>(PhantomData<(Req, Resp)>);

impl<Req, Resp> Default for PreEncodedCodec<Req, Resp> {
    fn default() -> Self {
        PreEncodedCodec(PhantomData)
    }
}

#[derive(Debug)]
pub struct PreEncodedEncoder<M>(PhantomData<M>);

impl<M: Message> Encoder for PreEncodedEncoder<M> {
    type Item = PreEncoded<M>;
    type Error = Status;

    fn encode(&mut self, item: PreEncoded<M>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write(dst)
    }
}

#[derive(Debug)]
pub struct PreEncodedDecoder<M>(PhantomData<M>);

impl<M: Message + Default> Decoder for PreEncodedDecoder<M> {
    type Item = M;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
        M::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
    }
}

impl<Req, Resp> Codec for PreEncodedCodec<Req, Resp>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
{
    type Encode = PreEncoded<Resp>;
    type Decode = Req;
    type Encoder = PreEncodedEncoder<Resp>;
    type Decoder = PreEncodedDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        PreEncodedDecoder(PhantomData)
    }
}
