//! One message of the log stream: the mutations of one group commit, each
//! postcard-encoded (the local journal's encoding) behind its length as a
//! little-endian u32. The format is named in a header, so that a replica
//! never applies a message it cannot read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::store::state::Mutation;

/// The header naming the format, and this format's name.
pub(super) const FORMAT_HEADER: &str = "Tradewire-Log-Format";
pub(super) const FORMAT: &str = "postcard-1";

/// A group being built: encoded mutations, at most `limit` bytes in all.
#[derive(Debug)]
pub(super) struct GroupBuilder {
    bytes: BytesMut,
    limit: usize,
    count: usize,
}

/// Why a mutation did not join the group.
#[derive(Debug)]
pub(super) enum Refused {
    /// The group would exceed the message size; `alone` when it would even
    /// on its own.
    TooLarge { alone: bool, size: usize },
    /// It does not encode (a bug).
    Encoding(String),
}

impl GroupBuilder {
    pub(super) fn new(limit: usize) -> Self {
        GroupBuilder {
            bytes: BytesMut::new(),
            limit,
            count: 0,
        }
    }

    /// Adds `mutation` if the group stays within its limit.
    pub(super) fn push(&mut self, mutation: &Mutation) -> Result<(), Refused> {
        let encoded =
            postcard::to_stdvec(mutation).map_err(|e| Refused::Encoding(e.to_string()))?;
        let size = 4 + encoded.len();
        if self.bytes.len() + size > self.limit {
            return Err(Refused::TooLarge {
                alone: self.count == 0,
                size,
            });
        }
        let len = u32::try_from(encoded.len()).map_err(|e| Refused::Encoding(e.to_string()))?;
        self.bytes.put_u32_le(len);
        self.bytes.put_slice(&encoded);
        self.count += 1;
        Ok(())
    }

    pub(super) fn finish(self) -> Bytes {
        self.bytes.freeze()
    }
}

/// The mutations of one message, in order.
pub(super) fn decode(mut payload: &[u8]) -> Result<Vec<Mutation>, String> {
    let mut mutations = Vec::new();
    while !payload.is_empty() {
        let (len, rest) = payload
            .split_first_chunk::<4>()
            .ok_or("a truncated length")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "a mutation of {len} bytes with {} left",
                rest.len()
            ));
        }
        let (encoded, rest) = rest.split_at(len);
        let mutation = postcard::from_bytes(encoded)
            .map_err(|e| format!("a mutation that does not decode: {e}"))?;
        mutations.push(mutation);
        payload = rest;
    }
    Ok(mutations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_round_trips_and_keeps_to_its_limit() {
        let mut group = GroupBuilder::new(64);
        group.push(&Mutation::DemoLoaded).unwrap();
        group
            .push(&Mutation::TradeRecordDeleted(ulid::Ulid::nil()))
            .unwrap();
        let too_many = (0..64).try_for_each(|_| group.push(&Mutation::DemoLoaded));
        assert!(matches!(
            too_many,
            Err(Refused::TooLarge { alone: false, .. })
        ));
        let decoded = decode(&group.finish()).unwrap();
        assert!(matches!(decoded[0], Mutation::DemoLoaded));
        assert!(matches!(decoded[1], Mutation::TradeRecordDeleted(id) if id.is_nil()));

        let mut tiny = GroupBuilder::new(2);
        assert!(matches!(
            tiny.push(&Mutation::DemoLoaded),
            Err(Refused::TooLarge { alone: true, .. })
        ));
    }

    #[test]
    fn a_damaged_message_is_refused() {
        assert!(decode(&[1, 0]).is_err());
        assert!(decode(&[9, 0, 0, 0, 1]).is_err());
        assert!(decode(&[1, 0, 0, 0, 250]).is_err());
        assert_eq!(decode(&[]).unwrap().len(), 0);
    }
}
