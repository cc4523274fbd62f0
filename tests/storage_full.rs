//! A real full disk, end to end: the broker's data directory on a small
//! tmpfs, produces until the filesystem is full. Produces then fail with
//! `StorageFull` naming the file, reads keep working, nothing half-written
//! becomes visible, and produces succeed again once space is freed, without
//! a restart.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test says so and
//! passes without checking anything (CI runs as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::{RawConn, test_config};
use skiff_broker::Broker;
use skiff_protocol::ErrorCode;
use skiff_protocol::batch::{BatchBuilder, BatchIter, Record, decode_records};
use skiff_protocol::messages::{DescribeTopicRequest, FetchRequest, ProduceRequest};

/// Size of the filesystem under the data directory.
const FS_BYTES: u64 = 4 * 1024 * 1024;
/// A file taking room on it, deleted to free space.
const BALLAST_BYTES: usize = 512 * 1024;
/// Bytes of one produced value.
const VALUE_BYTES: usize = 16 * 1024;
/// Produces tried before the filesystem must be full (4 MiB / 16 KiB = 256).
const PRODUCES_MAX: usize = 1_000;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the broker may still hold files open if the test failed.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The value of the `i`th produce.
fn batch_value(i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; VALUE_BYTES]
}

fn batch(i: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    b.push(Record {
        timestamp_ms: 1,
        key: None,
        value: Bytes::from(batch_value(i)),
        headers: vec![],
    });
    b.build()
}

fn produce(i: usize) -> ProduceRequest {
    ProduceRequest {
        topic: "t".into(),
        partition: 0,
        batch: batch(i),
    }
}

/// Every value stored in partition 0, read from offset 0.
async fn read_all(conn: &mut RawConn) -> Vec<Bytes> {
    let mut values = Vec::new();
    loop {
        let resp = conn
            .call(FetchRequest {
                topic: "t".into(),
                partition: 0,
                offset: values.len() as u64,
                max_bytes: 1024 * 1024,
                max_wait_ms: 0,
            })
            .await
            .expect("fetch works on a full disk");
        if resp.records.is_empty() {
            return values;
        }
        for b in BatchIter::new(resp.records) {
            for r in decode_records(&b.expect("batch")).expect("records") {
                assert_eq!(r.offset, values.len() as u64, "contiguous offsets");
                values.push(r.value);
            }
        }
    }
}

#[tokio::test]
async fn a_full_disk_fails_produces_keeps_reads_and_recovers_when_space_frees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let Some(fs) = Tmpfs::mount(&mnt, FS_BYTES) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; BALLAST_BYTES]).expect("ballast");
    let mut config = test_config(&fs.0.join("data"));
    config.segment_bytes = 256 * 1024;
    let broker = Broker::start(config).await.expect("start");
    let mut conn = RawConn::handshaken(broker.local_addr()).await;
    conn.create_topic("t", 1).await;

    // Fill the disk.
    let mut stored = 0;
    let full = loop {
        assert!(stored < PRODUCES_MAX, "the disk never filled up");
        match conn.call(produce(stored)).await {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(full.0, ErrorCode::StorageFull, "{}", full.1);
    assert!(
        full.1.contains("storage full"),
        "names the cause: {}",
        full.1
    );
    // Still full: refused again, nothing half-written visible.
    let again = conn.call(produce(stored)).await.expect_err("still full");
    assert_eq!(again.0, ErrorCode::StorageFull, "{}", again.1);
    let described = conn
        .call(DescribeTopicRequest { name: "t".into() })
        .await
        .expect("describe works on a full disk");
    assert_eq!(described.partitions[0].log_end_offset, stored as u64);

    // Reads keep working and return exactly what was acknowledged.
    let values = read_all(&mut conn).await;
    assert_eq!(values.len(), stored);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v[..], batch_value(i)[..], "value {i}");
    }

    // Free space: produces work again, no restart.
    std::fs::remove_file(&ballast).expect("free space");
    let ok = conn
        .call(produce(stored))
        .await
        .expect("produce succeeds once space is freed");
    assert_eq!(ok.base_offset, stored as u64, "no offset skipped");
    assert_eq!(read_all(&mut conn).await.len(), stored + 1);
    broker.shutdown().await.expect("shutdown");
    drop(fs);
}
