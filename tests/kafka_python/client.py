"""kafka-python (a pure-Python Kafka client) against skiff's Kafka listener,
driven by tests/kafka_python.rs.

    client.py BOOTSTRAP produce TOPIC   # stdin lines "key:value"; prints offsets
    client.py BOOTSTRAP consume TOPIC N # prints N records as JSON lines
"""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition


def produce(bootstrap, topic):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = []
    for line in sys.stdin.read().splitlines():
        key, value = line.split(":", 1)
        futures.append(
            producer.send(
                topic,
                key=key.encode(),
                value=value.encode(),
                headers=[("source", b"kafka-python")],
            )
        )
    for f in futures:
        meta = f.get(timeout=20)
        print(meta.offset)
    producer.close(timeout=10)


def consume(bootstrap, topic, n):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    seen = 0
    for record in consumer:
        print(
            json.dumps(
                {
                    "key": record.key.decode() if record.key is not None else None,
                    "value": record.value.decode(),
                    "offset": record.offset,
                    "timestamp": record.timestamp,
                    "headers": [[k, v.decode()] for k, v in record.headers],
                }
            ),
            flush=True,
        )
        seen += 1
        if seen == n:
            break
    consumer.close()
    if seen != n:
        sys.exit(f"only {seen} of {n} records arrived")


def main():
    bootstrap, mode, topic = sys.argv[1:4]
    if mode == "produce":
        produce(bootstrap, topic)
    elif mode == "consume":
        consume(bootstrap, topic, int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
