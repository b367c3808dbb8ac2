"""What the bundle tests of several pool types share: a fresh interpreter standing for a stock
Python image, and a tiny project whose flow says where its code and push-pools came from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

WHERE_FLOW = """
from pathlib import Path
from push_pools import flow

@flow
def where() -> dict:
    import sys
    import push_pools
    here = Path(__file__).resolve().parent
    return {
        "marker": (here / "marker.txt").read_text(),
        "push_pools": push_pools.__file__,
        "python": sys.executable,
    }
"""


def where_project(root: Path, marker: str) -> Path:
    directory = root / "where-project"
    directory.mkdir()
    (directory / "flows.py").write_text(WHERE_FLOW)
    (directory / "marker.txt").write_text(marker)
    return directory


def bootstrap_env(stock: Path) -> dict[str, str]:
    """The run's env that points the bootstrap at the stand-in image's interpreter; the
    installer may not reach any index (no network in tests)."""
    return {
        "PUSH_POOLS_BOOTSTRAP_VENV": str(stock),
        "PUSH_POOLS_BOOTSTRAP_INSTALL_ARGS": "--no-deps --no-index",
    }


@pytest.fixture
def stock_python(tmp_path: Path) -> Path:
    """A fresh virtual environment standing for a stock Python image. Its dependencies come
    from this test environment through a .pth file, standing for the package index (no
    network in tests); push-pools itself it has not: the bootstrap installs that."""
    import subprocess
    import sys
    import sysconfig

    venv = tmp_path / "stock"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = subprocess.run([str(python), "-c", "import push_pools"], env=clean, cwd=tmp_path)
    assert check.returncode != 0  # no push-pools before the bootstrap
    return venv


def local_wheel(directory: Path, name: str, module_text: str) -> Path:
    """A one-module wheel in `directory`, standing for a dependency on a package index (no
    network in tests): installers find it with --find-links or a file:// reference."""
    import base64
    import hashlib
    import zipfile

    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": module_text,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel
