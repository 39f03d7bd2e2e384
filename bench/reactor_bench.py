"""Benchmark ``paster reactor`` against a plain kombu consumer.

In one run, on the local RabbitMQ (in a vhost of its own, deleted at the
end) and on the embedded defaults, it measures for a no-op auditor whose
message record is persisted:

- throughput: N messages are queued first, then consumed; messages per
  second between the first and the last record written;
- latency: messages published at a steady rate while the consumer runs;
  p50 and p99 of publish-to-record time;
- the same with two ``paster reactor`` processes on one queue;
- memory: RSS of an idle worker and after the run, and the total RSS of
  ``paster reactor`` with 20 queues, as 20 processes and as one.

The reference is bench/plain_consumer.py: kombu alone, writing the same
record to the same store and acking each message after it. Ratios are
pyforge / reference. Stores are SQLite files in a temporary folder, which
is removed at exit.

Run: python bench/reactor_bench.py [--messages 20000] [--rate 1000]
"""

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import kombu

from pyforge.environment import Environment
from pyforge.config import Settings
from pyforge.lib.amqp import Publisher
from pyforge.lib.message import build_message
from pyforge.lib.topology import inspect_queue

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
QUEUE = 'audit.bench.noop'


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=20000,
                        help='messages for the throughput runs '
                             '(default: %(default)s)')
    parser.add_argument('--rate', type=float, default=1000,
                        help='messages per second in the latency runs '
                             '(default: %(default)s)')
    parser.add_argument('--latency-seconds', type=float, default=5,
                        help='length of each latency run, seconds '
                             '(default: %(default)s)')
    parser.add_argument('--prefetch', type=int, default=20,
                        help='reactor.prefetch and the reference\'s '
                             'prefetch (default: %(default)s)')
    parser.add_argument('--amqp-host', default='127.0.0.1:5672',
                        help='RabbitMQ host:port, guest/guest '
                             '(default: %(default)s)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='runs of each measurement, alternating '
                             'pyforge and the reference; the table shows '
                             'medians (default: %(default)s)')
    parser.add_argument('--skip-embedded', action='store_true',
                        help='measure RabbitMQ only')
    arguments = parser.parse_args(argv)
    if arguments.messages < 2 or arguments.rate <= 0:
        parser.error('--messages must be 2 or more and --rate positive')
    if arguments.repeat < 1:
        parser.error('--repeat must be 1 or more')
    return arguments


class Bench:
    """One temporary folder, vhost and apps for every measurement."""

    def __init__(self, arguments):
        self.arguments = arguments
        self.folder = tempfile.mkdtemp(prefix='pyforge-bench-')
        self.vhost = 'pyforge-bench-%s' % uuid.uuid4().hex[:8]
        _write_entry_points(self.folder)
        self.env = dict(os.environ)
        self.env['PYTHONPATH'] = os.pathsep.join(
            [self.folder, ROOT] + ([self.env['PYTHONPATH']]
                                   if self.env.get('PYTHONPATH') else []))
        self.runs = 0

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def rabbit_url(self):
        return 'amqp://guest:guest@%s/%s' % (self.arguments.amqp_host,
                                             self.vhost)

    def fresh(self, embedded):
        """Return (ini path, settings) for a new, empty broker and store."""
        self.runs += 1
        run = os.path.join(self.folder, 'run%d' % self.runs)
        os.makedirs(run)
        if embedded:
            amqp_url = 'filesystem://%s/broker' % run
        else:
            _rabbitmqctl('delete_vhost', self.vhost, check=False)
            _rabbitmqctl('add_vhost', self.vhost)
            _rabbitmqctl('set_permissions', '-p', self.vhost, 'guest',
                         '.*', '.*', '.*')
            amqp_url = self.rabbit_url()
        values = {
            'amqp.url': amqp_url,
            'mongo.url': 'sqlite://%s/store.sqlite' % run,
            'reactor.prefetch': str(self.arguments.prefetch),
        }
        ini = os.path.join(run, 'bench.ini')
        with open(ini, 'w') as config:
            config.write('[app:main]\n')
            for key, value in values.items():
                config.write('%s = %s\n' % (key, value))
        self.paster('reactor_setup', ini, '--app', 'bench', '--app',
                    'bench20')
        self.paster('project', ini, 'create', 'bench', '--mount',
                    'bench:noop')
        return ini, Settings.from_dict(values)

    def paster(self, *args):
        result = subprocess.run(
            [os.path.join(BIN, 'paster')] + list(args), env=self.env,
            capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError('paster %s failed:\n%s'
                               % (' '.join(args), result.stderr))

    def start_reactor(self, ini, *args):
        return subprocess.Popen(
            [os.path.join(BIN, 'paster'), 'reactor', ini] + list(args),
            env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def start_reference(self, settings, messages):
        return subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'plain_consumer.py'),
             settings.amqp_url, settings.mongo_url, QUEUE,
             '--messages', str(messages),
             '--prefetch', str(self.arguments.prefetch)],
            env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)


def _write_entry_points(folder):
    info = os.path.join(folder, 'pyforge_bench-1.0.dist-info')
    os.makedirs(info)
    with open(os.path.join(info, 'METADATA'), 'w') as metadata:
        metadata.write('Metadata-Version: 2.1\nName: pyforge-bench\n'
                       'Version: 1.0\n')
    with open(os.path.join(info, 'entry_points.txt'), 'w') as points:
        points.write('[pyforge]\nbench = bench.apps:NoopApp\n'
                     'bench20 = bench.apps:TwentyApp\n')


def _rabbitmqctl(*args, check=True):
    result = subprocess.run(['rabbitmqctl', '-q'] + list(args),
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError('rabbitmqctl %s: %s' % (args, result.stderr))


def publish(settings, count, rate=None):
    """Publish `count` no-op messages, at `rate` per second if given."""
    environment = Environment(settings)
    with environment.connection() as connection:
        publisher = Publisher(connection)
        started = time.perf_counter()
        for number in range(count):
            if rate:
                due = started + number / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            publisher.send(build_message(
                'audit', 'bench.noop',
                {'project_id': 'bench', 'mount_point': 'noop',
                 'number': number}))


def queued(settings):
    with Environment(settings).connection() as connection:
        found = inspect_queue(connection, QUEUE)
    return found[0] if found else 0


def records(settings):
    return Environment(settings).db['message_records']


def wait_for_records(settings, count, timeout):
    collection = records(settings)
    done = {'queue': QUEUE, 'status': 'done'}
    deadline = time.monotonic() + timeout
    # Counting records reads all of them, which would take CPU from the
    # consumer being measured; the broker's queue depth costs little.
    while queued(settings) and time.monotonic() < deadline:
        time.sleep(0.5)
    while collection.count_documents(done) < count:
        if time.monotonic() > deadline:
            raise RuntimeError('only %d of %d records after %.0f s' % (
                collection.count_documents(done), count, timeout))
        time.sleep(0.5)


def throughput(settings, count):
    finished = sorted(record['finished_at']
                      for record in records(settings).find())
    elapsed = (finished[-1] - finished[0]).total_seconds()
    return (count - 1) / elapsed if elapsed > 0 else float('inf')


def latencies(settings, skip):
    values = sorted(record['latency'] * 1000
                    for record in records(settings).find()
                    if record.get('latency') is not None)
    return values[skip:] if skip < len(values) else values


def percentile(values, fraction):
    index = min(len(values) - 1, int(round(fraction * (len(values) - 1))))
    return values[index]


def rss_mb(pid):
    """Return the resident set size of process `pid` in MB."""
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pss_mb(pid):
    """Return the proportional set size of process `pid` in MB."""
    with open('/proc/%d/smaps_rollup' % pid) as rollup:
        for line in rollup:
            if line.startswith('Pss:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def children(pid):
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()



def measure_pyforge(bench, embedded, workers=1):
    """Return throughput, latency and memory of ``paster reactor``."""
    arguments = bench.arguments
    ini, settings = bench.fresh(embedded)
    result = {}

    reactors = [bench.start_reactor(ini, '--queue', QUEUE)]
    time.sleep(3)
    worker = _wait_children(reactors[0])[0]
    result['idle_rss'] = rss_mb(worker)
    _stop_all(reactors)

    publish(settings, arguments.messages)
    _wait_queued(settings, arguments.messages)
    reactors = [bench.start_reactor(ini, '--queue', QUEUE)
                for _ in range(workers)]
    wait_for_records(settings, arguments.messages, timeout=600)
    result['throughput'] = throughput(settings, arguments.messages)
    result['after_rss'] = rss_mb(_wait_children(reactors[0])[0])

    latency_count = int(arguments.rate * arguments.latency_seconds)
    collection = records(settings)
    collection.delete_many({})
    publish(settings, latency_count, rate=arguments.rate)
    wait_for_records(settings, latency_count, timeout=600)
    _stop_all(reactors)
    values = latencies(settings, skip=0)
    result['p50'] = percentile(values, 0.50)
    result['p99'] = percentile(values, 0.99)
    return result


def measure_reference(bench, embedded):
    """Return throughput and latency of the plain kombu consumer."""
    arguments = bench.arguments
    ini, settings = bench.fresh(embedded)
    result = {}
    publish(settings, arguments.messages)
    _wait_queued(settings, arguments.messages)
    consumer = bench.start_reference(settings, arguments.messages)
    consumer.wait(timeout=600)
    result['throughput'] = throughput(settings, arguments.messages)

    latency_count = int(arguments.rate * arguments.latency_seconds)
    records(settings).delete_many({})
    consumer = bench.start_reference(settings, latency_count)
    time.sleep(2)
    result['idle_rss'] = rss_mb(consumer.pid)
    publish(settings, latency_count, rate=arguments.rate)
    consumer.wait(timeout=600)
    values = latencies(settings, skip=0)
    result['p50'] = percentile(values, 0.50)
    result['p99'] = percentile(values, 0.99)
    return result


def measure_many_queues(bench, processes=None):
    """Return the total RSS and PSS in MB of ``paster reactor`` on 20
    queues. RSS counts the pages forked workers share with their parent
    once per process; PSS divides them among the sharers."""
    ini, _ = bench.fresh(embedded=False)
    args = ['--app', 'bench20']
    if processes:
        args += ['--processes', str(processes)]
    reactor = bench.start_reactor(ini, *args)
    time.sleep(5)
    pids = [reactor.pid] + _wait_children(reactor,
                                          expected=processes or 20)
    total = (sum(rss_mb(pid) for pid in pids),
             sum(pss_mb(pid) for pid in pids))
    _stop_all([reactor])
    return total


def _wait_children(process, expected=1, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        found = children(process.pid)
        if len(found) >= expected:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError('paster reactor started %d of %d workers'
                               % (len(found), expected))
        time.sleep(0.2)


def _wait_queued(settings, count, timeout=120):
    deadline = time.monotonic() + timeout
    while queued(settings) < count:
        if time.monotonic() > deadline:
            raise RuntimeError('only %d of %d messages queued'
                               % (queued(settings), count))
        time.sleep(0.2)


def _stop_all(processes):
    for process in processes:
        stop(process)


def report(arguments, rows, memory):
    print('# pyforge reactor benchmark')
    print('machine: %s, %d cores; Python %s; kombu %s' % (
        platform.machine(), os.cpu_count(), platform.python_version(),
        kombu.__version__))
    print('messages: %d; latency runs: %.0f msg/s for %.0f s; prefetch '
          '%d; medians of %d runs' % (
              arguments.messages, arguments.rate,
              arguments.latency_seconds, arguments.prefetch,
              arguments.repeat))
    print()
    print('| broker | consumer | msg/s | ratio | p50 ms | p99 ms | '
          'idle RSS MB | RSS after MB |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for broker, name, result, reference in rows:
        ratio = (result['throughput'] / reference['throughput']
                 if reference else 1.0)
        print('| %s | %s | %.0f | %.2f | %.2f | %.2f | %.1f | %s |' % (
            broker, name, result['throughput'], ratio, result['p50'],
            result['p99'], result['idle_rss'],
            '%.1f' % result['after_rss'] if 'after_rss' in result
            else '-'))
    print()
    print('| paster reactor on 20 queues | processes | total RSS MB | '
          'total PSS MB |')
    print('| --- | --- | --- | --- |')
    for label, processes, rss, pss in memory:
        print('| %s | %d | %.1f | %.1f |' % (label, processes, rss, pss))


def median_result(results):
    """Return the median of each measurement over repeated runs."""
    return {key: statistics.median(result[key] for result in results)
            for key in results[0]}


def main(argv=None):
    arguments = parse_arguments(argv)
    bench = Bench(arguments)
    rows = []
    try:
        brokers = [('RabbitMQ', False)]
        if not arguments.skip_embedded:
            brokers.append(('filesystem', True))
        for broker, embedded in brokers:
            runs = {'plain kombu': [], 'paster reactor, 1 worker': [],
                    'paster reactor, 2 workers': []}
            for _ in range(arguments.repeat):
                runs['plain kombu'].append(
                    measure_reference(bench, embedded))
                runs['paster reactor, 1 worker'].append(
                    measure_pyforge(bench, embedded))
                if not embedded:
                    runs['paster reactor, 2 workers'].append(
                        measure_pyforge(bench, embedded, workers=2))
            reference = median_result(runs['plain kombu'])
            rows.append((broker, 'plain kombu', reference, None))
            for name, results in list(runs.items())[1:]:
                if results:
                    rows.append((broker, name, median_result(results),
                                 reference))
        memory = [
            ('one process per queue', 21) + measure_many_queues(bench),
            ('--processes 1', 2) + measure_many_queues(bench, processes=1),
        ]
        report(arguments, rows, memory)
    finally:
        _rabbitmqctl('delete_vhost', bench.vhost, check=False)
        bench.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
