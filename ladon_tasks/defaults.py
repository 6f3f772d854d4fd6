"""Every default of ladon-tasks in one place, each with the reason for its value."""

from __future__ import annotations

#: Executor used when a task method names none: threads need nothing installed.
EXECUTOR = "thread"

#: Threads in the thread executor. Tasks beyond this wait in ``queued``; a bound keeps a
#: burst of start calls from spawning unbounded threads inside the web server.
THREAD_WORKERS = 8

#: Child processes in the process executor: one per core on the small machines we target.
PROCESS_WORKERS = 2

#: How long a finished task's record (and so its result) stays readable, in seconds.
RESULT_TTL = 3600.0

#: Re-runs after an exception. Zero: a body is not assumed to be idempotent.
RETRIES = 0

#: First delay before a retry, in seconds; doubled on each further attempt.
RETRY_DELAY = 1.0

#: Upper bound on one retry delay, so a long retry chain still makes progress.
RETRY_DELAY_MAX = 300.0

#: Runtime limit in seconds; ``None`` is no limit, as in Ladon.
TIMEOUT: float | None = None

#: Priority 0..255, higher first, as LG Lite defines it.
PRIORITY = 100

#: Finished records the in-process store keeps at most; the oldest finished go first.
#: Bounds memory of a long-running server however many tasks it has seen.
MEMORY_STORE_CAPACITY = 10_000

#: Longest a ``_wait`` call may hold a request, in seconds: keeps server threads free.
WAIT_MAX = 30.0

#: Largest JSON encoding of a task's arguments, in bytes; bigger starts get a fault.
MAX_ARGS_BYTES = 1_000_000

#: Seconds between checks for cancel or timeout of a task in a child process.
PROCESS_POLL_INTERVAL = 0.05

#: Grace in seconds between SIGTERM and SIGKILL when a child must be stopped.
PROCESS_KILL_GRACE = 1.0

#: Seconds between checks that a task running in a child process was not cancelled or
#: superseded elsewhere, for bodies that never report progress.
STATE_CHECK_INTERVAL = 0.5

#: Queue a task method's jobs go to with ``executor='queue'``.
QUEUE = "default"

#: Seconds a worker's claim on a job lasts without renewal. Renewed every third of it
#: while the body runs, so only a dead or frozen worker lets it run out; then the job is
#: handed out again. Shorter: faster recovery; longer: more tolerance for pauses.
LEASE_SECONDS = 30.0

#: Reissues after lost workers on top of ``retries``, before the task fails with
#: ``WorkerLost``: a body that kills every worker it runs on must not loop forever.
MAX_LOST_ATTEMPTS = 3

#: Seconds between two reaper passes of a worker (expired leases, due retries).
REAP_INTERVAL = 0.5

#: Seconds a stopping worker (SIGTERM) lets running bodies finish before handing
#: their tasks back to the queue.
WORKER_GRACE = 10.0

#: Lifecycle events kept in the Redis stream (approximately: Redis trims in whole
#: nodes). Enough for an operator to follow, bounded so the stream never grows.
EVENTS_MAXLEN = 10_000

#: Largest request body the server reads, in bytes; a bigger Content-Length gets 413
#: before anything is read, so an oversized request cannot exhaust memory.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: Seconds between two reads of the task list by ``ladon-tasks events --url`` (the
#: dashboard API has no event stream): the dashboard page refreshes as often.
EVENTS_POLL_INTERVAL = 1.0

#: Rows ``ladon-tasks tasks`` shows unless told otherwise: one screen.
LIST_LIMIT = 50

#: mod_wsgi daemon processes of the virtual host ``ladon-tasks apache-config`` writes:
#: a few, so one busy or restarting process does not stall the service.
APACHE_PROCESSES = 3

#: Threads per daemon process: ``_wait`` calls hold one for up to ``WAIT_MAX`` seconds,
#: so room for the clients that wait at once.
APACHE_THREADS = 25
