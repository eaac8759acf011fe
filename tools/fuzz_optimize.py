"""Fuzz onnx-share: seeded random models through seeded random option sets (the generator and the checks are
``tests/fuzzing.py``; ``tests/test_fuzz.py`` runs a few dozen of the same examples in CI).

    python tools/fuzz_optimize.py                                   # seeds 0-999, one worker per CPU
    python tools/fuzz_optimize.py --start 5000 --count 200 --jobs 2 --failures failing.txt

Per example: no exception; the output passes onnx's full checker, loads and runs in onnxruntime; it is no bigger
than the input; a second run writes the same bytes, in the same process and (unless ``--no-cross-process``) in
another process whose string hashing differs; every reported relative weight error matches one recomputed from
the files. Prints a summary (examples, failures by kind, seconds) and exits 1 when any example fails;
``--failures FILE`` writes one line per problem: seed, kind, detail (tab-separated).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from fuzzing import KINDS, Outcome, kind_of, output_digest, run_example, symptom_of  # noqa: E402


def _example(seed: int, cross_check: bool) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"fuzz_{seed}_") as tmp:
        try:
            return run_example(seed, tmp, cross_check=cross_check)
        except Exception as exc:  # the harness itself: counted, never hidden
            return Outcome(seed, [f"harness: {type(exc).__name__}: {exc}"])


def _digest(seed: int) -> tuple[int, str | None]:
    with tempfile.TemporaryDirectory(prefix=f"fuzz_{seed}_") as tmp:
        return seed, output_digest(seed, tmp)


@contextlib.contextmanager
def _pool(jobs: int, hash_seed: str) -> Iterator[ProcessPoolExecutor]:
    """Fresh worker processes (spawned, so nothing is inherited but the environment) with ``PYTHONHASHSEED``
    set to ``hash_seed``: two pools with different values order sets of strings differently."""
    saved = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = hash_seed
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    finally:
        if saved is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--count", type=int, default=1000, help="number of examples (default 1000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    parser.add_argument("--failures", type=Path, help="write 'seed<TAB>kind<TAB>detail' per problem to this file")
    parser.add_argument("--cross-check", action="store_true",
                        help="also compare the recomputed errors with onnx_share.check.weight_diff's")
    parser.add_argument("--no-cross-process", action="store_true",
                        help="skip the second run in other processes (with another PYTHONHASHSEED)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing example as it comes")
    parser.add_argument("--symptoms", action="store_true",
                        help="also print each failing seed's symptoms as a table for tests/test_fuzz.py")
    args = parser.parse_args(argv)
    seeds = range(args.start, args.start + args.count)
    start = time.perf_counter()
    outcomes: dict[int, Outcome] = {}
    with _pool(args.jobs, "1") as pool:
        futures = {pool.submit(_example, seed, args.cross_check): seed for seed in seeds}
        for done, future in enumerate(as_completed(futures), 1):
            try:
                outcome = future.result()
            except Exception as exc:  # a worker that died (a crash in native code breaks the whole pool)
                outcome = Outcome(futures[future], [f"harness: the worker failed: {type(exc).__name__}: {exc}"])
            outcomes[outcome.seed] = outcome
            if args.verbose and outcome.problems:
                print(f"seed {outcome.seed}: " + " | ".join(outcome.problems), flush=True)
            if done % 100 == 0:
                print(f"  {done}/{len(futures)} examples, {time.perf_counter() - start:.0f} s", file=sys.stderr,
                      flush=True)
    first_pass = time.perf_counter() - start
    if not args.no_cross_process:
        with _pool(args.jobs, "2") as pool:
            wanted = [seed for seed in seeds if outcomes[seed].digest is not None]
            for seed, digest in pool.map(_digest, wanted, chunksize=8):
                if digest != outcomes[seed].digest:
                    outcomes[seed].problems.append(
                        "nondeterministic: a run in another process (another PYTHONHASHSEED) wrote different bytes"
                        if digest is not None else "nondeterministic: the run in another process failed")
    seconds = time.perf_counter() - start
    print(_summary(args, outcomes, seconds, first_pass))
    if args.symptoms:
        print(_symptom_table(outcomes))
    failing = [o for o in outcomes.values() if o.problems]
    if args.failures is not None:
        lines = [f"{o.seed}\t{kind_of(p)}\t{p.split(': ', 1)[-1]}" for o in sorted(failing, key=lambda o: o.seed)
                 for p in o.problems]
        args.failures.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return 1 if failing else 0


def _symptom_table(outcomes: dict[int, Outcome]) -> str:
    """Each failing seed with its symptoms, as ``OUT_OF_CI`` in tests/test_fuzz.py; problems that are not a known
    symptom are listed as comments (a new bug: report it, and reproduce it, rather than only list its seed)."""
    lines = ["OUT_OF_CI: dict[int, tuple[str, ...]] = {"]
    for seed in sorted(s for s, o in outcomes.items() if o.problems):
        names = sorted({symptom_of(p) or "?" for p in outcomes[seed].problems})
        if "?" in names:
            lines += [f"    # {seed}: not a known symptom: {p[:200]}" for p in outcomes[seed].problems
                      if symptom_of(p) is None]
            names.remove("?")
        if names:
            lines.append(f"    {seed}: ({', '.join(repr(n) for n in names)},),")
    return "\n".join([*lines, "}"])


def _summary(args: argparse.Namespace, outcomes: dict[int, Outcome], seconds: float, first_pass: float) -> str:
    failing = sorted((o for o in outcomes.values() if o.problems), key=lambda o: o.seed)
    by_kind: dict[str, list[Outcome]] = collections.defaultdict(list)
    for outcome in failing:
        for kind in dict.fromkeys(kind_of(p) for p in outcome.problems):
            by_kind[kind].append(outcome)
    checked: collections.Counter[str] = collections.Counter()
    for outcome in outcomes.values():
        checked.update(outcome.checked)
    lines = [
        f"examples: {len(outcomes)} (seeds {args.start}-{args.start + args.count - 1}), "
        f"passed {len(outcomes) - len(failing)}, failed {len(failing)}",
        f"reported weight errors recomputed: {sum(checked.values())} ("
        + ", ".join(f"{kind} {count}" for kind, count in checked.most_common())
        + f"; {sum(o.prefix_runs for o in outcomes.values())} extra runs stopped after a pass)",
        f"bytes: {sum(o.bytes_before for o in outcomes.values())} in, {sum(o.bytes_after for o in outcomes.values())}"
        " out",
        f"seconds: {seconds:.1f} ({first_pass:.1f} checking, {seconds - first_pass:.1f} cross-process reruns), "
        f"{args.jobs} worker(s)",
    ]
    symptoms = collections.Counter(name for o in failing
                                   for name in {symptom_of(p) or "not a known symptom" for p in o.problems})
    if symptoms:
        lines.append("failures by symptom (examples; tests/fuzzing.py SYMPTOMS): "
                     + ", ".join(f"{name} {count}" for name, count in symptoms.most_common()))
    if by_kind:
        lines.append("failures by kind (examples):")
        for kind, found in sorted(by_kind.items(), key=lambda item: -len(item[1])):
            seeds = ", ".join(str(o.seed) for o in found[:12]) + (" ..." if len(found) > 12 else "")
            lines.append(f"  {kind}: {len(found)}  [{KINDS.get(kind, '?')}]  seeds {seeds}")
            example = next(p for p in found[0].problems if kind_of(p) == kind)
            lines.append(f"    e.g. seed {found[0].seed}: {example[:400]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
