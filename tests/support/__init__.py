"""What the tests (and the benches) start and speak to, for real: ``ladon-tasks serve``
and worker processes (:mod:`.servers`, :mod:`.workers`), ``redis-server``
(:mod:`.redis_server`), Apache through ``mod_wsgi-express`` (:mod:`.apache`), headless
Chromium (:mod:`.browser`), and raw JSON-WSP calls (:mod:`.jsonwsp`)."""
