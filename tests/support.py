"""Environments, projects and captured output for pyforge's own tests."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from pyforge.config import Settings
from pyforge.environment import Environment, configure
from pyforge.lib.context import pushed, session
from pyforge.lib.message import Delivery, build_message
from pyforge.model import AppConfig, Project, Session

#: Folder holding the paster script of the interpreter running the tests.
BIN = os.path.dirname(sys.executable)


def make_settings(amqp_url, mongo_url, **overrides):
    """Return Settings with fast retries, for tests."""
    values = {
        'amqp.url': amqp_url,
        'mongo.url': mongo_url,
        'reactor.retry_delay': '0.05',
        'reactor.retry_max_delay': '0.2',
        'reactor.shutdown_timeout': '10',
    }
    values.update({key.replace('_', '.', 1): str(value)
                   for key, value in overrides.items()})
    return Settings.from_dict(values)


class TempDirTestCase(unittest.TestCase):
    """Gives each test a temporary folder in ``self.tmp``."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='pyforge-test-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def embedded_urls(self):
        """Return the filesystem broker and SQLite store URLs in tmp."""
        return ('filesystem://%s/broker' % self.tmp,
                'sqlite://%s/pyforge.sqlite' % self.tmp)

    def write_ini(self, amqp_url, mongo_url, extra=''):
        """Write an .ini file for the paster commands; return its path.

        `extra` holds ``key = value`` lines that add or replace settings.
        """
        settings = {
            'amqp.url': amqp_url,
            'mongo.url': mongo_url,
            'reactor.retry_delay': '0.05',
            'reactor.retry_max_delay': '0.2',
            'reactor.shutdown_timeout': '10',
        }
        for line in textwrap.dedent(extra).splitlines():
            if line.strip():
                key, _, value = line.partition('=')
                settings[key.strip()] = value.strip()
        path = os.path.join(self.tmp, 'test.ini')
        with open(path, 'w', encoding='utf-8') as ini:
            ini.write('[app:main]\n')
            for key, value in settings.items():
                ini.write('%s = %s\n' % (key, value))
        return path


def create_project(db, shortname='demo', mounts=()):
    """Create a project with ``(app name, mount point)`` mounts."""
    with pushed(session, Session(db)):
        project = Project.new(shortname)
        project.insert()
        for app_name, mount_point in mounts:
            AppConfig.new(project._id, mount_point, app_name).insert()
        session.flush()
    return Project.get(project._id, db=db)


def delivery_for(listener, data, routing_key=None, **fields):
    """Return the delivery of a message built by pyforge for `listener`."""
    message = build_message(
        listener.exchange, routing_key or _key_for(listener.patterns[0]),
        data)
    delivery = Delivery.from_outgoing(message, listener.queue)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def _key_for(pattern):
    words = ['x' if word in ('*', '#') else word
             for word in pattern.split('.')]
    return '.'.join(words)


class CapturingPublisher:
    """Stands in for :class:`pyforge.lib.amqp.Publisher` where a test
    looks at what the dispatcher would send, not at the broker."""

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)
        return True


def environment(settings):
    """Return an Environment for `settings` (not made current)."""
    return Environment(settings)


#: Root of the repository, so that subprocesses can import ``tests``.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def register_apps(folder, apps):
    """Register `apps` ({name: 'module:Class'}) under the ``pyforge``
    entry point group, for processes given :func:`app_path_env`."""
    info = os.path.join(folder, 'pyforge_test_apps-1.0.dist-info')
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, 'METADATA'), 'w') as metadata:
        metadata.write('Metadata-Version: 2.1\nName: pyforge-test-apps\n'
                       'Version: 1.0\n')
    with open(os.path.join(info, 'entry_points.txt'), 'w') as points:
        points.write('[pyforge]\n')
        for name, target in sorted(apps.items()):
            points.write('%s = %s\n' % (name, target))


def app_path_env(folder):
    """Return an environment that finds apps registered in `folder`."""
    env = dict(os.environ)
    paths = [folder, ROOT]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def paster(*args, timeout=120, **kwargs):
    """Run the paster script of this interpreter; return the result."""
    return subprocess.run(
        [os.path.join(BIN, 'paster')] + list(args), capture_output=True,
        text=True, timeout=timeout, **kwargs)


def start_paster(*args, **kwargs):
    """Start the paster script in the background; return the Popen."""
    return subprocess.Popen(
        [os.path.join(BIN, 'paster')] + list(args), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(condition, timeout=30.0, interval=0.05, what='condition'):
    """Poll `condition` until it returns a true value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.0f s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


class ReactorTestCase(TempDirTestCase):
    """Sets up the example apps and a demo project for `amqp_url()`."""

    extra_settings = ''

    def amqp_url(self):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        _, mongo_url = self.embedded_urls()
        self.ini = self.write_ini(self.amqp_url(), mongo_url,
                                  self.extra_settings)
        register_apps(self.tmp, {'slow': 'tests.apps:SlowApp',
                                 'fault': 'tests.apps:FaultApp'})
        self.env = app_path_env(self.tmp)
        self.run_paster('reactor_setup', self.ini)
        self.run_paster(
            'project', self.ini, 'create', 'demo', '--mount',
            'hello_forge:hello', '--mount', 'wiki:wiki', '--mount',
            'wiki:notes', '--mount', 'slow:slow', '--mount', 'fault:fault')
        self.environment = configure(self.ini)
        self.addCleanup(self.environment.close)
        self.db = self.environment.db
        self.reactors = []

    def run_paster(self, *args):
        result = paster(*args, env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def start_reactor(self, *args):
        process = start_paster('reactor', self.ini, *args, env=self.env)
        self.addCleanup(_kill, process)
        self.reactors.append(process)
        return process

    def wait_for(self, condition, what, timeout=30.0):
        """Wait for `condition`; on timeout, show the reactors' logs."""
        try:
            return wait_for(condition, timeout=timeout, what=what)
        except AssertionError as exc:
            logs = [_kill(process) for process in self.reactors]
            raise AssertionError('%s\n%s' % (exc, '\n'.join(logs)))

    def stop(self, process, timeout=30):
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=timeout)
        return process.returncode, err

    def app_options(self, mount_point):
        config = self.db.app_configs.find_one({'mount_point': mount_point})
        return config['options']


def _kill(process):
    """Kill `process` if it runs; return what it wrote to stderr."""
    if process.poll() is None:
        process.kill()
    try:
        _, err = process.communicate(timeout=30)
    except ValueError:
        # Its output was read already, by stop().
        err = ''
    return err or ''
