"""Helpers shared by the task evaluations: where data goes, fonts, onnxruntime sessions."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import real_models

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu")]


def data_dir(task: str) -> Path:
    """``<model cache>/tasks/<task>``: generated data lives beside the models, outside the repo."""
    path = real_models.cache_dir() / "tasks" / task
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_path(package: str, relative: str) -> Path:
    """A cached model file (FileNotFoundError with the fetch command when absent)."""
    path = real_models.package_dir(package) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} not cached; run: python tools/real_models.py fetch {package}")
    return path


@cache
def font_file(name: str = "DejaVuSans.ttf") -> str:
    """A DejaVu font from the system or from matplotlib's bundled fonts."""
    import matplotlib

    dirs = [*FONT_DIRS, Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"]
    for d in dirs:
        if (d / name).is_file():
            return str(d / name)
    raise FileNotFoundError(f"font {name} not found in {dirs}")


def font(size: int, name: str = "DejaVuSans.ttf"):
    from PIL import ImageFont

    return ImageFont.truetype(font_file(name), size)


def session(path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]
