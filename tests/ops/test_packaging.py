"""`pip install .` gives a wheel whose console script runs, and the image's healthcheck command works."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_flag_prints_the_installed_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"loyalty-gateway {project_version()}"


def test_the_wheel_installs_and_its_console_script_runs(tmp_path: Path) -> None:
    """Build the wheel as `pip install .` does, install it (without re-downloading the dependencies
    the test venv already has) and run the installed `loyalty-gateway` script."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("loyalty_gateway-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("loyalty_gateway-")}
    assert packages == {"gateway", "resolvers", "dataloaders"}, "tests, bench and deploy stay out of the wheel"
    assert "gateway/cli.py" in names and "resolvers/schema.py" in names

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    script = target / "bin" / "loyalty-gateway"
    env = {**os.environ, "PYTHONPATH": str(target)}
    for args, expected in ((["--version"], f"loyalty-gateway {project_version()}"), (["--help"], "serve")):
        result = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.strip().startswith(str(target)), "the script ran the installed wheel, not the source tree"


def test_probe_reports_an_unreachable_gateway_with_exit_1() -> None:
    from gateway.store.embedded_mongod import free_port

    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "probe", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "/readyz" in result.stderr
