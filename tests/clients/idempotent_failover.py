"""Idempotent producers of two real clients against a DistributedLog
cluster: confluent-kafka with enable.idempotence=true and kafka-python with
enable_idempotence=True write one partition (replication factor 3) while
the test kills the partition's leader with SIGKILL and later starts it
again. Retries across the failover must not write a record twice: every
acknowledged record is read back exactly once, and no record at all is
read twice.

Usage: python3 idempotent_failover.py BOOTSTRAP[,...] CONTROL_DIR
It prints `KILL <node id>` and waits for CONTROL_DIR/killed, prints
`RESTART <node id>` and waits for CONTROL_DIR/restarted, and ends with a
summary line and `ok`. Raises on any lost or duplicated record.
"""
import collections
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaProducer

from cluster_script import create_topic, read_partition, wait_for_file

TOPIC = "idempotent-failover"
DEADLINE_S = 60
bootstrap, control_dir = sys.argv[1], sys.argv[2]

admin = AdminClient({"bootstrap.servers": bootstrap})
create_topic(admin, TOPIC, 1, 3, DEADLINE_S)

deadline = time.monotonic() + DEADLINE_S
while True:
    topic = admin.list_topics(topic=TOPIC, timeout=10).topics[TOPIC]
    partition = topic.partitions.get(0) if topic.error is None else None
    if partition is not None and partition.leader >= 0 and len(partition.isrs) == 3:
        break
    if time.monotonic() > deadline:
        raise RuntimeError(f"no leader with a full ISR: {partition}")
    time.sleep(0.2)
leader = partition.leader
print(f"leader {leader} replicas {partition.replicas} isr {partition.isrs}", flush=True)

acknowledged = []  # values, from both clients
failed = []


def on_delivery(error, message):
    if error is None:
        acknowledged.append(message.value().decode())
    else:
        failed.append((message.value().decode(), str(error)))


confluent = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
python = KafkaProducer(bootstrap_servers=bootstrap.split(","), enable_idempotence=True, acks="all")
python_futures = []
sent = 0


def produce(count):
    global sent
    for _ in range(count):
        value = f"c-{sent}"
        while True:
            try:
                confluent.produce(TOPIC, value=value.encode(), partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                confluent.poll(0.1)
        python_futures.append((f"k-{sent}", python.send(TOPIC, value=f"k-{sent}".encode(), partition=0)))
        sent += 1
        confluent.poll(0)
        time.sleep(0.002)


def settle():
    remaining = confluent.flush(DEADLINE_S)
    if remaining:
        raise RuntimeError(f"{remaining} confluent-kafka records unacknowledged")
    python.flush(timeout=DEADLINE_S)
    for value, future in python_futures:
        try:
            future.get(timeout=DEADLINE_S)
            acknowledged.append(value)
        except Exception as error:  # a definite failure: the record may or may not be there
            failed.append((value, repr(error)))
    python_futures.clear()


produce(200)
print(f"KILL {leader}", flush=True)
produce(200)  # during and after the kill: both clients retry on the new leader
wait_for_file(control_dir, "killed", DEADLINE_S)
settle()
print(f"RESTART {leader}", flush=True)
wait_for_file(control_dir, "restarted", DEADLINE_S)
produce(100)
settle()
confluent.flush(DEADLINE_S)
python.close(timeout=DEADLINE_S)

read = [message.value().decode() for message in read_partition(bootstrap, TOPIC, 0, "idempotent-failover-check", DEADLINE_S)]

counts = collections.Counter(read)
duplicated = sorted(value for value, count in counts.items() if count > 1)
lost = [value for value in acknowledged if counts[value] == 0]
assert not lost, f"acknowledged records lost: {lost[:10]} ({len(lost)} in all)"
assert not duplicated, f"records written twice: {duplicated[:10]} ({len(duplicated)} in all)"
assert set(read) <= {f"{p}-{i}" for p in "ck" for i in range(sent)}, "nothing read that was never sent"
print(
    f"leader {leader} killed; sent {2 * sent}, acknowledged {len(acknowledged)}, failed {len(failed)}, "
    f"read {len(read)}, duplicates 0",
    flush=True,
)
print("ok", flush=True)
