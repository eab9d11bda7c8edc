# Two commands on a fresh machine: `make run` and `make test` (see README.md).
# Needs Python 3.10+, Java 17+ and Maven; everything else is installed here.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_BOOTSTRAP_SERVERS ?= localhost:9092
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup setup-dev setup-confluent setup-formats setup-codecs setup-all needs run test test-pure fault-tools cdnow kafka-up kafka-down kafka-reset kafka-status kafka-logs registry-up registry-down schemas \
	bench bench-quick clean

# What the default run uses (requirements.txt); a setting that needs more (the second client, a schema format, a
# compression codec) gets its extra from `make run`, or by hand: setup-confluent, setup-formats, setup-codecs,
# setup-all. Tests, benchmarks and the examples add theirs (setup-dev).
setup: $(VENV)/.runtime broker/lib/.resolved
setup-dev: setup $(VENV)/.dev
setup-confluent: $(VENV)/.confluent
setup-formats: $(VENV)/.formats
setup-codecs: $(VENV)/.codecs
setup-all: setup setup-formats setup-codecs

PIP := $(PY) -m pip install --quiet --disable-pip-version-check

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.confluent: $(VENV)/.runtime requirements-confluent.txt
	$(PIP) -r requirements-confluent.txt
	@touch $@

$(VENV)/.formats: $(VENV)/.confluent requirements-formats.txt
	$(PIP) -r requirements-formats.txt
	@touch $@

$(VENV)/.codecs: $(VENV)/.runtime requirements-codecs.txt
	$(PIP) -r requirements-codecs.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-formats.txt requirements-codecs.txt
	$(PIP) -r requirements-dev.txt
	@touch $@ $(VENV)/.confluent $(VENV)/.formats $(VENV)/.codecs

broker/lib/.resolved: broker/pom.xml devkafka.py
	$(PYTHON) devkafka.py setup

# Starts the local broker only when KAFKA_BOOTSTRAP_SERVERS is local and nothing answers; it keeps running
# afterwards, and keeps its data across restarts (stop it: `make kafka-down`; wipe it: `make kafka-reset`).
run: setup
	@$(PY) devkafka.py ensure $(KAFKA_BOOTSTRAP_SERVERS)
	@needs="$$($(NEEDS))"; if [ -n "$$needs" ]; then $(MAKE) --no-print-directory $$needs; fi
	KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS) $(PY) producer.py $(ARGS)

# What the run's effective settings (flags, environment, .env: --print-config) need beyond the default packages: the
# second client, a schema format and the local schema registry (unless one answers on 8081), kafka-python's codecs.
NEEDS = KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS) $(PY) producer.py --print-config $(ARGS) 2>/dev/null | sed -n \
	-e 's/^KAFKA_CLIENT *= confluent-kafka .*/setup-confluent/p' \
	-e 's/^VALUE_FORMAT *= \(avro\|protobuf\|json-schema\) .*/setup-formats registry-up/p' \
	-e 's/^KAFKA_COMPRESSION_TYPE *= \(snappy\|lz4\|zstd\) .*/setup-codecs/p'
needs: $(VENV)/.runtime
	@$(NEEDS)

# CDNOW (69,659 real orders, 1997-98), the twin's test data: from the lifetimes wheel on PyPI, never committed; and
# Fader, Hardie and Lee's 1/10th sample of it (2,357 customers), on which BG/NBD's published parameters are checked.
CDNOW := .cache/CDNOW_master.txt
CDNOW_SAMPLE := .cache/CDNOW_sample.txt
CDNOW_SHA256 := eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef
CDNOW_SAMPLE_SHA256 := 6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a
# $(call from_lifetimes,FILE,SHA256): .cache/FILE from the wheel's datasets, checked
define from_lifetimes
	$(PY) -c 'import glob, hashlib, sys, zipfile; \
		data = zipfile.ZipFile(glob.glob(".cache/wheels/*ifetimes-0.11.3-*.whl")[0]).read("lifetimes/datasets/$(1)"); \
		sys.exit("$(1): unexpected content") if hashlib.sha256(data).hexdigest() != "$(2)" else None; \
		open(".cache/$(1)", "wb").write(data)'
endef
cdnow: $(CDNOW) $(CDNOW_SAMPLE)
.cache/wheels/.lifetimes: | $(VENV)/.runtime
	@mkdir -p .cache/wheels
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps lifetimes==0.11.3 -d .cache/wheels
	@touch $@
$(CDNOW): | .cache/wheels/.lifetimes
	$(call from_lifetimes,CDNOW_master.txt,$(CDNOW_SHA256))
$(CDNOW_SAMPLE): | .cache/wheels/.lifetimes
	$(call from_lifetimes,CDNOW_sample.txt,$(CDNOW_SAMPLE_SHA256))

# Two pytest-xdist workers: the broker tests one after the other in one, the pure tests in the other and then in
# both, at a lower CPU priority than the broker side (tests/conftest.py). Three were no faster on two cores, and
# the pure tests' wall-clock checks failed under the load.
test: setup-dev $(CDNOW) $(CDNOW_SAMPLE) fault-tools
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The fault suite (tests/broker/test_faults.py) cuts links with iptables in network namespaces of its own: as root, as CI runs.
fault-tools:
	@command -v iptables >/dev/null || { echo "installing iptables for the fault suite (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null; }

# The pure tests that take seconds, no broker and no JVM: about two minutes (`pytest -m "not broker"` adds the model
# fits and the tests that wait on the wall clock).
test-pure: $(VENV)/.dev $(CDNOW_SAMPLE)
	$(PY) -m pytest -m "not broker and not slow" $(PYTEST_ARGS)

# KAFKA_VERSION=3.9 (here, for `make run` too) runs another Kafka release: for clients pinned to old protocol
# versions (docs/churn-system.md). The default is broker/pom.xml's.
kafka-up: setup
	$(PY) devkafka.py up $(ARGS)

kafka-down:
	$(PYTHON) devkafka.py down

kafka-reset:
	$(PYTHON) devkafka.py reset

kafka-status:
	$(PYTHON) devkafka.py status

kafka-logs:
	$(PYTHON) devkafka.py logs

# VALUE_FORMAT=protobuf uses the message class generated from schemas/user_event.proto (checked in).
schemas: setup-dev
	$(PY) -m grpc_tools.protoc -I schemas --python_out=schemas schemas/user_event.proto

registry-up:
	$(PYTHON) devkafka.py registry up

registry-down:
	$(PYTHON) devkafka.py registry down

bench: setup-dev $(CDNOW)
	$(PY) bench/run.py $(ARGS)

# Under a minute: the throughput contenders with fewer records, one round (ratios noisier than `make bench`).
bench-quick: setup-dev
	$(PY) bench/run.py --only throughput --count 20000 --naive-count 300 --generation-count 200000 --rounds 1 \
		--output bench/out/quick.json $(ARGS)

clean:
	-$(PYTHON) devkafka.py down
	-$(PYTHON) devkafka.py registry down
	rm -rf $(VENV) .cache broker/lib broker/lib-* registry/lib .devkafka .devkafka-registry .pytest_cache __pycache__
