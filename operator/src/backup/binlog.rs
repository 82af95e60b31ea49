//! What an archived binary log holds, read from its bytes as they pass: the GTIDs and times
//! of its first and last transaction. A restore picks the logs to replay from these
//! (`restore`), without downloading any to look.
//!
//! A MariaDB binary log is the magic `\xfebin`, then events, each with a 19-byte header
//! (timestamp u32, type u8, server id u32, length u32, next position u32, flags u16; little
//! endian; the length counts the header and the checksum). A transaction starts with a GTID
//! event (type 162), whose body starts with its sequence number (u64) and domain (u32); the
//! server id is the header's.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"\xfebin";
const HEADER: usize = 19;
const GTID_EVENT: u8 = 162;
/// Sequence number and domain.
const GTID_BODY: usize = 12;

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// The server that wrote the transaction first.
    pub server_id: u32,
    /// Its number in the domain (grows by one per transaction).
    pub sequence: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.sequence)
    }
}

impl FromStr for Gtid {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().splitn(3, '-');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| format!("{text:?} is no GTID (domain-server-sequence)"))
        };
        let bad = |_| format!("{text:?} is no GTID (domain-server-sequence)");
        Ok(Self {
            domain: next()?.parse().map_err(bad)?,
            server_id: next()?.parse().map_err(bad)?,
            sequence: next()?.parse().map_err(bad)?,
        })
    }
}

impl Serialize for Gtid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Gtid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A GTID position (`@@gtid_binlog_pos`): the last transaction of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidPosition(pub BTreeMap<u32, Gtid>);

impl GtidPosition {
    /// Parses `0-100-57,1-100-3` (empty: nothing yet).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut position = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid: Gtid = part.parse()?;
            position.insert(gtid.domain, gtid);
        }
        Ok(Self(position))
    }

    /// Whether every transaction up to `other` is at or before this position.
    pub fn covers(&self, other: &GtidPosition) -> bool {
        other.0.values().all(|gtid| {
            self.0
                .get(&gtid.domain)
                .is_some_and(|mine| mine.sequence >= gtid.sequence)
        })
    }

    /// Moves each domain forward to `gtid` when it is further.
    pub fn advance(&mut self, gtid: Gtid) {
        let entry = self.0.entry(gtid.domain).or_insert(gtid);
        if gtid.sequence > entry.sequence {
            *entry = gtid;
        }
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(Gtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// What one binary log holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BinlogSummary {
    /// Transactions in it.
    pub transactions: u64,
    /// Its first transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Gtid>,
    /// Its last transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Gtid>,
    /// When its first transaction was written (seconds since the epoch, as the binary log
    /// stamps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<i64>,
    /// When its last transaction was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<i64>,
}

/// Reads a binary log's bytes in pieces of any size.
#[derive(Debug, Default)]
pub struct BinlogScanner {
    /// The magic, an event header, or a GTID event's header and body, being gathered.
    pending: Vec<u8>,
    /// Bytes of the current event still to pass over.
    skip: u64,
    /// Whether the magic was read.
    started: bool,
    /// Bytes read.
    read: u64,
    summary: BinlogSummary,
}

impl BinlogScanner {
    /// A scanner at the start of a log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next bytes of the log.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let passed = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.skip -= passed as u64;
                self.read += passed as u64;
                bytes = &bytes[passed..];
                continue;
            }
            let wanted = self.wanted();
            let taken = (wanted - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..taken]);
            self.read += taken as u64;
            bytes = &bytes[taken..];
            if self.pending.len() == wanted {
                self.consume()?;
            }
        }
        Ok(())
    }

    /// The summary, once every byte was read; an error when the log ends inside an event.
    pub fn finish(self) -> Result<BinlogSummary, String> {
        if !self.started || self.skip > 0 || !self.pending.is_empty() {
            return Err(format!(
                "the binary log ends inside an event after {} bytes",
                self.read
            ));
        }
        Ok(self.summary)
    }

    /// How many bytes `pending` must hold before it can be read.
    fn wanted(&self) -> usize {
        if !self.started {
            MAGIC.len()
        } else if self.pending.len() < HEADER || self.pending[4] != GTID_EVENT {
            HEADER
        } else {
            HEADER + GTID_BODY
        }
    }

    fn consume(&mut self) -> Result<(), String> {
        if !self.started {
            if self.pending != MAGIC {
                return Err("not a binary log (no \\xfebin magic)".into());
            }
            self.started = true;
            self.pending.clear();
            return Ok(());
        }
        let header = &self.pending;
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let timestamp = i64::from(u32_at(0));
        let server_id = u32_at(5);
        let length = u64::from(u32_at(9));
        if length < (HEADER as u64) {
            return Err(format!(
                "an event at byte {} claims {length} bytes, less than its header",
                self.read - self.pending.len() as u64
            ));
        }
        if header[4] == GTID_EVENT && self.pending.len() == HEADER {
            if length < (HEADER + GTID_BODY) as u64 {
                return Err(format!("a GTID event of {length} bytes is too short"));
            }
            // wanted() now asks for the body too.
            return Ok(());
        }
        if header[4] == GTID_EVENT {
            let body = &header[HEADER..];
            let mut sequence = [0; 8];
            sequence.copy_from_slice(&body[..8]);
            let gtid = Gtid {
                sequence: u64::from_le_bytes(sequence),
                domain: u32::from_le_bytes([body[8], body[9], body[10], body[11]]),
                server_id,
            };
            let summary = &mut self.summary;
            summary.transactions += 1;
            summary.first.get_or_insert(gtid);
            summary.last = Some(gtid);
            summary.first_time.get_or_insert(timestamp);
            summary.last_time = Some(timestamp);
        }
        self.skip = length - self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of `body_len` bytes after its header (checksum included).
    fn event(kind: u8, timestamp: u32, server_id: u32, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(HEADER + body.len()).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&timestamp.to_le_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&server_id.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn gtid_event(timestamp: u32, server_id: u32, sequence: u64) -> Vec<u8> {
        let mut body = sequence.to_le_bytes().to_vec();
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&[0; 10]);
        event(GTID_EVENT, timestamp, server_id, &body)
    }

    /// A log of two transactions between a format description and a rotate.
    pub(crate) fn sample_log() -> Vec<u8> {
        let mut log = MAGIC.to_vec();
        log.extend(event(15, 1_700_000_000, 100, &[7; 100]));
        log.extend(gtid_event(1_700_000_001, 100, 41));
        log.extend(event(30, 1_700_000_001, 100, &[1; 300]));
        log.extend(gtid_event(1_700_000_005, 101, 42));
        log.extend(event(30, 1_700_000_005, 101, &[2; 70_000]));
        log.extend(event(4, 0, 100, &[3; 40]));
        log
    }

    #[test]
    fn a_log_read_in_pieces_of_any_size_names_its_first_and_last_transaction() {
        let log = sample_log();
        for piece in [1, 3, 19, 31, 4096, log.len()] {
            let mut scanner = BinlogScanner::new();
            for chunk in log.chunks(piece) {
                scanner.feed(chunk).unwrap();
            }
            let summary = scanner.finish().unwrap();
            assert_eq!(summary.transactions, 2, "pieces of {piece}");
            assert_eq!(summary.first.unwrap().to_string(), "0-100-41");
            assert_eq!(summary.last.unwrap().to_string(), "0-101-42");
            assert_eq!(summary.first_time, Some(1_700_000_001));
            assert_eq!(summary.last_time, Some(1_700_000_005));
        }
    }

    #[test]
    fn a_cut_log_or_another_file_is_refused() {
        let log = sample_log();
        let mut scanner = BinlogScanner::new();
        scanner.feed(&log[..log.len() - 5]).unwrap();
        assert!(scanner.finish().is_err());
        let mut scanner = BinlogScanner::new();
        assert!(scanner.feed(b"PK\x03\x04 a zip").is_err());
    }

    #[test]
    fn positions_compare_per_domain() {
        let archived = GtidPosition::parse("0-100-57,1-101-3").unwrap();
        assert!(archived.covers(&GtidPosition::parse("0-101-57").unwrap()));
        assert!(archived.covers(&GtidPosition::parse("").unwrap()));
        assert!(!archived.covers(&GtidPosition::parse("0-100-58").unwrap()));
        assert!(!archived.covers(&GtidPosition::parse("2-100-1").unwrap()));
        assert_eq!(archived.to_string(), "0-100-57,1-101-3");
        assert!(GtidPosition::parse("0-100").is_err());
    }
}
