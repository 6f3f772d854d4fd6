"""The Redis backend: task records (:mod:`.store`) and job queues (:mod:`.queue`) in one
Redis, over one connection pool, with one key layout (:mod:`.keys`) and the Lua scripts
that change records and jobs together (:mod:`.lua`). On Redis Cluster a deployment
is many such stores, one per hash slot (:mod:`.cluster`, :mod:`.sharded`).

The rest of the package comes in through here: :func:`open_store` opens any Redis URL
(:mod:`.opening`), :func:`store_from_environment` the one the environment names, and
the bounds a store takes are checked against :data:`MAX_QUEUED_LIMIT` and
:data:`MAX_QUEUED_BYTES_LIMIT`. The modules behind it are the backend's own."""

from ladon_tasks.redis.opening import open_store, store_from_environment
from ladon_tasks.redis.sharded import ShardedRedisStore
from ladon_tasks.redis.store import MAX_QUEUED_BYTES_LIMIT, MAX_QUEUED_LIMIT, RedisStore

__all__ = [
    "MAX_QUEUED_BYTES_LIMIT",
    "MAX_QUEUED_LIMIT",
    "RedisStore",
    "ShardedRedisStore",
    "open_store",
    "store_from_environment",
]
