"""Score each task's float model and its compressed versions (codebook 8 and 4 bits, default granularity).

Every model file a task uses is compressed (validation off) into a temporary folder under its own relative
path, so a task that needs two files (an encoder and a decoder) runs both compressed. Offline: models come from
the cache (``python tools/real_models.py fetch``); data is generated into ``<cache>/tasks`` on first use.

    python tools/tasks/run.py                               # every task whose models are cached
    python tools/tasks/run.py --tasks captcha_whisperer --configs cb8 cb4 cb4ch --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import tempfile
import time
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
}


def compressed_copy(module, config: dict, folder: Path) -> Path:
    """Compress every model of the task into ``folder`` (same relative paths); return the first one's path."""
    import onnx_share.api

    base = real_models.package_dir(module.PACKAGE)
    for relative in module.MODELS:
        result = onnx_share.api.optimize(str(base / relative), {**config, "validation": {"enabled": False}})
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        result.save(target)
    return folder / module.MODELS[0]


def run_task(name: str, configs: list[str]) -> dict:
    module = importlib.import_module(f"tasks.{name}")
    base = real_models.package_dir(module.PACKAGE)
    missing = [r for r in module.MODELS if not (base / r).is_file()]
    row: dict = {"task": name, "package": module.PACKAGE, "metric": module.METRIC, "scores": {}, "errors": {}}
    if missing:
        row["errors"]["float"] = f"not cached: {missing}; run python tools/real_models.py fetch {module.PACKAGE}"
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
                row["scores"][key] = module.evaluate(compressed_copy(module, CONFIGS[key], Path(tmp)))
            except Exception as exc:
                row["errors"][key] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                print(f"{name}: {key} ERROR {row['errors'][key]}", file=sys.stderr, flush=True)
                continue
        print(f"{name}: {key} {row['scores'][key]:.4f}", file=sys.stderr, flush=True)
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
