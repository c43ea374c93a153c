"""A consumer group through a SIGKILL of its coordinator, in a DistributedLog
cluster, with confluent-kafka (librdkafka) at its defaults.

A group consumes a topic of three partitions (replication factor 3) and
commits what it read. The test then kills the group's coordinator (the
leader of the group's __consumer_offsets partition, as DescribeConsumerGroups
names it). More records are produced; a new consumer of the group must
resume exactly at the committed offsets (no committed offset lost, nothing
read twice) and read the new records; its own commits must succeed with the
new coordinator.

Usage: python3 group_coordinator_failover.py BOOTSTRAP[,...] CONTROL_DIR
It prints `KILL <node id>` and waits for CONTROL_DIR/killed, and ends with
a summary line and `ok`. Raises on any lost commit or record.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cluster_script import create_topic, wait_for_file

TOPIC = "group-failover"
GROUP = "failover-group"
PARTITIONS = 3
DEADLINE_S = 90
bootstrap, control_dir = sys.argv[1], sys.argv[2]


admin = AdminClient({"bootstrap.servers": bootstrap})
create_topic(admin, TOPIC, PARTITIONS, 3, DEADLINE_S)

producer = Producer({"bootstrap.servers": bootstrap})  # defaults: acks=all


def produce(prefix, per_partition):
    for p in range(PARTITIONS):
        for i in range(per_partition):
            producer.produce(TOPIC, value=f"{prefix}-{p}-{i}".encode(), partition=p)
    if producer.flush(DEADLINE_S):
        raise RuntimeError("records unacknowledged")


def consume(expected_count):
    """One consumer of GROUP reads `expected_count` records, commits them
    synchronously and closes: {partition: [values]} and what it committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    read = {p: [] for p in range(PARTITIONS)}
    first_offsets = {}
    deadline = time.monotonic() + DEADLINE_S
    while sum(len(v) for v in read.values()) < expected_count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"read {sum(len(v) for v in read.values())} of {expected_count}: {read}")
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        first_offsets.setdefault(message.partition(), message.offset())
        read[message.partition()].append(message.value().decode())
    while True:
        try:
            committed = consumer.commit(asynchronous=False)
            break
        except KafkaException as error:
            # Retriable while a new coordinator takes over.
            if time.monotonic() > deadline:
                raise
            print(f"commit retried: {error}", flush=True)
            time.sleep(0.5)
    consumer.close()
    return read, first_offsets, {tp.partition: tp.offset for tp in committed}


produce("before", 10)
read, _, committed = consume(PARTITIONS * 10)
assert committed == {p: 10 for p in range(PARTITIONS)}, f"first commit: {committed}"

description = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=30)
coordinator = description.coordinator.id
print(f"coordinator {coordinator}; state {description.state}", flush=True)
print(f"KILL {coordinator}", flush=True)
wait_for_file(control_dir, "killed", DEADLINE_S)

produce("after", 5)
read, first_offsets, committed = consume(PARTITIONS * 5)
for p in range(PARTITIONS):
    expected = [f"after-{p}-{i}" for i in range(5)]
    assert read[p] == expected, f"partition {p}: read {read[p]}, expected {expected} (a committed offset was lost)"
    assert first_offsets[p] == 10, f"partition {p}: resumed at {first_offsets[p]}, committed 10"
assert committed == {p: 15 for p in range(PARTITIONS)}, f"commit to the new coordinator: {committed}"

description = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=30)
new_coordinator = description.coordinator.id
assert new_coordinator != coordinator, f"the killed node {coordinator} is still named coordinator"
print(f"coordinator {coordinator} -> {new_coordinator}; resumed at offset 10 on all {PARTITIONS} partitions; "
      f"committed 15 with the new coordinator", flush=True)
print("ok", flush=True)
