"""occular-deskew OriNet: page orientation accuracy (0/90/180/270) on rendered text pages.

Preprocessing follows the wheel's ``orient_onnx.py``: letterbox to 320x320 on white (bilinear), /255, ImageNet
mean/std, CHW; the "C4 orbit" (the page and its three rotations in one batch of 4, probabilities shifted back
and averaged) is part of the wheel's inference and is kept. Class k = the image is rotated ANGLES[k] clockwise.
Pages: paragraphs of English text in DejaVu fonts of random size, a heading, sometimes a ruled table, on A4-ish
portrait or landscape canvases; each is rotated by 0/90/180/270 degrees clockwise. Score: accuracy. Calibration: 32
more pages from another seed, page i rotated by (i mod 4) x 90 degrees, one preprocessed image [1, 3, 320, 320]
per file (one sample per file: the orbit's batch of 4 is one page turned four ways, so one turn is kept).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, font, session

PACKAGE = "occular-deskew"
MODELS = ["occular_deskew/weights/orientation_orinet_fp32.onnx"]
METRIC = "orientation accuracy, 40 rendered pages x 4 rotations"
SIZE, N_PAGES = 320, 40
INPUT, SEED, CALIBRATION_SEED = "x", 7, 707
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
IDX = (np.arange(4).reshape(4, 1) + np.arange(4).reshape(1, 4)) % 4
TEXT = ("the model weights are shared between layers so a small codebook and packed indices replace every "
         "large tensor while the report proves how far each output moved on real inputs and the deployment "
         "engineer can ship a smaller file to phones edge boxes and servers without losing accuracy quality "
         "invoice total amount date customer address number page section chapter figure table results")
WORDS = TEXT.split()


def render_page(rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    w, h = (850, 1100) if rng.random() < 0.75 else (1100, 850)
    page = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    margin = int(rng.integers(50, 110))
    y = margin
    draw.text((margin, y), " ".join(rng.choice(WORDS, 4)).title(), font=font(36, "DejaVuSans-Bold.ttf"),
              fill=(0, 0, 0))
    y += 70
    name = str(rng.choice(["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]))
    size = int(rng.integers(16, 26))
    f = font(size, name)
    while y < h - margin - size:
        if rng.random() < 0.08:  # a small ruled table
            rows, cols = int(rng.integers(3, 6)), int(rng.integers(2, 5))
            cw, rh = (w - 2 * margin) // cols, size + 14
            for r in range(rows):
                for c in range(cols):
                    box = (margin + c * cw, y + r * rh, margin + (c + 1) * cw, y + (r + 1) * rh)
                    draw.rectangle(box, outline=(0, 0, 0), width=1)
                    draw.text((box[0] + 5, box[1] + 5), str(rng.choice(WORDS)), font=f, fill=(0, 0, 0))
            y += rows * rh + size
            continue
        line, x = [], margin
        for word in rng.choice(WORDS, 30):
            width = draw.textlength(word + " ", font=f)
            if x + width > w - margin:
                break
            line.append(word)
            x += width
        if rng.random() < 0.12:
            line = line[: max(1, len(line) // 2)]
        draw.text((margin, y), " ".join(line), font=f, fill=(0, 0, 0))
        y += int(size * 1.5) + (size if rng.random() < 0.1 else 0)
    return np.asarray(page)


def rotate_cw(image: np.ndarray, k: int) -> np.ndarray:
    """Rotate by k*90 degrees clockwise (cv2.ROTATE_90_CLOCKWISE for k=1)."""
    return np.ascontiguousarray(np.rot90(image, -k))


def generate(force: bool = False) -> Path:
    path = data_dir("occular_deskew") / "pages.npz"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    pages = [render_page(rng) for _ in range(N_PAGES)]
    np.savez_compressed(path, **{f"page{i}": p for i, p in enumerate(pages)})
    return path


def letterbox(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image)
    w, h = im.size
    nw, nh = (SIZE, max(1, round(h * SIZE / w))) if w >= h else (max(1, round(w * SIZE / h)), SIZE)
    canvas = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    canvas.paste(im.resize((nw, nh), Image.BILINEAR), ((SIZE - nw) // 2, (SIZE - nh) // 2))
    return np.asarray(canvas)


def prep(image: np.ndarray) -> np.ndarray:
    x = letterbox(image).astype(np.float32).transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n pages rendered as ``generate`` does but from CALIBRATION_SEED, page i turned (i mod 4) x 90 degrees
    clockwise, one ``{INPUT: [1, 3, 320, 320]}`` per file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for i in range(n):
            yield {INPUT: prep(rotate_cw(render_page(rng), i % 4))[None]}

    return calibration_folder("occular_deskew", MODELS, relative_model, n, feeds)


def predict(sess, image: np.ndarray) -> int:
    batch = np.stack([prep(rotate_cw(image, k)) for k in range(4)]).astype(np.float32)
    logits = sess.run(None, {INPUT: batch})[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    return int(np.take_along_axis(probs, IDX, axis=1).mean(axis=0).argmax())


def evaluate(model_path) -> float:
    sess = session(model_path)
    hits = []
    with np.load(generate()) as data:
        for key in data.files:
            for k in range(4):
                hits.append(predict(sess, rotate_cw(data[key], k)) == k)
    return float(np.mean(hits))
