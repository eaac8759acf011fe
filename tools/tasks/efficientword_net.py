"""efficientword-net ResNet-50 hotword embedder: which of the 7 shipped hotwords was said?

Inference follows the wheel's ``audio_processing.py`` (``Resnet50_Arc_loss``): 1.5 s of 16 kHz float audio in
[-1, 1] (as ``generate_reference.py`` reads it with soundfile), the wheel's own ``audio_utils.logfbank``
(25 ms windows, 10 ms step, 64 filters, nfft 512, no pre-emphasis; loaded from the model cache) as a
[1, 1, 149, 64] input; the output embedding is scored against each hotword's shipped reference embeddings
(``sample_refs/*_ref.json``, made by the float model from real recordings) by ``scoreVector``: the largest
(cos + 1) / 2. Speech: the 7 hotwords (alexa, balloon, computer, lights off, lights on, mobile, mycroft) spoken
by espeak-ng with 6 voices at 2 rates, resampled by sox, centred in the 1.5 s window. Score: accuracy of the
best-scoring hotword over the 84 clips (the references stay the float model's, as a deployment keeps them).
Calibration: 32 clips of the same hotwords (in turn) at rates the evaluation does not use (115, 150, 185), voice and
rate drawn from another seed, one log filter bank [1, 1, 149, 64] per file. Needs ``apt-get install espeak-ng sox``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, model_path, session
from tasks.speechmos_dnsmos import VOICES, synthesize

PACKAGE = "efficientword-net"
MODELS = ["eff_word_net/models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"]
METRIC = "7-way hotword accuracy vs the shipped reference embeddings, 84 espeak-ng clips"
WORDS = {"alexa": "alexa", "balloon": "balloon", "computer": "computer", "lights_off": "lights off",
         "lights_on": "lights on", "mobile": "mobile", "mycroft": "mycroft"}
RATES, CALIBRATION_RATES = (130, 170), (115, 150, 185)
WINDOW = 24000
INPUT, CALIBRATION_SEED = "input", 77


def window(audio: np.ndarray) -> np.ndarray:
    """Speech -> the 1.5 s window: silence trimmed (|x| <= 1e-3), cut to WINDOW samples, centred in zeros."""
    nz = np.nonzero(np.abs(audio) > 1e-3)[0]
    audio = audio[nz[0]:nz[-1] + 1][:WINDOW] if len(nz) else audio[:WINDOW]
    front = (WINDOW - len(audio)) // 2
    return np.pad(audio, (front, WINDOW - len(audio) - front))


def generate(force: bool = False) -> Path:
    path = data_dir("efficientword_net") / "hotwords.npz"
    if path.exists() and not force:
        return path
    clips, labels = [], []
    for key, text in WORDS.items():
        for voice in VOICES:
            for rate in RATES:
                clips.append(window(synthesize(text, voice, rate)))
                labels.append(key)
    np.savez_compressed(path, clips=np.stack(clips).astype(np.float32), labels=np.array(labels))
    return path


def logfbank():
    path = model_path(PACKAGE, "eff_word_net/audio_utils.py")
    spec = importlib.util.spec_from_file_location("eff_word_net_audio_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logfbank


def features(fbank, clip: np.ndarray) -> np.ndarray:
    """A 1.5 s clip -> the model input: the wheel's log filter bank as float32 [1, 1, 149, 64]."""
    values = fbank(clip, samplerate=16000, winlen=0.025, winstep=0.01, nfilt=64, nfft=512, preemph=0.0)
    return np.float32(values[None, None])


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n clips made as ``generate`` makes them (the hotwords in turn, voice from VOICES and rate from
    CALIBRATION_RATES drawn with CALIBRATION_SEED), one ``{INPUT: [1, 1, 149, 64]}`` per file."""
    def feeds():
        fbank, rng, texts = logfbank(), np.random.default_rng(CALIBRATION_SEED), list(WORDS.values())
        for i in range(n):
            voice = VOICES[int(rng.integers(len(VOICES)))]
            rate = CALIBRATION_RATES[int(rng.integers(len(CALIBRATION_RATES)))]
            yield {INPUT: features(fbank, window(synthesize(texts[i % len(texts)], voice, rate)))}

    return calibration_folder("efficientword_net", MODELS, relative_model, n, feeds)


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
        vector = sess.run(None, {INPUT: features(fbank, clip)})[0]
        scores = {k: float(((e @ vector.T + 1) / 2).max()) for k, e in refs.items()}
        hits.append(max(scores, key=scores.get) == label)
    return float(np.mean(hits))
