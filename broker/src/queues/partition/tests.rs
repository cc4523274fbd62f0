use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::queues::settings::Backoff;

const A: MemberId = 1;
const B: MemberId = 2;

fn settings(max_deliveries: u32, ordering: Ordering) -> QueueSettings {
    let mut s = QueueSettings::new("q", "t");
    s.lock_ms = 1000;
    s.max_deliveries = max_deliveries;
    s.ordering = ordering;
    s.window_records = 8;
    s
}

fn queue_with(n: u64, s: QueueSettings) -> PartitionQueue {
    let mut q = PartitionQueue::new(s, 0);
    for o in 0..n {
        assert!(q.offer(o, None).unwrap());
    }
    q
}

fn offsets(ds: &[Delivery]) -> Vec<u64> {
    ds.iter().map(|d| d.offset).collect()
}

#[test]
fn members_share_records_and_acks_move_the_floor() {
    let mut q = queue_with(4, settings(3, Ordering::None));
    let a = q.hand_out(A, 2, 0);
    let b = q.hand_out(B, 5, 0);
    assert_eq!(offsets(&a), [0, 1]);
    assert_eq!(offsets(&b), [2, 3]);
    assert_eq!(a[0].deliveries, 1);
    assert_eq!(a[0].lock_deadline_ms, 1000);
    assert!(q.hand_out(A, 5, 0).is_empty());
    q.ack(B, 2, 1, 10).unwrap();
    assert_eq!(q.floor(), 0, "0 and 1 are still locked");
    q.ack(A, 0, 1, 10).unwrap();
    assert_eq!(q.floor(), 1);
    // Acking someone else's lock, a stale count or twice is refused.
    assert!(matches!(
        q.ack(B, 1, 1, 10),
        Err(QueueStateError::LockLost { offset: 1, .. })
    ));
    assert!(matches!(
        q.ack(A, 1, 2, 10),
        Err(QueueStateError::LockLost { .. })
    ));
    q.ack(A, 1, 1, 10).unwrap();
    assert!(matches!(
        q.ack(A, 1, 1, 10),
        Err(QueueStateError::LockLost { .. })
    ));
    assert!(matches!(
        q.ack(A, 9, 1, 10),
        Err(QueueStateError::NotInWindow { offset: 9, .. })
    ));
    assert_eq!(q.floor(), 3);
    let t = q.take_transitions();
    assert!(t.contains(&Transition::Done { offset: 2 }));
    assert_eq!(t.last(), Some(&Transition::Floor { floor: 3 }));
    q.check_invariants();
}

#[test]
fn the_window_is_bounded_and_refills_as_the_floor_moves() {
    let mut q = queue_with(8, settings(3, Ordering::None));
    assert_eq!(q.room(), 0);
    assert!(!q.offer(8, None).unwrap());
    assert!(matches!(
        q.offer(3, None),
        Err(QueueStateError::OfferedOutOfOrder { offset: 3, end: 8 })
    ));
    let d = q.hand_out(A, 1, 0);
    q.ack(A, d[0].offset, 1, 0).unwrap();
    assert_eq!(q.room(), 1);
    assert!(q.offer(8, None).unwrap());
    // A gap in the log's offsets is skipped.
    let mut q = PartitionQueue::new(settings(3, Ordering::None), 5);
    assert!(q.offer(9, None).unwrap());
    assert_eq!((q.floor(), q.end()), (9, 10));
    q.check_invariants();
}

#[test]
fn an_expired_lock_redelivers_with_a_higher_count() {
    let mut q = queue_with(1, settings(3, Ordering::None));
    let first = q.hand_out(A, 1, 0);
    assert_eq!(q.next_deadline_ms(), Some(1000));
    assert!(q.hand_out(B, 1, 999).is_empty());
    let again = q.hand_out(B, 1, 1000);
    assert_eq!(offsets(&again), [0]);
    assert_eq!(again[0].deliveries, 2);
    assert_eq!(q.stats().lock_expiries_total, 1);
    // The first holder's late ack is refused: B holds the record now.
    assert!(matches!(
        q.ack(A, 0, first[0].deliveries, 1001),
        Err(QueueStateError::LockLost { .. })
    ));
    q.ack(B, 0, 2, 1001).unwrap();
    q.check_invariants();
}

#[test]
fn extend_keeps_the_lock_past_its_first_deadline() {
    let mut q = queue_with(1, settings(3, Ordering::None));
    q.hand_out(A, 1, 0);
    assert_eq!(q.extend(A, 0, 1, 5000, 900).unwrap(), 5900);
    assert!(q.hand_out(B, 1, 2000).is_empty());
    assert!(matches!(
        q.extend(B, 0, 1, 5000, 2000),
        Err(QueueStateError::LockLost { .. })
    ));
    q.ack(A, 0, 1, 5000).unwrap();
    // Extending after expiry is too late.
    let mut q = queue_with(1, settings(3, Ordering::None));
    q.hand_out(A, 1, 0);
    assert!(matches!(
        q.extend(A, 0, 1, 5000, 1000),
        Err(QueueStateError::LockLost { .. })
    ));
    q.check_invariants();
}

#[test]
fn nack_delay_is_respected_and_backoff_grows() {
    let mut s = settings(5, Ordering::None);
    s.backoff = Backoff {
        initial_ms: 100,
        multiplier: 2,
        max_ms: 10_000,
    };
    let mut q = queue_with(1, s);
    q.hand_out(A, 1, 0);
    // Asked 50 ms, the backoff says 100 for the first delivery.
    assert_eq!(q.nack(A, 0, 1, 50, 10).unwrap(), NackOutcome::Delayed(110));
    assert!(q.hand_out(A, 1, 109).is_empty());
    let d = q.hand_out(A, 1, 110);
    assert_eq!(d[0].deliveries, 2);
    // Asked 1000 ms, more than the backoff's 200.
    assert_eq!(
        q.nack(A, 0, 2, 1000, 200).unwrap(),
        NackOutcome::Delayed(1200)
    );
    assert!(q.take_transitions().contains(&Transition::Delayed {
        offset: 0,
        until_ms: 1200,
        deliveries: 2
    }));
    q.hand_out(A, 1, 1200);
    assert_eq!(
        q.nack(A, 0, 3, 0, 1300).unwrap(),
        NackOutcome::Delayed(1700)
    );
    q.check_invariants();
    // Without a backoff, a nack without delay is available at once.
    let mut q = queue_with(1, settings(5, Ordering::None));
    q.hand_out(A, 1, 0);
    assert_eq!(q.nack(A, 0, 1, 0, 0).unwrap(), NackOutcome::Available);
    assert_eq!(offsets(&q.hand_out(B, 1, 0)), [0]);
}

#[test]
fn max_deliveries_dead_letters_and_only_dead_lettered_finishes() {
    let mut q = queue_with(2, settings(2, Ordering::None));
    q.hand_out(A, 1, 0);
    assert_eq!(q.nack(A, 0, 1, 0, 0).unwrap(), NackOutcome::Available);
    q.hand_out(A, 1, 0);
    assert_eq!(q.nack(A, 0, 2, 0, 0).unwrap(), NackOutcome::DeadLetter);
    // Lock expiry on the last delivery dead-letters too.
    q.hand_out(B, 1, 0);
    q.hand_out(B, 1, 1000);
    q.expire(2000);
    let dl = q.take_dead_letters();
    assert_eq!(dl.len(), 2);
    assert_eq!(dl[0].offset, 0);
    assert_eq!(dl[0].deliveries, 2);
    assert!(dl[0].reason.contains("nacked after 2 deliveries"));
    assert!(dl[1].reason.contains("lock expired"));
    assert!(q.take_dead_letters().is_empty());
    // Neither is handed out again, and the floor waits for the DLQ append.
    assert!(q.hand_out(A, 5, 3000).is_empty());
    assert_eq!(q.floor(), 0);
    assert_eq!(q.stats().dead_lettering, 2);
    q.dead_lettered(0).unwrap();
    q.dead_lettered(1).unwrap();
    assert_eq!(q.floor(), 2);
    assert_eq!(q.stats().dead_lettered_total, 2);
    assert!(matches!(
        q.dead_lettered(1),
        Err(QueueStateError::NotInWindow { .. })
    ));
    q.check_invariants();
}

#[test]
fn reject_dead_letters_at_once_with_its_reason() {
    let mut q = queue_with(2, settings(5, Ordering::None));
    q.hand_out(A, 2, 0);
    q.reject(A, 1, 1, "bad address", 0).unwrap();
    let long = "é".repeat(REASON_BYTES_MAX);
    q.reject(A, 0, 1, &long, 0).unwrap();
    let dl = q.take_dead_letters();
    assert_eq!(dl[0].reason, "bad address");
    assert!(dl[1].reason.len() <= REASON_BYTES_MAX && dl[1].reason.len() > 1000);
    assert!(matches!(
        q.dead_lettered(5),
        Err(QueueStateError::NotInWindow { .. })
    ));
    q.check_invariants();
}

#[test]
fn key_ordering_holds_a_key_while_its_earlier_record_is_out() {
    let mut q = PartitionQueue::new(settings(5, Ordering::Key), 0);
    for (o, k) in [(0, "a"), (1, "a"), (2, "b"), (3, "a"), (4, "c")] {
        q.offer(o, Some(k.as_bytes())).unwrap();
    }
    q.offer(5, None).unwrap();
    assert_eq!(offsets(&q.hand_out(A, 10, 0)), [0, 2, 4, 5]);
    assert!(q.hand_out(B, 10, 0).is_empty());
    // A delayed "a" still holds the key.
    q.nack(A, 0, 1, 500, 0).unwrap();
    assert!(q.hand_out(B, 10, 100).is_empty());
    assert_eq!(offsets(&q.hand_out(B, 10, 500)), [0]);
    q.ack(B, 0, 2, 600).unwrap();
    assert_eq!(offsets(&q.hand_out(B, 10, 600)), [1]);
    q.check_invariants();
    // Without ordering, the same records all go out at once.
    let mut q = PartitionQueue::new(settings(5, Ordering::None), 0);
    for o in 0..4 {
        q.offer(o, Some(b"a")).unwrap();
    }
    assert_eq!(q.hand_out(A, 10, 0).len(), 4);
}

#[test]
fn release_and_member_loss_make_records_available() {
    let mut q = queue_with(3, settings(5, Ordering::None));
    q.hand_out(A, 2, 0);
    q.hand_out(B, 1, 0);
    q.release(A, 0, 1, 0).unwrap();
    assert_eq!(q.release_member(A, 0), 1);
    assert_eq!(q.stats().available, 2);
    assert_eq!(q.stats().in_flight, 1);
    assert_eq!(offsets(&q.hand_out(B, 5, 0)), [0, 1]);
    q.check_invariants();
}

#[test]
fn retention_moves_the_floor_and_counts_expired_records() {
    let mut q = queue_with(6, settings(5, Ordering::None));
    q.hand_out(A, 2, 0);
    q.ack(A, 1, 1, 0).unwrap();
    q.take_transitions();
    q.retain(4);
    assert_eq!(q.floor(), 4);
    // 0 (locked), 2 and 3 (available) were unfinished; 1 was done.
    assert_eq!(q.stats().expired_total, 3);
    assert_eq!(q.take_transitions(), [Transition::Floor { floor: 4 }]);
    assert!(matches!(
        q.ack(A, 0, 1, 0),
        Err(QueueStateError::LockLost { .. })
    ));
    assert_eq!(offsets(&q.hand_out(A, 5, 0)), [4, 5]);
    // Past the window's end: the window restarts at the log start.
    q.retain(20);
    assert_eq!((q.floor(), q.end()), (20, 20));
    assert!(q.offer(20, None).unwrap());
    q.check_invariants();
}

#[test]
fn recovery_applies_durable_facts_as_records_return() {
    let mut q = queue_with(6, settings(5, Ordering::None));
    let ds = q.hand_out(A, 4, 0);
    assert_eq!(ds.len(), 4);
    q.ack(A, 0, 1, 0).unwrap();
    q.ack(A, 2, 1, 0).unwrap();
    q.nack(A, 3, 1, 5000, 0).unwrap();
    let durable = q.durable();
    assert_eq!(durable.floor, 1);
    assert_eq!(durable.done, BTreeSet::from([2]));
    assert_eq!(durable.delayed, BTreeMap::from([(3, 5000)]));
    assert_eq!(durable.deliveries, BTreeMap::from([(1, 1), (3, 1)]));

    let mut r = PartitionQueue::recover(settings(5, Ordering::None), durable);
    assert_eq!(r.end(), 1);
    for o in 1..6 {
        r.offer(o, None).unwrap();
    }
    // 1 was locked at the crash: delivered again, count 2. 2 is done, 3 is
    // still delayed.
    let ds = r.hand_out(B, 10, 100);
    assert_eq!(offsets(&ds), [1, 4, 5]);
    assert_eq!(ds[0].deliveries, 2);
    assert_eq!(ds[1].deliveries, 1);
    // At 5000 the delay of 3 is over (and the new locks ran out).
    let ds = r.hand_out(B, 10, 5000);
    let three = ds.iter().find(|d| d.offset == 3).expect("3 is available");
    assert_eq!(three.deliveries, 2);
    assert_eq!(offsets(&ds), [1, 3, 4, 5]);
    r.check_invariants();
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Offer { key: Option<u8> },
    HandOut { member: u8, max: u8 },
    Ack { pick: u8 },
    Nack { pick: u8, delay_ms: u16 },
    Reject { pick: u8 },
    Extend { pick: u8, lock_ms: u16 },
    Release { pick: u8 },
    Leave { member: u8 },
    DeadLettered,
    Advance { ms: u16 },
    Retain { ahead: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::of(0u8..4).prop_map(|key| Op::Offer { key }),
        3 => (0u8..3, 1u8..4).prop_map(|(member, max)| Op::HandOut { member, max }),
        3 => any::<u8>().prop_map(|pick| Op::Ack { pick }),
        2 => (any::<u8>(), 0u16..3000).prop_map(|(pick, delay_ms)| Op::Nack { pick, delay_ms }),
        1 => any::<u8>().prop_map(|pick| Op::Reject { pick }),
        1 => (any::<u8>(), 0u16..3000).prop_map(|(pick, lock_ms)| Op::Extend { pick, lock_ms }),
        1 => any::<u8>().prop_map(|pick| Op::Release { pick }),
        1 => (0u8..3).prop_map(|member| Op::Leave { member }),
        2 => Just(Op::DeadLettered),
        2 => (0u16..2500).prop_map(|ms| Op::Advance { ms }),
        1 => (0u8..3).prop_map(|ahead| Op::Retain { ahead }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Under any workload the invariants hold, and every offered record
    /// ends exactly once: acked, dead-lettered or expired by retention;
    /// nothing finished is handed out again.
    #[test]
    fn random_workloads_keep_the_invariants(
        ordering in prop_oneof![Just(Ordering::None), Just(Ordering::Key)],
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut s = settings(3, ordering);
        s.backoff = Backoff { initial_ms: 10, multiplier: 2, max_ms: 500 };
        let mut q = PartitionQueue::new(s, 0);
        let mut now = 0i64;
        let mut next_offset = 0u64;
        let mut offered = 0u64;
        // Deliveries each model member believes it holds.
        let mut held: Vec<(MemberId, Delivery)> = Vec::new();
        let mut finished: BTreeSet<u64> = BTreeSet::new();
        let mut max_count: BTreeMap<u64, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Offer { key } => {
                    let key = key.map(|k| [k]);
                    if q.offer(next_offset, key.as_ref().map(|k| &k[..])).unwrap() {
                        next_offset += 1;
                        offered += 1;
                    }
                }
                Op::HandOut { member, max } => {
                    for d in q.hand_out(MemberId::from(member), usize::from(max), now) {
                        prop_assert!(!finished.contains(&d.offset), "finished {} handed out", d.offset);
                        let c = max_count.entry(d.offset).or_default();
                        prop_assert_eq!(d.deliveries, *c + 1, "counts grow by one");
                        *c = d.deliveries;
                        held.push((MemberId::from(member), d));
                    }
                }
                Op::Ack { pick } if !held.is_empty() => {
                    let (m, d) = held.swap_remove(usize::from(pick) % held.len());
                    if q.ack(m, d.offset, d.deliveries, now).is_ok() {
                        prop_assert!(finished.insert(d.offset), "acked twice");
                        prop_assert!(d.lock_deadline_ms > now, "acked after its lock ran out");
                    }
                }
                Op::Nack { pick, delay_ms } if !held.is_empty() => {
                    let (m, d) = held.swap_remove(usize::from(pick) % held.len());
                    let _ = q.nack(m, d.offset, d.deliveries, u32::from(delay_ms), now);
                }
                Op::Reject { pick } if !held.is_empty() => {
                    let (m, d) = held.swap_remove(usize::from(pick) % held.len());
                    let _ = q.reject(m, d.offset, d.deliveries, "no", now);
                }
                Op::Extend { pick, lock_ms } if !held.is_empty() => {
                    let i = usize::from(pick) % held.len();
                    let (m, d) = held[i];
                    if let Ok(deadline) = q.extend(m, d.offset, d.deliveries, u32::from(lock_ms), now) {
                        prop_assert!(deadline > now);
                        held[i].1.lock_deadline_ms = deadline;
                    }
                }
                Op::Release { pick } if !held.is_empty() => {
                    let (m, d) = held.swap_remove(usize::from(pick) % held.len());
                    let _ = q.release(m, d.offset, d.deliveries, now);
                }
                Op::Leave { member } => {
                    q.release_member(MemberId::from(member), now);
                }
                Op::DeadLettered => {
                    for dl in q.take_dead_letters() {
                        prop_assert!(dl.deliveries <= 3);
                        q.dead_lettered(dl.offset).unwrap();
                        prop_assert!(finished.insert(dl.offset), "dead-lettered twice");
                    }
                }
                Op::Advance { ms } => {
                    now += i64::from(ms);
                    q.expire(now);
                }
                Op::Retain { ahead } => {
                    let old_floor = q.floor();
                    let start = old_floor + u64::from(ahead);
                    let before = q.stats().expired_total;
                    let unfinished = (q.floor()..start.min(q.end()))
                        .filter(|o| !finished.contains(o))
                        .count() as u64;
                    q.retain(start);
                    prop_assert_eq!(q.stats().expired_total - before, unfinished);
                    for o in old_floor..q.floor() {
                        finished.insert(o);
                    }
                    next_offset = next_offset.max(q.end());
                }
                _ => {}
            }
            q.check_invariants();
            let floor = q.floor();
            prop_assert!((0..floor).all(|o| finished.contains(&o)), "below the floor is finished");
        }
        let s = q.stats();
        prop_assert_eq!(
            s.available + s.in_flight + s.delayed + s.dead_lettering
                + s.acked_total + s.dead_lettered_total + s.expired_total,
            offered,
            "every offered record is unfinished in the window or finished exactly once"
        );
    }
}
