//! What Redis Cluster nodes say, parsed (`CLUSTER INFO`, `CLUSTER NODES`), and the slot
//! arithmetic of a bootstrap (each master's even share, the runs nobody holds yet).

use std::collections::HashMap;

/// Hash slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// Master `index` of `masters`: an even share of the slots, as inclusive bounds.
pub(super) fn share(index: usize, masters: usize) -> (usize, usize) {
    (index * SLOTS / masters, (index + 1) * SLOTS / masters - 1)
}

/// The runs of slots in `range` that nobody holds.
pub(super) fn unassigned((start, end): (usize, usize), assigned: &[bool]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut run: Option<usize> = None;
    for (slot, &is_assigned) in assigned.iter().enumerate().take(end + 1).skip(start) {
        match (is_assigned, run) {
            (false, None) => run = Some(slot),
            (true, Some(first)) => {
                runs.push((first, slot - 1));
                run = None;
            }
            _ => {}
        }
    }
    if let Some(first) = run {
        runs.push((first, end));
    }
    runs
}

/// `key:value` lines of `CLUSTER INFO` (or `INFO`).
pub(super) fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NodeLine {
    pub(super) id: String,
    /// The IP this node is known at (empty when it has none: `noaddr`).
    pub(super) ip: String,
    /// The client port it is known at (0 when it has none).
    pub(super) port: u16,
    pub(super) flags: Vec<String>,
    pub(super) config_epoch: u64,
    /// Inclusive slot ranges it serves (migrating/importing markers left out).
    pub(super) slots: Vec<(usize, usize)>,
}

impl NodeLine {
    pub(super) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
    pub(super) fn is_master(&self) -> bool {
        self.has_flag("master")
    }
    pub(super) fn is_replica(&self) -> bool {
        self.has_flag("slave")
    }
    pub(super) fn is_failing(&self) -> bool {
        self.has_flag("fail") || self.has_flag("noaddr")
    }
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
pub(super) fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let slots = fields[8..]
                .iter()
                .filter(|token| !token.starts_with('['))
                .filter_map(|token| {
                    let (start, end) = token.split_once('-').unwrap_or((token, token));
                    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
                    (start <= end && end < SLOTS).then_some((start, end))
                })
                .collect();
            // `ip:port@cport[,hostname]`; an IPv6 address has colons of its own.
            let address = fields[1].split('@').next().unwrap_or("");
            let (ip, port) = address.rsplit_once(':').unwrap_or(("", ""));
            Some(NodeLine {
                id: fields[0].to_owned(),
                ip: ip.trim_matches(['[', ']']).to_owned(),
                port: port.parse().unwrap_or(0),
                flags: fields[2].split(',').map(str::to_owned).collect(),
                config_epoch: fields[6].parse().unwrap_or(0),
                slots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_slot_once() {
        for masters in [1, 3, 5, 7] {
            let mut next = 0;
            for index in 0..masters {
                let (start, end) = share(index, masters);
                assert_eq!(start, next);
                next = end + 1;
            }
            assert_eq!(next, SLOTS);
        }
        assert_eq!(share(0, 3), (0, 5460));
        assert_eq!(share(2, 3), (10922, 16383));
    }

    #[test]
    fn unassigned_finds_the_gaps() {
        let mut assigned = vec![false; SLOTS];
        for slot in assigned.iter_mut().take(20).skip(10) {
            *slot = true;
        }
        assert_eq!(unassigned((0, 29), &assigned), vec![(0, 9), (20, 29)]);
        assert_eq!(unassigned((10, 19), &assigned), vec![]);
    }

    #[test]
    fn cluster_nodes_lines_parse() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 0 5 connected
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f :0@0 master,noaddr - 1426238316232 0 6 disconnected
";
        let lines = parse_nodes(text);
        assert_eq!(lines.len(), 4);
        assert_eq!((lines[0].ip.as_str(), lines[0].port), ("127.0.0.1", 30004));
        assert_eq!(lines[3].ip, "", "noaddr: no IP");
        assert!(lines[0].is_replica());
        assert!(lines[1].has_flag("myself") && lines[1].is_master());
        assert_eq!(lines[1].slots, vec![(0, 5460), (5462, 5462)]);
        assert_eq!(lines[1].config_epoch, 1);
        assert!(lines[2].is_failing() && lines[2].slots.is_empty());
    }
}
