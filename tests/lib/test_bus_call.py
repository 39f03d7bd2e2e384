"""Bus.call: one listener called directly, with c and a session."""

import unittest

from pyforge.app import Application
from pyforge.exceptions import ConfigurationError
from pyforge.lib.context import c
from pyforge.lib.decorators import audit, react
from pyforge.lib.message import Envelope
from pyforge.lib.testing import BusTestCase
from pyforge.model import session
from tests.apps import RecorderApp, WriterApp, listener

#: What the listeners of ProbeApp received, one dict per call.
SEEN = []


class ProbeApp(Application):
    """Records c and the count of stored probes while it runs."""

    @audit('probe.#')
    def inspect(self, routing_key, data):
        SEEN.append({
            'c': c._current_obj(),
            'self': self,
            'routing_key': routing_key,
            'data': data,
            'stored_before': session.db.probes.count_documents({}),
        })
        session.insert_one('probes', {'n': data.get('n')})
        return 'returned'

    @audit('probe.both')
    @react('probe.both')
    def both(self, routing_key, data):
        SEEN.append({'exchange': c.message.exchange})

    @react('probe.#')
    @classmethod
    def count(cls, routing_key, data):
        SEEN.append({'c': c._current_obj(), 'self': cls})


class CallCase(BusTestCase):

    bus_config = {}
    bus_apps = []
    bus_extra_apps = {'probe': ProbeApp, 'writer': WriterApp,
                      'recorder': RecorderApp}

    def setUp(self):
        super().setUp()
        del SEEN[:]
        self.bus.create_project('demo', 'probe:probe', 'probe:other',
                                'writer:notes')


class CallTest(CallCase):

    def test_bound_method_sets_context(self):
        app = self.bus.app('demo', 'probe')
        self.bus.call(app.inspect, {'n': 1}, routing_key='probe.x')
        self.assertEqual(len(SEEN), 1)
        seen = SEEN[0]
        self.assertEqual(seen['c'].project._id, 'demo')
        self.assertIs(seen['c'].app, app)
        self.assertIs(seen['self'], app)
        message = seen['c'].message
        self.assertIsInstance(message, Envelope)
        self.assertEqual(message.routing_key, 'probe.x')
        self.assertEqual(message.exchange, 'audit')
        self.assertEqual(message.queue, 'audit.probe.inspect')
        self.assertEqual(message.attempt, 0)
        self.assertEqual(message.hops, 0)
        self.assertEqual(seen['data'], {'n': 1, 'project_id': 'demo',
                                        'mount_point': 'probe'})

    def test_session_flushed_after_return(self):
        app = self.bus.app('demo', 'probe')
        result = self.bus.call(app.inspect, {'n': 1}, routing_key='probe.x')
        self.assertEqual(SEEN[0]['stored_before'], 0)
        self.assertEqual(self.bus.db.probes.count_documents({'n': 1}), 1)
        self.assertEqual(result.writes, 1)
        self.assertEqual(result.returned, 'returned')

    def test_function_with_mount_point(self):
        self.bus.call(ProbeApp.inspect, {'n': 2}, routing_key='probe.x',
                      project='demo', app='other')
        self.assertEqual(SEEN[0]['c'].app.mount_point, 'other')
        self.assertEqual(SEEN[0]['self'].mount_point, 'other')

    def test_mount_point_from_data(self):
        self.bus.call(ProbeApp.inspect,
                      {'project_id': 'demo', 'mount_point': 'other'},
                      routing_key='probe.x')
        self.assertEqual(SEEN[0]['c'].app.mount_point, 'other')

    def test_reactor_ignores_publisher_mount_point(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(RecorderApp.react_instance,
                          {'project_id': 'demo', 'mount_point': 'probe'},
                          routing_key='rec.x')
        self.assertIn('pass app=', str(caught.exception))

    def test_classmethod_reactor_without_app(self):
        self.bus.call(ProbeApp.count, {'project_id': 'demo'},
                      routing_key='probe.y')
        seen = SEEN[0]
        self.assertIs(seen['self'], ProbeApp)
        self.assertIsNone(seen['c'].app)
        self.assertEqual(seen['c'].message.exchange, 'react')
        self.assertEqual(seen['c'].message.data, {'project_id': 'demo'})

    def test_outbox_published_after_flush(self):
        app = self.bus.app('demo', 'notes')
        result = self.bus.call(app.write, {'text': 'hi'},
                               routing_key='writer.x')
        self.assertEqual(len(result.published), 1)
        sent = result.published[0]
        self.assertEqual(sent.routing_key, 'writer.wrote')
        self.assertEqual(sent.hops, 1)
        self.assertEqual(sent.published_by, 'tests.apps:WriterApp.write')
        self.assertEqual(self.bus.published, [sent])
        self.assertEqual(self.bus.app_options('demo', 'notes')['writes'], 1)

    def test_failure_propagates_and_writes_nothing(self):
        app = self.bus.app('demo', 'notes')
        with self.assertRaises(RuntimeError):
            self.bus.call(app.write, {'text': 'hi', 'fail': True},
                          routing_key='writer.x')
        self.assertEqual(self.bus.db.notes.count_documents({}), 0)
        self.assertEqual(self.bus.published, [])
        self.assertEqual(self.bus.calls[0].error,
                         'RuntimeError: asked to fail')

    def test_context_popped_after_call(self):
        app = self.bus.app('demo', 'probe')
        self.bus.call(app.inspect, routing_key='probe.x')
        self.assertFalse(c)

    def test_message_fields_overridden(self):
        app = self.bus.app('demo', 'probe')
        self.bus.call(app.inspect, routing_key='probe.x',
                      message={'attempt': 2, 'hops': 3})
        message = SEEN[0]['c'].message
        self.assertEqual(message.attempt, 2)
        self.assertEqual(message.hops, 3)

    def test_envelope_given_as_is(self):
        app = self.bus.app('demo', 'probe')
        envelope = Envelope(
            message_id='m1', exchange='audit', routing_key='probe.given',
            queue='audit.probe.inspect', data={'project_id': 'demo'}, hops=0,
            attempt=0, published_at=None, redelivered=True)
        self.bus.call(app.inspect, message=envelope)
        self.assertIs(SEEN[0]['c'].message, envelope)
        self.assertEqual(SEEN[0]['routing_key'], 'probe.given')

    def test_listener_object_accepted(self):
        found = listener(RecorderApp, 'react_class', 'react',
                         app_name='recorder')
        self.bus.call(found, {'project_id': 'demo'}, routing_key='rec.x')
        self.assertEqual(self.bus.calls[0].method_name, 'react_class')

    def test_call_recorded(self):
        app = self.bus.app('demo', 'probe')
        self.bus.call(app.inspect, routing_key='probe.x')
        self.assertEqual(len(self.bus.calls), 1)
        self.assertEqual(self.bus.calls[0].mount_point, 'probe')
        self.assertEqual(self.bus.calls[0].routing_key, 'probe.x')


class CallErrorTest(CallCase):

    def test_routing_key_required_for_wildcard(self):
        app = self.bus.app('demo', 'probe')
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(app.inspect)
        self.assertIn("pass routing_key=", str(caught.exception))
        self.assertIn("'probe.#'", str(caught.exception))

    def test_routing_key_must_match(self):
        app = self.bus.app('demo', 'probe')
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(app.inspect, routing_key='other.x')
        self.assertIn("routing key 'other.x' matches none",
                      str(caught.exception))

    def test_instance_method_needs_app(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(ProbeApp.inspect, {'project_id': 'demo'},
                          routing_key='probe.x')
        self.assertIn('pass app=', str(caught.exception))

    def test_project_required(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(ProbeApp.count, routing_key='probe.x')
        self.assertIn('the call needs a project', str(caught.exception))

    def test_not_a_listener(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(self.bus.app('demo', 'probe').__repr__)
        self.assertIn('is not a listener of the bus', str(caught.exception))

    def test_method_on_both_exchanges(self):
        app = self.bus.app('demo', 'probe')
        with self.assertRaises(ConfigurationError) as caught:
            self.bus.call(app.both)
        self.assertIn('listens on both exchanges', str(caught.exception))
        self.bus.call(app.both, exchange='react')
        self.assertEqual(SEEN, [{'exchange': 'react'}])


if __name__ == '__main__':
    unittest.main()
