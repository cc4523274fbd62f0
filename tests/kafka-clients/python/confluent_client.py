#!/usr/bin/env python3
"""librdkafka (confluent-kafka) as a test client of skiff's Kafka listener.

Each mode prints one JSON object per line on stdout (the Rust tests in
tests/kafka_clients.rs parse them) and exits non-zero with the reason on
stderr when anything fails, so a test never has to guess.

  produce       N records keyed key-I, valued value-I, header h=hv-I,
                idempotent producer (enable.idempotence=true, acks=all)
  consume       N records of a topic from the beginning (assigned, no group)
  create-topic  AdminClient create_topics
  delete-topic  AdminClient delete_topics
  metadata      the topic's metadata: its error name, or its partitions
  create-partitions  AdminClient create_partitions to --partitions (with
                --validate-only if given): the error's name and message, or ok

--config KEY=VALUE (repeatable) adds a librdkafka property to every client
(security.protocol, sasl.mechanisms, sasl.username, ssl.ca.location, ...).
A failed SASL login ends the program at once: an "auth-failed" event, exit 3.
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def emit(obj):
    print(json.dumps(obj), flush=True)


def text(b):
    return None if b is None else b.decode("utf-8")


EXTRA = {}


def on_error(err):
    # librdkafka retries a failed login forever; the test wants the refusal.
    if err.code() == KafkaError._AUTHENTICATION:
        emit({"event": "auth-failed", "reason": err.str()})
        os._exit(3)


def conf(args, **own):
    """The client config: bootstrap, --config properties, then the mode's own."""
    c = {"bootstrap.servers": args.bootstrap, "error_cb": on_error}
    c.update(EXTRA)
    c.update(own)
    return c


def produce(args):
    producer = Producer(
        conf(
            args,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": int(args.timeout_s * 1000),
            },
        )
    )
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        emit(
            {
                "event": "produced",
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": msg.timestamp()[1],
                "key": text(msg.key()),
                "value": text(msg.value()),
            }
        )

    for i in range(args.count):
        kwargs = {}
        if args.partition is not None:
            kwargs["partition"] = args.partition
        producer.produce(
            args.topic,
            key=f"key-{i}",
            value=f"value-{i}",
            headers=[("h", f"hv-{i}".encode())],
            on_delivery=on_delivery,
            **kwargs,
        )
        producer.poll(0)
    left = producer.flush(args.timeout_s)
    if left or failures:
        sys.exit(f"produce: {left} undelivered, failures: {failures[:3]}")
    emit({"event": "done", "count": args.count})


def consume(args):
    # Assigned partitions from the beginning: no group coordinator involved,
    # no offsets committed (group.id is required by the client, not used).
    consumer = Consumer(conf(args, **{"group.id": args.group, "enable.auto.commit": False}))
    deadline = time.monotonic() + args.timeout_s
    topic = consumer.list_topics(args.topic, timeout=args.timeout_s).topics[args.topic]
    if topic.error is not None:
        raise KafkaException(topic.error)
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)]
    )
    seen = 0
    try:
        while seen < args.count:
            if time.monotonic() > deadline:
                sys.exit(f"consume: {seen} of {args.count} records in {args.timeout_s} s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            emit(
                {
                    "event": "record",
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "timestamp": msg.timestamp()[1],
                    "key": text(msg.key()),
                    "value": text(msg.value()),
                    "headers": [[k, text(v)] for k, v in (msg.headers() or [])],
                }
            )
            seen += 1
    finally:
        consumer.close()
    emit({"event": "done", "count": seen})


def admin_call(args, futures):
    for topic, future in futures.items():
        future.result(timeout=args.timeout_s)
        emit({"event": args.mode, "topic": topic})


def create_topic(args):
    admin = AdminClient(conf(args))
    topic = NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)
    admin_call(args, admin.create_topics([topic], operation_timeout=args.timeout_s))


def delete_topic(args):
    admin = AdminClient(conf(args))
    admin_call(args, admin.delete_topics([args.topic], operation_timeout=args.timeout_s))


def create_partitions(args):
    admin = AdminClient(conf(args))
    futures = admin.create_partitions(
        [NewPartitions(args.topic, args.partitions)],
        validate_only=args.validate_only,
        request_timeout=args.timeout_s,
    )
    try:
        futures[args.topic].result(timeout=args.timeout_s)
        emit({"event": "create-partitions", "topic": args.topic, "error": None})
    except KafkaException as e:
        err = e.args[0]
        emit(
            {
                "event": "create-partitions",
                "topic": args.topic,
                "error": err.name(),
                "message": err.str(),
            }
        )


def metadata(args):
    admin = AdminClient(conf(args))
    deadline = time.monotonic() + args.timeout_s
    while True:
        # poll() serves error_cb (a failed login ends the program);
        # list_topics alone would wait out its timeout.
        admin.poll(0.1)
        try:
            topic = admin.list_topics(args.topic, timeout=1.0).topics[args.topic]
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
    if topic.error is not None:
        emit({"event": "metadata", "topic": args.topic, "error": topic.error.name()})
    else:
        emit({"event": "metadata", "topic": args.topic, "partitions": len(topic.partitions)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the Kafka listener")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="confluent-test")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--partition", type=int)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=20.0)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--validate-only", action="store_true")
    parser.add_argument(
        "mode",
        choices=[
            "produce",
            "consume",
            "create-topic",
            "delete-topic",
            "metadata",
            "create-partitions",
        ],
    )
    args = parser.parse_args()
    for kv in args.config:
        key, eq, value = kv.partition("=")
        if not eq:
            sys.exit(f"--config needs KEY=VALUE, got {kv!r}")
        EXTRA[key] = value
    modes = {
        "produce": produce,
        "consume": consume,
        "create-topic": create_topic,
        "delete-topic": delete_topic,
        "metadata": metadata,
        "create-partitions": create_partitions,
    }
    try:
        modes[args.mode](args)
    except Exception as e:  # the test reads the reason from stderr
        sys.exit(f"{args.mode}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
