"""Installed from a wheel (not editable), the tool resolves every shipped space and pipeline by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The checkout's documented folders are the truth the installed package must reproduce.
SPACES = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.yaml"))
PIPELINES = sorted(p.stem for p in (ROOT / "pipelines").glob("*.yaml"))
CALIBRATION = sorted(p.name for p in (ROOT / "vdes_tune" / "training").glob("*.json"))

LOAD_BY_NAME = """
import json, sys
import vdes_tune
from vdes_tune.pipeline import load_pipeline, resolve_pipeline_path
from vdes_tune.search.space import load_space, resolve_space_path
spaces, pipelines = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"package": vdes_tune.__file__, "spaces": {}, "pipelines": {}}
for name in spaces:
    out["spaces"][name] = [str(resolve_space_path(name)), load_space(name).name]
for name in pipelines:
    out["pipelines"][name] = [str(resolve_pipeline_path(name)), len(load_pipeline(name).stages)]
print(json.dumps(out))
"""


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH, and a cwd outside the checkout, so only the installed copy can be imported.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_wheel_install_resolves_every_shipped_file_by_name(tmp_path: Path) -> None:
    assert SPACES and PIPELINES and CALIBRATION  # an empty truth would make every check below vacuous

    # Build from a copy: an in-tree build writes build/ into the shared checkout, and setuptools packs
    # whatever stale files an earlier build left there, which could hide a missing package-data entry.
    src = tmp_path / "src"
    src.mkdir()
    for path in ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, src)
    shutil.copytree(ROOT / "vdes_tune", src / "vdes_tune", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "--disable-pip-version-check", "-q", "-w", dist, src], tmp_path))
    (wheel,) = dist.glob("vdes_tune-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        expected = {f"vdes_tune/shipped/search_spaces/{n}.yaml": ROOT / "search_spaces" / f"{n}.yaml" for n in SPACES}
        expected |= {f"vdes_tune/shipped/pipelines/{n}.yaml": ROOT / "pipelines" / f"{n}.yaml" for n in PIPELINES}
        expected |= {f"vdes_tune/training/{n}": ROOT / "vdes_tune" / "training" / n for n in CALIBRATION}
        assert set(expected) <= names, sorted(set(expected) - names)
        for member, original in expected.items():
            assert zf.read(member) == original.read_bytes(), member

    # A bare environment whose dependencies come from this one's site-packages; a path line in a .pth
    # does not run the .pth files of that folder, so the editable install's import hook stays out.
    env_dir = tmp_path / "scratch"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", env_dir], tmp_path))
    python = env_dir / "bin" / "python"
    site = Path(_ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path)).strip())
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "project_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _ok(_run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
              "--disable-pip-version-check", "-q", wheel], tmp_path))

    out = json.loads(_ok(_run([python, "-c", LOAD_BY_NAME, json.dumps(SPACES), json.dumps(PIPELINES)], tmp_path)))
    package = Path(out["package"]).resolve().parent
    assert package == (site / "vdes_tune").resolve(), out["package"]
    for name, (path, loaded_name) in out["spaces"].items():
        assert Path(path).resolve() == package / "shipped" / "search_spaces" / f"{name}.yaml"
        assert loaded_name == name
    for name, (path, stages) in out["pipelines"].items():
        assert Path(path).resolve() == package / "shipped" / "pipelines" / f"{name}.yaml"
        assert stages >= 1
    assert sorted(out["spaces"]) == SPACES and sorted(out["pipelines"]) == PIPELINES

    # The installed console script: an unknown pipeline exits 2 listing what the wheel ships.
    proc = _run([env_dir / "bin" / "vdes-tune", "run", "no_such_pipeline", "--data", tmp_path / "raw",
                 "--work", tmp_path / "work"], tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    listed = (proc.stdout + proc.stderr).rsplit("shipped:", 1)[1].split()
    assert sorted(n.strip(",") for n in listed) == PIPELINES
