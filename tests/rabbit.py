"""A RabbitMQ vhost of their own for the tests that need the broker.

RabbitMQ must listen on 127.0.0.1:5672 with guest/guest, as on every
development and CI machine. When it does not, these tests are skipped,
except with CI=true, where they fail: a CI run must not pass without them.
"""

import os
import shutil
import socket
import subprocess
import unittest
import uuid

HOST = os.environ.get('PYFORGE_TEST_RABBITMQ_HOST', '127.0.0.1')
PORT = int(os.environ.get('PYFORGE_TEST_RABBITMQ_PORT', '5672'))


def rabbitmq_available():
    """Return None if RabbitMQ answers and rabbitmqctl exists, else why."""
    if shutil.which('rabbitmqctl') is None:
        return 'rabbitmqctl is not on PATH'
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        return 'RabbitMQ is not listening on %s:%d (%s)' % (HOST, PORT, exc)
    return None


def require_rabbitmq(test_case):
    """Skip `test_case` without RabbitMQ, or fail when CI=true."""
    problem = rabbitmq_available()
    if problem is None:
        return
    if os.environ.get('CI', '').lower() == 'true':
        raise AssertionError(
            'RabbitMQ is required when CI=true: %s; start it with '
            'rabbitmq-server -detached' % problem)
    raise unittest.SkipTest(problem)


def rabbitmqctl(*args):
    """Run rabbitmqctl and return its output; raise if it fails."""
    result = subprocess.run(
        ['rabbitmqctl', '-q'] + list(args), capture_output=True, text=True,
        timeout=60)
    if result.returncode != 0:
        raise RuntimeError('rabbitmqctl %s failed: %s%s' % (
            ' '.join(args), result.stdout, result.stderr))
    return result.stdout


#: Prefix of the vhosts of this run; .ci/run sets it to delete whatever
#: a crashed run left behind.
VHOST_PREFIX = os.environ.get('PYFORGE_TEST_VHOST_PREFIX', 'pyforge-test')


class Vhost:
    """A throw-away vhost, with guest allowed everything in it."""

    def __init__(self):
        self.name = '%s-%s' % (VHOST_PREFIX, uuid.uuid4().hex[:12])

    @property
    def url(self):
        return 'amqp://guest:guest@%s:%d/%s' % (HOST, PORT, self.name)

    def create(self):
        rabbitmqctl('add_vhost', self.name)
        rabbitmqctl('set_permissions', '-p', self.name, 'guest',
                    '.*', '.*', '.*')
        return self

    def delete(self):
        rabbitmqctl('delete_vhost', self.name)


class RabbitTestCase(unittest.TestCase):
    """Gives each test a vhost of its own in ``self.vhost``, so no test
    sees the queues and messages of another."""

    def setUp(self):
        super().setUp()
        require_rabbitmq(self)
        self.vhost = Vhost().create()
        self.addCleanup(self.vhost.delete)
