//! LeaveGroup: a member leaves its group at once (instead of timing out);
//! its partitions go to the remaining members. Commit before leaving.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Leaves a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group: String,
    /// The member's id.
    pub member_id: String,
}

/// The member has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupResponse;

impl Encode for LeaveGroupRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
        buf.put_string(&self.member_id);
    }
}

impl Decode for LeaveGroupRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
            member_id: r.string("member_id")?,
        })
    }
}

impl Encode for LeaveGroupResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for LeaveGroupResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for LeaveGroupRequest {
        fn examples() -> Vec<Self> {
            vec![LeaveGroupRequest {
                group: "g".into(),
                member_id: "m".into(),
            }]
        }
    }

    impl Examples for LeaveGroupResponse {
        fn examples() -> Vec<Self> {
            vec![LeaveGroupResponse]
        }
    }
}
