"""KIP-848 consumer groups (group.protocol=consumer) with confluent-kafka
(librdkafka 2.x), against one broker.

1. Two consumers in one group subscribe to a topic of six partitions; once
   the group settles, they own disjoint sets of partitions that together
   cover all six, and between them read every record produced. Ownership is
   checked at every poll: no partition is ever held by both at once
   (revocation before reassignment).
2. When one closes, the other comes to own all six.
3. The survivor commits what it read and closes; a new consumer of the
   group resumes at the committed offsets: it reads only what was produced
   after.
4. ConsumerGroupDescribe (AdminClient.describe_consumer_groups) sees the
   group while a member is in it.

Prints one line per check and exits non-zero with the reason on failure.

Usage: consumer_groups_kip848.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
PER_PARTITION = 10
TOPIC = "kip848-split"
GROUP = "kip848-group"


def fail(message):
    sys.exit("FAIL: " + message)


def produce(bootstrap, prefix):
    producer = Producer({"bootstrap.servers": bootstrap})
    values = []
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            value = "%s-p%d-%03d" % (prefix, p, i)
            producer.produce(TOPIC, value.encode(), partition=p)
            values.append(value)
    if producer.flush(30) != 0:
        fail("produce did not finish")
    return values


def consumer(bootstrap, name):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "group.protocol": "consumer",
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })


def commit(c):
    """Synchronous commit of what was read; nothing new to commit is fine."""
    try:
        c.commit(asynchronous=False)
    except KafkaException as e:
        if e.args[0].code() != KafkaError._NO_OFFSET:
            raise


def owned(c):
    return {(tp.topic, tp.partition) for tp in c.assignment()}


def poll_all(consumers, seen, check_disjoint=True):
    for i, c in enumerate(consumers):
        msg = c.poll(0.1)
        if msg is not None and msg.error() is None:
            seen[i].append(msg.value().decode())
    if check_disjoint and len(consumers) == 2:
        both = owned(consumers[0]) & owned(consumers[1])
        if both:
            fail("partitions %s owned by both consumers at once" % sorted(both))


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[TOPIC].result(timeout=30)
    expected = set(produce(bootstrap, "first"))

    consumers = [consumer(bootstrap, "kip848-%d" % i) for i in range(2)]
    for c in consumers:
        c.subscribe([TOPIC])
    seen = [[], []]
    deadline = time.time() + 90
    while time.time() < deadline:
        poll_all(consumers, seen)
        a, b = owned(consumers[0]), owned(consumers[1])
        if a and b and len(a | b) == PARTITIONS and set(seen[0]) | set(seen[1]) >= expected:
            break
    a, b = owned(consumers[0]), owned(consumers[1])
    if not (a and b and not (a & b) and len(a | b) == PARTITIONS):
        fail("assignments not disjoint and complete: %s / %s" % (sorted(a), sorted(b)))
    print("two consumers split the %d partitions: %d and %d" % (PARTITIONS, len(a), len(b)))
    got = set(seen[0]) | set(seen[1])
    if got != expected:
        fail("read %d of %d records" % (len(got & expected), len(expected)))
    print("between them they read all %d records" % len(expected))

    described = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=30)
    print("describe: group %s, state %s, %d members" % (described.group_id, described.state, len(described.members)))
    if len(described.members) != 2:
        fail("describe saw %d members, not 2" % len(described.members))

    # Commit what each read, then close one: the other gets everything.
    for c in consumers:
        commit(c)
    consumers[0].close()
    survivor = consumers[1]
    deadline = time.time() + 60
    while time.time() < deadline and len(owned(survivor)) != PARTITIONS:
        survivor.poll(0.1)
    if len(owned(survivor)) != PARTITIONS:
        fail("after one closed, the other owns %s" % sorted(owned(survivor)))
    print("once one closed, the other owned all %d" % PARTITIONS)
    # Drain anything left (nothing should be new), commit and close.
    end = time.time() + 2
    while time.time() < end:
        survivor.poll(0.1)
    # The partitions it took over start at the closed consumer's commits:
    # it reads nothing there, so it may have nothing new to commit.
    commit(survivor)
    committed = survivor.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)
    offsets = sorted(tp.offset for tp in committed)
    if offsets != [PER_PARTITION] * PARTITIONS:
        fail("committed offsets %s, expected %d on each partition" % (offsets, PER_PARTITION))
    print("committed offsets: %d on each partition" % PER_PARTITION)
    survivor.close()

    # A new consumer of the group resumes at the commits.
    second = set(produce(bootstrap, "second"))
    fresh = consumer(bootstrap, "kip848-fresh")
    fresh.subscribe([TOPIC])
    read = []
    deadline = time.time() + 60
    while time.time() < deadline and len(set(read)) < len(second):
        msg = fresh.poll(0.2)
        if msg is not None and msg.error() is None:
            read.append(msg.value().decode())
    end = time.time() + 2
    while time.time() < end:
        msg = fresh.poll(0.1)
        if msg is not None and msg.error() is None:
            read.append(msg.value().decode())
    fresh.close()
    if set(read) != second:
        old = [v for v in read if v.startswith("first-")]
        fail("the new consumer read %d of %d new records and %d old ones" % (len(set(read) & second), len(second), len(old)))
    print("the new consumer resumed at the committed offsets: read only the %d new records" % len(second))


if __name__ == "__main__":
    main()
