//! A batch of independent commands, each on one key (several only on a standalone server,
//! see `Kv::multi_key_groups`), run in as few round trips as possible: one pipeline on a
//! standalone server, one pipeline per master on a cluster.
//!
//! redis-rs's async cluster client refuses a pipeline whose keys fall in different slots, and
//! a fan-out touches a thousand feeds in a thousand slots. So the batch is split by the
//! master that owns each key's slot (from our own slot map) and each part is sent to that
//! master as one pipeline. Per-command replies are then checked:
//!
//! ```text
//! MOVED   -> the slot moved: refresh the slot map, resend to the new owner
//! ASK     -> the slot is migrating: resend to the named node, preceded by ASKING
//! NOSCRIPT-> the node lost our Lua script (restart, failover): SCRIPT LOAD, resend
//! TRYAGAIN / CLUSTERDOWN / node unreachable -> wait a little, refresh, resend
//! ```
//! until every command has a final reply or the rounds run out.

use std::sync::Arc;

use redis::{Cmd, Value};

use super::memory::InProcessScript;

/// A Lua script sent by hash (EVALSHA) and loaded on a node that does not know it yet, with
/// the Rust equivalent that the in-process store runs instead (it has no Lua interpreter).
#[derive(Debug)]
pub struct LuaScript {
    code: &'static str,
    hash: String,
    in_process: InProcessScript,
}

impl LuaScript {
    /// Wraps a script's source and its in-process equivalent, which must answer every call
    /// as the Lua does.
    pub fn new(code: &'static str, in_process: InProcessScript) -> Self {
        Self {
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
            in_process,
        }
    }

    /// The Rust equivalent of the script, for the in-process store.
    pub fn in_process(&self) -> InProcessScript {
        self.in_process
    }

    /// The script's source.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The script's SHA1, as EVALSHA wants it.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// One command of a batch.
#[derive(Debug)]
pub(super) struct BatchCommand {
    /// The key that decides which node runs the command.
    pub(super) key: Vec<u8>,
    pub(super) cmd: Cmd,
    pub(super) script: Option<Arc<LuaScript>>,
}

/// Independent commands, each on one key (several only on a standalone server); replies come
/// back in the order they were added.
#[derive(Debug, Default)]
pub struct Batch {
    pub(super) commands: Vec<BatchCommand>,
    pub(super) replicated: bool,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// On a cluster, ends each master's pipeline with `WAIT 1`: the batch is done only once
    /// a replica holds its writes, so a master killed right after cannot take acknowledged
    /// writes with it (its replica, promoted, has them). Costs one replica round trip.
    pub fn replicated(&mut self) -> &mut Self {
        self.replicated = true;
        self
    }

    /// Adds a command whose only key is `key`.
    pub fn add(&mut self, key: impl Into<Vec<u8>>, cmd: Cmd) -> &mut Self {
        self.commands.push(BatchCommand {
            key: key.into(),
            cmd,
            script: None,
        });
        self
    }

    /// Adds a call of `script` on one key with `args`.
    pub fn add_script<A: redis::ToRedisArgs>(
        &mut self,
        script: &Arc<LuaScript>,
        key: &str,
        args: A,
    ) -> &mut Self {
        self.add_script_on_keys(script, &[key], args)
    }

    /// Adds one call of `script` on several keys with `args`: only for keys grouped by
    /// [`Kv::multi_key_groups`] (several on a standalone server, one on a cluster, where the key
    /// routes the call).
    ///
    /// [`Kv::multi_key_groups`]: super::Kv::multi_key_groups
    pub fn add_script_on_keys<K: AsRef<str>, A: redis::ToRedisArgs>(
        &mut self,
        script: &Arc<LuaScript>,
        keys: &[K],
        args: A,
    ) -> &mut Self {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.hash()).arg(keys.len());
        for key in keys {
            cmd.arg(key.as_ref());
        }
        cmd.arg(args);
        self.commands.push(BatchCommand {
            key: keys
                .first()
                .map(|key| key.as_ref().as_bytes().to_vec())
                .unwrap_or_default(),
            cmd,
            script: Some(script.clone()),
        });
        self
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether the batch has no command.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// What to do with one command's reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReplyAction {
    /// The reply is final (success or an error the caller must see).
    Done,
    /// The slot moved: refresh the map and resend.
    Moved,
    /// Resend to this node once, preceded by ASKING.
    Ask(String),
    /// Load the command's script on the node and resend.
    LoadScript,
    /// The cluster is busy or reconfiguring: wait, then resend.
    Retry,
}

/// Classifies a reply.
pub(super) fn classify(value: &Value) -> ReplyAction {
    let Value::ServerError(error) = value else {
        return ReplyAction::Done;
    };
    match error.code() {
        "MOVED" => ReplyAction::Moved,
        "ASK" => match error.details().and_then(|d| d.split_whitespace().nth(1)) {
            Some(addr) => ReplyAction::Ask(addr.to_owned()),
            None => ReplyAction::Done,
        },
        "NOSCRIPT" => ReplyAction::LoadScript,
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" => ReplyAction::Retry,
        _ => ReplyAction::Done,
    }
}

/// Hash slot of a key (CRC16/XMODEM of the key or of its `{hash tag}`, mod 16384).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % 16384
}

fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"user:{foo}:x"), 12182);
        // An empty tag hashes the whole key.
        assert_eq!(key_slot(b"{}foo"), key_slot(b"{}foo"));
        assert_ne!(key_slot(b"{}foo"), key_slot(b"foo"));
    }
}
