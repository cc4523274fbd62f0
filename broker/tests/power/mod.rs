//! A broker that can lose power: started in-process on a data directory
//! plugged into `skiff_broker::fsio::power`, cut with a chosen tail policy,
//! and restarted on the image of what the disk held (each generation in its
//! own directory; the clients reconnect to the same port).

#![allow(dead_code)] // each test file uses part of the rig

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use skiff_broker::fsio::power::{self, CutReport, Tail};
use skiff_broker::{BootstrapUser, Broker, BrokerConfig, BrokerHandle, Durability};
use skiff_client::{Client, ClientConfig};
use skiff_protocol::batch::{BatchIter, decode_records};
use skiff_protocol::messages::FetchRequest;

pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "admin-pw";
/// Bound on the old broker's shutdown after a cut (its syncs fail at once;
/// this only guards the test against a hang).
const SHUTDOWN_AFTER_CUT_MAX: Duration = Duration::from_secs(10);
/// Start attempts while the old broker's port is being released.
const START_ATTEMPTS_MAX: usize = 100;

pub struct Rig {
    tmp: tempfile::TempDir,
    generation: u32,
    pub data: PathBuf,
    pub fsync: Durability,
    secure: Option<skiff_broker::PhcHash>,
    port: u16,
    /// Broker settings on top of the defaults.
    pub tune: fn(&mut BrokerConfig),
    broker: Option<BrokerHandle>,
}

impl Rig {
    pub async fn start(fsync: Durability, secure: bool) -> Rig {
        Rig::start_tuned(fsync, secure, |_| {}).await
    }

    pub async fn start_tuned(fsync: Durability, secure: bool, tune: fn(&mut BrokerConfig)) -> Rig {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data0");
        power::plug_in(&data, &tmp.path().join("shadow0")).expect("plug in");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        let secure = secure.then(|| skiff_broker::hash_password(ADMIN_PW).expect("hash"));
        let mut rig = Rig {
            tmp,
            generation: 0,
            data,
            fsync,
            secure,
            port,
            tune,
            broker: None,
        };
        rig.boot().await;
        rig
    }

    fn config(&self) -> BrokerConfig {
        let mut config = BrokerConfig {
            data_dir: self.data.clone(),
            listen: SocketAddr::from(([127, 0, 0, 1], self.port)),
            fsync: self.fsync.clone(),
            ..BrokerConfig::default()
        };
        if let Some(hash) = &self.secure {
            config.users = vec![BootstrapUser {
                name: ADMIN.into(),
                password_hash: hash.clone(),
                scram: None,
                admin: true,
            }];
        }
        (self.tune)(&mut config);
        config
    }

    async fn boot(&mut self) {
        let mut last = None;
        for _ in 0..START_ATTEMPTS_MAX {
            match Broker::start(self.config()).await {
                Ok(b) => {
                    self.broker = Some(b);
                    return;
                }
                Err(e @ skiff_broker::BrokerError::Bind { .. }) => last = Some(e),
                Err(e) => panic!("broker on the power-cut image does not start: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("broker does not start: {last:?}");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn client_config(&self) -> ClientConfig {
        let c = ClientConfig::new(self.addr().to_string());
        if self.secure.is_some() {
            c.password(ADMIN, ADMIN_PW)
        } else {
            c
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.client_config())
            .await
            .expect("connect")
    }

    /// Cuts the power, stops the old broker (whose syncs now fail), and
    /// starts a new one on the image.
    pub async fn power_cut(&mut self, tail: Tail) -> CutReport {
        let image = self.tmp.path().join(format!("data{}", self.generation + 1));
        let report = power::cut(&self.data, &image, tail).expect("cut");
        self.stop_old().await;
        // Only the image is needed from here on: a long torture would
        // otherwise fill the disk with generations.
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_dir_all(self.tmp.path().join(format!("shadow{}", self.generation)));
        self.generation += 1;
        self.data = image;
        power::plug_in(
            &self.data,
            &self.tmp.path().join(format!("shadow{}", self.generation)),
        )
        .expect("plug in the image");
        self.boot().await;
        report
    }

    async fn stop_old(&mut self) {
        if let Some(old) = self.broker.take() {
            // Errors expected: the final syncs fail with EIO.
            let _ = tokio::time::timeout(SHUTDOWN_AFTER_CUT_MAX, old.shutdown()).await;
        }
        power::unplug(&self.data);
    }

    /// The partition directory of `topic`/`p` in the current generation.
    pub fn partition_dir(&self, topic: &str, p: u32) -> PathBuf {
        self.data.join("topics").join(topic).join(p.to_string())
    }

    /// When the last completed sync of a segment of `topic`/`p` started:
    /// every batch acknowledged before it survives a cut.
    pub fn last_sync(&self, topic: &str, p: u32) -> Option<std::time::Instant> {
        power::last_sync_started(&self.partition_dir(topic, p))
    }

    pub async fn shutdown(mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown().await.expect("clean shutdown");
        }
        power::unplug(&self.data);
    }
}

/// Every record of `topic`, read from each partition's log start:
/// (partition, offset) -> value. Panics on a record that does not decode
/// (a corrupt or torn record served) or an offset skipped or reused.
pub async fn read_all(client: &Client, topic: &str) -> BTreeMap<(u32, u64), Bytes> {
    let desc = client
        .admin()
        .describe_topic(topic)
        .await
        .expect("describe");
    let mut out = BTreeMap::new();
    for p in desc.partitions {
        let mut offset = p.log_start_offset;
        while offset < p.log_end_offset {
            let resp = client
                .send(FetchRequest {
                    topic: topic.into(),
                    partition: p.partition,
                    offset,
                    max_bytes: 1024 * 1024,
                    max_wait_ms: 0,
                })
                .await
                .expect("fetch");
            for batch in BatchIter::new(resp.records) {
                let batch = batch.expect("a whole, valid batch");
                for r in decode_records(&batch).expect("records decode") {
                    assert_eq!(r.offset, offset, "offset reused or skipped");
                    out.insert((p.partition, r.offset), r.value);
                    offset += 1;
                }
            }
        }
    }
    out
}
