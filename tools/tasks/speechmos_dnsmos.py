"""speechmos DNSMOS (sig_bak_ovr): does the predicted quality fall as noise is added to synthesized speech?

Inference follows the wheel's ``dnsmos.py``: 16 kHz float audio in [-1, 1], repeated until 9.01 s long, one
9.01 s window into ``input_1`` [1, 144160]; the raw (sig, bak, ovr) are mapped through the wheel's non-personalized
polynomials. Speech: 12 English sentences spoken by espeak-ng (Debian package) with different voices and rates,
resampled to 16 kHz by sox; each is scored clean and with white noise at SNR 30, 20, 10, 5 and 0 dB (numpy,
fixed seed). Score: Spearman correlation of OVRL MOS with the SNR (clean ranked highest) pooled over all 72 clips, so
the model must also rank a clean utterance against other utterances' noisy ones; ``details`` also gives the
per-utterance pairwise ordering accuracy (the cleaner of two versions scores higher) of SIG/BAK/OVRL and means.
Calibration: 32 clips of 8 other sentences, each with a random voice, rate and noise level (another seed), one
9.01 s window [1, 144160] per file. Needs ``apt-get install espeak-ng sox``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from itertools import combinations
from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, session

PACKAGE = "speechmos"
MODELS = ["speechmos/dnsmos_models/sig_bak_ovr.onnx"]
METRIC = "Spearman of OVRL MOS with SNR, 12 espeak-ng utterances x 6 noise levels"
SR, INPUT_LENGTH = 16000, 9.01
INPUT, SEED, CALIBRATION_SEED = "input_1", 5, 55
SNRS = [None, 30, 20, 10, 5, 0]  # None = clean
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A large weight tensor becomes a small codebook and a list of packed indices.",
    "The meeting has been moved to Thursday afternoon at three o'clock.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Turn left at the second traffic light and the station will be on your right.",
    "We measured the latency of every model on a small computer in the lab.",
    "It is going to rain tomorrow, so remember to take an umbrella with you.",
    "Seven hundred and forty two passengers boarded the train this morning.",
    "Open the window, the room is far too warm for anyone to think clearly.",
    "Our quarterly report shows steady growth across all of the regions.",
    "Speech quality depends on the microphone, the room and the background noise.",
]
CALIBRATION_SENTENCES = [
    "The library closes early on Sundays, so return your books before noon.",
    "Every evening the fishermen mend their nets on the old stone pier.",
    "Could you send me the slides from yesterday's presentation, please?",
    "The bridge was painted bright red to make it visible in the fog.",
    "Heavy snow blocked the mountain pass for almost a week last winter.",
    "He plays the violin in a small orchestra that tours in the summer.",
    "Check the battery level before you start recording the interview.",
    "Fresh bread and strong coffee are the best way to begin the day.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2", "en-gb-scotland"]
POLY = {"sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
        "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
        "ovr": np.poly1d([-0.06766283, 1.11546468, 0.04602535])}


def synthesize(text: str, voice: str, rate: int) -> np.ndarray:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        raise RuntimeError("needs espeak-ng and sox: apt-get install -y espeak-ng sox")
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out), "norm", "-3"], check=True)
        with wave.open(str(out)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768


def generate(force: bool = False) -> Path:
    path = data_dir("speechmos") / "speech.npz"
    if path.exists() and not force:
        return path
    clips = {}
    for i, text in enumerate(SENTENCES):
        clips[f"u{i}"] = synthesize(text, VOICES[i % len(VOICES)], 140 + 10 * (i % 4))
    np.savez_compressed(path, **clips)
    return path


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n clips synthesized and degraded as the evaluation does (CALIBRATION_SENTENCES in turn, voice, rate and
    noise level drawn from CALIBRATION_SEED), one ``{INPUT: [1, 144160]}`` per file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for i in range(n):
            text = CALIBRATION_SENTENCES[i % len(CALIBRATION_SENTENCES)]
            voice, rate = VOICES[int(rng.integers(len(VOICES)))], 140 + 10 * int(rng.integers(4))
            snr = SNRS[int(rng.integers(len(SNRS)))]
            yield {INPUT: degrade(synthesize(text, voice, rate), snr, rng)[None]}

    return calibration_folder("speechmos", MODELS, relative_model, n, feeds)


def degrade(audio: np.ndarray, snr: float | None, rng: np.random.Generator) -> np.ndarray:
    length = int(INPUT_LENGTH * SR)
    while len(audio) < length:
        audio = np.append(audio, audio)
    audio = audio[:length]
    if snr is not None:
        noise = rng.standard_normal(length).astype(np.float32)
        noise *= np.sqrt(np.mean(audio**2) / (np.mean(noise**2) * 10 ** (snr / 10)))
        audio = audio + noise
    return np.clip(audio, -1, 1).astype(np.float32)


def scores(model_path) -> dict[str, np.ndarray]:
    """{'sig'|'bak'|'ovr': [utterance, level]} MOS after the wheel's polynomials."""
    sess = session(model_path)
    rng = np.random.default_rng(SEED)
    out = {k: [] for k in POLY}
    with np.load(generate()) as data:
        for key in data.files:
            rows = {k: [] for k in POLY}
            for snr in SNRS:
                raw = sess.run(None, {INPUT: degrade(data[key], snr, rng)[None]})[0][0]
                for k, value in zip(POLY, raw, strict=True):
                    rows[k].append(float(POLY[k](value)))
            for k in POLY:
                out[k].append(rows[k])
    return {k: np.array(v) for k, v in out.items()}


def ordering(mos: np.ndarray) -> float:
    """Fraction of (cleaner, noisier) pairs per utterance where the cleaner one scores higher."""
    pairs = list(combinations(range(len(SNRS)), 2))  # SNRS go from clean to noisiest
    return float(np.mean([row[a] > row[b] for row in mos for a, b in pairs]))


def pooled_spearman(mos: np.ndarray) -> float:
    from scipy.stats import spearmanr

    cleanliness = np.tile(-np.arange(len(SNRS)), (mos.shape[0], 1))
    return float(spearmanr(mos.ravel(), cleanliness.ravel()).statistic)


def details(model_path) -> dict[str, float]:
    s = scores(model_path)
    return {**{f"{k}_spearman": pooled_spearman(v) for k, v in s.items()},
            **{f"{k}_ordering": ordering(v) for k, v in s.items()},
            **{f"{k}_mean_clean": float(v[:, 0].mean()) for k, v in s.items()},
            **{f"{k}_mean_0db": float(v[:, -1].mean()) for k, v in s.items()}}


def evaluate(model_path) -> float:
    return pooled_spearman(scores(model_path)["ovr"])
