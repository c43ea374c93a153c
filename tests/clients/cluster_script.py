"""What the cluster-mode client scripts share: creating a topic in a
cluster that may still be starting, and waiting for the test driving the
faults to say it acted (a file appearing in the control directory)."""
import os
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic


def create_topic(admin, topic, partitions, replication_factor, deadline_s):
    """Creates `topic`, retrying while brokers register with the quorum;
    an earlier try that did create it (TOPIC_ALREADY_EXISTS) counts."""
    deadline = time.monotonic() + deadline_s
    while True:
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)])
        try:
            futures[topic].result(timeout=10)
            return
        except KafkaException as error:
            if error.args[0].code() == 36:  # TOPIC_ALREADY_EXISTS
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def wait_for_file(control_dir, name, deadline_s):
    """Waits until `control_dir/name` exists (the driver's answer to a
    KILL or RESTART line)."""
    path = os.path.join(control_dir, name)
    deadline = time.monotonic() + deadline_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} never appeared")
        time.sleep(0.05)


def read_partition(bootstrap, topic, partition, group_id, deadline_s):
    """Every message of `topic`/`partition` from its low to its high
    watermark (as they stand when called), in offset order."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    consumer.assign([TopicPartition(topic, partition, low)])
    read = []
    deadline = time.monotonic() + deadline_s
    while len(read) < high - low:
        message = consumer.poll(1.0)
        if time.monotonic() > deadline:
            raise RuntimeError(f"read {len(read)} of {high - low} records")
        if message is None or message.error() is not None:
            continue
        read.append(message)
    consumer.close()
    return read
