"""The default install (requirements.txt alone, as `make run` makes it) sends to the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT, clean_env


def test_the_default_install_runs_the_default_run_and_names_the_extra_a_setting_needs(kafka, tmp_path):
    """A virtual environment with requirements.txt alone (what `make run` installs) sends to the broker, its
    packages are few MB, and a setting that needs an extra says, in one line, how to get it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                          str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    ours = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()
               and not f.relative_to(site).parts[0].startswith(("pip", "setuptools", "_distutils_hack")))
    assert ours < 20 * 2**20, f"{ours / 2**20:.1f} MB"
    topic = f"default-install-{os.getpid()}"
    sent = subprocess.run([python, str(ROOT / "producer.py"), "--bootstrap-servers", kafka.bootstrap, "--topic", topic,
                           "--count", "20", "--interval", "0", "--log-file", ""], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0 and "Events Sent: 20" in sent.stderr, sent.stderr[-2000:]
    for args, target in ((["--client", "confluent-kafka"], "setup-confluent"),
                         (["--format", "avro", "--topic", "a"], "setup-formats"),
                         (["--compression", "zstd"], "setup-codecs")):
        refused = subprocess.run([python, str(ROOT / "producer.py"), *args, "--count", "1"], env=clean_env(),
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"make {target}" in refused.stderr and "make run" in refused.stderr, refused.stderr
