//! RevokeAcl: removes operations from a user's grant on a pattern; a grant
//! left with no operation is dropped. Admin only.

use bytes::BytesMut;

use super::security_common::AclEntry;
use crate::primitives::{Decode, DecodeError, Encode, Reader};

/// Revokes operations on a resource pattern to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeAclRequest {
    /// The user, pattern and operations.
    pub entry: AclEntry,
}

/// The operations are revoked (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeAclResponse;

impl Encode for RevokeAclRequest {
    fn encode(&self, buf: &mut BytesMut) {
        self.entry.encode(buf);
    }
}

impl Decode for RevokeAclRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            entry: AclEntry::decode(r)?,
        })
    }
}

impl Encode for RevokeAclResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for RevokeAclResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::security_common::{Operations, ResourceKind, ResourcePattern};
    use crate::messages::test_util::Examples;

    impl Examples for RevokeAclRequest {
        fn examples() -> Vec<Self> {
            vec![RevokeAclRequest {
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

    impl Examples for RevokeAclResponse {
        fn examples() -> Vec<Self> {
            vec![RevokeAclResponse]
        }
    }
}
