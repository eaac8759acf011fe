"""efficientword-net ResNet-50 hotword embedder: which of the 7 shipped hotwords was said?

Inference follows the wheel's ``audio_processing.py`` (``Resnet50_Arc_loss``): 1.5 s of 16 kHz float audio in
[-1, 1] (as ``generate_reference.py`` reads it with soundfile), the wheel's own ``audio_utils.logfbank``
(25 ms windows, 10 ms step, 64 filters, nfft 512, no pre-emphasis; loaded from the model cache) as a
[1, 1, 149, 64] input; the output embedding is scored against each hotword's shipped reference embeddings
(``sample_refs/*_ref.json``, made by the float model from real recordings) by ``scoreVector``: the largest
(cos + 1) / 2. Speech: the 7 hotwords (alexa, balloon, computer, lights off, lights on, mobile, mycroft) spoken
by espeak-ng with 6 voices at 2 rates, resampled by sox, centred in the 1.5 s window. Score: accuracy of the
best-scoring hotword over the 84 clips (the references stay the float model's, as a deployment keeps them).
Needs ``apt-get install espeak-ng sox``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tasks.common import data_dir, model_path, session
from tasks.speechmos_dnsmos import VOICES, synthesize

PACKAGE = "efficientword-net"
MODELS = ["eff_word_net/models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"]
METRIC = "7-way hotword accuracy vs the shipped reference embeddings, 84 espeak-ng clips"
WORDS = {"alexa": "alexa", "balloon": "balloon", "computer": "computer", "lights_off": "lights off",
         "lights_on": "lights on", "mobile": "mobile", "mycroft": "mycroft"}
RATES = (130, 170)
WINDOW = 24000


def generate(force: bool = False) -> Path:
    path = data_dir("efficientword_net") / "hotwords.npz"
    if path.exists() and not force:
        return path
    clips, labels = [], []
    for key, text in WORDS.items():
        for voice in VOICES:
            for rate in RATES:
                audio = synthesize(text, voice, rate)
                nz = np.nonzero(np.abs(audio) > 1e-3)[0]
                audio = audio[nz[0]:nz[-1] + 1][:WINDOW] if len(nz) else audio[:WINDOW]
                front = (WINDOW - len(audio)) // 2
                clips.append(np.pad(audio, (front, WINDOW - len(audio) - front)))
                labels.append(key)
    np.savez_compressed(path, clips=np.stack(clips).astype(np.float32), labels=np.array(labels))
    return path


def logfbank():
    path = model_path(PACKAGE, "eff_word_net/audio_utils.py")
    spec = importlib.util.spec_from_file_location("eff_word_net_audio_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logfbank


def references() -> dict[str, np.ndarray]:
    out = {}
    for key in WORDS:
        data = json.loads(model_path(PACKAGE, f"eff_word_net/sample_refs/{key}_ref.json").read_text())
        out[key] = np.array(data["embeddings"], np.float32)
    return out


def evaluate(path) -> float:
    sess = session(path)
    fbank = logfbank()
    refs = references()
    with np.load(generate()) as data:
        clips, labels = data["clips"], [str(x) for x in data["labels"]]
    hits = []
    for clip, label in zip(clips, labels, strict=True):
        features = fbank(clip, samplerate=16000, winlen=0.025, winstep=0.01, nfilt=64, nfft=512, preemph=0.0)
        vector = sess.run(None, {sess.get_inputs()[0].name: np.float32(features[None, None])})[0]
        scores = {k: float(((e @ vector.T + 1) / 2).max()) for k, e in refs.items()}
        hits.append(max(scores, key=scores.get) == label)
    return float(np.mean(hits))
