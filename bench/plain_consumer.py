"""The reference: a plain kombu consumer with pyforge's guarantees.

It consumes one queue with the same prefetch, decodes each JSON body,
inserts the same record document that pyforge writes for a handled
message into the same kind of store, and acks the message only after
that write, one at a time. It stops after --messages records.

Run: python bench/plain_consumer.py AMQP_URL MONGO_URL QUEUE --messages N
"""

import argparse
import datetime
import json
import os
import socket
import sys
import time

import kombu

from pyforge.lib.store import connect as connect_store
from pyforge.lib.transport import filesystem_options


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('amqp_url')
    parser.add_argument('mongo_url')
    parser.add_argument('queue')
    parser.add_argument('--messages', type=int, required=True,
                        help='records to write before exiting')
    parser.add_argument('--prefetch', type=int, default=20,
                        help='messages taken ahead (default: %(default)s)')
    arguments = parser.parse_args(argv)

    db = connect_store(arguments.mongo_url)
    records = db['message_records']
    # kombu's own transport classes, as a plain kombu user has them.
    if arguments.amqp_url.startswith('filesystem:'):
        options = filesystem_options(arguments.amqp_url)
        # pyforge's default; kombu's own is one second.
        options['polling_interval'] = 0.05
        connection = kombu.Connection('filesystem://localhost',
                                      transport_options=options)
    else:
        connection = kombu.Connection(arguments.amqp_url)
    handled = 0
    worker = '%s:%d' % (socket.gethostname(), os.getpid())

    def on_message(message):
        nonlocal handled
        started = datetime.datetime.now(datetime.timezone.utc)
        data = json.loads(message.body)
        info = message.delivery_info
        published_at = message.headers['pyforge-published-at']
        message_id = message.properties['message_id']
        finished = datetime.datetime.now(datetime.timezone.utc)
        # The same document pyforge records for a handled message.
        records.insert_one({
            '_id': '%s/%s' % (arguments.queue, message_id),
            'message_id': message_id,
            'queue': arguments.queue,
            'exchange': info.get('exchange'),
            'routing_key': info.get('routing_key'),
            'listener': 'bench.plain_consumer:on_message',
            'project_id': data.get('project_id'),
            'mount_point': data.get('mount_point'),
            'status': 'done',
            'attempts': 1,
            'worker': worker,
            'started_at': started,
            'finished_at': finished,
            'duration': (finished - started).total_seconds(),
            'published_at': datetime.datetime.fromtimestamp(
                published_at, datetime.timezone.utc),
            'latency': finished.timestamp() - published_at,
        })
        message.ack()
        handled += 1

    with connection:
        queue = kombu.Queue(arguments.queue, no_declare=True)
        with kombu.Consumer(connection, [queue], on_message=on_message,
                            prefetch_count=arguments.prefetch):
            while handled < arguments.messages:
                try:
                    connection.drain_events(timeout=1)
                except socket.timeout:
                    pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
