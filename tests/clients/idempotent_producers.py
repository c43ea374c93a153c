"""Idempotent producers at their defaults against one standalone broker.

kafka-python 3.x (KafkaProducer(): enable_idempotence is on by default)
and confluent-kafka (enable.idempotence=true) each send 100 records to a
topic of their own; every send must be acknowledged, and a consumer must
read back each record exactly once, in order. Prints one line per client
and exits non-zero with the reason on failure.

Usage: idempotent_producers.py BOOTSTRAP
"""
import sys

import confluent_kafka
from kafka import KafkaConsumer, KafkaProducer

COUNT = 100


def read_back(bootstrap, topic):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=5000)
    values = [m.value.decode() for m in consumer]
    consumer.close()
    return values


def check(name, bootstrap, topic, offsets):
    expected = ["%s-%03d" % (name, i) for i in range(COUNT)]
    values = read_back(bootstrap, topic)
    if values != expected:
        sys.exit("%s: read back %d records, expected %d exactly once in order; first difference at %s" % (
            name, len(values), COUNT, next((i for i, (a, b) in enumerate(zip(values, expected)) if a != b), min(len(values), COUNT))))
    if sorted(offsets) != list(range(COUNT)):
        sys.exit("%s: acknowledged offsets are not 0..%d: %s" % (name, COUNT - 1, sorted(offsets)[:10]))
    print("%s: %d acknowledged, %d read back exactly once" % (name, len(offsets), len(values)))


def kafka_python(bootstrap):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    if producer._transaction_manager is None:
        sys.exit("kafka-python: idempotence is off (the broker looked too old to it)")
    futures = [producer.send("idem-kafka-python", ("kafka-python-%03d" % i).encode()) for i in range(COUNT)]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    pid = producer._transaction_manager.producer_id_and_epoch
    producer.close()
    if pid.producer_id < 0:
        sys.exit("kafka-python: no producer id")
    check("kafka-python", bootstrap, "idem-kafka-python", offsets)


def confluent(bootstrap):
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    offsets, errors = [], []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())

    for i in range(COUNT):
        producer.produce("idem-confluent", ("confluent-%03d" % i).encode(), on_delivery=delivered)
    left = producer.flush(30)
    if left or errors:
        sys.exit("confluent-kafka: %d undelivered, errors %s" % (left, errors[:5]))
    check("confluent", bootstrap, "idem-confluent", offsets)


if __name__ == "__main__":
    kafka_python(sys.argv[1])
    confluent(sys.argv[1])
