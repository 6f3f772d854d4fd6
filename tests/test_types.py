"""The package's types, as a service author's editor and type checker see them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api


def test_ladonize_keeps_the_decorated_methods_signature(tmp_path: Path) -> None:
    service = tmp_path / "typed_service.py"
    service.write_text(textwrap.dedent('''
        from ladon_tasks import ladonize

        class Service(object):
            @ladonize(str, int, rtype=int, tasktype=True)
            def count(self, name: str, times: int, **kw: object) -> int:
                return times

        reveal_type(Service.count)
        Service().count("a", "not an int")
    '''))
    out, _, status = api.run([str(service), "--ignore-missing-imports", "--no-incremental"])
    assert 'def (self: typed_service.Service, name: str, times: int, **kw: object) -> int' in out, out
    assert 'Argument 2 to "count" of "Service" has incompatible type "str"; expected "int"' in out, out
    assert status == 1
