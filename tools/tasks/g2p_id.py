"""Shared data for the g2p-id-py tasks: the Indonesian lexicon shipped in the wheel (word -> IPA phonemes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.common import model_path

PACKAGE = "g2p-id-py"


def lexicon() -> dict[str, str]:
    path = model_path(PACKAGE, "g2p_id/resources/lexicon_id.tsv")
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            word, phonemes = line.split("\t", 1)
            entries[word.lower()] = phonemes
    return entries


def sample_words(n: int, seed: int, keep) -> list[tuple[str, str]]:
    """n lexicon entries (fixed seed) whose word passes ``keep``."""
    items = sorted((w, p) for w, p in lexicon().items() if keep(w, p))
    rng = np.random.default_rng(seed)
    return [items[i] for i in rng.choice(len(items), size=min(n, len(items)), replace=False)]


def load_json(relative: str) -> dict:
    return json.loads(Path(model_path(PACKAGE, relative)).read_text(encoding="utf-8"))
