"""Apps for the benchmarks, registered through a temporary entry point.

``bench`` has one no-op auditor; ``bench20`` has twenty, for measuring
the memory of many queues. The message record every handled message gets
is the only write.
"""

from pyforge.app import Application
from pyforge.lib.decorators import audit


class NoopApp(Application):
    """One auditor that does nothing but get its message recorded."""

    @audit('bench.#')
    def noop(self, routing_key, data):
        pass


#: Twenty auditors, each with a queue of its own.
TwentyApp = type('TwentyApp', (Application,), {
    'noop_%02d' % number: audit('twenty.%02d' % number)(
        lambda self, routing_key, data: None)
    for number in range(20)
})
TwentyApp.__module__ = __name__
