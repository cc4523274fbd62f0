//! GrantAcl: adds operations to a user's grant on a topic or group pattern
//! (merged with what the user already has on the same pattern). Admin only.

use bytes::BytesMut;

use super::security_common::AclEntry;
use crate::primitives::{Decode, DecodeError, Encode, Reader};

/// Grants operations on a resource pattern to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAclRequest {
    /// The user, pattern and operations.
    pub entry: AclEntry,
}

/// The grant is stored (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAclResponse;

impl Encode for GrantAclRequest {
    fn encode(&self, buf: &mut BytesMut) {
        self.entry.encode(buf);
    }
}

impl Decode for GrantAclRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            entry: AclEntry::decode(r)?,
        })
    }
}

impl Encode for GrantAclResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for GrantAclResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::security_common::{Operations, ResourceKind, ResourcePattern};
    use crate::messages::test_util::Examples;

    impl Examples for GrantAclRequest {
        fn examples() -> Vec<Self> {
            vec![GrantAclRequest {
                entry: AclEntry {
                    user: "alice".into(),
                    resource: ResourcePattern {
                        kind: ResourceKind::Group,
                        name: "billing-".into(),
                        prefix: true,
                    },
                    operations: Operations::parse("consume,describe").unwrap(),
                },
            }]
        }
    }

    impl Examples for GrantAclResponse {
        fn examples() -> Vec<Self> {
            vec![GrantAclResponse]
        }
    }
}
