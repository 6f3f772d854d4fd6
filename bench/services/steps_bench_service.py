"""The steps bench's service: a queued task whose body runs ``count`` steps, each
returning ``size`` characters, and nothing else - so what a step costs in Redis is all
that differs between two counts."""

from ladon_tasks import ladonize


def _text(size):
    return 'x' * size


class StepsBenchService(object):

    @ladonize(int, int, rtype=int, tasktype=dict(executor='queue'))
    def stepped(self, count, size, **kw):
        """``count`` steps of ``size`` characters each; with 0, a body without steps."""
        step = kw['step']
        for n in range(count):
            step('step %d' % n, _text, size)
        return count
