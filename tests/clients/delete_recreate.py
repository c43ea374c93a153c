"""kafka-python against a DistributedLog cluster: create a topic, produce to
every partition, delete it, create it again, and read it back: the new
incarnation must hold only what was written after the re-create.

Usage: python3 delete_recreate.py BOOTSTRAP[,BOOTSTRAP...]
Exits 0 on success; prints what it saw, and raises on any mismatch.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

TOPIC = "py-recreated"
PARTITIONS = 3
DEADLINE_S = 30

bootstrap = sys.argv[1].split(",")


def retry(what, action):
    """Runs action until it returns without raising, for up to DEADLINE_S
    (the quorum may still be electing a leader or admitting brokers)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return action()
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {DEADLINE_S} s: {error!r}")
            time.sleep(0.3)


TOPIC_ALREADY_EXISTS = 36


class MarkedForDeletion(KafkaError):
    """TOPIC_ALREADY_EXISTS right after a delete: the quorum holds the name
    back until every broker has seen the deletion. Worth retrying."""


def create(admin, after_delete=False):
    def attempt():
        result = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        topic = result["topics"][0]
        code = topic["error_code"]
        if after_delete and code == TOPIC_ALREADY_EXISTS:
            raise MarkedForDeletion(topic["error_message"])
        assert code == 0, f"create: error code {code}"
    retry("create", attempt)


def send_all(producer, values):
    """Sends value i to partition i % PARTITIONS; returns (partition, offset) pairs."""
    def attempt():
        futures = [producer.send(TOPIC, v.encode(), partition=i % PARTITIONS) for i, v in enumerate(values)]
        producer.flush()
        return [(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures]
    return retry("produce", attempt)


def read_all():
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False)
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, 0)
    records = sorted((m.partition, m.offset, m.value.decode()) for m in consumer)
    consumer.close()
    return records


admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
# Idempotence needs InitProducerId, which the broker does not offer yet.
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, retries=5)

create(admin)
first = send_all(producer, [f"old-{i}" for i in range(6)])
print("first incarnation:", first)
assert sorted(first) == [(p, o) for p in range(PARTITIONS) for o in range(2)], first

deleted = admin.delete_topics([TOPIC])
assert deleted["topics"][0]["error_code"] == 0, deleted
assert TOPIC not in admin.list_topics(), "a deleted topic is not listed"

create(admin, after_delete=True)
second = send_all(producer, ["new-0"])
print("second incarnation:", second)
assert second == [(0, 0)], f"offsets restart at 0 in a re-created topic: {second}"
records = read_all()
print("read back:", records)
assert records == [(0, 0, "new-0")], f"only the new incarnation's record: {records}"
print("ok")
