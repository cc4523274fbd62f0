//! DeleteGroup: forgets a group and its committed offsets. Refused while the
//! group has members.

use bytes::BytesMut;

use crate::primitives::{Decode, DecodeError, Encode, Reader, WriteExt};

/// Deletes a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupRequest {
    /// The group.
    pub group: String,
}

/// The group and its offsets are gone (durably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGroupResponse;

impl Encode for DeleteGroupRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_string(&self.group);
    }
}

impl Decode for DeleteGroupRequest {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            group: r.string("group")?,
        })
    }
}

impl Encode for DeleteGroupResponse {
    fn encode(&self, _buf: &mut BytesMut) {}
}

impl Decode for DeleteGroupResponse {
    fn decode(_r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_util::Examples;

    impl Examples for DeleteGroupRequest {
        fn examples() -> Vec<Self> {
            vec![DeleteGroupRequest { group: "g".into() }]
        }
    }

    impl Examples for DeleteGroupResponse {
        fn examples() -> Vec<Self> {
            vec![DeleteGroupResponse]
        }
    }
}
