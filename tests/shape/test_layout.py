"""The code's shape: producer.py's sections in dependency order, the facade, the maps, the shop package apart.

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys


import producer
from tests.support import ROOT, run_producer
from producer import ECommerceEventProducer



def test_help_documents_every_flag_with_variable_and_default():
    out = run_producer("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for option in producer.OPTIONS:
        assert option.flag in text
        assert option.env in text, option.env
    assert "default: localhost:9092" in text and "default: 3.0" in text


def test_version_names_this_file_and_the_clients():
    out = run_producer("--version")
    assert out.returncode == 0
    assert re.fullmatch(r"producer\.py \d+\.\d+\.\d+ \(kafka-python 3\.\S+, confluent-kafka 2\.\S+; Python 3\.\S+\)\n",
                        out.stdout), out.stdout


def test_each_section_of_producer_py_uses_only_what_is_above_it():
    """The reading order the module docstring declares: a top-level name is used (in code, in a class body or a
    signature, quoted annotations included) only by its own section or those below it. A name from below means
    the section order is wrong, or the thing belongs elsewhere."""
    import ast

    source = (ROOT / "producer.py").read_text()
    banners = _sections(source)
    assert len(banners) >= 12 and banners[0][1].startswith("constants, exceptions")

    def section(line: int) -> int:
        return max((k for k, (at, _) in enumerate(banners) if at <= line), default=-1)

    tree = ast.parse(source)
    home: dict[str, int] = {}
    for node in tree.body:
        targets = [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
            [t for target in getattr(node, "targets", [getattr(node, "target", None)]) if target is not None
             for t in ast.walk(target) if isinstance(t, ast.Name)]
        for target in targets:
            home.setdefault(getattr(target, "name", None) or target.id, section(node.lineno))

    def names_used(node: ast.AST, bound: frozenset = frozenset()):
        """(line, name) of each name read inside node, but for names bound in an enclosing function."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            local = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
            local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            bound = bound | local
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in bound:
                yield child.lineno, child.id
            elif isinstance(child, ast.Constant) and isinstance(child.value, str) and child is not \
                    getattr(node, "value", 0) and isinstance(node, (ast.arg, ast.FunctionDef, ast.AnnAssign)):
                for name in re.findall(r"[A-Za-z_]\w*", child.value):  # a quoted annotation
                    yield child.lineno, name
            yield from names_used(child, bound)

    wrong = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            continue  # the public API's names, as strings
        for line, name in names_used(node):
            if name in home and home[name] > section(node.lineno):
                wrong.append(f"line {line} ({banners[section(line)][1]}) uses {name} from '{banners[home[name]][1]}'")
    assert not wrong, "\n".join(wrong)


def test_the_original_class_is_a_facade_over_one_loop():
    """ECommerceEventProducer keeps the original API in at most 300 lines and runs no loop of its own: every mode
    runs in RunEngine.run, the one loop of the engine section."""
    import ast

    tree = ast.parse((ROOT / "producer.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    facade = classes["ECommerceEventProducer"]
    assert facade.end_lineno - facade.lineno + 1 <= 300
    assert not [n for n in ast.walk(facade) if isinstance(n, (ast.While, ast.For))
                and any(isinstance(c, ast.Call) and getattr(c.func, "attr", "") in ("send", "send_many", "take")
                        for c in ast.walk(n))], "the facade sends in a loop of its own"
    engine = ("RunEngine", "KafkaSink", "StdoutSink", "RandomEvents", "SimulatedShop", "Schedule", "SimulatedTime",
              "Unlimited")
    loops = [cls for cls in engine if any(isinstance(n, ast.While) for n in ast.walk(classes[cls]))]
    assert loops == ["RunEngine"]
    for name in ("connect", "generate_event", "send_event", "log_event_details", "log_statistics", "start_producing",
                 "stop", "_generate_metadata"):
        assert callable(getattr(ECommerceEventProducer, name))


def test_the_where_to_change_what_maps_name_what_is_there():
    """The module docstring's and README's maps name sections and things that exist, in the file's order."""
    import ast

    source = (ROOT / "producer.py").read_text()
    titles = [title for _, title in _sections(source)]
    tree = ast.parse(source)
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))} | \
        {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
         for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target) if isinstance(t, ast.Name)}
    for module in (ROOT / "shopsim").glob("*.py"):  # the shop model's names, which the maps name too
        body = ast.parse(module.read_text()).body
        defined |= {n.name for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        defined |= {t.id for n in body if isinstance(n, ast.Assign) for t in ast.walk(n.targets[0]) if isinstance(t, ast.Name)}
    docstring = ast.get_docstring(tree)
    readme = (ROOT / "README.md").read_text()
    for where, text in (("docstring", docstring.split("Where to change what", 1)[1]),
                        ("README", readme.split("## Where to change what", 1)[1].split("\n## ", 1)[0])):
        named = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\(\))?`", text)) - {o.env for o in producer.OPTIONS}
        assert len(named) > 15, where
        missing = sorted(n for n in named if n not in defined and n not in ("make", "schemas"))
        assert not missing, f"the {where}'s map names what neither producer.py nor shopsim defines: {missing}"
    # The code map's row for producer.py lists its sections in the file's order, each with names it defines.
    row = next(line for line in readme.split("## Code map", 1)[1].splitlines() if line.startswith("| `producer.py`"))
    listed = re.findall(r"\*\*([^*]+)\*\*(?: \(([^)]*)\))?", row)
    assert [next((t for t in titles if t.startswith(x)), x) for x, _ in listed] == titles
    sections = {title: k for k, title in enumerate(titles)}
    lines = source.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^# --- .+ -{3,}$", line)] + [len(lines)]
    for title, names in listed:
        k = sections[next(t for t in titles if t.startswith(title))]
        body = "\n".join(lines[starts[k]:starts[k + 1]])
        for name in re.findall(r"`([A-Za-z_]\w*)", names):
            assert re.search(rf"^(class|def) {name}\b|^{name}\b.* = ", body, re.M), f"{name} is not in '{title}'"


def test_importing_has_no_side_effects(tmp_path):
    code = (
        "import logging, signal, os, sys\n"
        "before = dict(os.environ)\n"
        "import producer\n"
        "assert logging.getLogger().handlers == [], 'logging configured at import'\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, 'signal handler installed at import'\n"
        "assert dict(os.environ) == before, 'environment changed at import'\n"
        "assert 'kafka' not in sys.modules, 'Kafka client imported at import'\n"
        "print('clean')\n")
    (tmp_path / ".env").write_text("KAFKA_TOPIC=leaked\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "clean", out.stderr
    assert os.listdir(tmp_path) == [".env"]  # no log file or anything else written


def test_no_folder_of_the_project_shadows_a_python_package():
    """The broker's jars used to live in kafka/, which `import kafka` found first outside the venv."""
    probe = "import importlib.util as u; print([n for n in ('kafka', 'dotenv', 'prometheus_client') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stdout


def _sections(source: str) -> list[tuple[int, str]]:
    """producer.py's banners: (line, title)."""
    return [(i + 1, m[1]) for i, line in enumerate(source.splitlines())
            if (m := re.match(r"^# --- (.+?) -{3,}$", line))]


def test_the_shop_model_never_imports_the_daemon_and_its_modules_import_one_way():
    """shopsim is pure: it imports no producer.py, no Kafka client, no settings or logging set-up; within it,
    each module imports only those listed above it in its __init__ (events, figures, sessions, twin, scenarios)."""
    import ast

    order = ["events", "figures", "sessions", "twin", "scenarios"]
    modules = sorted(p.stem for p in (ROOT / "shopsim").glob("*.py") if p.stem != "__init__")
    assert modules == sorted(order)
    for k, name in enumerate(order):
        tree = ast.parse((ROOT / "shopsim" / f"{name}.py").read_text())
        imported = {(n.module or "", n.level) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
            {(a.name, 0) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        for module, level in imported:
            top = module.split(".")[0]
            assert top not in ("producer", "kafka", "confluent_kafka", "logging", "calibrate", "dotenv"), (name, module)
            if level:  # within the package: only what is above
                assert module in order[:k], f"shopsim/{name}.py imports .{module}, which is not above it"
    code = "import sys, shopsim; sys.exit(1 if 'producer' in sys.modules or 'kafka' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_calibrate_scoreboard_bench_and_examples_use_public_names_only():
    """Tools beside the daemon use producer.py's __all__ and shopsim's __all__, nothing else."""
    import ast

    public = {"producer": set(producer.__all__), "shopsim": set(__import__("shopsim").__all__)}
    files = [ROOT / "calibrate.py", ROOT / "scoreboard.py", *ROOT.glob("examples/*.py"), *ROOT.glob("bench/*.py")]
    for path in files:
        tree = ast.parse(path.read_text())
        imported = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in public:
                for alias in node.names:
                    assert alias.name in public[node.module], f"{path.name} imports {node.module}.{alias.name}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in public \
                    and node.value.id in imported:
                assert node.attr in public[node.value.id], f"{path.name} uses {node.value.id}.{node.attr}"

