"""captcha-whisperer CRNN: exact-string accuracy on rendered captcha-like images.

Preprocessing and decoding follow the wheel's ``preprocess.py`` and ``recognizer.py``: RGB resized to 160x60
(bilinear), BGR, CHW, values 0..255 (no scaling); output (T=20, N, 37), greedy CTC over labels 1..36 (label 0 is
never emitted), blank 36. Images: 4-6 characters from 0-9A-Z in DejaVu fonts with per-character jitter,
rotation and colour, noise dots, arcs and a light background, 160x60 (the geometry of the ``captcha`` library's
``ImageCaptcha``). Score: fraction of images whose whole string is read exactly. Calibration: 32 more captchas from
another seed, one preprocessed image [1, 3, 60, 160] per file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, font, session

PACKAGE = "captcha-whisperer"
MODELS = ["captcha_whisperer/models/captcha_crnn.onnx"]
METRIC = "exact-string accuracy, 300 rendered captchas"
LABELS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
BLANK, TIME_STEPS, N_IMAGES = 36, 20, 300
INPUT, SEED, CALIBRATION_SEED = "image", 1234, 4321
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]


def render(text: str, rng: np.random.Generator):
    from PIL import Image, ImageDraw, ImageFilter

    bg = tuple(int(v) for v in rng.integers(220, 256, 3))
    image = Image.new("RGB", (160, 60), bg)
    x = int(rng.integers(4, 14))
    step = (150 - x) / max(len(text), 1)
    for ch in text:
        f = font(int(rng.integers(34, 44)), FONTS[int(rng.integers(len(FONTS)))])
        colour = tuple(int(v) for v in rng.integers(10, 140, 3))
        glyph = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((10, 2), ch, font=f, fill=(*colour, 255))
        glyph = glyph.rotate(float(rng.uniform(-25, 25)), resample=Image.BILINEAR, expand=False)
        image.paste(glyph, (int(x - 10 + rng.integers(-3, 4)), int(rng.integers(-4, 6))), glyph)
        x += step
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(20, 60))):
        px, py = int(rng.integers(0, 160)), int(rng.integers(0, 60))
        draw.ellipse((px, py, px + 2, py + 2), fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    for _ in range(int(rng.integers(1, 3))):
        box = sorted(rng.integers(0, 160, 2).tolist()), sorted(rng.integers(0, 60, 2).tolist())
        draw.arc((box[0][0], box[1][0], box[0][1] + 20, box[1][1] + 10), 0, int(rng.integers(90, 300)),
                 fill=tuple(int(v) for v in rng.integers(10, 140, 3)), width=2)
    return image.filter(ImageFilter.SMOOTH)


def captcha(rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A random 4-6 character string and its rendered RGB image [60, 160, 3] uint8."""
    text = "".join(rng.choice(list(LABELS[:36]), int(rng.integers(4, 7))))
    return text, np.asarray(render(text, rng), dtype=np.uint8)


def generate(force: bool = False) -> Path:
    path = data_dir("captcha_whisperer") / "captchas.npz"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    texts, images = zip(*(captcha(rng) for _ in range(N_IMAGES)), strict=True)
    np.savez_compressed(path, images=np.stack(images), texts=np.array(texts))
    return path


def prep(images: np.ndarray) -> np.ndarray:
    """RGB uint8 [N, 60, 160, 3] -> the model input: BGR float32 [N, 3, 60, 160], values 0..255."""
    return np.ascontiguousarray(images[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n captchas rendered as ``generate`` does but from CALIBRATION_SEED, one ``{INPUT: [1, 3, 60, 160]}`` per file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for _ in range(n):
            yield {INPUT: prep(captcha(rng)[1][None])}

    return calibration_folder("captcha_whisperer", MODELS, relative_model, n, feeds)


def decode(logits: np.ndarray) -> list[str]:
    """Greedy CTC exactly as the wheel's ``recognizer.decode`` (labels shifted by one, blank 36)."""
    texts = []
    for n in range(logits.shape[1]):
        out, prev = [], BLANK
        for t in range(1, TIME_STEPS):
            o = int(np.argmax(logits[t - 1, n, 1:]))
            if o != BLANK and prev != o:
                out.append(LABELS[o + 1])
            prev = o
        texts.append("".join(out).replace("_", "").strip())
    return texts


def predict(model_path, images: np.ndarray) -> list[str]:
    sess = session(model_path)
    x = prep(images)
    texts = []
    for i in range(0, len(x), 50):
        texts += decode(sess.run(None, {INPUT: x[i:i + 50]})[0])
    return texts


def evaluate(model_path) -> float:
    with np.load(generate()) as data:
        images, texts = data["images"], [str(t) for t in data["texts"]]
    predicted = predict(model_path, images)
    return float(np.mean([p == t for p, t in zip(predicted, texts, strict=True)]))
