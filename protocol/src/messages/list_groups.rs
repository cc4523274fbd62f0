//! ListGroups: every group the broker knows, with or without members (a
//! group with committed offsets stays listed until it is deleted).

use bytes::{BufMut, BytesMut};

use super::describe_group::GroupState;
use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Lists groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsRequest;

/// One group in the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group name.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Members now.
    pub members: u32,
    /// Its generation (0 when it never had members since the broker started).
    pub generation: u32,
}

/// The groups, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsResponse {
    /// The groups.
    pub groups: Vec<GroupListing>,
}

impl Encode for ListGroupsRequest {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for ListGroupsRequest {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

/// Wire size of a listing without its name's bytes.
const GROUP_LISTING_BYTES_MIN: usize = 2 + 1 + 4 + 4;

impl Encode for ListGroupsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.groups.len() as u32);
        for g in &self.groups {
            buf.put_string(&g.group);
            buf.put_u8(g.state.as_u8());
            buf.put_u32_le(g.members);
            buf.put_u32_le(g.generation);
        }
    }
}

impl Decode for ListGroupsResponse {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count("groups", GROUP_LISTING_BYTES_MIN)?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push(GroupListing {
                group: r.string("group")?,
                state: GroupState::from_u8(r.u8("state")?)?,
                members: r.u32("members")?,
                generation: r.u32("generation")?,
            });
        }
        Ok(Self { groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for ListGroupsRequest {
        fn examples() -> Vec<Self> {
            vec![ListGroupsRequest]
        }
    }

    impl Examples for ListGroupsResponse {
        fn examples() -> Vec<Self> {
            vec![ListGroupsResponse {
                groups: vec![
                    GroupListing {
                        group: "a".into(),
                        state: GroupState::Empty,
                        members: 0,
                        generation: 0,
                    },
                    GroupListing {
                        group: "b".into(),
                        state: GroupState::Rebalancing,
                        members: 3,
                        generation: 7,
                    },
                ],
            }]
        }
    }
}
