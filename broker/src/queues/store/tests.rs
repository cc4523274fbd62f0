use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::queues::partition::PartitionQueue;
use crate::queues::settings::QueueSettings;

fn open(dir: &Path) -> (QueueStore, StateRecovery) {
    QueueStore::open(dir, QueueStoreOptions::default()).expect("open")
}

fn done(store: &QueueStore, partition: u32, offset: u64) {
    store
        .submit_transitions(partition, vec![Transition::Done { offset }])
        .wait_blocking()
        .expect("done");
}

fn dl(offset: u64) -> DeadLetter {
    DeadLetter {
        offset,
        deliveries: 3,
        reason: "bad".into(),
    }
}

#[test]
fn transitions_survive_reopen_and_the_floor_drops_what_is_below() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = open(dir.path());
    assert_eq!(report, StateRecovery::default());
    store
        .submit_transitions(
            0,
            vec![
                Transition::Delivered {
                    offset: 1,
                    deliveries: 1,
                },
                Transition::Delayed {
                    offset: 2,
                    until_ms: 700,
                    deliveries: 2,
                },
                Transition::Done { offset: 3 },
                Transition::Done { offset: 0 },
                Transition::Floor { floor: 1 },
            ],
        )
        .wait_blocking()
        .unwrap();
    done(&store, 4, 9);
    drop(store);
    let (store, report) = open(dir.path());
    assert_eq!((report.records, report.truncated_bytes), (2, 0));
    let p0 = store.partition(0).durable;
    assert_eq!(p0.floor, 1);
    assert_eq!(p0.done, BTreeSet::from([3]));
    assert_eq!(p0.deliveries, BTreeMap::from([(1, 1), (2, 2)]));
    assert_eq!(p0.delayed, BTreeMap::from([(2, 700)]));
    assert_eq!(store.partitions(), [0, 4]);
    store
        .submit_transitions(0, vec![Transition::Floor { floor: 4 }])
        .wait_blocking()
        .unwrap();
    let p0 = store.partition(0).durable;
    assert_eq!(
        p0,
        PartitionDurable {
            floor: 4,
            ..PartitionDurable::default()
        }
    );
}

#[test]
fn torn_and_corrupt_tails_are_cut_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    for o in 0..10 {
        done(&store, 0, o);
    }
    drop(store);
    let path = dir.path().join(STATE_FILE);
    let whole = std::fs::read(&path).unwrap();
    let record_len = whole.len() / 10;
    for cut in 1..record_len {
        std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
        let (store, report) = open(dir.path());
        assert_eq!(report.records, 9, "cut {cut}");
        assert_eq!(report.truncated_bytes, (record_len - cut) as u64);
        let d = store.partition(0).durable;
        assert!(d.done.contains(&8) && !d.done.contains(&9));
        // The store appends after the valid prefix.
        done(&store, 0, 9);
        drop(store);
        let (store, report) = open(dir.path());
        assert_eq!((report.records, report.truncated_bytes), (10, 0));
        assert!(store.partition(0).durable.done.contains(&9));
    }
    let mut flipped = whole.clone();
    flipped[5 * record_len + frame::FRAME_HEADER_BYTES + 5] ^= 0x04;
    std::fs::write(&path, &flipped).unwrap();
    let (store, report) = open(dir.path());
    assert_eq!(report.records, 5);
    assert_eq!(
        store.partition(0).durable.done,
        (0..5).collect::<BTreeSet<_>>()
    );
    drop(store);
    let mut garbage = whole.clone();
    garbage.extend_from_slice(&[0x7f; 29]);
    std::fs::write(&path, &garbage).unwrap();
    let (_, report) = open(dir.path());
    assert_eq!((report.records, report.truncated_bytes), (10, 29));
}

#[test]
fn compaction_bounds_the_file_and_keeps_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let options = QueueStoreOptions {
        compact_bytes_min: 2048,
        compact_ratio: 4,
    };
    let (store, _) = QueueStore::open(dir.path(), options).unwrap();
    let path = dir.path().join(STATE_FILE);
    // A queue that acks everything but every 10th record, which stays
    // delayed; the floor follows.
    let mut s = QueueSettings::new("q", "t");
    s.window_records = 200;
    let mut q = PartitionQueue::new(s, 0);
    let mut max_len = 0;
    for o in 0..3000u64 {
        assert!(q.offer(o, None).unwrap());
        let d = q.hand_out(1, 1, 0);
        if o % 10 == 0 && o > 2900 {
            q.nack(1, o, d[0].deliveries, 1_000_000, 0).unwrap();
        } else {
            q.ack(1, o, d[0].deliveries, 0).unwrap();
        }
        store
            .submit_transitions(0, q.take_transitions())
            .wait_blocking()
            .unwrap();
        max_len = max_len.max(std::fs::metadata(&path).unwrap().len());
    }
    // Without compaction: ~3000 × 3 entries of ~17 bytes, ~150 KB.
    assert!(max_len < 16 * 1024, "file grew to {max_len} bytes");
    let expected = store.partition(0);
    assert_eq!(expected.durable, q.durable());
    drop(store);
    assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
    let (store, report) = QueueStore::open(dir.path(), options).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(store.partition(0), expected);
}

#[test]
fn a_leftover_compaction_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    done(&store, 0, 3);
    drop(store);
    std::fs::write(dir.path().join(COMPACT_TMP_FILE), b"half a snapshot").unwrap();
    let (store, _) = open(dir.path());
    assert!(store.partition(0).durable.done.contains(&3));
    assert!(!dir.path().join(COMPACT_TMP_FILE).exists());
}

#[test]
fn an_empty_submit_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    store.submit(Vec::new()).wait_blocking().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_closed_store_refuses_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    store.close();
    assert!(matches!(
        store
            .submit_transitions(0, vec![Transition::Done { offset: 1 }])
            .wait_blocking(),
        Err(QueueStoreError::Closed)
    ));
}

/// A dead-letter topic in memory: one partition per source partition,
/// holding (source partition, offset) pairs; it can be told to fail.
#[derive(Default)]
struct MemorySink {
    partitions: BTreeMap<u32, Vec<(u32, u64)>>,
    fail_appends: bool,
}

impl DeadLetterSink for MemorySink {
    fn position(&mut self, partition: u32) -> Result<(u32, u64), SinkError> {
        let len = self.partitions.entry(partition).or_default().len();
        Ok((partition, len as u64))
    }
    fn contains(
        &mut self,
        dlq: u32,
        from: u64,
        partition: u32,
        offset: u64,
    ) -> Result<bool, SinkError> {
        let records = self.partitions.entry(dlq).or_default();
        let from = usize::try_from(from).unwrap().min(records.len());
        Ok(records[from..].contains(&(partition, offset)))
    }
    fn append(&mut self, dlq: u32, partition: u32, dl: &DeadLetter) -> Result<(), SinkError> {
        if self.fail_appends {
            return Err(SinkError {
                topic: "t.q.dlq".into(),
                reason: "disk full".into(),
            });
        }
        self.partitions
            .entry(dlq)
            .or_default()
            .push((partition, dl.offset));
        Ok(())
    }
}

#[test]
fn dead_lettering_interrupted_anywhere_ends_exactly_once() {
    // Crash after the intent, before the append: recovery appends.
    let dir = tempfile::tempdir().unwrap();
    let mut sink = MemorySink::default();
    let (store, _) = open(dir.path());
    sink.fail_appends = true;
    assert!(matches!(
        append_dead_letter(&store, &mut sink, 0, &dl(7)),
        Err(DeadLetterError::Sink(_))
    ));
    drop(store);
    sink.fail_appends = false;
    let (store, report) = open(dir.path());
    assert_eq!(report.intents, 1);
    assert_eq!(finish_dead_letters(&store, &mut sink).unwrap(), 1);
    assert_eq!(sink.partitions[&0], [(0, 7)]);
    drop(store);
    // Recovery did finish it: nothing left to do, nothing appended twice.
    let (store, report) = open(dir.path());
    assert_eq!(report.intents, 0);
    assert!(store.partition(0).durable.done.contains(&7));
    assert_eq!(finish_dead_letters(&store, &mut sink).unwrap(), 0);
    assert_eq!(sink.partitions[&0], [(0, 7)]);

    // Crash after the append, before `Done`: recovery finds it and only
    // records `Done`. Another record's dead letter sits before it.
    sink.partitions.entry(1).or_default().push((1, 2));
    append_dead_letter(&store, &mut sink, 1, &dl(5)).unwrap();
    drop(store);
    let (store, report) = open(dir.path());
    assert_eq!(report.intents, 1);
    assert_eq!(finish_dead_letters(&store, &mut sink).unwrap(), 0);
    assert_eq!(sink.partitions[&1], [(1, 2), (1, 5)]);
    assert!(store.partition(1).durable.done.contains(&5));
    assert!(store.partition(1).intents.is_empty());

    // The normal path: the state machine marks the record done once the
    // append returned.
    let mut q = PartitionQueue::new(QueueSettings::new("q", "t"), 0);
    q.offer(0, None).unwrap();
    let d = q.hand_out(1, 1, 0);
    q.reject(1, 0, d[0].deliveries, "no", 0).unwrap();
    for letter in q.take_dead_letters() {
        append_dead_letter(&store, &mut sink, 2, &letter).unwrap();
        q.dead_lettered(letter.offset).unwrap();
    }
    store
        .submit_transitions(2, q.take_transitions())
        .wait_blocking()
        .unwrap();
    drop(store);
    let (store, report) = open(dir.path());
    assert_eq!(report.intents, 0);
    assert_eq!(store.partition(2).durable.floor, 1);
    assert_eq!(sink.partitions[&2], [(2, 0)]);
}

#[test]
fn recovered_state_rebuilds_the_state_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let mut q = PartitionQueue::new(QueueSettings::new("q", "t"), 0);
    for o in 0..5 {
        q.offer(o, None).unwrap();
    }
    let ds = q.hand_out(1, 5, 0);
    q.ack(1, 1, ds[1].deliveries, 0).unwrap();
    q.nack(1, 2, ds[2].deliveries, 60_000, 0).unwrap();
    q.ack(1, 0, ds[0].deliveries, 0).unwrap();
    store
        .submit_transitions(3, q.take_transitions())
        .wait_blocking()
        .unwrap();
    drop(store);
    let (store, _) = open(dir.path());
    let mut r = PartitionQueue::recover(QueueSettings::new("q", "t"), store.partition(3).durable);
    assert_eq!(r.end(), 2);
    for o in 2..5 {
        r.offer(o, None).unwrap();
    }
    // 3 and 4 were locked at the crash: back, counted. 2 still waits.
    let ds = r.hand_out(2, 10, 10);
    assert_eq!(
        ds.iter()
            .map(|d| (d.offset, d.deliveries))
            .collect::<Vec<_>>(),
        [(3, 2), (4, 2)]
    );
    let ds = r.hand_out(2, 10, 60_000);
    assert_eq!((ds[0].offset, ds[0].deliveries), (2, 2));
}
