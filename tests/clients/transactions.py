"""confluent-kafka's transactional producer against a standalone
DistributedLog broker, at librdkafka's defaults otherwise:

1. one transaction across two partitions commits, the next one (also on
   both) aborts, a third commits;
2. a read_committed consumer (librdkafka's default isolation level) sees
   exactly the committed records, in order; a read_uncommitted consumer
   also sees the aborted ones; neither sees a transaction marker;
3. a second producer with the same transactional.id, started while the
   first has a transaction open, fences the first: the first one's commit
   fails with a fatal fencing error, its open transaction is aborted (none
   of it is ever visible), and the second one's transaction commits;
4. kafka-python's transactional producer commits one transaction and
   aborts another; read_committed sees exactly the committed one.

Usage: python3 transactions.py BOOTSTRAP. Prints one line per check and
`ok`; raises on any failure.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

bootstrap = sys.argv[1]
TOPIC = "txn-two-partitions"
KAFKA_PYTHON_TOPIC = "txn-kafka-python"
DEADLINE_S = 60

admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1), NewTopic(KAFKA_PYTHON_TOPIC, num_partitions=2, replication_factor=1)]).values():
    future.result(timeout=30)


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


def read_all(isolation_level, topic=TOPIC):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"txn-check-{isolation_level}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation_level,
    })
    partitions = [TopicPartition(topic, p, 0) for p in range(2)]
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

first.begin_transaction()
for index, value in enumerate(["zombie-0", "zombie-1"]):
    first.produce(TOPIC, value=value.encode(), partition=index)
first.flush(DEADLINE_S)
second = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-test"})
second.init_transactions(DEADLINE_S)
fenced = None
try:
    first.commit_transaction(DEADLINE_S)
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

python_producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kafka-python-txn")
python_producer.init_transactions()
python_producer.begin_transaction()
for i in range(10):
    python_producer.send(KAFKA_PYTHON_TOPIC, f"kp-{i}".encode(), partition=i % 2)
python_producer.commit_transaction()
python_producer.begin_transaction()
python_producer.send(KAFKA_PYTHON_TOPIC, b"kp-aborted", partition=0)
python_producer.abort_transaction()
python_producer.close()
read = read_all("read_committed", KAFKA_PYTHON_TOPIC)
want = expected([[f"kp-{i}" for i in range(10)]])
assert read == want, f"kafka-python's transactions: read_committed read {read}, expected {want}"
print("kafka-python: committed and aborted; read_committed sees the committed one", flush=True)
print("ok", flush=True)
