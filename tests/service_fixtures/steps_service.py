"""Bodies of three steps (``kw['step']``), in each executor, that leave a marker file
each time a step's function runs (``run-<step>-<attempt>-<pid>-<nonce>``), so a test
counts the runs of every step.

* ``one`` returns ``[1, 2, 3]`` (plain JSON);
* ``two`` returns a ``Tally`` (a LadonType, recorded through its ``rtype``) of their sum
  times ten. It waits, silently, until a gate file exists: ``gate-two`` for any
  attempt, ``gate-two-<attempt>`` for one;
* ``three`` returns the tally's total plus one (61), unless ``fail-three`` exists (it
  fails every time) or ``fail-three-once`` does (it fails once, and removes the file).

The tests drive the bodies with these files, never with guessed sleeps.
"""

import os
import time
import uuid

from ladon.compat import PORTABLE_STRING
from ladon.types.ladontype import LadonType

from ladon_tasks import ladonize


class Tally(LadonType):
    label = PORTABLE_STRING
    total = int


def _mark(marker_dir, name, attempt):
    marker = 'run-%s-%d-%d-%s' % (name, attempt, os.getpid(), uuid.uuid4().hex[:8])
    open(os.path.join(marker_dir, marker), 'w').close()


def one(marker_dir, attempt):
    _mark(marker_dir, 'one', attempt)
    return [1, 2, 3]


def two(marker_dir, attempt, numbers):
    _mark(marker_dir, 'two', attempt)
    gates = [os.path.join(marker_dir, 'gate-two'), os.path.join(marker_dir, 'gate-two-%d' % attempt)]
    deadline = time.monotonic() + 60
    while not any(os.path.exists(gate) for gate in gates) and time.monotonic() < deadline:
        time.sleep(0.01)  # no progress reports: a superseded attempt must reach its step's record
    tally = Tally()
    tally.label = 'two'
    tally.total = sum(numbers) * 10
    return tally


def three(marker_dir, attempt, total):
    _mark(marker_dir, 'three', attempt)
    if os.path.exists(os.path.join(marker_dir, 'fail-three')):
        raise RuntimeError('step three fails')
    once = os.path.join(marker_dir, 'fail-three-once')
    if os.path.exists(once):
        os.remove(once)
        raise RuntimeError('step three fails once')
    return total + 1


def three_steps(marker_dir, kw):
    step, attempt = kw['step'], kw['attempt']
    numbers = step('one', one, marker_dir, attempt)
    tally = step('two', two, marker_dir, attempt, numbers, rtype=Tally)
    return step('three', three, marker_dir, attempt, tally.total)


def nested_steps(marker_dir, depth, kw):
    """Step ``nest`` returns 1 inside ``depth`` lists; step ``after`` fails while
    ``fail-after`` exists, else returns how deep ``nest``'s result came back."""
    step = kw['step']

    def build():
        value = 1
        for _ in range(depth):
            value = [value]
        return value

    value, levels = step('nest', build), 0
    while isinstance(value, list):
        value, levels = value[0], levels + 1

    def after():
        if os.path.exists(os.path.join(marker_dir, 'fail-after')):
            raise RuntimeError('the step after fails')
        return levels

    return step('after', after)


class StepsService(object):

    @ladonize(PORTABLE_STRING, int, rtype=int, tasktype=dict(executor='thread'))
    def nestedThread(self, marker_dir, depth, **kw):
        return nested_steps(marker_dir, depth, kw)

    @ladonize(PORTABLE_STRING, int, rtype=int, tasktype=dict(executor='queue'))
    def nestedQueued(self, marker_dir, depth, **kw):
        return nested_steps(marker_dir, depth, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue', retries=1, retry_delay=0.05))
    def queuedSteps(self, marker_dir, **kw):
        return three_steps(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='thread', retries=1, retry_delay=0.05))
    def threadSteps(self, marker_dir, **kw):
        return three_steps(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process', retries=1, retry_delay=0.05))
    def processSteps(self, marker_dir, **kw):
        return three_steps(marker_dir, kw)

    @ladonize(PORTABLE_STRING, int, rtype=int, tasktype=dict(executor='thread'))
    def manySteps(self, marker_dir, count, **kw):
        """``count`` steps that return their number, then ``last``, which fails while
        ``fail-last`` exists and else returns their sum: a recover replays ``count``."""
        step, attempt = kw['step'], kw['attempt']
        total = sum(step('step %d' % n, int, n) for n in range(count))

        def last():
            _mark(marker_dir, 'last', attempt)
            if os.path.exists(os.path.join(marker_dir, 'fail-last')):
                raise RuntimeError('the last step fails')
            return total

        return step('last', last)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='thread'))
    def oddSteps(self, kind, **kw):
        """Steps that break a rule - ``repeat`` names a step twice, ``big`` records too
        much, ``opaque`` returns what JSON cannot hold, ``long`` has too long a name,
        ``many`` runs too many steps - or show a rule: ``tuple`` returns 1 when a step's
        tuple comes back as the list it is recorded as. ``none`` runs no step."""
        step = kw['step']
        if kind == 'repeat':
            for disk in ['a', 'b']:
                step('copy', len, disk)
        elif kind == 'big':
            step('fetch everything', lambda: 'x' * 300000)
        elif kind == 'opaque':
            step('open a file', lambda: object())
        elif kind == 'long':
            step('n' * 201, int)
        elif kind == 'many':
            for n in range(10001):
                step('step %d' % n, int)
        elif kind == 'tuple':
            return 1 if step('pair', lambda: (1, 2)) == [1, 2] else 0
        return 0
