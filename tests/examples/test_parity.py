"""The test bus and real workers, given the same messages, agree.

Each test publishes MESSAGES to the example apps twice: on the test bus,
and on a broker that real worker processes consume. Both runs must make
the same listener calls with the same ``c``, persist the same documents
and dead-letter the same messages.
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

from pyforge.environment import configure
from pyforge.lib.amqp import DEAD_LETTER_QUEUE
from pyforge.lib.publish import publish
from pyforge.lib.testing import Bus, DeadLetter
from pyforge.model import records
from tests.rabbit import RabbitTestCase
from tests.support import (
    BIN, TempDirTestCase, app_path_env, create_project, paster, wait_for)

MOUNTS = [('hello_forge', 'hello'), ('wiki', 'wiki'), ('wiki', 'notes')]

MESSAGES = [
    ('audit', 'hello_forge.comment',
     {'project_id': 'demo', 'mount_point': 'hello', 'text': 'Hi'}),
    # No text: the auditor fails, is retried, and the message dies.
    ('audit', 'hello_forge.comment',
     {'project_id': 'demo', 'mount_point': 'hello'}),
    ('audit', 'hello_forge.ping',
     {'project_id': 'demo', 'mount_point': 'hello'}),
    # Only the class reactor of the wiki listens for it.
    ('react', 'scm.commit', {'project_id': 'demo', 'sha': 'abc123'}),
    # An unknown project: dead at once on both hello_forge queues.
    ('audit', 'hello_forge.comment',
     {'project_id': 'nowhere', 'mount_point': 'hello', 'text': 'x'}),
    # A wiki's mount point: the instance auditor dead-letters it, and the
    # class auditor counts it with c.app None.
    ('audit', 'hello_forge.ping',
     {'project_id': 'demo', 'mount_point': 'wiki'}),
]

#: Fields that differ between any two runs: generated ids, timings, and
#: the host and process id of the worker.
VOLATILE_FIELDS = {
    records.COLLECTION: {'_id', 'message_id', 'worker', 'started_at',
                         'finished_at', 'duration', 'published_at',
                         'latency'},
    'app_configs': {'_id'},
}

#: How long the real workers get to settle every message, in seconds.
SETTLE_TIMEOUT = 60.0


def snapshot(db):
    """Return each collection's documents as sorted JSON strings, less
    their volatile fields."""
    collections = {}
    for name in db.list_collection_names():
        skipped = VOLATILE_FIELDS.get(name, set())
        documents = []
        for document in db[name].find():
            kept = {key: value for key, value in document.items()
                    if key not in skipped}
            documents.append(json.dumps(kept, sort_keys=True, default=str))
        collections[name] = sorted(documents)
    return collections


def comparable_calls(calls):
    """Return listener calls as sorted JSON strings, less message ids."""
    rows = []
    for call in calls:
        kept = {key: value for key, value in call.items()
                if key != 'message_id'}
        rows.append(json.dumps(kept, sort_keys=True))
    return sorted(rows)


def comparable_dead_letters(dead_letters):
    """Return what identifies each dead letter, sorted."""
    return sorted(
        (letter.reason, letter.queue, letter.listener, letter.attempts,
         letter.exchange, letter.routing_key,
         json.dumps(letter.data, sort_keys=True), letter.error)
        for letter in dead_letters)


def publish_all():
    for exchange, routing_key, data in MESSAGES:
        publish(exchange, routing_key, dict(data))
        # kombu's filesystem transport orders a queue by millisecond,
        # then at random; the pause keeps the order of publishing.
        time.sleep(0.002)


def run_on_bus(test, config):
    """Deliver MESSAGES on a new test bus; return the bus."""
    bus = Bus(config)
    test.addCleanup(bus.close)
    bus.create_project('demo', *['%s:%s' % mount for mount in MOUNTS])
    bus.activate()
    try:
        publish_all()
        bus.deliver()
    finally:
        bus.deactivate()
    return bus


class ScenarioTest(TempDirTestCase):

    def test_bus_run_covers_every_case(self):
        # Agreement means little if both runs did little.
        bus = run_on_bus(self, {'reactor.max_attempts': '3'})
        contexts = {(call.method_name, call.mount_point)
                    for call in bus.calls}
        self.assertEqual(contexts, {
            ('auditor', 'hello'), ('count_messages', 'hello'),
            ('count_messages', None), ('on_comment', 'wiki'),
            ('on_comment', 'notes'), ('count_events', None)})
        attempts = [call.attempt for call in bus.calls
                    if call.method_name == 'auditor' and call.error]
        self.assertEqual(attempts, [0, 1, 2])
        reasons = sorted(letter.reason for letter in bus.dead_letters)
        self.assertEqual(reasons, ['max-attempts', 'unknown-project',
                                   'unknown-project', 'wrong-app'])
        options = bus.app_options('demo', 'notes')
        self.assertEqual(len(options['recent_changes']), 1)


class ParityMixin:
    """Runs MESSAGES on the test bus and on `amqp_url()` with the real
    workers of `start_workers()`, and compares the two runs."""

    #: Whether the real workers report their listener calls.
    records_calls = True

    def amqp_url(self):
        raise NotImplementedError

    def start_workers(self, log):
        """Start the real workers, writing to the file `log`; return
        their Popen."""
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.ini = self.write_ini(self.amqp_url(), mongo_url,
                                  'reactor.max_attempts = 3\n')
        self.env = app_path_env(self.tmp)
        self.calls_path = os.path.join(self.tmp, 'calls.jsonl')
        self.log_path = os.path.join(self.tmp, 'workers.log')
        result = paster('reactor_setup', self.ini, env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.environment = configure(self.ini)
        self.addCleanup(self.environment.close)
        create_project(self.environment.db, 'demo', MOUNTS)

    def test_same_results(self):
        bus = run_on_bus(self, self.ini)
        self.run_on_workers(
            expected_records=bus.db[records.COLLECTION].count_documents({}))

        self.assertEqual(snapshot(self.environment.db), snapshot(bus.db))
        self.assertEqual(comparable_dead_letters(self.real_dead_letters()),
                         comparable_dead_letters(bus.dead_letters))
        if self.records_calls:
            with open(self.calls_path, encoding='utf-8') as lines:
                real_calls = [json.loads(line) for line in lines]
            bus_calls = [vars(call) for call in bus.calls]
            self.assertEqual(comparable_calls(real_calls),
                             comparable_calls(bus_calls))

    def run_on_workers(self, expected_records):
        publish_all()
        log = open(self.log_path, 'w', encoding='utf-8')
        self.addCleanup(log.close)
        process = self.start_workers(log)
        self.addCleanup(_kill, process)
        collection = self.environment.db[records.COLLECTION]

        def settled():
            finished = collection.count_documents(
                {'status': {'$in': [records.DONE, records.DEAD]}})
            total = collection.count_documents({})
            return finished == total == expected_records

        try:
            wait_for(settled, timeout=SETTLE_TIMEOUT,
                     what='%d settled message records' % expected_records)
        except AssertionError as exc:
            _kill(process)
            raise AssertionError('%s; the workers wrote:\n%s'
                                 % (exc, self.worker_log())) from None
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        self.assertEqual(process.returncode, 0, self.worker_log())

    def real_dead_letters(self):
        letters = []
        with self.environment.connection() as connection:
            channel = connection.channel()
            # Bounded: the run makes a handful of dead letters.
            for _ in range(1000):
                message = channel.basic_get(DEAD_LETTER_QUEUE, no_ack=True)
                if message is None:
                    break
                letters.append(DeadLetter.from_kombu(message))
        return letters

    def worker_log(self):
        with open(self.log_path, encoding='utf-8') as log:
            return log.read()

    def start_recording_worker(self, log):
        return subprocess.Popen(
            [sys.executable, '-m', 'tests.examples.recording_worker',
             self.ini, self.calls_path],
            env=self.env, stdout=log, stderr=log)

    def start_paster_reactor(self, log):
        return subprocess.Popen(
            [os.path.join(BIN, 'paster'), 'reactor', self.ini],
            env=self.env, stdout=log, stderr=log)


def _kill(process):
    if process.poll() is None:
        process.kill()
        process.wait()


class FilesystemWorkerParityTest(ParityMixin, TempDirTestCase):

    def amqp_url(self):
        return self.embedded_urls()[0]

    def start_workers(self, log):
        return self.start_recording_worker(log)


class FilesystemReactorParityTest(ParityMixin, TempDirTestCase):

    records_calls = False

    def amqp_url(self):
        return self.embedded_urls()[0]

    def start_workers(self, log):
        return self.start_paster_reactor(log)


class RabbitWorkerParityTest(ParityMixin, TempDirTestCase, RabbitTestCase):

    def amqp_url(self):
        return self.vhost.url

    def start_workers(self, log):
        return self.start_recording_worker(log)


class RabbitReactorParityTest(ParityMixin, TempDirTestCase, RabbitTestCase):

    records_calls = False

    def amqp_url(self):
        return self.vhost.url

    def start_workers(self, log):
        return self.start_paster_reactor(log)


if __name__ == '__main__':
    unittest.main()
