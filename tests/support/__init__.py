"""What the tests and the benches start and speak to, for real: ``ladon-tasks serve`` and
worker processes (:mod:`.servers`, :mod:`.workers`), ``redis-server``
(:mod:`.redis_server`), Apache through ``mod_wsgi-express`` (:mod:`.apache`), headless
Chromium (:mod:`.browser`), and JSON-WSP calls (:mod:`.jsonwsp`); child processes
started and stopped by pid (:mod:`.processes`), and what happens when a program is
missing (:mod:`.needs`).

The suite imports it as ``support`` (``tests/`` is on its path); the benches, run as
modules from the repository root, as ``tests.support``. Its modules import each other
relatively, so both work."""
