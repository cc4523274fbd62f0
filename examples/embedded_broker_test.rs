//! How a service tests itself against a real skiff broker, in-process.
//!
//! `Broker::start_temp()` starts a broker on 127.0.0.1 (a free port) in a
//! temporary directory that goes away with it: one line, no external
//! process, no fixed port, so tests run in parallel. In your own crate the
//! same code goes in a `#[tokio::test]`; here it runs from `main` so that
//! `cargo run --example embedded_broker_test` shows it working.

use skiff_broker::Broker;
use skiff_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    StartFrom, TopicConfig,
};

/// The code under test: a service that announces each order it accepts.
struct OrderService {
    producer: Producer,
}

impl OrderService {
    async fn accept(&self, order_id: u32, customer: &str) -> Result<u64, skiff_client::Error> {
        let record = ProducerRecord::new("orders", format!("{{\"order\":{order_id}}}"))
            .key(customer.to_owned());
        Ok(self.producer.send(record).await?.offset)
    }
}

/// The test: accept an order, then read the event back from the broker.
async fn accepted_orders_are_announced() -> Result<(), Box<dyn std::error::Error>> {
    let broker = Broker::start_temp().await?;
    let client = Client::connect(ClientConfig::new(broker.local_addr().to_string())).await?;
    client
        .admin()
        .create_topic(
            "orders",
            TopicConfig {
                partitions: 1,
                ..TopicConfig::default()
            },
        )
        .await?;

    let service = OrderService {
        producer: Producer::new(client.clone(), ProducerConfig::default()),
    };
    let offset = service.accept(42, "customer-7").await?;

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    consumer.assign_all("orders", StartFrom::Earliest).await?;
    let record = consumer.next().await.ok_or("stream ended")??;
    assert_eq!(record.offset, offset);
    assert_eq!(&record.value[..], b"{\"order\":42}");
    assert_eq!(record.key.as_deref(), Some(&b"customer-7"[..]));

    broker.shutdown().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    accepted_orders_are_announced().await?;
    println!("ok: accepted_orders_are_announced");
    Ok(())
}
