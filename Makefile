# Two commands on a fresh machine: `make run` and `make test` (see README.md).
# Needs Python 3.10+, Java 17+ and Maven; everything else is installed here.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_BOOTSTRAP_SERVERS ?= localhost:9092
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test kafka-up kafka-down kafka-status kafka-logs bench bench-quick clean

setup: $(VENV)/.installed kafka/lib/.resolved

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

kafka/lib/.resolved: kafka/pom.xml devkafka.py
	$(PYTHON) devkafka.py setup

# Starts the local broker only when KAFKA_BOOTSTRAP_SERVERS is local and nothing answers there;
# the broker keeps running afterwards (stop it with `make kafka-down`).
run: setup
	@$(PY) devkafka.py ensure $(KAFKA_BOOTSTRAP_SERVERS)
	KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS) $(PY) producer.py $(ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

kafka-up: setup
	$(PY) devkafka.py up $(ARGS)

kafka-down:
	$(PYTHON) devkafka.py down

kafka-status:
	$(PYTHON) devkafka.py status

kafka-logs:
	$(PYTHON) devkafka.py logs

bench: setup
	$(PY) bench/run.py $(ARGS)

clean:
	-$(PYTHON) devkafka.py down
	rm -rf $(VENV) kafka/lib .devkafka .pytest_cache __pycache__
