"""The README's code runs as written, and .ci/run runs the README's test command."""
import os
import pathlib
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = pathlib.Path(ROOT, "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_examples_run(index, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)             # files an example writes land there
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})


def test_mlp_example_learns(capsys):
    exec(compile(BLOCKS[0], "README.md block 0", "exec"), {})
    loss = float(capsys.readouterr().out.split(":")[-1])
    assert loss < 0.9          # ln 3 = 1.10 at the start


def _command(marker):
    m = re.search(marker + r"\s*\n```bash\n(.*?)```", README, re.S)
    assert m, f"README has no ```bash block after {marker}"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command():
    extracted = subprocess.run(
        ["awk", "/<!-- test-command -->/ {m=1; next} m && /^```bash/ {b=1; next} "
         "b && /^```/ {exit} b {print}", "README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert extracted == _command("<!-- test-command -->")
    assert "awk '/<!-- test-command -->/" in pathlib.Path(ROOT, ".ci", "run").read_text()
    assert _command("<!-- main-command -->").endswith("python train_cifar.py --download")
