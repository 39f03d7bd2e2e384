"""A declared bus, a demo project and dead letters for the tests of the
operator commands."""

import json
import subprocess

from pyforge.config import load_settings
from pyforge.environment import Environment
from pyforge.lib.amqp import DEAD_LETTER_QUEUE, Publisher, dead_letter_queue
from pyforge.lib.message import Delivery, build_message
from pyforge.lib.retry import dead_letter
from pyforge.lib.topology import inspect_queue
from pyforge.model import records
from tests.support import TempDirTestCase, app_path_env, paster, register_apps

AUDITOR = 'audit.hello_forge.auditor'
COUNTER = 'audit.hello_forge.count_messages'
AUDITOR_LABEL = 'pyforge_examples.hello_forge:HelloForgeApp.auditor'


class OpsTestCase(TempDirTestCase):
    """Runs reactor_setup and creates project ``demo`` with hello_forge
    mounted at ``hello``, on the broker of :meth:`amqp_url`."""

    extra_settings = ''
    #: Apps registered for the paster processes: {name: 'module:Class'}.
    apps = {}
    setup_bus = True

    def amqp_url(self):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.ini = self.write_ini(self.amqp_url(), mongo_url,
                                  self.extra_settings)
        register_apps(self.tmp, self.apps)
        self.env = app_path_env(self.tmp)
        if self.setup_bus:
            self.paster_ok('reactor_setup', self.ini)
            self.paster_ok('project', self.ini, 'create', 'demo',
                           '--mount', 'hello_forge:hello')
        self.environment = Environment(load_settings(self.ini))
        self.db = self.environment.db
        self.connection = self.environment.connection()
        self.addCleanup(self.connection.release)

    def paster(self, *args, **kwargs):
        return paster(*args, env=self.env, **kwargs)

    def paster_ok(self, *args, **kwargs):
        result = self.paster(*args, **kwargs)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def ready(self, queue, require_binding=True):
        """Return the messages ready in `queue`, or None if it is
        missing."""
        found = inspect_queue(self.connection, queue, require_binding)
        return None if found is None else found[0]

    def dead_count(self):
        return self.ready(DEAD_LETTER_QUEUE, require_binding=False)

    def take_messages(self, queue):
        """Consume and return every Delivery waiting in `queue`."""
        channel = self.connection.channel()
        deliveries = []
        try:
            for _ in range(1000):
                message = channel.basic_get(queue, no_ack=True)
                if message is None:
                    break
                if hasattr(channel, 'message_to_python'):
                    message = channel.message_to_python(message)
                deliveries.append(Delivery.from_kombu(message, queue))
        finally:
            channel.close()
        return deliveries

    def add_dead_letter(self, queue=AUDITOR, reason='max-attempts',
                        error='ValueError: boom', attempts=5,
                        routing_key='hello_forge.comment', data=None,
                        message_id=None, exchange='audit'):
        """Dead-letter a message as a worker does: publish it to
        pyforge.dead and record it as dead. Return the dead letter."""
        if data is None:
            data = {'project_id': 'demo', 'mount_point': 'hello',
                    'text': 'hi'}
        message = build_message(exchange, routing_key, data)
        if message_id is not None:
            message.message_id = message_id
        message.headers['pyforge-attempt'] = attempts - 1
        letter = dead_letter(Delivery.from_outgoing(message, queue),
                             reason, error, attempts, AUDITOR_LABEL)
        publisher = Publisher(self.connection)
        publisher.maybe_declare(dead_letter_queue())
        publisher.send(letter)
        records.save_outcome(self.db, {
            'message_id': message.message_id, 'queue': queue,
            'exchange': exchange, 'routing_key': routing_key,
            'status': records.DEAD, 'attempts': attempts, 'error': error,
            'reason': reason, 'finished_at': records.utcnow()})
        return letter

    def dead_letter_ids(self):
        """Return the IDs that "reactor_dead list --json" prints."""
        result = self.paster_ok('reactor_dead', self.ini, 'list', '--json')
        return [entry['id'] for entry in json.loads(result.stdout)]


def stop_process(process):
    """Stop a paster process with SIGTERM, or kill it after 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
