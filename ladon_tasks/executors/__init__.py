"""Where task bodies run: threads, child processes (and, with Redis, remote workers)."""
