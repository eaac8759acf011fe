"""g2p-id-py LSTM encoder/decoder: phoneme accuracy against the lexicon shipped in the wheel.

Inference follows the wheel's ``lstm.py``: the word one-hot over ``g2id.json`` padded with the pad token to 24
steps; the encoder gives (h, c); greedy decoding from the BOS token, one step at a time, until EOS or 25 symbols.
The lexicon's phonemes (space separated IPA) are compared with the decoded string with spaces removed.
``evaluate`` takes the encoder; the decoder is ``decoder_model.onnx`` beside it (both are compressed in a task
run). Score: 1 - phoneme (character) error rate over 400 lexicon words of 3-20 letters. Note these words may
have been in the model's training data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common import data_dir, edit_distance, session
from tasks.g2p_id import PACKAGE, load_json, sample_words

__all__ = ["PACKAGE"]
MODELS = ["g2p_id/models/lstm/encoder_model.onnx", "g2p_id/models/lstm/decoder_model.onnx"]
METRIC = "1 - phoneme error rate vs the wheel's lexicon, 400 words"


def generate(force: bool = False) -> Path:
    path = data_dir("g2p_id") / "lstm_words.tsv"
    if path.exists() and not force:
        return path
    g2id = load_json("g2p_id/models/lstm/g2id.json")
    words = sample_words(400, 11, lambda w, p: 3 <= len(w) <= 20 and all(c in g2id for c in w))
    path.write_text("".join(f"{w}\t{p}\n" for w, p in words), encoding="utf-8")
    return path


def evaluate(model_path) -> float:
    encoder_path = Path(model_path)
    encoder, decoder = session(encoder_path), session(encoder_path.with_name("decoder_model.onnx"))
    config = load_json("g2p_id/models/lstm/config.json")
    g2id, p2id = load_json("g2p_id/models/lstm/g2id.json"), load_json("g2p_id/models/lstm/p2id.json")
    id2p = {v: k for k, v in p2id.items()}
    errors = total = 0
    for line in generate().read_text(encoding="utf-8").splitlines():
        word, phonemes = line.split("\t")
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
        decoded = decoded.replace(config["eos_token"], "")
        reference = phonemes.replace(" ", "")
        errors += edit_distance(decoded, reference)
        total += len(reference)
    return 1.0 - errors / total
