"""Helpers shared by the task evaluations: where data goes, fonts, onnxruntime sessions, calibration folders."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import real_models

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu")]
Feed = dict[str, np.ndarray]  # graph input name -> array, as given to InferenceSession.run


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


class Recorder:
    """An onnxruntime session whose ``run`` also keeps a copy of every feed in ``feeds``: the inputs a task's own
    code (or a wheel's) gives the model, as calibration samples."""

    def __init__(self, sess) -> None:
        self.sess = sess
        self.feeds: list[Feed] = []

    def run(self, output_names, feed: Feed, *args):
        self.feeds.append({name: np.array(value, copy=True) for name, value in feed.items()})
        return self.sess.run(output_names, feed, *args)


def calibration_folder(task: str, models: list[str], relative_model: str, n: int,
                       feeds: Callable[[], Iterable[Feed]]) -> Path:
    """The calibration samples of one model file: ``data_dir(task)/calibration/<model stem>/0000.npz`` ... one feed
    per file (arrays named after the graph inputs, shaped as the task feeds them). The n files come from ``feeds()``
    (which must yield exactly n) unless the folder already holds exactly them; they are written into a private
    temporary sibling that is renamed into place once complete, so neither an interrupted run nor a second process
    building the same folder at the same time leaves a partial set."""
    if relative_model not in models:
        raise ValueError(f"{relative_model!r} is not a model of task {task} ({models})")
    folder = data_dir(task) / "calibration" / Path(relative_model).stem
    names = [f"{i:04d}.npz" for i in range(n)]

    def complete() -> bool:
        return folder.is_dir() and sorted(p.name for p in folder.iterdir()) == names

    if complete():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    partial.chmod(0o755)
    try:
        for name, feed in zip(names, feeds(), strict=True):
            np.savez_compressed(partial / name, **feed)
        if not complete():
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
    except OSError:
        if not complete():  # another process did not install a complete set meanwhile
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
