use tokio::time::Instant;

use super::*;
use crate::groups::{GroupLimits, JoinParams, OffsetStoreOptions};
use crate::queues::settings::Ordering;

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
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (groups, _) = GroupCoordinator::open(
            &dir.path().join("groups"),
            LIMITS,
            OffsetStoreOptions::default(),
        )
        .unwrap();
        Self { dir, groups }
    }

    fn open(&self) -> QueueRegistry {
        QueueRegistry::open(
            &self.dir.path().join(QUEUES_DIR),
            QueueStoreOptions::default(),
            &self.groups,
        )
        .unwrap()
        .0
    }

    /// A fresh coordinator, as after a broker restart.
    fn restart_groups(&mut self) {
        self.groups.close();
        self.groups = GroupCoordinator::open(
            &self.dir.path().join("groups"),
            LIMITS,
            OffsetStoreOptions::default(),
        )
        .unwrap()
        .0;
    }
}

fn topics(name: &str) -> bool {
    matches!(name, "jobs" | "other" | "taken")
}

fn join(groups: &GroupCoordinator, group: &str) -> Result<(), GroupError> {
    groups
        .join(
            JoinParams {
                group: group.into(),
                topics: vec![("jobs".into(), 1)],
                client_id: "c".into(),
                host: "h".into(),
                session_timeout_ms: 0,
                member_id: None,
            },
            Instant::now(),
        )
        .map(|_| ())
}

#[test]
fn a_queue_and_its_settings_survive_a_restart() {
    let mut f = Fixture::new();
    let reg = f.open();
    let mut s = QueueSettings::new("mail", "jobs");
    s.ordering = Ordering::Key;
    s.max_deliveries = 7;
    let q = reg.create("mail", s.clone(), &f.groups, topics).unwrap();
    let ((), pending) = q.with_partition(0, 0, |p| {
        p.offer(0, None).unwrap();
        let d = p.hand_out(1, 1, 0);
        p.ack(1, 0, d[0].deliveries, 0).unwrap();
    });
    pending.wait_blocking().unwrap();
    drop(q);
    reg.close_all();
    drop(reg);
    f.restart_groups();
    let reg = f.open();
    let q = reg.get("mail").expect("queue back");
    assert_eq!(q.settings(), s);
    assert_eq!(q.store().partition(0).durable.floor, 1);
    let (floor, _) = q.with_partition(0, 0, |p| p.floor());
    assert_eq!(floor, 1);
    // The name is still a queue's after the restart.
    assert!(matches!(
        join(&f.groups, "mail"),
        Err(GroupError::NameIsQueue(_))
    ));
}

#[test]
fn queues_and_groups_share_one_namespace() {
    let f = Fixture::new();
    let reg = f.open();
    join(&f.groups, "billing").unwrap();
    assert!(matches!(
        reg.create(
            "billing",
            QueueSettings::new("billing", "jobs"),
            &f.groups,
            topics
        ),
        Err(QueueError::Group(GroupError::NameIsGroup(_)))
    ));
    reg.create(
        "mail",
        QueueSettings::new("mail", "jobs"),
        &f.groups,
        topics,
    )
    .unwrap();
    assert!(matches!(
        join(&f.groups, "mail"),
        Err(GroupError::NameIsQueue(_))
    ));
    reg.delete("mail", &f.groups).unwrap();
    join(&f.groups, "mail").unwrap();
    assert!(!f.dir.path().join(QUEUES_DIR).join("mail").exists());
}

#[test]
fn bad_names_topics_and_dead_letter_topics_are_refused() {
    let f = Fixture::new();
    let reg = f.open();
    assert!(matches!(
        reg.create("a/b", QueueSettings::new("a/b", "jobs"), &f.groups, topics),
        Err(QueueError::Settings(SettingsError::QueueName(_)))
    ));
    assert!(matches!(
        reg.create("q", QueueSettings::new("q", "nope"), &f.groups, topics),
        Err(QueueError::TopicNotFound(t)) if t == "nope"
    ));
    let mut s = QueueSettings::new("q", "jobs");
    s.dead_letter_topic = "taken".into();
    assert!(matches!(
        reg.create("q", s, &f.groups, topics),
        Err(QueueError::DeadLetterTopicTaken { .. })
    ));
    let mut s = QueueSettings::new("q1", "jobs");
    s.dead_letter_topic = "shared.dlq".into();
    reg.create("q1", s.clone(), &f.groups, topics).unwrap();
    assert!(matches!(
        reg.create("q2", s, &f.groups, topics),
        Err(QueueError::DeadLetterTopicTaken { by, .. }) if by.contains("q1")
    ));
    assert!(matches!(
        reg.create("q1", QueueSettings::new("q1", "jobs"), &f.groups, topics),
        Err(QueueError::AlreadyExists(_))
    ));
    // A refused creation leaves nothing behind and frees the name.
    join(&f.groups, "q2").unwrap();
    let long = "x".repeat(245);
    assert!(matches!(
        reg.create(&long, QueueSettings::new(&long, "jobs"), &f.groups, topics),
        Err(QueueError::Settings(SettingsError::DeadLetterTopic(_)))
    ));
}

#[test]
fn alter_is_durable_applies_to_partitions_and_keeps_the_binding() {
    let mut f = Fixture::new();
    let reg = f.open();
    let q = reg
        .create("q", QueueSettings::new("q", "jobs"), &f.groups, topics)
        .unwrap();
    q.with_partition(0, 0, |p| p.offer(0, None).unwrap())
        .1
        .wait_blocking()
        .unwrap();
    let new = reg.alter("q", |s| s.lock_ms = 5_000).unwrap();
    assert_eq!(new.lock_ms, 5_000);
    let (deadline, _) = q.with_partition(0, 0, |p| p.hand_out(1, 1, 100)[0].lock_deadline_ms);
    assert_eq!(deadline, 5_100);
    assert!(matches!(
        reg.alter("q", |s| s.topic = "other".into()),
        Err(QueueError::Immutable(_))
    ));
    assert!(matches!(
        reg.alter("q", |s| s.max_deliveries = 0),
        Err(QueueError::Settings(SettingsError::OutOfRange { .. }))
    ));
    assert!(matches!(
        reg.alter("nope", |_| {}),
        Err(QueueError::NotFound(_))
    ));
    drop(q);
    reg.close_all();
    drop(reg);
    f.restart_groups();
    assert_eq!(f.open().get("q").unwrap().settings().lock_ms, 5_000);
}

#[test]
fn half_created_and_half_deleted_queues_are_cleaned_at_open() {
    let mut f = Fixture::new();
    let root = f.dir.path().join(QUEUES_DIR);
    std::fs::create_dir_all(root.join("half")).unwrap();
    std::fs::create_dir_all(root.join("gone~deleted")).unwrap();
    std::fs::write(root.join("gone~deleted").join(SETTINGS_FILE), b"{}").unwrap();
    let reg = f.open();
    assert!(reg.list().is_empty());
    assert!(!root.join("half").exists() && !root.join("gone~deleted").exists());
    // A corrupt settings file is an error naming the file, not a panic.
    reg.create("q", QueueSettings::new("q", "jobs"), &f.groups, topics)
        .unwrap();
    reg.close_all();
    drop(reg);
    std::fs::write(root.join("q").join(SETTINGS_FILE), b"{\"name\": 3}").unwrap();
    f.restart_groups();
    let err = QueueRegistry::open(&root, QueueStoreOptions::default(), &f.groups).unwrap_err();
    assert!(
        matches!(&err, QueueError::BadSettingsFile { path, .. } if path.ends_with("q/queue.json"))
    );
}

#[test]
fn transitions_reach_the_state_log_in_order() {
    let f = Fixture::new();
    let reg = f.open();
    let q = reg
        .create("q", QueueSettings::new("q", "jobs"), &f.groups, topics)
        .unwrap();
    // A partition the log knows nothing of starts at `start`.
    let (floor, pending) = q.with_partition(2, 40, |p| {
        p.offer(40, None).unwrap();
        p.floor()
    });
    pending.wait_blocking().unwrap();
    assert_eq!(floor, 40);
    let ((), pending) = q.with_partition(2, 0, |p| {
        let d = p.hand_out(9, 1, 0);
        p.ack(9, 40, d[0].deliveries, 0).unwrap();
    });
    pending.wait_blocking().unwrap();
    let record = q.store().partition(2);
    assert_eq!(record.durable.floor, 41);
    assert!(record.durable.done.is_empty());
}
