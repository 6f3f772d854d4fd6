"""Task bodies for the chaos test: one per executor, each leaving a marker file per
attempt that starts and per attempt that finishes, so the test can count what ran twice.
A body runs for a while, reporting progress, so that kills land in the middle of some.
Each allows retries, as a task that must outlive a storm of kills would: a task cut by
four kills in a row would otherwise end ``WorkerDied`` (its lost attempts spent), a
right answer for the task but not the one this test counts on."""

import os
import time

from ladon_tasks import ladonize


def _run(n, marker_dir, kw):
    task, attempt = kw['task_id'], kw['attempt']
    open(os.path.join(marker_dir, 'start-%s-%d-%d' % (task, attempt, os.getpid())), 'w').close()
    steps = 3 + n % 8
    for step in range(steps):
        time.sleep(0.08)
        kw['update_progress']((step + 1) / float(steps), 'step %d of %d' % (step + 1, steps))
    open(os.path.join(marker_dir, 'done-%s-%d-%d' % (task, attempt, os.getpid())), 'w').close()
    return n * 2


class ChaosService(object):

    @ladonize(int, str, rtype=int, tasktype=dict(executor='queue', retries=3))
    def chaosQueued(self, n, marker_dir, **kw):
        return _run(n, marker_dir, kw)

    @ladonize(int, str, rtype=int, tasktype=dict(executor='thread', retries=3))
    def chaosThread(self, n, marker_dir, **kw):
        return _run(n, marker_dir, kw)

    @ladonize(int, str, rtype=int, tasktype=dict(executor='process', retries=3))
    def chaosProcess(self, n, marker_dir, **kw):
        return _run(n, marker_dir, kw)
