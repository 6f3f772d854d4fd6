# The two commands of the README, and the benches.
#   make serve   the example services on http://127.0.0.1:8080/ (embedded defaults)
#   make test    the full test suite (tests/run)
#   make bench   a bench (bench/README.md): BENCH=core|queue|web|apache|speed, ARGS=--quick...
PORT ?= 8080
BENCH ?= core
ARGS ?=
EXAMPLES := services/task_service.py services/instance_service.py services/report_service.py

.PHONY: serve test bench

# Runtime dependencies only, on the first of Python 3.11-3.13 found (scripts/runtime-venv).
serve:
	@python=$$(scripts/runtime-venv) && exec $$(dirname $$python)/ladon-tasks serve $(EXAMPLES) --port $(PORT)

test:
	tests/run

# In the venv of tests/run, with the peers of the bench extra at their locked versions
# (tests/constraints.txt); run as a module from the repository root, so the benches
# import tests.support.
bench:
	@python=$$(tests/run --print-python 3.11) && \
	$$python -m pip install -q --disable-pip-version-check --constraint tests/constraints.txt -e ".[bench]" && \
	$$python -m bench.bench_$(BENCH) $(ARGS)
