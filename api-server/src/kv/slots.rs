//! The cluster's slot map (which master serves which hash slots), read with `CLUSTER SLOTS`
//! and refreshed when a node answers MOVED or stops answering.

use redis::Value;

/// A node's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Host name or IP as the cluster announces it.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddr {
    /// Parses `host:port` as found in MOVED and ASK replies.
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        Some(Self {
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// Slot ranges and the master of each.
#[derive(Debug, Clone, Default)]
pub struct SlotMap {
    /// `(first slot, last slot, master)`, sorted by first slot.
    ranges: Vec<(u16, u16, NodeAddr)>,
}

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply.
    pub fn from_cluster_slots(reply: &Value) -> Option<Self> {
        let Value::Array(entries) = reply else {
            return None;
        };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else {
                return None;
            };
            let start = as_int(fields.first()?)?;
            let end = as_int(fields.get(1)?)?;
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host = as_text(master.first()?)?;
            let port = as_int(master.get(1)?)?;
            ranges.push((
                u16::try_from(start).ok()?,
                u16::try_from(end).ok()?,
                NodeAddr {
                    host,
                    port: u16::try_from(port).ok()?,
                },
            ));
        }
        ranges.sort_by_key(|range| range.0);
        Some(Self { ranges })
    }

    /// The master serving `slot`, if the map covers it.
    pub fn master_for(&self, slot: u16) -> Option<&NodeAddr> {
        let index = self.ranges.partition_point(|range| range.0 <= slot);
        let (start, end, node) = self.ranges.get(index.checked_sub(1)?)?;
        (*start <= slot && slot <= *end).then_some(node)
    }

    /// Every master, once.
    pub fn masters(&self) -> Vec<NodeAddr> {
        let mut masters: Vec<NodeAddr> = Vec::new();
        for (_, _, node) in &self.ranges {
            if !masters.contains(node) {
                masters.push(node.clone());
            }
        }
        masters
    }

    /// Whether the map covers nothing (never loaded, or the cluster answered oddly).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_map_to_their_master() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
        ]);
        let map = SlotMap::from_cluster_slots(&reply).unwrap();
        assert_eq!(map.master_for(0).unwrap().port, 7000);
        assert_eq!(map.master_for(5461).unwrap().port, 7001);
        assert_eq!(map.master_for(10922).unwrap().port, 7001);
        assert!(map.master_for(10923).is_none());
        assert_eq!(map.masters().len(), 2);
    }

    #[test]
    fn redirect_addresses_parse() {
        assert_eq!(
            NodeAddr::parse("127.0.0.1:7002"),
            Some(NodeAddr {
                host: "127.0.0.1".into(),
                port: 7002
            })
        );
        assert_eq!(NodeAddr::parse("nonsense"), None);
    }
}
