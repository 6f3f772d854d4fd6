"""Task methods with a retry policy and a soft timeout, one of each per executor.

``picky*(marker_dir, plan)`` follows ``plan``, a comma-separated list of what each
attempt does (attempts past the list return their number):

* ``transient`` raises ``Transient`` (``retry_on`` names it), ``flaky`` raises ``Flaky``
  (a subclass: matched through its base), ``permanent`` raises ``Permanent`` (a subclass
  of ``Transient`` that ``no_retry_on`` names), ``key`` raises ``KeyError`` (named by its
  bare builtin name), ``value`` raises ``ValueError`` (named nowhere: not retried);
* ``retry-N`` raises ``Retry(after=N)``;
* ``ok`` returns.

Each attempt leaves a marker ``attempt-<n>`` holding the time it started, so a test
sees when each attempt ran without guessing.

``patient*(marker_dir)`` runs past its ``soft_timeout`` (1 s) and catches the
``TaskTimeout`` it gets: in a thread at its next report, in a child process while it
sleeps. It marks ``soft`` with the seconds it ran before the exception, and returns 1
when it caught a ``SoftTimeout``. ``stubborn*`` does not catch it.
"""

import os
import time
import uuid

from ladon.compat import PORTABLE_STRING

from ladon_tasks import Retry, SoftTimeout, TaskTimeout, ladonize


class Transient(Exception):
    pass


class Flaky(Transient):
    pass


class Permanent(Transient):
    pass


POLICY = dict(retries=3, retry_delay=0.05, retry_on=[Transient, 'KeyError'], no_retry_on=[Permanent],
              retry_max_delay=5)
ERRORS = {'transient': Transient, 'flaky': Flaky, 'permanent': Permanent, 'key': KeyError, 'value': ValueError}


def picky(marker_dir, plan, kw):
    attempt = kw['attempt']
    with open(os.path.join(marker_dir, 'attempt-%d' % attempt), 'w') as handle:
        handle.write(repr(time.time()))
    steps = plan.split(',')
    what = steps[attempt - 1] if attempt <= len(steps) else 'ok'
    if what in ERRORS:
        raise ERRORS[what]('attempt %d: %s' % (attempt, what))
    if what.startswith('retry-'):
        raise Retry(after=float(what[len('retry-'):]), message='asked at attempt %d' % attempt)
    return attempt


def patient(marker_dir, kw, catch=True):
    started = time.monotonic()
    try:
        while time.monotonic() - started < 30:
            kw['update_progress'](0.5, 'working')
            time.sleep(0.05)
    except TaskTimeout as exc:
        with open(os.path.join(marker_dir, 'soft'), 'w') as handle:
            handle.write(repr(time.monotonic() - started))
        if not catch:
            raise
        return 1 if isinstance(exc, SoftTimeout) else 0
    return 0


def sleepy(marker_dir, kw):
    """Sleeps without reporting: only an alarm (a child process) interrupts it."""
    started = time.monotonic()
    try:
        time.sleep(30)
    except TaskTimeout:
        with open(os.path.join(marker_dir, 'soft'), 'w') as handle:
            handle.write(repr(time.monotonic() - started))
        return 1
    return 0


class PolicyService(object):

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(POLICY, executor='thread'))
    def pickyThread(self, marker_dir, plan, **kw):
        return picky(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(POLICY, executor='process'))
    def pickyProcess(self, marker_dir, plan, **kw):
        return picky(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(POLICY, executor='queue'))
    def pickyQueue(self, marker_dir, plan, **kw):
        return picky(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int,
              tasktype=dict(executor='thread', retries=1, retry_delay=100, retry_max_delay=2, retry_jitter=0.5))
    def jittery(self, marker_dir, plan, **kw):
        return picky(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='thread', soft_timeout=1, timeout=20))
    def patientThread(self, marker_dir, **kw):
        return patient(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process', soft_timeout=1, timeout=20))
    def patientProcess(self, marker_dir, **kw):
        return sleepy(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='queue', soft_timeout=1, timeout=20))
    def patientQueue(self, marker_dir, **kw):
        return sleepy(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='thread', soft_timeout=1, timeout=20))
    def stubbornThread(self, marker_dir, **kw):
        return patient(marker_dir, kw, catch=False)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(executor='process', soft_timeout=1, timeout=3))
    def ignoringProcess(self, marker_dir, **kw):
        """Catches its soft timeout and goes on: the hard timeout kills it."""
        try:
            time.sleep(30)
        except TaskTimeout:
            open(os.path.join(marker_dir, 'soft'), 'w').close()
        time.sleep(30)
        return 0


# -- completion hooks -------------------------------------------------------------------------
#
# ``hooked*(marker_dir, plan)``: ``ok`` returns, ``fail`` raises, ``gate`` reports progress
# until ``marker_dir/gate`` exists (so a cancel stops it). Each hook leaves a marker
# ``hook-<end>-<pid>-<nonce>`` in ``marker_dir`` (the task's first argument, read from the
# record it gets), after ``hook-started-<pid>-<nonce>``. With plan ``hook-raises`` the
# success hook raises; with ``hook-waits`` it waits for ``marker_dir/hook-gate`` first.


def _hook(end):
    def hook(record):
        marker_dir, plan = record.args[0], record.args[1]
        tag = '%d-%s' % (os.getpid(), uuid.uuid4().hex[:8])
        open(os.path.join(marker_dir, 'hook-started-%s' % tag), 'w').close()
        if plan == 'hook-raises':
            raise RuntimeError('the hook of task %s breaks' % record.task_id)
        if plan == 'hook-waits':
            deadline = time.monotonic() + 60
            while not os.path.exists(os.path.join(marker_dir, 'hook-gate')) and time.monotonic() < deadline:
                time.sleep(0.01)
        with open(os.path.join(marker_dir, 'hook-%s-%s' % (end, tag)), 'w') as handle:
            handle.write('%s %r' % (record.state.value, record.result))
    return hook


HOOKS = dict(on_success=_hook('success'), on_failure=_hook('failure'), on_cancel=_hook('cancel'))


def hooked(marker_dir, plan, kw):
    if plan == 'fail':
        raise ValueError('planned failure')
    if plan == 'gate':
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(marker_dir, 'gate')) and time.monotonic() < deadline:
            kw['update_progress'](0.5, 'waiting')
            time.sleep(0.01)
    return 1


class HookService(object):

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(HOOKS, executor='thread'))
    def hookedThread(self, marker_dir, plan, **kw):
        return hooked(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(HOOKS, executor='process'))
    def hookedProcess(self, marker_dir, plan, **kw):
        return hooked(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int, tasktype=dict(HOOKS, executor='queue'))
    def hookedQueue(self, marker_dir, plan, **kw):
        return hooked(marker_dir, plan, kw)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, rtype=int,
              tasktype=dict(POLICY, **HOOKS, executor='process', timeout=20, soft_timeout=5, retry_jitter=0.5,
                            max_tasks_per_child=50, max_memory_per_child=500))
    def limited(self, marker_dir, plan, **kw):
        """Every limit and policy set, for what inspect and the dashboard show."""
        return hooked(marker_dir, plan, kw)


# -- child recycling ---------------------------------------------------------------------------
#
# ``leaky*()`` keeps 10 MiB more each run, for as long as its process lives, and answers
# ``"<pid> <resident MiB>"`` of the process it ran in, after its leak. ``leakyProcess`` and
# ``leakyRecycled`` are bounded at 100 MiB resident (a child with Ladon imported holds some
# 70), ``countedProcess`` and ``countedRecycled`` at 3 tasks per child; ``leakyUnbounded``
# leaves the bound to the worker's ``--max-memory-per-child``. The queued ones use queue
# ``recycle``, so the worker a test starts for them is the only one that runs them.

_LEAKED = []


def leak():
    _LEAKED.append(b'x' * (10 << 20))  # written, so resident
    with open('/proc/self/statm') as statm:
        resident = int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    return '%d %d' % (os.getpid(), resident >> 20)


RECYCLED = dict(executor='queue', queue='recycle')


class RecycleService(object):

    @ladonize(rtype=PORTABLE_STRING, tasktype=dict(executor='process', max_memory_per_child=100))
    def leakyProcess(self, **kw):
        return leak()

    @ladonize(rtype=PORTABLE_STRING, tasktype=dict(RECYCLED, max_memory_per_child=100))
    def leakyRecycled(self, **kw):
        return leak()

    @ladonize(rtype=PORTABLE_STRING, tasktype=dict(RECYCLED))
    def leakyUnbounded(self, **kw):
        return leak()

    @ladonize(rtype=PORTABLE_STRING, tasktype=dict(executor='process', max_tasks_per_child=3))
    def countedProcess(self, **kw):
        return '%d 0' % os.getpid()

    @ladonize(rtype=PORTABLE_STRING, tasktype=dict(RECYCLED, max_tasks_per_child=3))
    def countedRecycled(self, **kw):
        return '%d 0' % os.getpid()
