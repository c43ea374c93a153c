"""Transactional producers of kafka-python and confluent-kafka against the
broker at argv[1]: each initialises its transactional id, commits one
transaction and aborts another; a second instance of the id fences the
first (its next commit is refused as fenced). Markers, and so what a
read_committed consumer sees, are not checked: only the coordinator's side.
"""
import sys

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic("txn-clients", 2, 1)]).values():
    future.result()

# kafka-python
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kafka-python-txn")
producer.init_transactions()
producer.begin_transaction()
for i in range(10):
    producer.send("txn-clients", b"kp-%d" % i, partition=i % 2)
producer.commit_transaction()
producer.begin_transaction()
producer.send("txn-clients", b"kp-aborted", partition=0)
producer.abort_transaction()
producer.close()
print("kafka-python: committed and aborted")

# confluent-kafka, then a second instance of the same id
config = {"bootstrap.servers": bootstrap, "transactional.id": "confluent-txn"}
first = Producer(config)
first.init_transactions(30)
first.begin_transaction()
for i in range(10):
    first.produce("txn-clients", value=b"ck-%d" % i, partition=i % 2)
first.commit_transaction(30)
first.begin_transaction()
first.produce("txn-clients", value=b"ck-aborted", partition=1)
first.abort_transaction(30)
print("confluent: committed and aborted")

first.begin_transaction()
first.produce("txn-clients", value=b"zombie", partition=0)
first.flush(30)
second = Producer(config)
second.init_transactions(30)
try:
    first.commit_transaction(30)
    print("confluent: the first instance committed after being fenced")
except KafkaException as error:
    fenced = error.args[0].fatal() or "fenced" in str(error).lower()
    print("confluent: the first instance is fenced" if fenced else f"confluent: unexpected error {error}")
second.begin_transaction()
second.produce("txn-clients", value=b"second", partition=0)
second.commit_transaction(30)
print("confluent: the second instance committed")
