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

#: Bytes of task records (their JSON: arguments, result, messages) the in-process store
#: holds at most. A count alone does not bound memory: arguments may take 1 MB each
#: (``MAX_ARGS_BYTES``), so 10,000 records could take 10 GB. Beyond this bound the oldest
#: finished records go first; when unfinished ones alone would pass it, a start gets
#: ``ServerBusy``. 256 MiB keeps a server on a small machine well inside its memory.
MEMORY_STORE_MAX_BYTES = 256 * 1024 * 1024

#: Unfinished tasks (queued, or running) the in-process store holds at most; one more
#: start gets ``ServerBusy``, which a client backs off on. Queued records never expire,
#: so without it a client starting faster than the workers finish grows the store
#: without end; 10,000 is far more than any burst a healthy client sends to a few dozen
#: workers.
MAX_QUEUED_TASKS = 10_000

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

#: Attempts lost with their worker or web process (killed, stopped past its grace) that
#: are run again on top of ``retries``, before the task fails with ``WorkerDied``: a body
#: that kills every process it runs in must not loop forever.
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

#: Seconds a process that runs bodies in process (thread, process executors) stays the
#: owner of its tasks without renewing its lease (renewed every third of it). A process
#: killed with SIGKILL has its tasks taken over by a live one this long after its last
#: renewal. Shorter: faster recovery; longer: more tolerance for a frozen process.
OWNER_LEASE = 10.0

#: Seconds the task of a lost owner waits for a live process that serves its method
#: before it fails with ``WorkerDied``; a process of the same service normally takes
#: it over at once.
ORPHAN_GRACE = 60.0

#: Seconds a stopping server (SIGTERM, a mod_wsgi daemon shutting down) lets running
#: bodies finish before it hands their tasks over. Under mod_wsgi keep it below the
#: daemon's shutdown-timeout (5 s by default).
SHUTDOWN_GRACE = 3.0

#: Seconds the development server (``ladon-tasks serve``) waits for a client's next
#: bytes before it closes the connection: a client that sends half a request and stops
#: holds a server thread this long, not for ever. Per read, so slow uploads still pass.
READ_TIMEOUT = 20.0

#: Seconds a stopping ``serve`` waits for requests in flight (a ``_wait`` whose task just
#: ended, say) to be answered before it closes the server.
REQUEST_DRAIN = 2.0

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

#: Port of a sentinel a ``redis+sentinel://`` URL names without one: Sentinel's own.
SENTINEL_PORT = 26379

#: Replicas a start (and a cancel) waits for before it is answered, with Redis Sentinel
#: (Redis's ``WAIT``). Redis replicates asynchronously: without the wait, a start the
#: primary had answered but not yet sent to its replica is lost when Sentinel promotes
#: that replica. One, because Sentinel promotes the replica that has the most.
START_WAIT_REPLICAS = 1

#: Longest a start waits for its replicas, in seconds. A replica on the same network
#: answers within a millisecond; one that takes longer than this is lagging or gone, and
#: the start is answered anyway (the wait narrows the window, it does not stop service).
START_WAIT_TIMEOUT = 0.25

#: Seconds starts go without the wait after one ran out: a replica that is away must
#: not cost every start ``START_WAIT_TIMEOUT``; it is tried again after this.
START_WAIT_PAUSE = 5.0
