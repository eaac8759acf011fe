"""g2p-id-py LSTM encoder/decoder: phoneme accuracy against the lexicon shipped in the wheel.

Inference follows the wheel's ``lstm.py``: the word one-hot over ``g2id.json`` padded with the pad token to 24
steps; the encoder gives (h, c); greedy decoding from the BOS token, one step at a time, until EOS or 25 symbols.
The lexicon's phonemes (space separated IPA) are compared with the decoded string with spaces removed.
``evaluate`` takes the encoder; the decoder is ``decoder_model.onnx`` beside it (both are compressed in a task
run). Score: 1 - phoneme (character) error rate over 400 lexicon words of 3-20 letters. Note these words may
have been in the model's training data. Calibration: 32 other lexicon words (another seed, evaluated words left
out); the encoder's files are their one-hot inputs, the decoder's are 32 of the decoding steps the float models
run on them (the inputs the decoder really sees).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from tasks.common import Recorder, calibration_folder, data_dir, edit_distance, model_path, session
from tasks.g2p_id import PACKAGE, load_json, sample_words

__all__ = ["PACKAGE"]
MODELS = ["g2p_id/models/lstm/encoder_model.onnx", "g2p_id/models/lstm/decoder_model.onnx"]
METRIC = "1 - phoneme error rate vs the wheel's lexicon, 400 words"
SEED, CALIBRATION_SEED = 11, 111


@cache
def tables() -> tuple[dict, dict[str, int], dict[str, int]]:
    """The wheel's ``config.json``, ``g2id.json`` (letter -> id) and ``p2id.json`` (phoneme -> id)."""
    return (load_json("g2p_id/models/lstm/config.json"), load_json("g2p_id/models/lstm/g2id.json"),
            load_json("g2p_id/models/lstm/p2id.json"))


def usable(word: str, g2id: dict[str, int]) -> bool:
    """3-20 letters, all in the encoder's alphabet."""
    return 3 <= len(word) <= 20 and all(c in g2id for c in word)


def generate(force: bool = False) -> Path:
    path = data_dir("g2p_id") / "lstm_words.tsv"
    if path.exists() and not force:
        return path
    g2id = tables()[1]
    words = sample_words(400, SEED, lambda w, p: usable(w, g2id))
    path.write_text("".join(f"{w}\t{p}\n" for w, p in words), encoding="utf-8")
    return path


def transcribe(encoder, decoder, word: str) -> str:
    """A word -> its phonemes (no spaces, no EOS) by the wheel's greedy decoding: the one-hot word [1, 24, 28] into
    the encoder, then one step at a time the previous symbol [1, 1, 32] and (h, c) [1, 256] into the decoder."""
    config, g2id, p2id = tables()
    id2p = {v: k for k, v in p2id.items()}
    x = np.zeros((1, config["max_encoder_seq_length"], config["num_encoder_tokens"]), np.float32)
    for i, ch in enumerate(word):
        x[0, i, g2id[ch]] = 1.0
    x[0, len(word):, g2id[config["pad_token"]]] = 1.0
    states = encoder.run(None, {"input_1": x})
    target = np.zeros((1, 1, config["num_decoder_tokens"]), np.float32)
    target[0, 0, p2id[config["bos_token"]]] = 1.0
    decoded = ""
    while True:
        out, h, c = decoder.run(None, {"input_2": target, "input_3": states[0], "input_4": states[1]})
        index = int(np.argmax(out[0, -1, :]))
        decoded += id2p[index]
        if id2p[index] == config["eos_token"] or len(decoded) > config["max_decoder_seq_length"]:
            break
        target = np.zeros_like(target)
        target[0, 0, index] = 1.0
        states = [h, c]
    return decoded.replace(config["eos_token"], "")


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n lexicon words picked as ``generate`` picks them but from CALIBRATION_SEED and never an evaluated word,
    transcribed by the float models. Encoder: each word's ``{"input_1": [1, 24, 28]}`` per file. Decoder: n of the
    steps those transcriptions ran (chosen with CALIBRATION_SEED), each ``{"input_2": [1, 1, 32], "input_3": [1, 256],
    "input_4": [1, 256]}`` exactly as the decoder received it."""
    def feeds() -> list:
        encoder = Recorder(session(model_path(PACKAGE, MODELS[0])))
        decoder = Recorder(session(model_path(PACKAGE, MODELS[1])))
        g2id = tables()[1]
        evaluated = {line.split("\t")[0] for line in generate().read_text(encoding="utf-8").splitlines()}
        for word, _ in sample_words(n, CALIBRATION_SEED, lambda w, p: w not in evaluated and usable(w, g2id)):
            transcribe(encoder, decoder, word)
        if relative_model == MODELS[0]:
            return encoder.feeds
        steps = np.random.default_rng(CALIBRATION_SEED).choice(len(decoder.feeds), n, replace=False)
        return [decoder.feeds[i] for i in sorted(steps)]

    return calibration_folder("g2p_id", MODELS, relative_model, n, feeds)


def evaluate(path) -> float:
    encoder_path = Path(path)
    encoder, decoder = session(encoder_path), session(encoder_path.with_name("decoder_model.onnx"))
    errors = total = 0
    for line in generate().read_text(encoding="utf-8").splitlines():
        word, phonemes = line.split("\t")
        reference = phonemes.replace(" ", "")
        errors += edit_distance(transcribe(encoder, decoder, word), reference)
        total += len(reference)
    return 1.0 - errors / total
