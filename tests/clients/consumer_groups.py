"""Consumer groups with real clients at their defaults, against one broker.

1. kafka-python: two KafkaConsumer()s in one group subscribe to a topic of
   six partitions; once both are assigned, they own disjoint sets of
   partitions that together cover all six, and between them read every
   record produced. When one closes, the other comes to own all six.
2. confluent-kafka: a consumer with auto-commit (the default) reads part of
   a topic and closes (which commits); a second consumer of the same group
   resumes at the committed offset: nothing is skipped, and what the first
   consumer read is not read again.
3. An admin client (kafka-python's KafkaAdminClient) lists both groups,
   sees the offsets they committed (each partition's end: everything was
   consumed) and describes them as Empty once their consumers closed.

Prints one line per check and exits non-zero with the reason on failure.

Usage: consumer_groups.py BOOTSTRAP
"""
import sys
import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

PARTITIONS = 6
PER_PARTITION = 20


def fail(message):
    sys.exit("FAIL: " + message)


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=30)


def produce(bootstrap, topic, partitions, per_partition):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    values = []
    for p in range(partitions):
        for i in range(per_partition):
            value = "p%d-%03d" % (p, i)
            producer.send(topic, value.encode(), partition=p)
            values.append(value)
    producer.flush(timeout=30)
    producer.close()
    return values


def two_consumers_split_partitions(bootstrap):
    topic, group = "groups-split", "split-group"
    create_topic(bootstrap, topic, PARTITIONS)
    expected = set(produce(bootstrap, topic, PARTITIONS, PER_PARTITION))
    consumers = [KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                               client_id="split-%d" % i) for i in range(2)]
    seen = [[], []]
    deadline = time.time() + 60
    assignments = [set(), set()]
    while time.time() < deadline:
        for i, consumer in enumerate(consumers):
            for records in consumer.poll(timeout_ms=200).values():
                seen[i].extend(r.value.decode() for r in records)
            assignments[i] = {tp.partition for tp in consumer.assignment()}
        both_assigned = all(assignments) and not (assignments[0] & assignments[1])
        if both_assigned and assignments[0] | assignments[1] == set(range(PARTITIONS)) and set(seen[0]) | set(seen[1]) >= expected:
            break
    if not all(assignments):
        fail("kafka-python: a consumer got no partitions: %s" % assignments)
    if assignments[0] & assignments[1]:
        fail("kafka-python: partitions %s owned by both consumers" % sorted(assignments[0] & assignments[1]))
    if assignments[0] | assignments[1] != set(range(PARTITIONS)):
        fail("kafka-python: partitions %s owned by nobody" % sorted(set(range(PARTITIONS)) - assignments[0] - assignments[1]))
    missing = expected - set(seen[0]) - set(seen[1])
    if missing:
        fail("kafka-python: %d records never read, e.g. %s" % (len(missing), sorted(missing)[:3]))
    split = (sorted(assignments[0]), sorted(assignments[1]))
    # One leaves: the group rebalances and the other owns every partition.
    consumers[0].close()
    deadline = time.time() + 60
    while time.time() < deadline and {tp.partition for tp in consumers[1].assignment()} != set(range(PARTITIONS)):
        consumers[1].poll(timeout_ms=200)
    remaining = sorted(tp.partition for tp in consumers[1].assignment())
    consumers[1].close()
    if remaining != list(range(PARTITIONS)):
        fail("kafka-python: after one consumer closed the other owns %s, not all %d partitions" % (remaining, PARTITIONS))
    print("kafka-python: two consumers own %s and %s, and read all %d records; once one closed, the other owned all %d" % (
        split[0], split[1], len(expected), PARTITIONS))
    return group, topic


def read(consumer, count, timeout_s):
    values = []
    deadline = time.time() + timeout_s
    while len(values) < count and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            fail("confluent-kafka: poll error %s" % message.error())
        values.append(message.value().decode())
    return values


def auto_commit_resumes(bootstrap):
    topic, group = "groups-resume", "resume-group"
    create_topic(bootstrap, topic, 1)
    expected = produce(bootstrap, topic, 1, 100)
    config = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    first = confluent_kafka.Consumer(config)
    first.subscribe([topic])
    head = read(first, 40, 60)
    first.close()
    if head != expected[:40]:
        fail("confluent-kafka: the first consumer read %d records, expected the first 40 in order" % len(head))
    second = confluent_kafka.Consumer(config)
    second.subscribe([topic])
    tail = read(second, 60, 60)
    second.close()
    if tail != expected[40:]:
        first_read = tail[0] if tail else None
        fail("confluent-kafka: the second consumer read %d records starting at %s, expected the last 60 from p0-040" % (
            len(tail), first_read))
    print("confluent-kafka: auto-commit at close; the next consumer resumed at offset 40 and read the other 60")
    return group, topic


def admin_sees_groups(bootstrap, groups, ends):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    listed = {g["group_id"]: g["group_state"] for g in admin.list_groups()}
    for group, topic in groups:
        if group not in listed:
            fail("admin: group %s is not listed (listed: %s)" % (group, sorted(listed)))
        offsets = admin.list_group_offsets(group)[group]
        committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
        if committed != ends[topic]:
            fail("admin: group %s committed %s on %s, expected every partition's end %s" % (group, committed, topic, ends[topic]))
    described = admin.describe_groups([g for g, _ in groups])
    states = sorted(d["group_state"] for d in described.values())
    admin.close()
    if states != ["Empty", "Empty"]:
        fail("admin: groups described as %s once their consumers closed, expected Empty" % states)
    print("admin: both groups listed, committed offsets at each partition's end, described as Empty")


def main():
    bootstrap = sys.argv[1]
    groups = [two_consumers_split_partitions(bootstrap), auto_commit_resumes(bootstrap)]
    ends = {"groups-split": {p: PER_PARTITION for p in range(PARTITIONS)}, "groups-resume": {0: 100}}
    admin_sees_groups(bootstrap, groups, ends)


if __name__ == "__main__":
    main()
