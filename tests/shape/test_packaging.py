"""What ships around producer.py stays true to it: pinned requirements, the documented settings, the
Dockerfile, docker-compose.yml and the Kubernetes manifests. (No Docker engine runs on the CI machine,
so images are not built here; these checks read the files.)"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

import producer
from tests.support import ROOT, clean_env

SETTINGS = {o.env for o in producer.OPTIONS}


def pins(name: str) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return dict(line.split("==") for line in lines if line and not line.startswith("-r "))


def test_requirements_are_pinned_and_each_extra_has_what_its_settings_need():
    files = ["requirements.txt", "requirements-confluent.txt", "requirements-formats.txt", "requirements-codecs.txt",
             "requirements-dev.txt"]
    for name in files:
        assert all(re.fullmatch(r"[\w.+!-]+", version) for version in pins(name).values()), name
    default = pins("requirements.txt")
    assert set(default) == {"kafka-python", "python-dotenv", "crc32c", "prometheus-client", "tzdata", "tqdm"}
    assert "confluent-kafka" in pins("requirements-confluent.txt")
    assert {"fastavro", "protobuf", "jsonschema"} <= set(pins("requirements-formats.txt"))
    assert {"python-snappy", "lz4", "zstandard"} <= set(pins("requirements-codecs.txt"))
    for module, package, target in [*producer.CLIENT_PACKAGES.values(), *producer.FORMAT_PACKAGES.values(),
                                    *producer.CODEC_PACKAGES.values()]:
        installs = "requirements.txt" if target == "setup" else f"requirements-{target.split('-', 1)[1]}.txt"
        assert package in pins(installs) or package == "confluent-kafka" and installs == "requirements-formats.txt", \
            (package, installs)
    from kafka import codec  # the tests take every extra

    assert codec.has_snappy() and codec.has_lz4() and codec.has_zstd() and codec.has_gzip()


def test_every_setting_is_in_producer_config_env_and_the_settings_doc():
    env_file = (ROOT / "producer_config.env").read_text()
    readme = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", env_file, re.M))
    assert SETTINGS <= documented, SETTINGS - documented
    assert documented <= SETTINGS, documented - SETTINGS
    missing = [name for name in SETTINGS if f"`{name}`" not in readme]
    assert not missing, missing
    # The template is itself a valid settings file with the defaults.
    settings = producer.load_settings(["--env-file", str(ROOT / "producer_config.env")], environ={})
    assert settings == producer.default_settings(env_file=str(ROOT / "producer_config.env"))


def test_settings_tables_and_the_template_say_what_the_options_say_row_by_row():
    """The settings tables (docs/settings.md) and producer_config.env are checked against OPTIONS whole: variable,
    flag, default and meaning, so neither can drift from the code."""
    readme = (ROOT / "docs" / "settings.md").read_text()
    described, comment = {}, []
    for line in (ROOT / "producer_config.env").read_text().splitlines():
        setting = re.match(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", line)
        if setting and setting.group(1) in SETTINGS:
            described[setting.group(1)] = (" ".join(comment), setting.group(2), line.startswith("#"))
            comment = []
        elif line.startswith("# ---") or not line.strip():
            comment = []
        elif line.startswith("#"):
            comment.append(line[1:].strip())
    for option in producer.OPTIONS:
        meaning = option.help.replace("%%", "%")  # argparse's escape
        default = "(empty)" if not option.default or option.secret else f"`{option.default}`"
        assert f"| `{option.env}` | `{option.flag}` | {default} | {meaning} |" in readme, option.env
        text, value, commented = described[option.env]
        assert text.endswith(f"{meaning} (flag {option.flag})"), (option.env, text)
        assert value == ("" if option.secret else option.default), option.env
    # commented out on purpose: set, they change what sessions mode does (the template says why)
    assert sorted(env for env, (_, _, commented) in described.items() if commented) == \
        ["EVENT_WEIGHTS", "PRODUCER_INTERVAL", "USER_ID_RANGE"]


def test_make_run_installs_only_the_runtime_requirements():
    """`make run` installs requirements.txt; tests, benchmarks and examples install theirs with `make test`."""
    def commands(target: str) -> str:
        out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    run, test = commands("run"), commands("test")
    assert "-r requirements.txt" in run and "requirements-dev.txt" not in run and "requirements-formats" not in run
    assert "-r requirements-dev.txt" in test
    runtime = (ROOT / "requirements.txt").read_text().lower()
    assert not any(heavy in runtime for heavy in ("pytest", "scikit-learn", "scipy", "matplotlib", "confluent-kafka=",
                                                  "fastavro", "zstandard"))


@pytest.mark.parametrize("args, env, needs", [
    ("", {}, ""),
    ("--client confluent-kafka --format avro --compression lz4", {}, "setup-confluent\nsetup-formats registry-up\n"
                                                                      "setup-codecs"),
    ("--topic mine", {"KAFKA_CLIENT": "confluent-kafka"}, "setup-confluent"),
    ("--format json-schema --topic x", {"KAFKA_COMPRESSION_TYPE": "gzip"}, "setup-formats registry-up"),
], ids=["default", "flags", "environment", "gzip-needs-nothing"])
def test_make_run_installs_what_the_effective_settings_need(args, env, needs):
    """`make run` reads the effective settings (flags, environment, .env) and installs the extras they need first."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "needs", f"ARGS={args}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=clean_env(**env))
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted(needs.splitlines())


def test_dockerfile_slim_nonroot_cached_exec_form_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert text.index("COPY requirements*.txt") < text.index("pip install") < text.index("COPY producer.py")
    assert re.search(r"pip install .*-r requirements\.txt -r requirements-formats\.txt -r requirements-codecs\.txt",
                     text)  # the image has every extra: a deployment sets its settings without make
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1)
    assert json.loads(entrypoint)[:2] == ["python", "producer.py"]  # exec form: SIGTERM reaches Python
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert not re.search(r"PASSWORD|SECRET", text, re.I)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored


def test_compose_starts_the_producer_after_a_healthy_kafka_4():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kafka, prod = compose["services"]["kafka"], compose["services"]["producer"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert kafka["healthcheck"]["test"]
    assert prod["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert set(prod["environment"]) <= SETTINGS
    host, port = prod["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert f"PLAINTEXT://{host}:{port}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    # The registry starts only for the formats that need it (and the producer does not wait for it).
    assert compose["services"]["registry"]["profiles"] == ["formats"] and "registry" not in prod["depends_on"]


def test_kubernetes_manifests_use_known_settings_secret_and_probes():
    docs = {}
    for path in (ROOT / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    assert set(docs) == {"ConfigMap", "Secret", "Deployment", "Job", "StatefulSet", "Service"}
    assert set(docs["ConfigMap"]["data"]) <= SETTINGS
    assert set(docs["Secret"]["stringData"]) == {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    grace = docs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(docs["ConfigMap"]["data"]["FLUSH_TIMEOUT"])
    # The ConfigMap is a valid configuration for the producer.
    environ = {**docs["ConfigMap"]["data"], **docs["Secret"]["stringData"], "ENV_FILE": "/dev/null"}
    assert producer.load_settings([], environ=environ).security_protocol == "SASL_SSL"


@pytest.mark.parametrize("kind, count_of", [("Job", lambda spec: (spec["completions"], spec["parallelism"])),
                                            ("StatefulSet", lambda spec: (spec["replicas"],))])
def test_sharded_manifests_pass_the_pod_index_as_the_shard_and_make_valid_settings(kind, count_of):
    """Each pod's settings, as Kubernetes makes them (env over envFrom, $(VAR) in args), are valid, and the
    shards are 0..N-1 of N with N the number of pods."""
    docs = {doc["kind"]: doc for path in (ROOT / "k8s").rglob("*.yaml") for doc in yaml.safe_load_all(path.read_text())}
    spec = docs[kind]["spec"]
    container = spec["template"]["spec"]["containers"][0]
    pods = count_of(spec)
    assert len(set(pods)) == 1
    index_var = "JOB_COMPLETION_INDEX" if kind == "Job" else "POD_INDEX"
    assert container["args"] == ["--shard", f"$({index_var})/{pods[0]}"]
    environ = {**docs["ConfigMap"]["data"], **docs["Secret"]["stringData"], "ENV_FILE": "/dev/null"}
    environ.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    shards = [producer.load_settings([a.replace(f"$({index_var})", str(i)) for a in container["args"]],
                                     environ=environ) for i in range(pods[0])]
    assert [s.shard for s in shards] == [(i, pods[0]) for i in range(pods[0])]
    assert all(s.simulation_mode == "sessions" and s.seed is not None and s.start_time for s in shards)
    if kind == "StatefulSet":  # the Service it names is shipped beside it, headless, selecting its pods
        service = docs["Service"]
        assert service["metadata"]["name"] == spec["serviceName"] and service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == spec["template"]["metadata"]["labels"]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_a_front_page_and_every_link_of_the_docs_resolves():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 25_000
    first_screen = "\n".join(readme.splitlines()[:60])
    assert "make run" in first_screen and "make test" in first_screen
    pages = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text()
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://")):
                continue
            path, _, fragment = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.exists(), f"{page.name}: {link}"
            if fragment and target.suffix == ".md":
                anchors = {_anchor(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", target.read_text())}
                assert fragment in anchors, f"{page.name}: {link}"


def test_the_code_map_names_only_what_exists():
    """Every name the README's code map gives in backticks (a class, function or constant) is defined at the top
    level of one of the project's modules; every file it names exists."""
    import ast

    defined = set()
    for module in [*ROOT.glob("*.py"), *ROOT.glob("shopsim/*.py"), *ROOT.glob("examples/*.py"), *ROOT.glob("bench/*.py")]:
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
    readme = (ROOT / "README.md").read_text()
    code_map = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in code_map.splitlines() if line.startswith("| `")]
    wire_names = set(re.findall(r"`([a-z_]+)`", readme.split("## The event", 1)[1].split("\n## ", 1)[0]))
    assert len(rows) > 8
    for row in rows:
        files, meaning = row.split(" | ", 1)
        for name in re.findall(r"`([^`]+)`", files):
            for part in name.split(", "):
                assert list(ROOT.glob(part.strip("`"))), part
        names = [n for n in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\(argv\) -> int)?`", meaning)
                 if (n[0].isupper() or "_" in n or n in ("main", "validate")) and n not in wire_names]
        for name in names:
            assert name in defined, f"the code map names {name}, which no module defines"


def test_the_documented_commands_that_send_a_twin_a_backfill_or_a_schema_format_name_a_topic_of_their_own():
    """The demo's `user-events` topic keeps 7 days and holds JSON: a documented command that sends a twin, a
    window of history or another format there would be refused by the project's own advice (issue 31)."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    offenders = []
    for path in texts:
        joined = re.sub(r"\\\n\s*", " ", path.read_text())  # a command continued over lines is one command
        for line in joined.splitlines():
            command = line.split("#")[0]
            if not re.search(r"(producer\.py|make run ARGS=)", command) or "--dry-run" in command:
                continue
            if re.search(r"--shop-profile|--start-time|--format (avro|protobuf|json-schema)", command) and \
                    "--topic" not in command and "--help" not in command:
                offenders.append(f"{path.name}: {command.strip()[:120]}")
    assert not offenders, offenders
