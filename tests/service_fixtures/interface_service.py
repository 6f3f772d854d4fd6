"""Plain methods for the interface tests: a LadonType result (which Ladon's own
document/literal interface could not answer) and a body that raises (a server fault)."""

from ladon.compat import PORTABLE_STRING
from ladon.types.ladontype import LadonType

from ladon_tasks import ladonize


class Measure(LadonType):
    name = PORTABLE_STRING
    note = PORTABLE_STRING
    ratio = float
    count = int
    exact = bool
    parts = [PORTABLE_STRING]


class InterfaceService(object):

    @ladonize(PORTABLE_STRING, rtype=Measure)
    def measure(self, name, **kw):
        """A LadonType with every primitive, an empty string and a list."""
        result = Measure()
        result.name, result.note, result.ratio, result.count, result.exact = name, "", 0.25, 3, True
        result.parts = [name, name.upper()]
        return result

    @ladonize(PORTABLE_STRING, rtype=[Measure], tasktype=True)
    def measureAll(self, name, **kw):
        """A task whose result is a list of LadonTypes."""
        return [_measure(name)]

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING)
    def breakDown(self, text, **kw):
        """Raises: Ladon answers a server fault."""
        raise RuntimeError(f"broke on {text}")


def _measure(name):
    return InterfaceService.measure(InterfaceService(), name)
