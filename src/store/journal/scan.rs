//! The framing of log entries: writing an entry's header, and scanning a
//! segment's entries back, telling a torn tail (an unfinished last write,
//! which recovery cuts) from damage (which stops the start).

/// Bytes of an entry header: length, lsn, payload CRC, header CRC.
pub(super) const HEADER_LEN: usize = 20;
/// Larger entries are damage, not data: a group is far smaller.
const MAX_ENTRY_LEN: u32 = 256 * 1024 * 1024;

/// The header of an entry numbered `lsn` carrying `payload`.
pub(super) fn header(payload: &[u8], lsn: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..12].copy_from_slice(&lsn.to_le_bytes());
    h[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&h[0..16]);
    h[16..20].copy_from_slice(&header_crc.to_le_bytes());
    h
}

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scan {
    /// The segment is intact up to its end.
    Clean,
    /// Damage at `offset`; `torn` when it is an unfinished last write.
    Damaged {
        offset: u64,
        torn: bool,
        reason: String,
    },
}

/// Reads a segment's entries, calling `entry` for each intact one, and
/// numbering them from `expect_lsn`, which it advances.
pub(super) fn scan_segment(
    bytes: &[u8],
    expect_lsn: &mut u64,
    last_segment: bool,
    mut entry: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Scan {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let damaged = |torn: bool, reason: String| Scan::Damaged {
            offset: offset as u64,
            torn,
            reason,
        };
        if rest.len() < HEADER_LEN {
            return damaged(
                last_segment,
                format!("{} bytes of a {HEADER_LEN}-byte header", rest.len()),
            );
        }
        let h = &rest[..HEADER_LEN];
        let header_crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        if crc32c::crc32c(&h[0..16]) != header_crc {
            let zero_tail = rest.iter().all(|b| *b == 0);
            return damaged(last_segment && zero_tail, "header checksum mismatch".into());
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let lsn = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
        let payload_crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        if len > MAX_ENTRY_LEN {
            return damaged(false, format!("entry length {len} is implausible"));
        }
        let end = HEADER_LEN + len as usize;
        if rest.len() < end {
            return damaged(
                last_segment,
                format!(
                    "entry of {len} bytes cut short at {}",
                    rest.len() - HEADER_LEN
                ),
            );
        }
        let payload = &rest[HEADER_LEN..end];
        if crc32c::crc32c(payload) != payload_crc {
            let ends_file = rest.len() == end;
            return damaged(
                last_segment && ends_file,
                "payload checksum mismatch".into(),
            );
        }
        if lsn != *expect_lsn {
            return damaged(
                false,
                format!("entry number {lsn} where {} was expected", *expect_lsn),
            );
        }
        if let Err(reason) = entry(lsn, payload) {
            return damaged(false, reason);
        }
        *expect_lsn += 1;
        offset += end;
    }
    Scan::Clean
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three entries numbered 1..=3, and where each one starts.
    fn segment() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for (lsn, payload) in [(1u64, &b"first"[..]), (2, b"second"), (3, b"third")] {
            starts.push(bytes.len());
            bytes.extend_from_slice(&header(payload, lsn));
            bytes.extend_from_slice(payload);
        }
        (bytes, starts)
    }

    /// The scan's result and the lsns it read.
    fn scan(bytes: &[u8], last_segment: bool) -> (Scan, Vec<u64>) {
        let mut expect = 1;
        let mut read = Vec::new();
        let scan = scan_segment(bytes, &mut expect, last_segment, |lsn, _| {
            read.push(lsn);
            Ok(())
        });
        assert_eq!(
            expect,
            read.len() as u64 + 1,
            "expect_lsn follows the reads"
        );
        (scan, read)
    }

    fn damage(scan: Scan) -> (u64, bool) {
        match scan {
            Scan::Damaged { offset, torn, .. } => (offset, torn),
            Scan::Clean => panic!("expected damage, the scan was clean"),
        }
    }

    #[test]
    fn an_intact_segment_reads_every_entry() {
        let (bytes, _) = segment();
        assert_eq!(scan(&bytes, true), (Scan::Clean, vec![1, 2, 3]));
    }

    #[test]
    fn an_entry_cut_short_is_a_torn_tail_only_in_the_last_segment() {
        let (bytes, starts) = segment();
        for cut in [starts[2] + 3, starts[2] + HEADER_LEN + 2, bytes.len() - 1] {
            let (result, read) = scan(&bytes[..cut], true);
            assert_eq!(damage(result), (starts[2] as u64, true), "cut at {cut}");
            assert_eq!(read, vec![1, 2]);
            let (result, _) = scan(&bytes[..cut], false);
            assert_eq!(damage(result), (starts[2] as u64, false), "cut at {cut}");
        }
    }

    #[test]
    fn a_bad_payload_checksum_is_damage_unless_it_ends_the_last_segment() {
        let (bytes, starts) = segment();
        let mut middle = bytes.clone();
        middle[starts[1] + HEADER_LEN] ^= 0x01;
        let (result, read) = scan(&middle, true);
        assert_eq!(damage(result), (starts[1] as u64, false));
        assert_eq!(read, vec![1]);

        let mut last = bytes.clone();
        last[starts[2] + HEADER_LEN] ^= 0x01;
        assert_eq!(damage(scan(&last, true).0), (starts[2] as u64, true));
        assert_eq!(damage(scan(&last, false).0), (starts[2] as u64, false));
    }

    #[test]
    fn a_bad_header_checksum_is_damage() {
        let (mut bytes, starts) = segment();
        bytes[starts[1] + 5] ^= 0x01;
        assert_eq!(damage(scan(&bytes, true).0), (starts[1] as u64, false));
    }

    #[test]
    fn a_zero_filled_tail_is_torn_in_the_last_segment() {
        let (mut bytes, _) = segment();
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        let (result, read) = scan(&bytes, true);
        assert_eq!(damage(result), (end as u64, true));
        assert_eq!(read, vec![1, 2, 3]);
        assert_eq!(damage(scan(&bytes, false).0), (end as u64, false));
        // Zeros after garbage are not a clean zero tail.
        bytes[end + 100] = 7;
        assert_eq!(damage(scan(&bytes, true).0), (end as u64, false));
    }

    #[test]
    fn an_entry_out_of_order_is_damage() {
        let (mut bytes, _) = segment();
        bytes.extend_from_slice(&header(b"again", 2));
        bytes.extend_from_slice(b"again");
        let (result, read) = scan(&bytes, true);
        assert!(
            !damage(result).1,
            "a misnumbered entry is never a torn tail"
        );
        assert_eq!(read, vec![1, 2, 3]);
    }

    #[test]
    fn an_entry_the_caller_rejects_is_damage() {
        let (bytes, starts) = segment();
        let mut expect = 1;
        let result = scan_segment(&bytes, &mut expect, true, |lsn, _| {
            if lsn == 2 {
                Err("does not decode".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(damage(result), (starts[1] as u64, false));
    }
}
