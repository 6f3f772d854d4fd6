"""The Redis backend: task records (:mod:`.store`) and job queues (:mod:`.queue`) in one
Redis, over one connection pool, with one key layout (:mod:`.keys`) and the Lua scripts
that change records and jobs together (:mod:`.lua`). On Redis Cluster a deployment
is many such stores, one per hash slot (:mod:`.cluster`, :mod:`.sharded`)."""
