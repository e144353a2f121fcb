//! Counts the HTTP/2 streams a client opens in each read of a connection,
//! from the frame headers of the bytes read, for the accept path's
//! connection (`accept::Connection::wait_a_turn`): a read that opens
//! several calls will make several answers ready together, and tonic does
//! not say how many calls a read brought.
//!
//! Only frame headers are looked at (9 bytes: length, type, flags, stream
//! id); payloads are skipped. A stream is opened by its first HEADERS
//! frame; client stream ids only grow, so a HEADERS frame on a stream id
//! not above the last one (trailers) opens nothing.

/// The frame type that opens a stream (RFC 9113, section 6.2).
const HEADERS: u8 = 0x1;

/// Where a connection's byte stream is in its frames.
#[derive(Debug, Default)]
pub(crate) struct OpenedStreams {
    header: [u8; 9],
    have: usize,
    skip: usize,
    last_id: u32,
}

impl OpenedStreams {
    /// Reads the next bytes of the connection (after the preface); returns
    /// how many streams they open.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut opened = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let take = (self.header.len() - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < self.header.len() {
                break;
            }
            self.have = 0;
            let [l0, l1, l2, kind, _flags, i0, i1, i2, i3] = self.header;
            self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            let id = u32::from_be_bytes([i0 & 0x7f, i1, i2, i3]);
            if kind == HEADERS && id > self.last_id {
                self.last_id = id;
                opened += 1;
            }
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, id: u32, payload: usize) -> Vec<u8> {
        let len = (payload as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, 0x4];
        out.extend_from_slice(&id.to_be_bytes());
        // Payload bytes that look like frame headers must be skipped.
        out.extend(std::iter::repeat_n(HEADERS, payload));
        out
    }

    #[test]
    fn streams_are_counted_however_the_reads_split_the_frames() {
        let settings = frame(0x4, 0, 18);
        let bytes: Vec<u8> = [
            settings,
            frame(HEADERS, 1, 40),
            frame(0x0, 1, 31),
            frame(HEADERS, 3, 12),
            frame(0x8, 0, 4),
            // Trailers of stream 3 open nothing.
            frame(HEADERS, 3, 5),
            frame(HEADERS, 5, 0),
            frame(0x0, 5, 70_000),
        ]
        .concat();
        for chunk in [1, 2, 8, 9, 10, 64, 1000, bytes.len()] {
            let mut streams = OpenedStreams::default();
            let opened: u64 = bytes.chunks(chunk).map(|c| streams.feed(c)).sum();
            assert_eq!(opened, 3, "in reads of {chunk} bytes");
        }
    }
}
