//! Snapshots of the replicated state, in a second stream
//! (`{log}_SNAPSHOTS`): a snapshot is the postcard-encoded `Snapshot` in
//! chunks that fit a NATS message, then a manifest (JSON) naming the log
//! position it describes and its chunks' sequences, with a CRC32C of the
//! whole. The newest manifest is the snapshot a new replica loads.
//!
//! Compaction keeps the snapshot before the newest and the log after it:
//! once a snapshot at P is published, the log at or below the previous
//! snapshot's position and the snapshot stream below its chunks are
//! purged. A replica still behind that point finds a gap in the log and
//! is fenced; a restart loads the newest snapshot.

use async_nats::jetstream;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType, Stream};
use serde::{Deserialize, Serialize};

use super::{JetStreamConfig, open_stream};
use crate::store::journal::OpenError;
use crate::store::state::Snapshot;

/// The most a chunk holds; below NATS's default 1 MiB message limit.
const CHUNK_BYTES: usize = 512 * 1024;

/// What a snapshot's manifest says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Manifest {
    /// The log position the snapshot describes (its last applied message).
    pub(super) position: u64,
    /// The chunks' sequences in the snapshot stream, in order.
    pub(super) chunks: Vec<u64>,
    /// The encoded snapshot's length and CRC32C.
    pub(super) bytes: u64,
    pub(super) crc32c: u32,
}

/// The snapshot stream.
#[derive(Debug, Clone)]
pub(super) struct Snapshots {
    context: jetstream::Context,
    stream: Stream,
    chunk_subject: String,
    manifest_subject: String,
}

impl Snapshots {
    pub(super) async fn open(
        context: &jetstream::Context,
        replica: &JetStreamConfig,
    ) -> Result<Snapshots, OpenError> {
        let base = format!("{}.snapshots", replica.subject());
        let chunk_subject = format!("{base}.chunks");
        let manifest_subject = format!("{base}.manifests");
        let stream = open_stream(
            context,
            StreamConfig {
                name: format!("{}_SNAPSHOTS", replica.stream),
                subjects: vec![chunk_subject.clone(), manifest_subject.clone()],
                num_replicas: replica.replicas,
                storage: StorageType::File,
                ..Default::default()
            },
        )
        .await?;
        Ok(Snapshots {
            context: context.clone(),
            stream,
            chunk_subject,
            manifest_subject,
        })
    }

    /// The newest manifest, if any snapshot was taken.
    pub(super) async fn latest(&self) -> Result<Option<Manifest>, String> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self
            .stream
            .get_last_raw_message_by_subject(&self.manifest_subject)
            .await
        {
            Ok(message) => serde_json::from_slice(&message.payload)
                .map(Some)
                .map_err(|e| format!("a snapshot manifest does not decode: {e}")),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(format!("reading the latest snapshot manifest: {e}")),
        }
    }

    /// The newest snapshot and its log position, if any.
    pub(super) async fn load_latest(&self) -> Result<Option<(u64, Snapshot)>, OpenError> {
        let Some(manifest) = self.latest().await.map_err(OpenError::Replica)? else {
            return Ok(None);
        };
        let mut encoded = Vec::with_capacity(usize::try_from(manifest.bytes).unwrap_or(0));
        for &sequence in &manifest.chunks {
            let chunk = self.stream.get_raw_message(sequence).await.map_err(|e| {
                OpenError::Replica(format!("reading snapshot chunk {sequence}: {e}"))
            })?;
            encoded.extend_from_slice(&chunk.payload);
        }
        if encoded.len() as u64 != manifest.bytes || crc32c::crc32c(&encoded) != manifest.crc32c {
            return Err(OpenError::Replica(format!(
                "the snapshot at log position {} is damaged (length or CRC32C)",
                manifest.position
            )));
        }
        let snapshot = Snapshot::decode(&encoded).map_err(|e| {
            OpenError::Replica(format!(
                "the snapshot at log position {} does not decode: {e}",
                manifest.position
            ))
        })?;
        Ok(Some((manifest.position, snapshot)))
    }

    /// Publishes an encoded snapshot of log position `position` and
    /// returns its manifest.
    pub(super) async fn publish(&self, position: u64, encoded: &[u8]) -> Result<Manifest, String> {
        let mut chunks = Vec::with_capacity(encoded.len() / CHUNK_BYTES + 1);
        for chunk in encoded.chunks(CHUNK_BYTES) {
            let ack = self
                .context
                .publish(
                    self.chunk_subject.clone(),
                    bytes::Bytes::copy_from_slice(chunk),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            chunks.push(ack.sequence);
        }
        let manifest = Manifest {
            position,
            chunks,
            bytes: encoded.len() as u64,
            crc32c: crc32c::crc32c(encoded),
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        self.context
            .publish(self.manifest_subject.clone(), json.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(manifest)
    }

    /// Drops the snapshots older than `keep`.
    pub(super) async fn purge_before(&self, keep: &Manifest) -> Result<(), String> {
        let Some(&first) = keep.chunks.iter().min() else {
            return Ok(());
        };
        self.stream
            .purge()
            .sequence(first)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
