"""What every ``kedro`` command pays before it does anything: settings.py must not import
torch, and building the studies' pipelines (``kedro viz`` too) must not import
scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys


def _imports(code: str, modules: tuple[str, ...]) -> dict[str, bool]:
    check = f"{code}\nimport json, sys\nprint(json.dumps([m in sys.modules for m in {modules!r}]))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(zip(modules, loaded, strict=True))


def test_kedro_settings_import_no_torch() -> None:
    assert _imports("import cnn_lab.settings", ("torch", "sklearn")) == {
        "torch": False,
        "sklearn": False,
    }


def test_the_studies_pipelines_import_no_scikit_learn() -> None:
    studies = ("cnn_depth", "transfer", "cam", "init_study", "artworks")
    code = "\n".join(f"import cnn_lab.pipelines.{s}.pipeline" for s in studies)
    assert _imports(code, ("sklearn",)) == {"sklearn": False}
