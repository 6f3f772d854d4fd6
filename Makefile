# The two commands of the README, and the benches.
#   make serve   the example services on http://127.0.0.1:8080/ (embedded defaults)
#   make test    the full test suite (tests/run)
PORT ?= 8080
EXAMPLES := services/task_service.py services/instance_service.py services/report_service.py

.PHONY: serve test bench

# Runtime dependencies only, on the first of Python 3.11-3.13 found (scripts/runtime-venv).
serve:
	@python=$$(scripts/runtime-venv) && exec $$(dirname $$python)/ladon-tasks serve $(EXAMPLES) --port $(PORT)

test:
	tests/run

bench:
	@python=$$(tests/run --print-python 3.11) && $$python bench/bench_core.py
