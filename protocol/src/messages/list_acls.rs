//! ListAcls: the grants of one user, or of every user. Admin only.

use bytes::{BufMut, BytesMut};

use super::security_common::{ACL_ENTRY_BYTES_MIN, AclEntry};
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Lists grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAclsRequest {
    /// Only this user's grants; `None`: everyone's.
    pub user: Option<String>,
}

/// The grants, sorted by user, then resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAclsResponse {
    /// The grants.
    pub acls: Vec<AclEntry>,
}

impl Encode for ListAclsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_bool(self.user.is_some());
        if let Some(user) = &self.user {
            buf.put_string(user);
        }
    }
}

impl Decode for ListAclsRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let user = if r.bool("has_user")? {
            Some(r.string("user")?)
        } else {
            None
        };
        Ok(Self { user })
    }
}

impl Encode for ListAclsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.acls.len() as u32);
        for acl in &self.acls {
            acl.encode(buf);
        }
    }
}

impl Decode for ListAclsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("acls", ACL_ENTRY_BYTES_MIN)?;
        let mut acls = Vec::with_capacity(n);
        for _ in 0..n {
            acls.push(AclEntry::decode(r)?);
        }
        Ok(Self { acls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::security_common::{Operations, ResourceKind, ResourcePattern};
    use crate::messages::test_util::Examples;

    impl Examples for ListAclsRequest {
        fn examples() -> Vec<Self> {
            vec![
                ListAclsRequest { user: None },
                ListAclsRequest {
                    user: Some("alice".into()),
                },
            ]
        }
    }

    impl Examples for ListAclsResponse {
        fn examples() -> Vec<Self> {
            vec![ListAclsResponse {
                acls: vec![AclEntry {
                    user: "alice".into(),
                    resource: ResourcePattern {
                        kind: ResourceKind::Topic,
                        name: "orders".into(),
                        prefix: false,
                    },
                    operations: Operations::ALL,
                }],
            }]
        }
    }
}
