//! Reads the two fields skiff shows of Kafka's embedded consumer protocol:
//! the topics of a member's subscription (its JoinGroup metadata) and the
//! partitions of its assignment (from the leader's SyncGroup), so `skiff
//! group describe` can show what a Kafka consumer subscribes to and owns.
//!
//! The broker never needs these to run a group (assignment is client-side);
//! bytes that do not decode are simply not shown. Both formats start the
//! same way in every version (big-endian, non-flexible):
//!
//! ```text
//! Subscription := version i16 | topics: count i32, count × string | ...
//! Assignment   := version i16 | partitions: count i32,
//!                 count × (topic string | count i32, count × partition i32) | ...
//! string       := len i16 | UTF-8
//! ```
//!
//! Decoding never allocates more than the input's length allows: each count
//! is checked against the bytes left before anything is reserved.

use skiff_protocol::messages::TopicPartition;

/// The protocol type of Kafka consumers.
pub const PROTOCOL_TYPE: &str = "consumer";

/// A bounds-checked big-endian reader over a byte slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).ok()
    }

    /// A count of items of at least `item_bytes_min` bytes each, refused if
    /// the rest of the input cannot hold that many.
    fn count(&mut self, item_bytes_min: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.checked_mul(item_bytes_min)? <= self.0.len()).then_some(n)
    }
}

/// The topics of a consumer's subscription, or `None` if it does not decode.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Cursor(metadata);
    r.i16()?;
    let n = r.count(2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string()?);
    }
    Some(topics)
}

/// The partitions of a consumer's assignment, or `None` if it does not
/// decode (an empty assignment, as before the first sync, is `Some([])`).
pub fn assignment_partitions(assignment: &[u8]) -> Option<Vec<TopicPartition>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Cursor(assignment);
    r.i16()?;
    let topics = r.count(2 + 4)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let topic = r.string()?;
        let n = r.count(4)?;
        out.reserve(n);
        for _ in 0..n {
            let p = u32::try_from(r.i32()?).ok()?;
            out.push(TopicPartition::new(topic.as_str(), p));
        }
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_string(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    /// A v1 subscription (topics, empty user data, owned partitions).
    pub(crate) fn subscription(topics: &[&str]) -> Vec<u8> {
        let mut b = 1i16.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            put_string(&mut b, t);
        }
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b
    }

    /// A v0 assignment of `partitions` of `topic`.
    pub(crate) fn assignment(topic: &str, partitions: &[i32]) -> Vec<u8> {
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        put_string(&mut b, topic);
        b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for p in partitions {
            b.extend_from_slice(&p.to_be_bytes());
        }
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn decodes_subscription_and_assignment() {
        assert_eq!(
            subscription_topics(&subscription(&["a", "bb"])),
            Some(vec!["a".to_owned(), "bb".to_owned()])
        );
        assert_eq!(
            assignment_partitions(&assignment("t", &[0, 2])),
            Some(vec![
                TopicPartition::new("t", 0),
                TopicPartition::new("t", 2)
            ])
        );
        assert_eq!(assignment_partitions(&[]), Some(vec![]));
    }

    #[test]
    fn every_truncation_and_hostile_count_is_refused() {
        let s = subscription(&["topic"]);
        // Cut inside the topic list: the fields after it are not needed.
        for cut in 0..(2 + 4 + 2 + 5) {
            assert_eq!(subscription_topics(&s[..cut]), None, "cut at {cut}");
        }
        let a = assignment("t", &[1, 2, 3]);
        for cut in 1..(2 + 4 + 3 + 4 + 12) {
            assert_eq!(assignment_partitions(&a[..cut]), None, "cut at {cut}");
        }
        // A count of 2^31-1 topics in 6 bytes is refused before reserving.
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(subscription_topics(&huge), None);
        assert_eq!(assignment_partitions(&huge), None);
        // Negative partitions and counts do not decode.
        assert_eq!(assignment_partitions(&assignment("t", &[-1])), None);
        let mut negative = 0i16.to_be_bytes().to_vec();
        negative.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(subscription_topics(&negative), None);
    }
}
