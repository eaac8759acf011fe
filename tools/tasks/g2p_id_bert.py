"""g2p-id-py BERT: does it choose /e/ or /ə/ for each written 'e' the way the wheel's lexicon does?

Inference follows the wheel's ``bert.py``: 'x' -> 'ks', every 'e' masked, characters mapped through
``token2id.json``, padded with id 0 to 32; the argmax at each masked position is the predicted vowel. The label
for a word comes from its lexicon entry: the lexicon's vowel sequence, restricted to e/ə, aligned with the
word's 'e's (words whose counts differ are left out). Score: fraction of masked 'e's predicted as in the lexicon,
over 600 lexicon words with at least one 'e'. Calibration: 32 other lexicon words chosen the same way (another seed,
the evaluated words left out), one masked row [1, 32] per file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, session
from tasks.g2p_id import PACKAGE, load_json, sample_words

__all__ = ["PACKAGE"]
MODELS = ["g2p_id/models/bert/bert_mlm.onnx"]
METRIC = "e/ə accuracy per masked 'e' vs the wheel's lexicon, 600 words"
INPUT, LENGTH, SEED, CALIBRATION_SEED = "input_1", 32, 13, 31


def e_labels(word: str, phonemes: str) -> str | None:
    vowels = "".join(p for p in phonemes.split() if p in ("e", "ə"))
    return vowels if len(vowels) == word.count("e") else None


def usable(word: str, phonemes: str, token2id: dict[str, int]) -> bool:
    """The word has an 'e', fits in LENGTH tokens, and its lexicon entry labels each 'e'."""
    text = word.replace("x", "ks")
    return ("e" in word and len(text) <= LENGTH and all(c in token2id for c in text)
            and e_labels(word, phonemes) is not None)


def generate(force: bool = False) -> Path:
    path = data_dir("g2p_id") / "bert_words.tsv"
    if path.exists() and not force:
        return path
    token2id = load_json("g2p_id/models/bert/token2id.json")
    words = sample_words(600, SEED, lambda w, p: usable(w, p, token2id))
    path.write_text("".join(f"{w}\t{e_labels(w, p)}\n" for w, p in words), encoding="utf-8")
    return path


def masked_ids(word: str, token2id: dict[str, int]) -> np.ndarray:
    """A word -> the model's row of ids [LENGTH] int64: 'x' -> 'ks', every 'e' -> [mask], padded with id 0."""
    tokens = [token2id["[mask]"] if c == "e" else token2id[c] for c in word.replace("x", "ks")]
    return np.array(tokens + [0] * (LENGTH - len(tokens)), np.int64)


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n lexicon words picked as ``generate`` picks them but from CALIBRATION_SEED and never an evaluated word,
    one ``{INPUT: [1, 32]}`` per file."""
    def feeds():
        token2id = load_json("g2p_id/models/bert/token2id.json")
        evaluated = {line.split("\t")[0] for line in generate().read_text(encoding="utf-8").splitlines()}
        words = sample_words(n, CALIBRATION_SEED, lambda w, p: w not in evaluated and usable(w, p, token2id))
        for word, _ in words:
            yield {INPUT: masked_ids(word, token2id)[None]}

    return calibration_folder("g2p_id", MODELS, relative_model, n, feeds)


def evaluate(model_path) -> float:
    sess = session(model_path)
    token2id = load_json("g2p_id/models/bert/token2id.json")
    id2token = {v: k for k, v in token2id.items()}
    mask = token2id["[mask]"]
    hits = []
    rows, labels = [], []
    for line in generate().read_text(encoding="utf-8").splitlines():
        word, label = line.split("\t")
        rows.append(masked_ids(word, token2id))
        labels.append(label)
    ids = np.stack(rows)
    for i in range(len(ids)):
        logits = sess.run(None, {INPUT: ids[i:i + 1]})[0][0]
        positions = np.where(ids[i] == mask)[0]
        predicted = "".join(id2token[int(t)] for t in logits[positions].argmax(axis=1))
        hits.extend(p == t for p, t in zip(predicted, labels[i], strict=True))
    return float(np.mean(hits))
