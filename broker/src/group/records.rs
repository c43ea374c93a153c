//! Records of `__consumer_offsets`: Kafka's own key and value formats, so
//! a group's state is rebuilt by replaying its partition.
//!
//! Every record's key starts with an `int16` key version that says what the
//! record is; the value starts with its own `int16` version. A record with
//! a null value is a tombstone: it removes what its key names (compaction
//! keeps only the last record per key). Integers are big-endian; `string`
//! is an `int16` length and UTF-8 bytes, `nullable string` uses length -1
//! for null, `bytes` is an `int32` length and the bytes.
//!
//! Offset commit (key version 1; value version 3):
//!
//! | key field | type |
//! |---|---|
//! | version = 1 | int16 |
//! | group | string |
//! | topic | string |
//! | partition | int32 |
//!
//! | value field | type |
//! |---|---|
//! | version = 3 | int16 |
//! | offset | int64 |
//! | leader_epoch | int32 (-1 unknown) |
//! | metadata | string |
//! | commit_timestamp | int64 (ms) |
//!
//! Group metadata (key version 2; value version 3):
//!
//! | key field | type |
//! |---|---|
//! | version = 2 | int16 |
//! | group | string |
//!
//! | value field | type |
//! |---|---|
//! | version = 3 | int16 |
//! | protocol_type | string |
//! | generation | int32 |
//! | protocol | nullable string |
//! | leader | nullable string |
//! | current_state_timestamp | int64 (ms, -1 unknown) |
//! | members | int32 count, then per member: member_id string, group_instance_id nullable string, client_id string, client_host string, rebalance_timeout int32, session_timeout int32, subscription bytes, assignment bytes |
//!
//! Key version 0 (offset commit) and value versions 0–2 of offset commits
//! are read too (older Kafka wrote them; value v1 has an expire timestamp
//! after the commit timestamp, value v0/v1 lack the leader epoch). Unknown
//! key versions are skipped when loading (Kafka 3.x writes more record
//! types for its newer protocol); a record that does not parse is a typed
//! error: the loader logs it and skips the record, since one bad record
//! must not keep a whole partition of groups from loading.
//!
//! Fixtures: `broker/tests/fixtures/consumer_offsets/` holds one encoded
//! key and value per version written here; `group::tests` checks that
//! they still decode and that encoding gives the same bytes.

use bytes::Bytes;

use super::types::{CommittedOffset, TopicPartition};

/// A member as the group metadata record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Its session timeout.
    pub session_timeout_ms: i32,
    /// Its subscription for the chosen protocol.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// A group's generation as the group metadata record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The protocol type.
    pub protocol_type: String,
    /// The generation.
    pub generation_id: i32,
    /// The chosen protocol (None while empty).
    pub protocol_name: Option<String>,
    /// The leader (None while empty).
    pub leader: Option<String>,
    /// When the group entered its state (ms).
    pub current_state_timestamp_ms: i64,
    /// The members and their assignments.
    pub members: Vec<MemberRecord>,
}

/// One record of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// A committed offset (None: a tombstone, the offset is removed).
    Offset {
        /// The group.
        group_id: String,
        /// The partition.
        partition: TopicPartition,
        /// The offset.
        value: Option<CommittedOffset>,
    },
    /// A group's generation (None: a tombstone, the group is removed).
    Group {
        /// The group.
        group_id: String,
        /// The generation.
        value: Option<GroupMetadataValue>,
    },
}

impl OffsetsRecord {
    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            OffsetsRecord::Offset { group_id, .. } | OffsetsRecord::Group { group_id, .. } => group_id,
        }
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes ended early or a length was invalid.
    #[error("truncated or malformed {0}")]
    Malformed(&'static str),
    /// A string was not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A value version this broker does not know.
    #[error("unknown {what} value version {version}")]
    UnknownValueVersion {
        /// Which record.
        what: &'static str,
        /// The version.
        version: i16,
    },
    /// A record without a key.
    #[error("record without a key")]
    NoKey,
}

/// Key version of an offset commit written by this broker.
pub const OFFSET_KEY_VERSION: i16 = 1;
/// Value version of an offset commit written by this broker.
pub const OFFSET_VALUE_VERSION: i16 = 3;
/// Key version of a group metadata record.
pub const GROUP_KEY_VERSION: i16 = 2;
/// Value version of a group metadata record written by this broker.
pub const GROUP_VALUE_VERSION: i16 = 3;

fn put_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

fn put_nullable_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).ok_or(RecordError::Malformed(what))?;
        let s = self.buf.get(self.pos..end).ok_or(RecordError::Malformed(what))?;
        self.pos = end;
        Ok(s)
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, RecordError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize, what)?;
        String::from_utf8(b.to_vec()).map(Some).map_err(|_| RecordError::NotUtf8(what))
    }
    fn string(&mut self, what: &'static str) -> Result<String, RecordError> {
        self.nullable_string(what)?.ok_or(RecordError::Malformed(what))
    }
    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, what)?))
    }
}

impl OffsetsRecord {
    /// The record's key and value bytes (value None for a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        match self {
            OffsetsRecord::Offset { group_id, partition, value } => {
                key.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
                put_string(&mut key, group_id);
                put_string(&mut key, &partition.0);
                key.extend_from_slice(&partition.1.to_be_bytes());
                let value = value.as_ref().map(|v| {
                    let mut out = Vec::new();
                    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
                    out.extend_from_slice(&v.offset.to_be_bytes());
                    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
                    put_string(&mut out, &v.metadata);
                    out.extend_from_slice(&v.commit_timestamp_ms.to_be_bytes());
                    out
                });
                (key, value)
            }
            OffsetsRecord::Group { group_id, value } => {
                key.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
                put_string(&mut key, group_id);
                let value = value.as_ref().map(|v| {
                    let mut out = Vec::new();
                    out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
                    put_string(&mut out, &v.protocol_type);
                    out.extend_from_slice(&v.generation_id.to_be_bytes());
                    put_nullable_string(&mut out, v.protocol_name.as_deref());
                    put_nullable_string(&mut out, v.leader.as_deref());
                    out.extend_from_slice(&v.current_state_timestamp_ms.to_be_bytes());
                    out.extend_from_slice(&(v.members.len() as i32).to_be_bytes());
                    for m in &v.members {
                        put_string(&mut out, &m.member_id);
                        put_nullable_string(&mut out, m.group_instance_id.as_deref());
                        put_string(&mut out, &m.client_id);
                        put_string(&mut out, &m.client_host);
                        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
                        put_bytes(&mut out, &m.subscription);
                        put_bytes(&mut out, &m.assignment);
                    }
                    out
                });
                (key, value)
            }
        }
    }

    /// Decodes a record; `Ok(None)` for a key version this broker does not
    /// use (records of protocols it does not implement are skipped).
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Option<OffsetsRecord>, RecordError> {
        let key = key.ok_or(RecordError::NoKey)?;
        let mut k = Reader { buf: key, pos: 0 };
        match k.i16("key version")? {
            0 | 1 => {
                let group_id = k.string("group")?;
                let topic = k.string("topic")?;
                let partition = k.i32("partition")?;
                let value = value.map(decode_offset_value).transpose()?;
                Ok(Some(OffsetsRecord::Offset { group_id, partition: (topic, partition), value }))
            }
            2 => {
                let group_id = k.string("group")?;
                let value = value.map(decode_group_value).transpose()?;
                Ok(Some(OffsetsRecord::Group { group_id, value }))
            }
            _ => Ok(None),
        }
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16("offset value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion { what: "offset commit", version });
    }
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 { r.i32("leader epoch")? } else { -1 };
    let metadata = r.string("metadata")?;
    let commit_timestamp_ms = r.i64("commit timestamp")?;
    if version == 1 {
        r.i64("expire timestamp")?;
    }
    Ok(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16("group value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion { what: "group metadata", version });
    }
    let protocol_type = r.string("protocol type")?;
    let generation_id = r.i32("generation")?;
    let protocol_name = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp_ms = if version >= 2 { r.i64("state timestamp")? } else { -1 };
    let count = r.i32("member count")?;
    if count < 0 {
        return Err(RecordError::Malformed("member count"));
    }
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string("member id")?;
        let group_instance_id = if version >= 3 { r.nullable_string("instance id")? } else { None };
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let rebalance_timeout_ms = if version >= 1 { r.i32("rebalance timeout")? } else { 0 };
        let session_timeout_ms = r.i32("session timeout")?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        members.push(MemberRecord {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupMetadataValue { protocol_type, generation_id, protocol_name, leader, current_state_timestamp_ms, members })
}
