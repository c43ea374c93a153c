"""confluent-kafka's transactional producer against a standalone
DistributedLog broker, at librdkafka's defaults otherwise:

1. one transaction across two partitions commits, the next one (also on
   both) aborts, a third commits;
2. a read_committed consumer (librdkafka's default isolation level) sees
   exactly the committed records, in order; a read_uncommitted consumer
   also sees the aborted ones; neither sees a transaction marker;
3. a second producer with the same transactional.id fences the first: the
   first one's next transaction fails with a fatal fencing error, and the
   second one's transaction commits.

Usage: python3 transactions.py BOOTSTRAP. Prints one line per check and
`ok`; raises on any failure.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
TOPIC = "txn-two-partitions"
DEADLINE_S = 60

admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(timeout=30)


def transaction(producer, values, commit):
    producer.begin_transaction()
    for index, value in enumerate(values):
        producer.produce(TOPIC, value=value.encode(), partition=index % 2)
    if commit:
        producer.commit_transaction(DEADLINE_S)
    else:
        producer.flush(DEADLINE_S)
        producer.abort_transaction(DEADLINE_S)


first = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-test"})
first.init_transactions(DEADLINE_S)
committed = [f"commit-1-{i}" for i in range(10)]
aborted = [f"abort-2-{i}" for i in range(10)]
committed_later = [f"commit-3-{i}" for i in range(10)]
transaction(first, committed, commit=True)
transaction(first, aborted, commit=False)
transaction(first, committed_later, commit=True)
print("committed, aborted, committed: three transactions over two partitions", flush=True)


def read_all(isolation_level):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"txn-check-{isolation_level}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation_level,
    })
    partitions = [TopicPartition(TOPIC, p, 0) for p in range(2)]
    ends = {}
    for tp in partitions:
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        ends[tp.partition] = high
    consumer.assign(partitions)
    read = {0: [], 1: []}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            positions = consumer.position(partitions)
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                break
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(message.error())
        read[message.partition()].append(message.value().decode())
    consumer.close()
    return read


def expected(values_lists):
    by_partition = {0: [], 1: []}
    for values in values_lists:
        for index, value in enumerate(values):
            by_partition[index % 2].append(value)
    return by_partition


read_committed = read_all("read_committed")
want = expected([committed, committed_later])
assert read_committed == want, f"read_committed read {read_committed}, expected {want}"
print(f"read_committed: {sum(map(len, read_committed.values()))} records, exactly the committed ones", flush=True)
read_uncommitted = read_all("read_uncommitted")
want_all = expected([committed, aborted, committed_later])
assert read_uncommitted == want_all, f"read_uncommitted read {read_uncommitted}, expected {want_all}"
print(f"read_uncommitted: {sum(map(len, read_uncommitted.values()))} records, the aborted ones too", flush=True)

second = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-test"})
second.init_transactions(DEADLINE_S)
fenced = None
try:
    transaction(first, ["zombie-0", "zombie-1"], commit=True)
except KafkaException as error:
    fenced = error.args[0]
assert fenced is not None, "the fenced producer's transaction committed"
assert fenced.fatal() or fenced.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), f"not a fencing error: {fenced}"
print(f"first producer fenced: {fenced.name()} (fatal={fenced.fatal()})", flush=True)
after_fence = [f"commit-4-{i}" for i in range(4)]
transaction(second, after_fence, commit=True)
read_committed = read_all("read_committed")
want = expected([committed, committed_later, after_fence])
assert read_committed == want, f"after fencing, read_committed read {read_committed}, expected {want}"
print("second producer committed; nothing of the fenced producer is visible", flush=True)
print("ok", flush=True)
