//! Types shared by the user and ACL management messages: the operations a
//! grant allows ([`Operations`], a bit set), the resources it covers
//! ([`ResourcePattern`]: a topic or group, by exact name or prefix) and one
//! grant ([`AclEntry`]).
//!
//! Invariant: the operation bits and resource kind numbers are part of the
//! wire contract and never change; unknown bits are refused on decode.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::primitives::{DecodeError, Reader, WriteExt};

/// One operation on a topic or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Append to a topic.
    Produce,
    /// Read a topic; join, heartbeat and commit in a group.
    Consume,
    /// Create a topic (also by a produce that auto-creates it).
    Create,
    /// Delete a topic or group.
    Delete,
    /// See a topic or group in listings, describe it, look up its offsets.
    /// Implied by every other operation on the same resource.
    Describe,
    /// Change a topic's settings; reset a group's offsets.
    Alter,
}

impl Operation {
    /// Every operation, in bit order.
    pub const ALL: [Operation; 6] = [
        Operation::Produce,
        Operation::Consume,
        Operation::Create,
        Operation::Delete,
        Operation::Describe,
        Operation::Alter,
    ];

    /// Its bit in an [`Operations`] set.
    pub const fn bit(self) -> u8 {
        match self {
            Operation::Produce => 1,
            Operation::Consume => 2,
            Operation::Create => 4,
            Operation::Delete => 8,
            Operation::Describe => 16,
            Operation::Alter => 32,
        }
    }

    /// Its name on the command line and in messages (`produce`).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Produce => "produce",
            Operation::Consume => "consume",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Describe => "describe",
            Operation::Alter => "alter",
        }
    }

    /// Parses a name (`produce`); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Operation`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Operations(u8);

/// Every defined bit.
const OPERATION_BITS: u8 = 1 | 2 | 4 | 8 | 16 | 32;

impl Operations {
    /// No operation.
    pub const NONE: Operations = Operations(0);
    /// Every operation.
    pub const ALL: Operations = Operations(OPERATION_BITS);

    /// The set's wire form.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// A set from its wire form; `None` if it has an undefined bit.
    pub fn from_bits(bits: u8) -> Option<Operations> {
        (bits & !OPERATION_BITS == 0).then_some(Operations(bits))
    }

    /// Whether `op` is in the set (exactly, without implications).
    pub fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// The set with `op` added.
    pub fn with(self, op: Operation) -> Operations {
        Operations(self.0 | op.bit())
    }

    /// The union.
    pub fn union(self, other: Operations) -> Operations {
        Operations(self.0 | other.0)
    }

    /// This set without `other`'s operations.
    pub fn without(self, other: Operations) -> Operations {
        Operations(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses a comma-separated list (`produce,consume`, or `all`).
    pub fn parse(list: &str) -> Result<Operations, String> {
        let mut ops = Operations::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "all" {
                ops = Operations::ALL;
                continue;
            }
            let op = Operation::from_name(name).ok_or_else(|| {
                format!(
                    "unknown operation {name:?} (expected produce, consume, create, delete, describe, alter or all)"
                )
            })?;
            ops = ops.with(op);
        }
        if ops.is_empty() {
            return Err("no operation given".to_owned());
        }
        Ok(ops)
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Operations, DecodeError> {
        let bits = r.u8("operations")?;
        Operations::from_bits(bits).ok_or(DecodeError::InvalidValue {
            field: "operations",
            value: u64::from(bits),
        })
    }
}

impl fmt::Display for Operations {
    /// Comma-separated names in bit order (`produce,consume`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for op in Operation::ALL.into_iter().filter(|op| self.contains(*op)) {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(op.name())?;
            first = false;
        }
        Ok(())
    }
}

/// What kind of resource a pattern names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
}

impl ResourceKind {
    /// Its name in messages (`topic`).
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Topic => "topic",
            ResourceKind::Group => "group",
        }
    }
}

/// The topics or groups a grant covers: one by exact name, or every one
/// whose name starts with a prefix (an empty prefix covers them all).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    /// Topic or group.
    pub kind: ResourceKind,
    /// The name or the prefix.
    pub name: String,
    /// Whether `name` is a prefix.
    pub prefix: bool,
}

impl ResourcePattern {
    /// Whether the pattern covers the resource `kind`/`name`.
    pub fn matches(&self, kind: ResourceKind, name: &str) -> bool {
        self.kind == kind
            && if self.prefix {
                name.starts_with(&self.name)
            } else {
                name == self.name
            }
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(match self.kind {
            ResourceKind::Topic => 0,
            ResourceKind::Group => 1,
        });
        buf.put_bool(self.prefix);
        buf.put_string(&self.name);
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<ResourcePattern, DecodeError> {
        let kind = match r.u8("resource_kind")? {
            0 => ResourceKind::Topic,
            1 => ResourceKind::Group,
            other => {
                return Err(DecodeError::InvalidValue {
                    field: "resource_kind",
                    value: u64::from(other),
                });
            }
        };
        Ok(ResourcePattern {
            kind,
            prefix: r.bool("prefix")?,
            name: r.string("resource_name")?,
        })
    }
}

impl fmt::Display for ResourcePattern {
    /// `topic 'orders'` or `topic prefix 'orders.'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix {
            write!(f, "{} prefix '{}'", self.kind.name(), self.name)
        } else {
            write!(f, "{} '{}'", self.kind.name(), self.name)
        }
    }
}

/// One grant: `user` may do `operations` on what `resource` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The user.
    pub user: String,
    /// The topics or groups.
    pub resource: ResourcePattern,
    /// The operations allowed.
    pub operations: Operations,
}

/// Wire size of an [`AclEntry`] without its strings' bytes.
pub(crate) const ACL_ENTRY_BYTES_MIN: usize = 2 + 1 + 1 + 2 + 1;

impl AclEntry {
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.user);
        self.resource.encode(buf);
        buf.put_u8(self.operations.bits());
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<AclEntry, DecodeError> {
        Ok(AclEntry {
            user: r.string("user")?,
            resource: ResourcePattern::decode(r)?,
            operations: Operations::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_parse_and_print() {
        let ops = Operations::parse("produce, consume").unwrap();
        assert!(ops.contains(Operation::Produce) && ops.contains(Operation::Consume));
        assert!(!ops.contains(Operation::Create));
        assert_eq!(ops.to_string(), "produce,consume");
        assert_eq!(Operations::parse("all").unwrap(), Operations::ALL);
        assert!(Operations::parse("fly").unwrap_err().contains("fly"));
        assert!(Operations::parse("").is_err());
        assert_eq!(Operations::from_bits(64), None);
    }

    #[test]
    fn patterns_match_by_name_or_prefix() {
        let exact = ResourcePattern {
            kind: ResourceKind::Topic,
            name: "orders".into(),
            prefix: false,
        };
        assert!(exact.matches(ResourceKind::Topic, "orders"));
        assert!(!exact.matches(ResourceKind::Topic, "orders2"));
        assert!(!exact.matches(ResourceKind::Group, "orders"));
        let prefix = ResourcePattern {
            prefix: true,
            ..exact
        };
        assert!(prefix.matches(ResourceKind::Topic, "orders2"));
        assert!(!prefix.matches(ResourceKind::Topic, "order"));
        assert_eq!(prefix.to_string(), "topic prefix 'orders'");
    }
}
