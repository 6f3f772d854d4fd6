"""Task methods that probe one behaviour each, in both in-process executors.

Bodies that must wait for the test block on a file appearing (``gate``) instead of
sleeping for a guessed time, so the tests drive them deterministically.
"""

import os
import signal
import time
import uuid

from ladon.compat import PORTABLE_STRING
from ladon.types.ladontype import LadonType

from ladon_tasks import ladonize


class Pair(LadonType):
    key = PORTABLE_STRING
    value = int


def wait_for_gate(gate, kw, deadline=60.0):
    """Report progress until the file ``gate`` exists (or the deadline passes)."""
    end = time.monotonic() + deadline
    step = 0
    while not os.path.exists(gate) and time.monotonic() < end:
        step += 1
        kw['update_progress'](min(0.9, step / 1000.0), 'waiting at step %d' % step)
        time.sleep(0.01)


def hang_silently(pid_file):
    """Write this process's pid to ``pid_file``, then never report nor return."""
    with open(pid_file, 'w') as handle:
        handle.write(str(os.getpid()))
    while True:
        time.sleep(0.05)


class ProbeService(object):

    @ladonize(rtype=int, tasktype=True)
    def zero(self, **kw):
        return 0

    @ladonize(rtype=PORTABLE_STRING, tasktype=True)
    def empty(self, **kw):
        return ''

    @ladonize(rtype=bool, tasktype=dict(executor='process'))
    def falseInProcess(self, **kw):
        return False

    @ladonize(int, rtype=[int], tasktype=True)
    def numbers(self, count, **kw):
        return list(range(count))

    @ladonize(int, rtype=[int], tasktype=dict(executor='process'))
    def numbersInProcess(self, count, **kw):
        return list(range(count))

    @ladonize(PORTABLE_STRING, rtype=[Pair], tasktype=True)
    def pairs(self, prefix, **kw):
        result = []
        for n in range(3):
            pair = Pair()
            pair.key = '%s%d' % (prefix, n)
            pair.value = n
            result.append(pair)
        return result

    @ladonize(PORTABLE_STRING, rtype=Pair, tasktype=dict(executor='process'))
    def pairInProcess(self, key, **kw):
        kw['update_progress'](0.5, 'half way')
        pair = Pair()
        pair.key = key
        pair.value = len(key)
        return pair

    @ladonize(rtype=int, tasktype=True)
    def wrongType(self, **kw):
        return 'not an int'

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=True)
    def explode(self, text, **kw):
        raise ValueError('cannot digest %s' % text)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(retries=2, retry_delay=0.01))
    def flaky(self, marker_dir, **kw):
        """Fails on the first two attempts, succeeds on the third."""
        attempt = kw['attempt']
        open(os.path.join(marker_dir, 'attempt-%d' % attempt), 'w').close()
        if attempt < 3:
            raise RuntimeError('attempt %d failed' % attempt)
        return attempt

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=True)
    def gated(self, gate, **kw):
        wait_for_gate(gate, kw)
        return 7

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=True)
    def gatedPayload(self, gate, payload, **kw):
        """Holds ``payload`` (its bytes count against the store's bounds) until the gate opens."""
        wait_for_gate(gate, kw)
        return len(payload)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process'))
    def gatedInProcess(self, gate, **kw):
        wait_for_gate(gate, kw)
        return os.getpid()

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process'))
    def stubbornInProcess(self, pid_file, **kw):
        """Never reports, never returns: only a kill stops it."""
        hang_silently(pid_file)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(timeout=0.5))
    def slowThread(self, gate, **kw):
        wait_for_gate(gate, kw)
        return 1

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process', timeout=0.5))
    def slowProcess(self, pid_file, **kw):
        with open(pid_file, 'w') as handle:
            handle.write(str(os.getpid()))
        time.sleep(60)
        return 1

    @ladonize(int, rtype=int, tasktype=dict(executor='process'))
    def dieInProcess(self, how, **kw):
        if how == 0:
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=True)
    def echo(self, text, **kw):
        return text

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(idempotent=True, listing=True))
    def once(self, text, **kw):
        """Same text while the task is retained: the same task, not a second run."""
        return text.upper()

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING)
    def plain(self, text, **kw):
        return text

    @ladonize(rtype=float, tasktype=True)
    def progressOddities(self, **kw):
        update = kw['update_progress']
        update(-3)
        update(2)
        update(1)
        update('half')  # ignored, as Ladon ignores non-numbers
        update(0.25)
        return 0.0


class QueueProbeService(object):
    """Task methods run by ``ladon-tasks worker`` processes (``executor='queue'``)."""

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='queue'))
    def queuedEcho(self, text, **kw):
        kw['update_progress'](0.5, 'echoing')
        return text

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue'))
    def queuedGated(self, gate, **kw):
        """Writes the pid of the worker's child next to the gate, then waits for the gate;
        returns the pid that finished it."""
        with open(gate + '.pid-%d' % os.getpid(), 'w') as handle:
            handle.write(str(kw['attempt']))
        wait_for_gate(gate, kw)
        return os.getpid()

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue'))
    def queuedSilent(self, pid_file, **kw):
        """Never reports: only a kill stops it (cancel must still reach it)."""
        hang_silently(pid_file)

    @ladonize(rtype=int, tasktype=dict(executor='queue', timeout=0.5))
    def queuedTooSlow(self, **kw):
        time.sleep(60)
        return 0

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue', retries=2, retry_delay=0.05))
    def queuedFlaky(self, marker_dir, **kw):
        attempt = kw['attempt']
        open(os.path.join(marker_dir, 'attempt-%d' % attempt), 'w').close()
        if attempt < 3:
            raise RuntimeError('attempt %d failed' % attempt)
        return attempt

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING,
              tasktype=dict(executor='queue', queue='unserved', tags=['parked']))
    def unservedEcho(self, text, **kw):
        """Queued where no test worker reads: its tasks wait until cancelled."""
        return text

    @ladonize(int, rtype=int, tasktype=dict(executor='queue', priority=200))
    def queuedUrgent(self, n, **kw):
        return n

    @ladonize(int, rtype=int, tasktype=dict(executor='queue', priority=10))
    def queuedLowly(self, n, **kw):
        return n

    @ladonize(rtype=int)
    def servingProcess(self, **kw):
        """The pid of the web-server process that answered this request."""
        return os.getpid()

    @ladonize(PORTABLE_STRING, rtype=int)
    def holdRequestThread(self, hold_dir, **kw):
        """Keeps this request's thread busy until ``hold_dir`` holds ``release-<pid>`` or
        ``release-all``; a file ``held-<pid>-<n>`` says it is held. With every request
        thread of every daemon held, releasing one daemon's leaves it the only one that
        accepts requests, so a test can choose which process answers."""
        pid = os.getpid()
        marker = os.path.join(hold_dir, 'held-%d-%s' % (pid, uuid.uuid4().hex))
        open(marker, 'w').close()
        releases = [os.path.join(hold_dir, 'release-%d' % pid), os.path.join(hold_dir, 'release-all')]
        end = time.monotonic() + 30.0  # never outlives a test that died holding it
        while not any(os.path.exists(path) for path in releases) and time.monotonic() < end:
            time.sleep(0.005)
        return pid

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=True)
    def threadGated(self, gate, **kw):
        """Thread executor: runs in the web-server process that took the start call."""
        wait_for_gate(gate, kw)
        return os.getpid()


class MarkedService(object):
    """Bodies that leave a marker per attempt that starts (``start-<attempt>-<pid>``) and
    per attempt that finishes (``done-<attempt>``), and wait for a gate file between."""

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue'))
    def queuedMarked(self, marker_dir, **kw):
        return _marked(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue', retries=1, retry_delay=0.05))
    def queuedFailsFirst(self, marker_dir, **kw):
        """Attempt 1 fails (after its gate), attempt 2 succeeds."""
        attempt = _marked(marker_dir, kw)
        if attempt == 1:
            raise RuntimeError('attempt 1 fails')
        return attempt

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='thread'))
    def threadMarked(self, marker_dir, **kw):
        return _marked(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process'))
    def processMarked(self, marker_dir, **kw):
        return _marked(marker_dir, kw)


def _marked(marker_dir, kw):
    attempt = kw['attempt']
    open(os.path.join(marker_dir, 'start-%d-%d' % (attempt, os.getpid())), 'w').close()
    wait_for_gate(os.path.join(marker_dir, 'gate'), kw)
    open(os.path.join(marker_dir, 'done-%d' % attempt), 'w').close()
    return attempt


class OnceService(object):
    """Proves a task body ran once: its marker file is created exclusively."""

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue'))
    def queuedOnce(self, marker_dir, **kw):
        time.sleep(0.02)  # long enough that one worker cannot drain the queue alone
        with open(os.path.join(marker_dir, kw['task_id']), 'x') as handle:
            handle.write(str(os.getppid()))  # the worker process that ran the body
        return os.getppid()
