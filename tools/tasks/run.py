"""Score each task's float model and its compressed versions (codebook 8 and 4 bits, default granularity, unless
``--configs`` names others).

Every model file a task uses is compressed (validation off) into a temporary folder under its own relative
path, so a task that needs two files (an encoder and a decoder) runs both compressed. A config marked
``"calibrate": True`` (a key of this runner, not of onnx-share) compresses each model file with
``{"calibration": {"data": [<that file's calibration folder>]}}`` added, from the task's ``calibration_data``.
Offline: models come from the cache (``python tools/real_models.py fetch``) or, for a task with ``MODEL_DIR``, from
a file built in the repo; data is generated into ``<cache>/tasks`` on first use.

    python tools/tasks/run.py                               # every task whose models are cached
    python tools/tasks/run.py --tasks captcha_whisperer --configs cb8 cb4 cb4ch --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import real_models

from tasks import TASKS

CONFIGS = {
    "cb8": {"default": {"scheme": "codebook", "bits": 8}},
    "cb5": {"default": {"scheme": "codebook", "bits": 5}},
    "cb4": {"default": {"scheme": "codebook", "bits": 4}},
    "cb4t": {"default": {"scheme": "codebook", "bits": 4, "granularity": "tensor"}},
    "cb4ch": {"default": {"scheme": "codebook", "bits": 4, "granularity": "channel"}},
    "u8": {"default": {"scheme": "uniform", "bits": 8}},
    "u4": {"default": {"scheme": "uniform", "bits": 4}},
    "cb4cal": {"default": {"scheme": "codebook", "bits": 4}, "calibrate": True},
    "cb3": {"default": {"scheme": "codebook", "bits": 3}},
    "cb3cal": {"default": {"scheme": "codebook", "bits": 3}, "calibrate": True},
    "u4cal": {"default": {"scheme": "uniform", "bits": 4}, "calibrate": True},
    # Calibration methods one at a time (defaults: weighting on, GPTQ rounding, bias correction).
    "cb4cal-nearest": {"default": {"scheme": "codebook", "bits": 4, "rounding": "nearest"}, "calibrate": True},
    "cb4cal-unweighted": {"default": {"scheme": "codebook", "bits": 4, "weighting": False}, "calibrate": True},
    "cb4cal-weighted": {"default": {"scheme": "codebook", "bits": 4, "weighting": True}, "calibrate": True},
    "cb4cal-nobias": {"default": {"scheme": "codebook", "bits": 4, "bias_correction": False}, "calibrate": True},
    "cb4cal-refit": {"default": {"scheme": "codebook", "bits": 4, "refit": True}, "calibrate": True},
    "cb3cal-unweighted": {"default": {"scheme": "codebook", "bits": 3, "weighting": False}, "calibrate": True},
    "cb3cal-weighted": {"default": {"scheme": "codebook", "bits": 3, "weighting": True}, "calibrate": True},
    "cb2cal": {"default": {"scheme": "codebook", "bits": 2}, "calibrate": True},
    # Budgets (the budget issue): every weight's form searched; "score" makes the task's own metric the budget's
    # score, allowed to fall by max_drop in all (a task's model files are searched in turn, each given what is left).
    "point1": {"budget": {"max_drop": 0.01}, "calibrate": True, "score": True},
    # Peers (tools/peers.py in its own virtualenv, PEERS_PYTHON); "calibrate" passes the same calibration folder.
    "ort-rtn": {"peer": "ort-rtn-b128"},
    "ort-gptq": {"peer": "ort-gptq", "calibrate": True},
    "nncf-int4": {"peer": "nncf-int4"},
    "nncf-int4-awq-se": {"peer": "nncf-int4-awq-se", "calibrate": True},
    "onnxsim-kmeans": {"peer": "onnxsim-kmeans"},
    "onnxsim-squeezellm": {"peer": "onnxsim-squeezellm", "calibrate": True},
}
# Calibration files per model: onnx-share calibrates on 32 (its default) and holds the other 8 out.
CALIBRATION_FILES = 40
# The interpreter of the peers' virtualenv (see tools/peers.py for how to make it).
PEERS_PYTHON = os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python")
PEERS_SCRIPT = Path(__file__).resolve().parents[1] / "peers.py"
# The budget reports of the models compress_copy searched, by task module, for the row.
BUDGETS: dict[str, list] = {}


def model_dir(module) -> Path:
    """The folder the task's MODELS are relative to: its ``MODEL_DIR`` (a model built in the repo) if it has one,
    else its package's folder in the model cache."""
    return getattr(module, "MODEL_DIR", None) or real_models.package_dir(module.PACKAGE)


def task_score(module, folder: Path, relative: str) -> Callable[[str], float]:
    """The task's metric with model file ``relative`` replaced by the one scored; its other files are taken from
    ``folder`` where they are already compressed there, else from the task's own folder."""

    def score(path: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            for other in module.MODELS:
                source = Path(path) if other == relative else folder / other
                source = source if source.is_file() else model_dir(module) / other
                (Path(tmp) / other).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / other).symlink_to(source.resolve())
            return module.evaluate(Path(tmp) / module.MODELS[0])

    return score


def compressed_copy(module, config: dict, folder: Path, float_score: float | None = None) -> Path:
    """Compress every model of the task into ``folder`` (same relative paths); return the first one's path. A
    config with ``"calibrate": True`` gives each model file its own calibration folder (``calibration_data``);
    with ``"score": True`` the task's metric (``float_score`` for the float models) is the budget's score."""
    import onnx_share.api

    config = dict(config)
    calibrate = config.pop("calibrate", False)
    peer = config.pop("peer", None)
    scored = config.pop("score", False)
    base = model_dir(module)
    for relative in module.MODELS:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        calibration = str(module.calibration_data(relative, CALIBRATION_FILES)) if calibrate else None
        if peer is not None:
            data = ["--data", calibration] if calibration is not None else []
            done = subprocess.run([PEERS_PYTHON, str(PEERS_SCRIPT), peer, str(base / relative), str(target), *data],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{peer} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            continue
        data = {"calibration": {"data": [calibration]}} if calibration is not None else {}
        options: dict = {}
        if scored:
            assert float_score is not None
            score = task_score(module, folder, relative)
            spent = float_score - score(str(base / relative))  # what the files compressed before this one lost
            budget = {**config["budget"], "max_drop": max(config["budget"]["max_drop"] - spent, 0.0)}
            config, options = {**config, "budget": budget}, {"score": score}
        result = onnx_share.api.optimize(str(base / relative), {**config, **data, "validation": {"enabled": False}},
                                         **options)
        result.save(target)
        if result.report.budget is not None:
            BUDGETS.setdefault(module.__name__, []).append(result.report.budget)
    return folder / module.MODELS[0]


def files_bytes(folder: Path, models: list[str]) -> int:
    """Bytes of the task's model files under ``folder``, with the external data files beside them."""
    from onnx_share.io.proto import ProtoModel

    return sum(ProtoModel.read(folder / relative).file_bytes() for relative in models)


def run_task(name: str, configs: list[str]) -> dict:
    module = importlib.import_module(f"tasks.{name}")
    base = model_dir(module)
    missing = [r for r in module.MODELS if not (base / r).is_file()]
    row: dict = {"task": name, "package": module.PACKAGE, "metric": module.METRIC, "scores": {}, "errors": {}}
    if missing:
        make = getattr(module, "MAKE", f"python tools/real_models.py fetch {module.PACKAGE}")
        row["errors"]["float"] = f"not found in {base}: {missing}; run {make}"
        print(f"{name}: skipped, {row['errors']['float']}", file=sys.stderr, flush=True)
        return row
    start = time.perf_counter()
    try:
        module.generate()
    except Exception as exc:  # a missing tool (espeak-ng, sox): this task is reported, the others still run
        row["errors"]["float"] = f"data not generated: {type(exc).__name__}: {exc}"
        print(f"{name}: {row['errors']['float']}", file=sys.stderr, flush=True)
        return row
    row["generate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    row["scores"]["float"] = module.evaluate(base / module.MODELS[0])
    row["evaluate_s"] = time.perf_counter() - start
    print(f"{name}: float {row['scores']['float']:.4f}", file=sys.stderr, flush=True)
    for key in configs:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                copy = compressed_copy(module, CONFIGS[key], Path(tmp), row["scores"]["float"])
                row["scores"][key] = module.evaluate(copy)
                for budget in BUDGETS.pop(module.__name__, []):
                    kept = budget.tried[budget.chosen]
                    row.setdefault("budgets", {}).setdefault(key, []).append({
                        "built": len(budget.tried), "bits": kept.bits, "seconds": sum(budget.timings_s.values()),
                        "chosen": [layer.chosen for layer in budget.layers]})
                row.setdefault("ratios", {})[key] = files_bytes(base, module.MODELS) / files_bytes(Path(tmp),
                                                                                                    module.MODELS)
            except Exception as exc:
                row["errors"][key] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                print(f"{name}: {key} ERROR {row['errors'][key]}", file=sys.stderr, flush=True)
                continue
        print(f"{name}: {key} {row['scores'][key]:.4f} ({row['ratios'][key]:.2f}x smaller)", file=sys.stderr,
              flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=TASKS, choices=TASKS)
    parser.add_argument("--configs", nargs="*", default=["cb8", "cb4"], choices=list(CONFIGS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [run_task(name, args.configs) for name in args.tasks]
    print("| task | package | metric | float | " + " | ".join(args.configs) + " |")
    print("|---|---|---|---|" + "---|" * len(args.configs))
    for row in rows:
        cells = [f"{row['scores'][k]:.4f}" if k in row["scores"] else "ERR" for k in ["float", *args.configs]]
        print(f"| {row['task']} | {row['package']} | {row['metric']} | " + " | ".join(cells) + " |")
    for row in rows:
        for key, error in row["errors"].items():
            print(f"- {row['task']} {key}: {error}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python", "tools/tasks/run.py", *(argv or sys.argv[1:])]), "rows": rows,
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
