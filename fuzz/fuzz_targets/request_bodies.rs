//! Every request and response body decoder of the API table on arbitrary
//! bytes (the first byte picks the type, walking `visit_apis`, so a new API
//! is fuzzed without touching this file): never a panic; a body that
//! decodes re-encodes to bytes that decode to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use skiff_protocol::messages::{ApiKey, ApiVisitor, Request, visit_apis};
use skiff_protocol::primitives::{Decode, Encode, decode_body};

fn check<T: Decode + Encode + PartialEq + std::fmt::Debug>(body: &Bytes) {
    if let Ok(value) = decode_body::<T>(body.clone()) {
        let mut buf = BytesMut::new();
        value.encode(&mut buf);
        let again: T = decode_body(buf.freeze()).expect("re-encoded body decodes");
        assert_eq!(again, value);
    }
}

/// Checks the body against the `pick`-th type of the table: even picks are
/// requests, odd ones their responses.
struct Pick {
    pick: usize,
    seen: usize,
    body: Bytes,
}

impl ApiVisitor for Pick {
    fn visit<R: Request>(&mut self) {
        if self.pick == self.seen {
            check::<R>(&self.body);
        } else if self.pick == self.seen + 1 {
            check::<R::Response>(&self.body);
        }
        self.seen += 2;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut pick = Pick {
        pick: usize::from(which) % (2 * ApiKey::ALL.len()),
        seen: 0,
        body: Bytes::copy_from_slice(rest),
    };
    visit_apis(&mut pick);
});
