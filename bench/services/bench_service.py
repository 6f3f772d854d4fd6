"""The service both sides of the core bench serve, written for Ladon's own tasktype.

It imports ``ladonize`` from Ladon, as a service written for Ladon 1.0.7 does: served
plainly it runs on Ladon's thread-mode tasktype (the anchor); served through
``ladon_tasks.wsgi.make_application`` the same file runs on ladon-tasks. One file for
both keeps the comparison about the task machinery, not about the service code.
"""

from ladon.ladonizer import ladonize


class BenchService(object):
    """A plain method as the yardstick, and a task that does nothing."""

    @ladonize(int, rtype=int)
    def echo(self, value):
        """Plain call: what one JSON-WSP round trip costs on this server."""
        return value

    @ladonize(int, rtype=int, tasktype=True)
    def noop(self, value, **kw):
        """A task with no work, so only the task machinery is measured.

        Callers pass a non-zero value: Ladon's ``_result`` treats a falsy result as
        "no result".
        """
        return value
