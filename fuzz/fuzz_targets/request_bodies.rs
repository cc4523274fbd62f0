//! Every request and response body decoder on arbitrary bytes (the first
//! byte picks the type): never a panic; a body that decodes re-encodes to
//! bytes that decode to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use skiff_protocol::messages::*;
use skiff_protocol::primitives::{Decode, Encode, decode_body};

fn check<T: Decode + Encode + PartialEq + std::fmt::Debug>(body: Bytes) {
    if let Ok(value) = decode_body::<T>(body) {
        let mut buf = BytesMut::new();
        value.encode(&mut buf);
        let again: T = decode_body(buf.freeze()).expect("re-encoded body decodes");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(rest);
    match which % 32 {
        0 => check::<HandshakeRequest>(body),
        1 => check::<CreateTopicRequest>(body),
        2 => check::<DeleteTopicRequest>(body),
        3 => check::<DescribeTopicRequest>(body),
        4 => check::<ProduceRequest>(body),
        5 => check::<FetchRequest>(body),
        6 => check::<ListOffsetsRequest>(body),
        7 => check::<JoinGroupRequest>(body),
        8 => check::<HeartbeatRequest>(body),
        9 => check::<LeaveGroupRequest>(body),
        10 => check::<CommitOffsetsRequest>(body),
        11 => check::<FetchOffsetsRequest>(body),
        12 => check::<DescribeGroupRequest>(body),
        13 => check::<ResetOffsetsRequest>(body),
        14 => check::<DeleteGroupRequest>(body),
        15 => check::<FetchResponse>(body),
        16 => check::<DescribeTopicResponse>(body),
        17 => check::<JoinGroupResponse>(body),
        18 => check::<HeartbeatResponse>(body),
        19 => check::<DescribeGroupResponse>(body),
        20 => check::<ListTopicsResponse>(body),
        21 => check::<ProduceResponse>(body),
        22 => check::<InitProducerIdResponse>(body),
        23 => check::<PutUserRequest>(body),
        24 => check::<GrantAclRequest>(body),
        25 => check::<RevokeAclRequest>(body),
        26 => check::<ListAclsRequest>(body),
        27 => check::<ListAclsResponse>(body),
        28 => check::<ListUsersResponse>(body),
        29 => check::<CreateTokenResponse>(body),
        30 => check::<RevokeTokenRequest>(body),
        _ => check::<FetchOffsetsResponse>(body),
    }
});
