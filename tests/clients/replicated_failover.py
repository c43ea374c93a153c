"""confluent-kafka (librdkafka), at its default settings, against a
DistributedLog cluster: a topic with replication factor 3 takes records
with acks=all (librdkafka's default) while the test kills the partition's
leader with SIGKILL and later starts it again; afterwards every record the
producer saw acknowledged is read back from the new leader.

Usage: python3 replicated_failover.py BOOTSTRAP[,...] CONTROL_DIR
It prints `KILL <node id>` and waits for CONTROL_DIR/killed, prints
`RESTART <node id>` and waits for CONTROL_DIR/restarted, and ends with a
summary line and `ok`. Raises on any lost record.
"""
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from cluster_script import create_topic, read_partition, wait_for_file

TOPIC = "replicated-failover"
DEADLINE_S = 60
bootstrap, control_dir = sys.argv[1], sys.argv[2]


def partition_metadata(admin):
    topic = admin.list_topics(topic=TOPIC, timeout=10).topics[TOPIC]
    if topic.error is not None or 0 not in topic.partitions:
        return None
    return topic.partitions[0]


admin = AdminClient({"bootstrap.servers": bootstrap})
create_topic(admin, TOPIC, 1, 3, DEADLINE_S)

# Wait for a leader and a full ISR.
deadline = time.monotonic() + DEADLINE_S
while True:
    partition = partition_metadata(admin)
    if partition is not None and partition.leader >= 0 and len(partition.isrs) == 3:
        break
    if time.monotonic() > deadline:
        raise RuntimeError(f"no leader with a full ISR: {partition}")
    time.sleep(0.2)
leader = partition.leader
print(f"leader {leader} replicas {partition.replicas} isr {partition.isrs}", flush=True)

acknowledged = []
failed = []


def on_delivery(error, message):
    if error is None:
        acknowledged.append((message.offset(), int(message.value())))
    else:
        failed.append((int(message.value()), str(error)))


producer = Producer({"bootstrap.servers": bootstrap})  # defaults: acks=all
next_value = 0


def produce(count):
    global next_value
    for _ in range(count):
        while True:
            try:
                producer.produce(TOPIC, value=str(next_value).encode(), partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        next_value += 1
        producer.poll(0)
        time.sleep(0.002)


produce(300)
print(f"KILL {leader}", flush=True)
produce(300)  # during and after the kill: librdkafka retries on the new leader
wait_for_file(control_dir, "killed", DEADLINE_S)
remaining = producer.flush(DEADLINE_S)
if remaining:
    raise RuntimeError(f"{remaining} records still unacknowledged after the kill")
print(f"RESTART {leader}", flush=True)
wait_for_file(control_dir, "restarted", DEADLINE_S)
produce(100)
if producer.flush(DEADLINE_S):
    raise RuntimeError("records unacknowledged after the restart")

new_leader = partition_metadata(admin).leader
read = [(message.offset(), int(message.value())) for message in read_partition(bootstrap, TOPIC, 0, "replicated-failover-check", DEADLINE_S)]
read_values = [value for _, value in read]
offsets = [offset for offset, _ in read]
assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets in order, each once"
read_at = dict(read)
lost = [(offset, value) for offset, value in acknowledged if read_at.get(offset) != value]
assert not lost, f"acknowledged records lost or overwritten: {lost[:10]}"
assert set(read_values) <= set(range(next_value)), "nothing was read that was never sent"
duplicates = len(read_values) - len(set(read_values))
print(
    f"leader {leader} -> {new_leader}; sent {next_value}, acknowledged {len(acknowledged)}, "
    f"failed {len(failed)}, read {len(read)}, duplicates {duplicates}",
    flush=True,
)
print("ok", flush=True)
