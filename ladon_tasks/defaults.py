"""Every default and tunable of ladon-tasks in one place, each with the reason for its
value. Modules read them from here; options of the command line and settings of a
deployment override some of them."""

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

#: Upper bound on one retry delay, so a long retry chain still makes progress
#: (``retry_max_delay``).
RETRY_DELAY_MAX = 300.0

#: Fraction of a backoff taken off at random (``retry_jitter``). Zero: a retry comes
#: when its backoff says, as a reader of the message expects; tasks that fail together
#: in numbers (an outage of what they call) want some, to come back spread out.
RETRY_JITTER = 0.0

#: Longest delay a start may ask for (``not_before``, ``start_in``, ``delay=``), in
#: seconds: 30 days. A delayed task is an unfinished record that holds a place among
#: ``MAX_QUEUED_TASKS`` until it runs; a time further out is more likely a unit mistake
#: (milliseconds for seconds) than a plan, and is refused with ``StartTooFar``.
DELAY_HORIZON = 30 * 24 * 3600.0

#: Seconds between two looks of a process at its schedules (periodic tasks): a tick
#: starts within this of its time in the process that looks first. A look costs one
#: read of the schedule book per schedule; a quarter of a second keeps a 1 s schedule
#: on time without making the read a load.
SCHEDULE_POLL = 0.25

#: Seconds a tick may be late and still run: ticks older than this when a process
#: first looks (every process and Redis were away longer) are *missed*, and follow
#: the schedule's ``missed`` policy. A minute covers a restart of Redis or of every
#: process; a longer outage should not start a burst of old ticks.
SCHEDULE_GRACE = 60.0

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

#: Unfinished tasks (queued, or running) the Redis store holds at most
#: (``LADON_TASKS_MAX_QUEUED_TASKS`` sets it for either store); one more start gets
#: ``ServerBusy``. Unfinished records never expire, so without a bound a flood of starts
#: fills Redis until ``maxmemory`` refuses every write - finishes, progress and steps
#: too. Ten times the in-process bound: a Redis deployment feeds many workers, and a
#: queued task takes about 1-2 KB of Redis besides its arguments.
REDIS_MAX_QUEUED_TASKS = 100_000

#: Bytes of arguments (their JSON) the unfinished tasks of the Redis store may take at
#: most (``LADON_TASKS_MAX_QUEUED_BYTES``); a start that would pass it gets
#: ``ServerBusy``. Arguments may take 1 MB each (``MAX_ARGS_BYTES``), so the count alone
#: lets 100,000 starts take 100 GB. 256 MiB, as the in-process store's bound.
REDIS_MAX_QUEUED_BYTES = 256 * 1024 * 1024

#: Longest a ``_wait`` call may hold a request, in seconds: keeps server threads free.
WAIT_MAX = 30.0

#: Share of a process's request threads that ``_wait`` calls may hold at once (the wait
#: budget); a wait beyond it is answered at once with ``poll_after``. Half: a crowd of
#: clients following their tasks leaves the other half to every other call, and half of
#: ``serve``'s 32 threads still follows 16 tasks per process with no delay at all.
WAIT_SHARE = 0.5

#: Waits that may hold a request thread at once where the server's thread count is not
#: known (a WSGI server other than ``serve`` and mod_wsgi): half of ``SERVER_THREADS``.
WAIT_THREADS = 16

#: Seconds a client is told to let pass (``poll_after``) before it asks again about a
#: task that has not finished, when its wait found no place in the budget or when it
#: polls ``_progress``. A client told so sees the task's end at most this long after it,
#: plus the time its next request takes: 0.75 s leaves a quarter of a second (the plain
#: call's p99 bound under mod_wsgi) for that request within one second, at two thirds
#: of the requests of the 0.5 s polling Ladon's clients do by hand. (At 1 s a crowd too
#: big for the budget saw its ends up to a request's time past a second.)
POLL_AFTER = 0.75

#: Run times a process keeps per method, of the finished tasks it answered for
#: (:class:`ladon_tasks.waits.RunTimes`): the recent past, enough for a 1 % quantile.
RUN_TIMES_KEPT = 200
#: The run times it takes before ``poll_after`` is learned from them: with fewer, one
#: odd task would set the advice.
RUN_TIMES_MIN = 20
#: The quantile of a method's recent run times before which its running task is told
#: to ask again no sooner (``poll_after`` until then): the 1 % quantile, so that about one
#: task in a hundred could end before it - and still be seen within a second of its end
#: unless it ended more than a second before it. The 1 s bound is for 99 % of clients.
RUN_TIMES_QUANTILE = 0.01
#: The most ``poll_after`` learned from run times advises at once: a task can still end
#: early (a cancel, a crash), and its client sees that end at most this long after.
POLL_AFTER_LEARNED_MAX = 5.0

#: Frames (service, method, mirror or id) written around kept answers that a process
#: keeps (:func:`ladon_tasks.answers.framed`): one per method and interface in use, and
#: the plain ids JSON-RPC clients send; emptied when full.
KEPT_FRAMES = 256

#: Finished tasks whose ``_progress`` answer a process keeps encoded (:mod:`ladon_tasks.answers`):
#: a few kB each; enough for the tasks finished within the last seconds of a busy
#: server, which are the ones clients are still polling.
KEPT_ANSWERS = 1024

#: Largest JSON encoding of a task's arguments, in bytes; bigger starts get a fault.
MAX_ARGS_BYTES = 1_000_000

#: Seconds between checks for cancel or timeout of a task in a child process.
PROCESS_POLL_INTERVAL = 0.05

#: Grace in seconds between SIGTERM and SIGKILL when a child must be stopped.
PROCESS_KILL_GRACE = 1.0

#: Tasks a child process runs before it is replaced (``max_tasks_per_child``, ``worker
#: --max-tasks-per-child``). ``None``: a child lives as long as its slot, as a warm
#: child is the process executor's point; a body that leaks sets a bound.
MAX_TASKS_PER_CHILD: int | None = None

#: Resident memory in MiB past which a child is replaced once its task ends
#: (``max_memory_per_child``, ``worker --max-memory-per-child``). ``None``: no bound;
#: what a body keeps is the service's to know.
MAX_MEMORY_PER_CHILD: float | None = None

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

#: Share of a lease that one renewal, or one read that judges leases (a reaper pass, a
#: look for lost owners), may take before it counts as held up: Redis (on a cluster, one
#: shard) is then taken for away, and no lease is judged until one lease after it answers
#: promptly again (``takeover.py``). A sixth: renewed every third of the lease, a lease
#: whose renewal was held up this long still has half of it left; a healthy Redis
#: answers in milliseconds, a busy host's in a tenth of a second.
SLOW_CALL_SHARE = 1 / 6

#: Seconds between two reaper passes of a worker (expired leases, due retries).
REAP_INTERVAL = 0.5

#: Seconds between two heartbeats of a worker (its entry in the workers list, with the
#: tasks it runs now; a third of ``--lease`` when that is shorter). An entry not renewed
#: for three heartbeats expires: a worker killed with SIGKILL leaves the list within 6 s.
WORKER_HEARTBEAT = 2.0

#: Seconds a worker's housekeeping pass (reaper, lease renewal, heartbeat) may be late
#: before its health check says so: passes run every ``REAP_INTERVAL``; this many seconds
#: without one is a stuck thread, not a busy machine.
HOUSEKEEPING_STALE = 15.0

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

#: Seconds ``ladon-tasks serve`` keeps a connection that sends nothing: an idle
#: keep-alive connection, or a client that sent half a request and stopped, is closed
#: after this long (it holds no request thread meanwhile).
READ_TIMEOUT = 20.0

#: Request threads of ``ladon-tasks serve`` (waitress): a ``_wait`` call holds one for up
#: to ``WAIT_MAX`` seconds, so room for the clients that wait at once (``WAIT_SHARE`` of
#: them), beside the rest.
SERVER_THREADS = 32

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
#: so room for the clients that wait at once (``WAIT_SHARE`` of them: 12 per daemon).
APACHE_THREADS = 25


# -- Redis store -------------------------------------------------------------

#: Seconds between progress writes of one store: clients poll progress far less often
#: than 20 times a second.
FLUSH_INTERVAL = 0.05

#: Records handed to one progress-flush script call; bounds the time Redis is busy.
FLUSH_BATCH = 500

#: Most creates of one process that go to Redis in one script call (group commit:
#: ``redis/group_commit.py``): a batch only forms while a create is in flight, so this
#: bounds the time Redis is busy with one call (tens of microseconds each) and its size.
CREATE_BATCH = 64

#: Seconds a waiter trusts pub/sub alone before reading the record again; covers
#: messages lost while the subscriber was reconnecting.
WAIT_RECHECK = 1.0

#: Finished records kept in memory per store (they never change again, only expire):
#: at most this many, of at most ``PUBLISH_MAX`` bytes of JSON each, this many in all.
FINISHED_CACHE = 10_000
FINISHED_CACHE_BYTES = 16 * 1024 * 1024

#: A finished record up to this many bytes of JSON rides in its finish message, so a
#: waiter in another process has it without reading it back; bigger ones send the id.
PUBLISH_MAX = 8192

#: Socket timeouts in seconds: a hung Redis becomes a ``StoreError``, not a hung request.
SOCKET_TIMEOUT = 5.0

#: Seconds between two sweeps of the method indexes by one store (entries of expired
#: records are dropped), and index entries looked at per sweep: a fixed cost over time,
#: nothing per task.
SWEEP_INTERVAL = 10.0
SWEEP_COUNT = 200

#: Seconds a process trusts that a method it registered is still in the methods set.
METHOD_REGISTRATION = 60.0

#: Index entries one purge script call looks at: bounds the time Redis is busy.
PURGE_WINDOW = 500


# -- Redis queue and workers -------------------------------------------------

#: Expired leases taken over per stream and reaper pass.
REAP_BATCH = 100

#: Longest a slot blocks on Redis before it looks at the stop flag again.
CLAIM_BLOCK = 1.0

#: Longest pause, in seconds, between two tries of a slot to read a job while Redis is
#: away: a slot reads again at most this long after Redis (or, with Sentinel, the new
#: primary) is back. A failed try costs a refused connection, nothing more.
CLAIM_BACKOFF_MAX = 1.0
#: Seconds between two trims of the job streams (acknowledged entries dropped).
TRIM_INTERVAL = 1.0


# -- Python client and command line ------------------------------------------

#: Longest single ``_wait`` request; the server caps it too (``WAIT_MAX``).
WAIT_SLICE = 25.0

#: How often a progress bar is refreshed while a task runs.
BAR_REFRESH = 0.5

#: Seconds one API request may take before the command gives up.
REMOTE_TIMEOUT = 30.0


# -- Executors ---------------------------------------------------------------

#: Longest pause, in seconds, between two tries to write an outcome the store refused
#: to take: short enough that an outcome lands soon after the store is back.
SETTLE_BACKOFF_MAX = 1.0

#: Seconds between two checks that the parent is still there, where the kernel cannot
#: be asked to do it.
PARENT_CHECK_INTERVAL = 0.5


# -- Dashboard ---------------------------------------------------------------

#: Rows per page when the request names no ``limit``, and the most it may ask for:
#: enough for an operator's screen, few enough that a 1 s poll stays cheap on Redis.
DASHBOARD_PAGE = 100
DASHBOARD_PAGE_MAX = 500


# -- Steps -------------------------------------------------------------------

#: Largest JSON of one step's result, in bytes: a step records what the rest of the
#: body needs (ids, names, small results), not bulk data, and a task's steps are read
#: whole when a rerun resumes.
MAX_STEP_BYTES = 256 * 1024

#: Longest step name, in characters: names are shown in ``_progress``, the dashboard
#: and ``inspect``, and they key the step's record.
MAX_STEP_NAME = 200

#: Most steps one attempt may run: every recorded step of a task is read at a rerun's
#: first step, so their number is bounded as their size is.
MAX_STEPS = 10_000

#: Deepest nesting of lists and objects in a step's result (``[[1]]`` is 2): whatever
#: is recorded must read back, and the readers are recursive - Python's JSON parser
#: stops near 1,000 levels less the stack already in use, Redis' cjson at 1,000 - so a
#: result recorded 900 deep could never be read by a rerun. Data a body carries from
#: one step to the next is a few levels deep.
MAX_STEP_DEPTH = 100

#: Characters of a failed step's error kept with its record (the task's own error
#: says the rest).
STEP_ERROR_CHARS = 500


# -- Redis Sentinel ----------------------------------------------------------

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


# -- Redis Cluster -------------------------------------------------------------

#: Shards a deployment on Redis Cluster spreads its tasks over when its
#: ``redis+cluster://`` URL names no ``shards=``. Each shard is one hash slot, so it
#: lives on one primary; 16 spread evenly over 1, 2, 4, 8 or 16 primaries and within
#: one shard of even over 3 to 6. Every process of a deployment must use the same number.
CLUSTER_SHARDS = 16

#: Port of a cluster node a ``redis+cluster://`` URL names without one.
CLUSTER_PORT = 6379

#: Longest an idle worker waits on one shard's streams before it looks at the next
#: ones, in seconds: a job queued on another shard waits at most this long for an idle
#: worker (Redis cannot block on keys of several slots in one command).
CLUSTER_CLAIM_SLICE = 0.1

#: Where a caller's name (principal) is read from a request by default: the WSGI
#: environ's ``REMOTE_USER``, which Apache's ``AuthType Basic`` (and any front proxy
#: that authenticates for the server) sets, and which no client can set by a header.
PRINCIPAL = "REMOTE_USER"
#: The longest principal kept with a task: user names and proxy identities fit, and a
#: hook that hands back a whole token is refused rather than stored in every record.
PRINCIPAL_MAX_CHARS = 256

# -- one task per key (concurrency_key) ----------------------------------------------------------

#: A start that finds its key's places all held tries again after this many seconds,
#: queued meanwhile: short, so the next task follows a finished one closely; each try
#: is one small script call.
SLOT_RETRY = 0.1
#: A place taken for a start before its record exists (on_limit='refuse') counts this
#: long without one: ample for the create that follows it, short if that never comes.
SLOT_CREATE_GRACE = 30.0
#: A key's slot set expires this long after its last take (a task running longer keeps
#: its place as long as the set lives: set it above the longest timeout).
SLOT_TTL = 7 * 24 * 3600.0

# -- rate limits (rate) ------------------------------------------------------------------

#: A begin may come this fraction of an interval before its turn (the GCRA's tolerance):
#: a waiter that wakes a little late is not counted late, so the rate is held, not lost
#: to wake-up latency; below 1, so no two begins ever come closer than half an interval
#: and a window of N intervals never holds more than N + 1 begins.
RATE_TOLERANCE = 0.5
#: A begin over the rate that must wait at most this many seconds waits in its slot and
#: tries again on time; a longer wait goes back to the queue (a worker's delayed set is
#: moved only every REAP_INTERVAL, too coarse for a rate of several a second).
RATE_HOLD = 2.0
#: A method's rate key expires this long after its last begin would allow the next one.
RATE_TTL_EXTRA = 60.0
