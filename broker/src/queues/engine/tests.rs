use std::path::Path;

use super::*;
use crate::groups::{GroupCoordinator, GroupLimits, OffsetStoreOptions};
use crate::log::LogConfig;
use crate::queues::DeadLetterIntent;
use crate::queues::registry::{QUEUES_DIR, QueueRegistry};
use crate::queues::settings::{Ordering, QueueSettings};
use crate::queues::store::{QueueStoreOptions, StateUpdate, finish_dead_letters};

const LIMITS: GroupLimits = GroupLimits {
    group_members_max: 4,
    groups_max: 10,
    session_timeout_ms_min: 100,
    session_timeout_ms_max: 10_000,
    session_timeout_ms_default: 1000,
    heartbeat_interval_ms: 300,
    revoke_timeout_ms: 1000,
};

struct Fixture {
    dir: tempfile::TempDir,
    groups: GroupCoordinator,
    registry: QueueRegistry,
    source: Arc<PartitionLog>,
    dlq: Arc<PartitionLog>,
}

fn log(dir: &Path) -> Arc<PartitionLog> {
    Arc::new(PartitionLog::open(dir, LogConfig::default()).unwrap().0)
}

impl Fixture {
    fn new(settings: QueueSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (groups, _) = GroupCoordinator::open(
            &dir.path().join("groups"),
            LIMITS,
            OffsetStoreOptions::default(),
        )
        .unwrap();
        let (registry, _) = QueueRegistry::open(
            &dir.path().join(QUEUES_DIR),
            QueueStoreOptions::default(),
            &groups,
        )
        .unwrap();
        registry
            .create("q", settings, &groups, |t| t == "jobs")
            .unwrap();
        let source = log(&dir.path().join("jobs-0"));
        let dlq = log(&dir.path().join("dlq-0"));
        Self {
            dir,
            groups,
            registry,
            source,
            dlq,
        }
    }

    /// Everything reopened, as after a crash (the state log is not closed
    /// cleanly beyond what was already durable).
    fn restart(&mut self) {
        self.registry.close_all();
        self.groups.close();
        let (groups, _) = GroupCoordinator::open(
            &self.dir.path().join("groups"),
            LIMITS,
            OffsetStoreOptions::default(),
        )
        .unwrap();
        self.groups = groups;
        self.registry = QueueRegistry::open(
            &self.dir.path().join(QUEUES_DIR),
            QueueStoreOptions::default(),
            &self.groups,
        )
        .unwrap()
        .0;
    }

    fn queue(&self) -> Arc<Queue> {
        self.registry.get("q").unwrap()
    }

    fn sink(&self) -> LogDeadLetterSink {
        LogDeadLetterSink::new(
            &self.queue(),
            vec![Arc::clone(&self.source)],
            vec![Arc::clone(&self.dlq)],
        )
    }

    fn produce(&self, records: &[(Option<&str>, &str)]) {
        let mut b = BatchBuilder::new();
        for (key, value) in records {
            b.push(Record {
                timestamp_ms: 1,
                key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: Bytes::copy_from_slice(value.as_bytes()),
                headers: vec![header("app", "x")],
            });
        }
        self.source.append(b.build()).unwrap();
    }

    fn dead_letters(&self) -> Vec<DecodedRecord> {
        read_from(&self.dlq, 0, 16, |_| true).unwrap()
    }
}

fn settings() -> QueueSettings {
    let mut s = QueueSettings::new("q", "jobs");
    s.max_deliveries = 2;
    s.window_records = 4;
    s
}

fn header_value(r: &DecodedRecord, key: &str) -> String {
    let h = r.headers.iter().find(|h| h.key == key).expect(key);
    String::from_utf8(h.value.to_vec()).unwrap()
}

#[test]
fn fill_follows_the_log_and_hands_out_its_records() {
    let f = Fixture::new(settings());
    let q = f.queue();
    assert_eq!(q.fill(0, &f.source).unwrap(), 0);
    f.produce(&[(None, "a"), (None, "b"), (None, "c")]);
    f.produce(&[(None, "d"), (None, "e"), (None, "f")]);
    // The window takes 4.
    assert_eq!(q.fill(0, &f.source).unwrap(), 4);
    assert_eq!(q.fill(0, &f.source).unwrap(), 0);
    let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 3, 0));
    let offsets: Vec<u64> = ds.iter().map(|d| d.offset).collect();
    // The fill decoded both batches once and kept all 6 records, 2 beyond
    // the window's room; the hand-out takes 3.
    assert_eq!(q.cache().len(), 6);
    let records = q.take_handed_out(0, &f.source, &offsets).unwrap();
    assert_eq!(q.cache().len(), 3);
    let values: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, ["a", "b", "c"]);
    // Taken once; asked again (a redelivery), they come from the log.
    let again = q.take_handed_out(0, &f.source, &offsets).unwrap();
    assert_eq!(again, records);
    assert_eq!(q.read_records(0, &f.source, &offsets).unwrap(), records);
    let (acked, pending) = q.with_partition(0, 0, |p| {
        ds.iter()
            .map(|d| p.ack(1, d.offset, d.deliveries, 0))
            .collect::<Result<Vec<_>, _>>()
    });
    acked.unwrap();
    pending.wait_blocking().unwrap();
    assert_eq!(q.fill(0, &f.source).unwrap(), 2);
    let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 10, 0));
    let offsets: Vec<u64> = ds.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, [3, 4, 5]);
    let records = q.read_records(0, &f.source, &[3, 5]).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].value, "f");
    // The second fill took 4 and 5 from the cache; all three leave it now.
    assert_eq!(q.cache().len(), 3);
    let records = q.take_handed_out(0, &f.source, &offsets).unwrap();
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(q.cache().is_empty());
}

#[test]
fn keys_from_the_log_drive_key_ordering() {
    let mut s = settings();
    s.ordering = Ordering::Key;
    let f = Fixture::new(s);
    let q = f.queue();
    f.produce(&[(Some("k1"), "a"), (Some("k1"), "b"), (Some("k2"), "c")]);
    q.fill(0, &f.source).unwrap();
    let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 10, 0));
    assert_eq!(ds.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 2]);
}

#[test]
fn max_deliveries_moves_the_record_to_the_dead_letter_topic_with_its_origin() {
    let f = Fixture::new(settings());
    let q = f.queue();
    f.produce(&[(Some("k"), "poison"), (None, "fine")]);
    q.fill(0, &f.source).unwrap();
    for delivery in 1..=2 {
        let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 1, 0));
        assert_eq!((ds[0].offset, ds[0].deliveries), (0, delivery));
        let (outcome, pending) = q.with_partition(0, 0, |p| p.nack(1, 0, delivery, 0, 0));
        outcome.unwrap();
        pending.wait_blocking().unwrap();
    }
    assert_eq!(q.dead_letter(0, &mut f.sink()).unwrap(), 1);
    let dls = f.dead_letters();
    assert_eq!(dls.len(), 1);
    let dl = &dls[0];
    assert_eq!(dl.value, "poison");
    assert_eq!(dl.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(header_value(dl, "app"), "x");
    assert_eq!(header_value(dl, DLQ_HEADER_QUEUE), "q");
    assert_eq!(header_value(dl, DLQ_HEADER_TOPIC), "jobs");
    assert_eq!(header_value(dl, DLQ_HEADER_PARTITION), "0");
    assert_eq!(header_value(dl, DLQ_HEADER_OFFSET), "0");
    assert_eq!(header_value(dl, DLQ_HEADER_DELIVERIES), "2");
    assert!(header_value(dl, DLQ_HEADER_REASON).contains("nacked after 2 deliveries"));
    // Done durably: the floor passed it, and nothing is left to finish.
    assert_eq!(q.store().partition(0).durable.floor, 1);
    assert_eq!(finish_dead_letters(q.store(), &mut f.sink()).unwrap(), 0);
    assert_eq!(f.dead_letters().len(), 1);
}

#[test]
fn a_crash_in_the_middle_of_dead_lettering_never_loses_or_duplicates() {
    let mut f = Fixture::new(settings());
    f.produce(&[(None, "r0"), (None, "r1")]);
    let q = f.queue();
    q.fill(0, &f.source).unwrap();
    let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 2, 0));
    let (r, pending) = q.with_partition(0, 0, |p| {
        p.reject(1, ds[0].offset, 1, "bad r0", 0)?;
        p.reject(1, ds[1].offset, 1, "bad r1", 0)
    });
    r.unwrap();
    pending.wait_blocking().unwrap();
    let (letters, _) = q.with_partition(0, 0, |p| p.take_dead_letters());
    let mut sink = f.sink();
    // r0: intent and append done, crash before `Done`.
    append_dead_letter(q.store(), &mut sink, 0, &letters[0]).unwrap();
    // r1: only the intent is durable.
    let (_, from) = sink.position(0).unwrap();
    q.store()
        .submit(vec![StateUpdate::Intent {
            partition: 0,
            intent: DeadLetterIntent {
                dead_letter: letters[1].clone(),
                dlq_partition: 0,
                dlq_from: from,
            },
        }])
        .wait_blocking()
        .unwrap();
    drop(q);
    f.restart();
    let q = f.queue();
    assert_eq!(finish_dead_letters(q.store(), &mut f.sink()).unwrap(), 1);
    let dls = f.dead_letters();
    let origins: Vec<_> = dls
        .iter()
        .map(|r| header_value(r, DLQ_HEADER_OFFSET))
        .collect();
    assert_eq!(origins, ["0", "1"]);
    assert_eq!(header_value(&dls[1], DLQ_HEADER_REASON), "bad r1");
    // Both are done: rebuilt from the state log, nothing is handed out.
    q.fill(0, &f.source).unwrap();
    let (ds, _) = q.with_partition(0, 0, |p| p.hand_out(1, 10, 0));
    assert!(ds.is_empty());
    assert_eq!(q.with_partition(0, 0, |p| p.floor()).0, 2);
}
