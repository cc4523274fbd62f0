//! A rough work-queue rate check (`skiff bench queue` is the full one,
//! against a running skiffd): an in-process broker (`fsync` at its
//! default, always), one partition of `RECORDS` 100-byte records, `WORKERS` workers that receive
//! up to 100 records and ack them in one settle each, optionally sleeping
//! `WORK_MS` per record. Prints records acked per second.
//!
//! `cargo run --release --example queue_rate -- WORKERS WORK_MS RECORDS`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skiff_broker::Broker;
use skiff_client::protocol::messages::{
    CreateQueueRequest, QueueConfig, ReceiveRequest, SettleAction, SettleRequest, Settlement,
};
use skiff_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (workers, work_ms, records) = (arg(1, 4), arg(2, 0), arg(3, 20_000));
    let broker = Broker::start_temp().await?;
    let client = Client::connect(ClientConfig::new(broker.local_addr().to_string())).await?;
    client
        .admin()
        .create_topic(
            "jobs",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await?;
    let producer = Producer::new(client.clone(), ProducerConfig::default().linger_ms(5));
    let value = vec![b'x'; 100];
    let acks: Vec<_> = (0..records)
        .map(|_| producer.send(ProducerRecord::new("jobs", value.clone())))
        .collect();
    for ack in acks {
        ack.await?;
    }
    client
        .send(CreateQueueRequest {
            name: "q".into(),
            topic: "jobs".into(),
            config: QueueConfig::default(),
        })
        .await?;
    let done = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, done) = (client.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut member_id = 0;
                while done.load(Ordering::Relaxed) < records {
                    let r = client
                        .send(ReceiveRequest {
                            queue: "q".into(),
                            member_id,
                            max_records: 100,
                            max_wait_ms: 100,
                        })
                        .await?;
                    member_id = r.member_id;
                    let mut items = Vec::with_capacity(r.deliveries.len());
                    for d in &r.deliveries {
                        if work_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(work_ms)).await;
                        }
                        items.push(Settlement {
                            partition: d.partition,
                            offset: d.offset,
                            deliveries: d.deliveries,
                            action: SettleAction::Ack,
                        });
                    }
                    let n = items.len() as u64;
                    if n > 0 {
                        client
                            .send(SettleRequest {
                                queue: "q".into(),
                                member_id,
                                items,
                            })
                            .await?;
                        done.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Ok::<_, skiff_client::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{workers} workers, {work_ms} ms work: {records} records acked in {secs:.2} s = {:.0} records/s",
        records as f64 / secs
    );
    broker.shutdown().await?;
    Ok(())
}
