#!/usr/bin/env python3
"""kafka-python (pure Python) as a test client of skiff's Kafka listener.

Modes print one JSON object per line on stdout and exit non-zero with the
reason on stderr on any failure:

  produce  N records keyed key-I, valued value-I, header h=hv-I (acks=all)
  consume  N records of a topic from the beginning (assigned partitions, no group)

--sasl MECHANISM:USER:PASSWORD signs in with SASL (SASL_PLAINTEXT, or
SASL_SSL with --ca FILE as the trusted CA).
"""

import argparse
import json
import logging
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def emit(obj):
    print(json.dumps(obj), flush=True)


def text(b):
    return None if b is None else b.decode("utf-8")


def security(args):
    """The client's security settings from --sasl and --ca."""
    if not args.sasl:
        return {}
    mechanism, user, password = args.sasl.split(":", 2)
    settings = {
        "security_protocol": "SASL_SSL" if args.ca else "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }
    if args.ca:
        settings["ssl_cafile"] = args.ca
    return settings


def produce(args):
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        linger_ms=5,
        max_block_ms=int(args.timeout_s * 1000),
        # A refused login ends the retried bootstrap within --timeout-s.
        bootstrap_timeout_ms=int(args.timeout_s * 1000),
        **security(args),
    )
    futures = [
        producer.send(
            args.topic,
            key=f"key-{i}".encode(),
            value=f"value-{i}".encode(),
            headers=[("h", f"hv-{i}".encode())],
            partition=args.partition,
        )
        for i in range(args.count)
    ]
    for i, future in enumerate(futures):
        meta = future.get(timeout=args.timeout_s)
        emit(
            {
                "event": "produced",
                "partition": meta.partition,
                "offset": meta.offset,
                "timestamp": meta.timestamp,
                "key": f"key-{i}",
                "value": f"value-{i}",
            }
        )
    producer.close(timeout=args.timeout_s)
    emit({"event": "done", "count": args.count})


def consume(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, enable_auto_commit=False, **security(args)
    )
    deadline = time.monotonic() + args.timeout_s
    partitions = None
    while not partitions:
        if time.monotonic() > deadline:
            sys.exit(f"consume: no metadata for topic {args.topic} in {args.timeout_s} s")
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            time.sleep(0.2)
    assigned = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    seen = 0
    while seen < args.count:
        if time.monotonic() > deadline:
            sys.exit(f"consume: {seen} of {args.count} records in {args.timeout_s} s")
        for _, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                emit(
                    {
                        "event": "record",
                        "partition": r.partition,
                        "offset": r.offset,
                        "timestamp": r.timestamp,
                        "key": text(r.key),
                        "value": text(r.value),
                        "headers": [[k, text(v)] for k, v in (r.headers or [])],
                    }
                )
                seen += 1
    consumer.close()
    emit({"event": "done", "count": seen})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the Kafka listener")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--partition", type=int)
    parser.add_argument("--timeout-s", type=float, default=20.0)
    parser.add_argument("--sasl", metavar="MECHANISM:USER:PASSWORD")
    parser.add_argument("--ca", metavar="FILE")
    parser.add_argument("mode", choices=["produce", "consume"])
    args = parser.parse_args()
    # The client's own errors (a refused login among them) on stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
    try:
        {"produce": produce, "consume": consume}[args.mode](args)
    except Exception as e:  # the test reads the reason from stderr
        sys.exit(f"{args.mode}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
