"""Creating a topic in a cluster that may still be starting: what the
cluster-mode client scripts share."""
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
