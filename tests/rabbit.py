"""A RabbitMQ vhost of their own for the tests that need the broker.

RabbitMQ must listen on 127.0.0.1:5672 with guest/guest, as on every
development and CI machine. When it does not, these tests are skipped,
except with CI=true, where they fail: a CI run must not pass without them.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
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


def rabbitmqctl(*args, node=None):
    """Run rabbitmqctl, against `node` if given, and return its output;
    raise if it fails."""
    command = ['rabbitmqctl', '-q']
    if node is not None:
        command += ['-n', node]
    result = subprocess.run(
        command + list(args), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError('rabbitmqctl %s failed: %s%s' % (
            ' '.join(args), result.stdout, result.stderr))
    return result.stdout


#: Prefix of the vhosts of this run; .ci/run sets it to delete whatever
#: a crashed run left behind.
VHOST_PREFIX = os.environ.get('PYFORGE_TEST_VHOST_PREFIX', 'pyforge-test')


class Vhost:
    """A throw-away vhost, with guest allowed everything in it.

    It lives on the shared RabbitMQ unless a :class:`PrivateNode` is
    given.
    """

    def __init__(self, node=None):
        self.name = '%s-%s' % (VHOST_PREFIX, uuid.uuid4().hex[:12])
        self.node = node

    @property
    def url(self):
        port = self.node.port if self.node is not None else PORT
        return 'amqp://guest:guest@%s:%d/%s' % (HOST, port, self.name)

    def create(self):
        self.ctl('add_vhost', self.name)
        self.ctl('set_permissions', '-p', self.name, 'guest',
                 '.*', '.*', '.*')
        return self

    def delete(self):
        self.ctl('delete_vhost', self.name)

    def ctl(self, *args):
        node = self.node.name if self.node is not None else None
        return rabbitmqctl(*args, node=node)


def free_port():
    """Return a loopback TCP port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class PrivateNode:
    """A RabbitMQ node of a test's own, listening on a free loopback port.

    Tests that stop and start the broker use one, so that the outage
    disturbs no other test or user of the shared RabbitMQ. RabbitMQ's
    scripts run the node as the ``rabbitmq`` user, so this needs root.
    """

    def __init__(self):
        self.name = 'pyforge-%s@localhost' % uuid.uuid4().hex[:8]
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix='pyforge-rabbitmq-')

    def start(self):
        with open(os.path.join(self.folder, 'rabbitmq.conf'), 'w') as conf:
            conf.write('listeners.tcp.local = 127.0.0.1:%d\n' % self.port)
        for path in [self.folder] + [
                os.path.join(self.folder, name)
                for name in os.listdir(self.folder)]:
            shutil.chown(path, 'rabbitmq', 'rabbitmq')
        env = dict(
            os.environ,
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_CONFIG_FILE=os.path.join(self.folder, 'rabbitmq'),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_MNESIA_BASE=os.path.join(self.folder, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(self.folder, 'log'),
            RABBITMQ_PID_FILE=os.path.join(self.folder, 'pid'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(
                self.folder, 'enabled_plugins'),
        )
        subprocess.run(['rabbitmq-server', '-detached'], env=env,
                       check=True, timeout=60, capture_output=True)
        self.await_startup()
        return self

    def await_startup(self, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            try:
                rabbitmqctl('await_startup', '--timeout', '10',
                            node=self.name)
                return
            except RuntimeError:
                # The node does not answer rabbitmqctl until it booted.
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop_app(self):
        rabbitmqctl('stop_app', node=self.name)

    def start_app(self):
        rabbitmqctl('start_app', node=self.name)
        self.await_startup()

    def stop(self):
        try:
            rabbitmqctl('stop', node=self.name)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def require_private_node(test_case):
    """Skip or fail, as :func:`require_rabbitmq`, without root."""
    require_rabbitmq(test_case)
    if os.geteuid() == 0:
        return
    problem = 'a private RabbitMQ node needs root to run as rabbitmq'
    if os.environ.get('CI', '').lower() == 'true':
        raise AssertionError(problem)
    raise unittest.SkipTest(problem)


class RabbitTestCase(unittest.TestCase):
    """Gives each test a vhost of its own in ``self.vhost``, so no test
    sees the queues and messages of another."""

    def setUp(self):
        super().setUp()
        require_rabbitmq(self)
        self.vhost = Vhost().create()
        self.addCleanup(self.vhost.delete)
