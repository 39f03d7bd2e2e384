"""Apps whose listeners record how they were called, for the tests."""

from pyforge.app import Application
from pyforge.lib.context import c
from pyforge.lib.decorators import audit, react
from pyforge.lib.plugins import scan_app
from pyforge.lib.publish import publish
from pyforge.model import session

#: One dict per listener call, in call order.
CALLS = []


def record_call(method, routing_key, data, app=None):
    CALLS.append({
        'method': method,
        'routing_key': routing_key,
        'data': data,
        'project_id': c.project._id,
        'app': c.app.mount_point if c.app is not None else None,
        'self': app.mount_point if app is not None else None,
        'context': c._current_obj(),
        'leftover': getattr(c, 'leftover', None),
    })
    # A later call must never see this: c is fresh for every call.
    c.leftover = method


class RecorderApp(Application):
    """Records every call, in each listener case."""

    @audit('rec.#')
    def audit_instance(self, routing_key, data):
        record_call('audit_instance', routing_key, data, app=self)

    @audit('rec.#')
    @classmethod
    def audit_class(cls, routing_key, data):
        record_call('audit_class', routing_key, data)

    @react('rec.#')
    def react_instance(self, routing_key, data):
        record_call('react_instance', routing_key, data, app=self)

    @classmethod
    @react('rec.#')
    def react_class(cls, routing_key, data):
        record_call('react_class', routing_key, data)


class WriterApp(Application):
    """Writes, publishes, and fails when the message asks it to."""

    @audit('writer.#')
    def write(self, routing_key, data):
        session.insert_one('notes', {'text': data.get('text')})
        self.config.update({'$inc': {'options.writes': 1}})
        publish('react', 'writer.wrote', {'text': data.get('text')})
        if data.get('fail'):
            raise RuntimeError('asked to fail')


def listener(app_class, method_name, exchange, app_name=None):
    """Return the listener of `app_class.method_name` on `exchange`.

    The app name defaults to the class name without "App", lowercase.
    """
    if app_name is None:
        app_name = app_class.__name__.lower().replace('app', '')
    for found in scan_app(app_name, app_class):
        if found.method_name == method_name and found.exchange == exchange:
            return found
    raise LookupError('%s.%s on %s is not a listener'
                      % (app_class.__name__, method_name, exchange))


class SlowApp(Application):
    """Takes its time, so that a test can signal it mid-message."""

    @audit('slow.#')
    def work(self, routing_key, data):
        import os
        import time
        marker = data.get('marker')
        if marker:
            with open(marker, 'a') as started:
                started.write('%d\n' % os.getpid())
        time.sleep(data.get('seconds', 0))
        session.insert_one('notes', {'text': data.get('text'),
                                     'pid': os.getpid()})


class FaultApp(Application):
    """Listeners that fail in each way a worker must survive."""

    @audit('fault.ok')
    def ok(self, routing_key, data):
        """Store the text, or fail when the message says so."""
        session.insert_one('notes', {'text': data.get('text')})
        if data.get('fail'):
            raise ValueError('asked to fail: %s' % data.get('text'))

    @audit('fault.fail')
    def fail(self, routing_key, data):
        session.insert_one('notes', {'text': 'never persisted'})
        raise ValueError('fault.fail always fails')

    @audit('fault.kill')
    def kill(self, routing_key, data):
        """Kill the worker on the first delivery, or on every one."""
        import os
        import signal
        marker = data.get('marker')
        first = marker is None or not os.path.exists(marker)
        if marker is not None:
            open(marker, 'a').close()
        if first or data.get('always'):
            os.kill(os.getpid(), signal.SIGKILL)
        session.insert_one('notes', {'text': data.get('text')})

    @react('loop.#')
    def loop(self, routing_key, data):
        """Republish what it receives to its own routing key, forever."""
        session.insert_one('notes', {'text': 'hop'})
        publish('react', routing_key, data)


class ChainApp(Application):
    """Publishes the next step of a chain until no steps are left."""

    @audit('chain.#')
    def step(self, routing_key, data):
        left = data.get('left', 0)
        session.insert_one('steps', {'left': left, 'hops': c.message.hops})
        if left:
            publish('audit', 'chain.step', {'left': left - 1})


class FlakyApp(Application):
    """Fails the first `fail_times` attempts at a message, then writes."""

    @audit('flaky.#')
    def work(self, routing_key, data):
        attempt = c.message.attempt
        if attempt < data.get('fail_times', 0):
            raise RuntimeError('attempt %d failed on purpose' % attempt)
        session.insert_one('notes', {'text': data.get('text'),
                                     'attempt': attempt})


class SwitchedApp(Application):
    """Fails while the file that its message names exists."""

    @audit('flaky.#')
    def work(self, routing_key, data):
        import os
        session.insert_one('notes', {'text': data.get('text')})
        if os.path.exists(data['fail_while']):
            raise RuntimeError('failing while %s exists' % data['fail_while'])


#: What BatchApp saw from another connection, one entry per call.
OBSERVED = []


def committed_count(db, collection, query):
    """Count documents as another connection sees them: committed ones."""
    import threading
    counts = []
    reader = threading.Thread(
        target=lambda: counts.append(db[collection].count_documents(query)),
        daemon=True)
    reader.start()
    reader.join()
    return counts[0]


class BatchApp(Application):
    """Writes, sleeps and looks at committed data as its message says."""

    @audit('batch.#')
    def write(self, routing_key, data):
        import time
        for document in data.get('documents', ()):
            session.insert_one('batch_notes', document)
        time.sleep(data.get('sleep', 0))
        if 'observe' in data:
            OBSERVED.append(committed_count(
                session.db, 'batch_notes', {}))
        if 'observe_record' in data:
            record = committed_record(session.db, data['observe_record'])
            OBSERVED.append(record.get('unfinished') if record else None)


def committed_record(db, record_id):
    import threading
    found = []
    reader = threading.Thread(target=lambda: found.append(
        db.message_records.find_one({'_id': record_id})), daemon=True)
    reader.start()
    reader.join()
    return found[0]
