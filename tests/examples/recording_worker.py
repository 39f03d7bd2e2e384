"""A real worker on every queue that writes each listener call to a file.

    python -m tests.examples.recording_worker CONFIG CALLS_FILE

The parity tests compare what it did with what the test bus does. It is
:class:`pyforge.lib.worker.Worker`, consuming from the broker of CONFIG
until SIGTERM; only its listeners report their calls, as JSON lines.
"""

import dataclasses
import json
import logging
import sys

from pyforge.environment import configure
from pyforge.lib.plugins import find_listeners
from pyforge.lib.testing import RecordingListener
from pyforge.lib.worker import Worker


def main(config_path, calls_path):
    """Run the worker until it is stopped; return its exit status."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format='%(asctime)s %(levelname)s [%(name)s] %(message)s')
    environment = configure(config_path)
    with open(calls_path, 'a', encoding='utf-8') as calls:

        def record(call):
            calls.write(json.dumps(dataclasses.asdict(call)) + '\n')
            calls.flush()

        listeners = [RecordingListener.wrap(listener, record)
                     for listener in find_listeners()]
        return Worker(environment, listeners).run()


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
