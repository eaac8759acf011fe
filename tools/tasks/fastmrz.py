"""fastmrz segmenter: IoU of the found MRZ region with the drawn one, on rendered passport pages.

Preprocessing follows the wheel's ``fastmrz.py``: BGR image resized to 256x256 (nearest), /255, NHWC; the
output [N, 256, 256, 1] is thresholded at 0.25 and, as in the wheel, the largest connected region's bounding
box is the MRZ (the wheel erodes with a 5x5 kernel first and pads the box by 10 px before OCR; neither is
done). Pages: a passport-like data page (tinted background, photo box, labelled fields in DejaVu Sans) with
two 44-character TD3 machine-readable lines in DejaVu Sans Mono at the bottom, placed with random size and
position on a random desk-coloured background. Label: the ICAO 9303 machine-readable zone of the page (full
width, the bottom 23.2 of 88 mm; the model marks the zone with its margins, about 2.5x the tight box of the
two lines). Score: mean IoU of the found box with the zone over 60 pages (``found_rate`` gives the fraction
with IoU >= 0.5). Calibration: 32 more pages from another seed, one preprocessed image [1, 256, 256, 3] per file.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, font, session

PACKAGE = "fastmrz"
MODELS = ["fastmrz/model/mrz_seg.onnx"]
METRIC = "mean IoU of the found MRZ box with the drawn zone, 60 passport pages"
N_PAGES = 60
INPUT, SEED, CALIBRATION_SEED = "input_4", 21, 2121
ZONE_LABEL = True  # label the ICAO zone (the model marks it, margins included), not the tight box of the lines
NAMES = ["SMITH", "MULLER", "GARCIA", "NGUYEN", "ROSSI", "KOWALSKI", "SILVA", "ANDERSSON", "DUBOIS", "TANAKA"]
GIVEN = ["ANNA", "JOHN", "MARIA", "PETER", "LENA", "CARLOS", "YUKI", "OLGA", "AHMED", "SOFIA"]
COUNTRIES = ["UTO", "GBR", "DEU", "FRA", "ITA", "ESP", "NLD", "SWE", "POL", "JPN"]


def mrz_lines(rng: np.random.Generator) -> tuple[str, str]:
    surname, given, country = rng.choice(NAMES), rng.choice(GIVEN), rng.choice(COUNTRIES)
    line1 = f"P<{country}{surname}<<{given}".ljust(44, "<")[:44]
    number = "".join(rng.choice(list(string.ascii_uppercase + string.digits), 9))
    birth = f"{rng.integers(50, 99)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    expiry = f"{rng.integers(25, 35)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    line2 = (f"{number}{rng.integers(10)}{country}{birth}{rng.integers(10)}{rng.choice(['M', 'F'])}"
             f"{expiry}{rng.integers(10)}").ljust(42, "<") + f"{rng.integers(10)}{rng.integers(10)}"
    return line1, line2[:44]


def render(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A page on a background; returns the RGB image and the MRZ zone (x0, y0, x1, y1) as fractions."""
    from PIL import Image, ImageDraw

    pw = 1250
    ph = 880
    tint = tuple(int(v) for v in rng.integers(200, 250, 3))
    page = Image.new("RGB", (pw, ph), tint)
    draw = ImageDraw.Draw(page)
    for _ in range(30):  # guilloche-like background lines
        y = int(rng.integers(0, ph))
        draw.line((0, y, pw, int(y + rng.integers(-200, 200))), fill=tuple(int(v) - 25 for v in tint), width=1)
    draw.text((40, 25), "PASSPORT  PASSEPORT", font=font(44, "DejaVuSans-Bold.ttf"), fill=(40, 40, 90))
    draw.rectangle((50, 110, 390, 560), fill=tuple(int(v) for v in rng.integers(120, 200, 3)), outline=(60, 60, 60))
    draw.ellipse((130, 170, 310, 380), fill=tuple(int(v) for v in rng.integers(150, 230, 3)))
    draw.ellipse((90, 360, 350, 620), fill=tuple(int(v) for v in rng.integers(40, 120, 3)))
    draw.rectangle((50, 561, 390, 640), fill=tint)
    line1, line2 = mrz_lines(rng)
    fields = [("Surname / Nom", line1[5:].split("<<")[0]), ("Given names / Prenoms", line1.split("<<")[1].strip("<")),
              ("Nationality", line1[2:5]), ("Date of birth", line2[13:19]), ("Sex", line2[20]),
              ("Date of expiry", line2[21:27]), ("Passport No.", line2[:9])]
    y = 120
    for label, value in fields:
        draw.text((440, y), label, font=font(20), fill=(70, 70, 110))
        draw.text((440, y + 24), value, font=font(30, "DejaVuSans-Bold.ttf"), fill=(20, 20, 20))
        y += 66
    mono = font(40, "DejaVuSansMono.ttf")
    x0, y0 = 45, 690
    draw.text((x0, y0), line1, font=mono, fill=(10, 10, 10))
    draw.text((x0, y0 + 70), line2, font=mono, fill=(10, 10, 10))
    b1, b2 = draw.textbbox((x0, y0), line1, font=mono), draw.textbbox((x0, y0 + 70), line2, font=mono)
    box = (min(b1[0], b2[0]), b1[1], max(b1[2], b2[2]), b2[3])

    scale = float(rng.uniform(0.45, 0.9))
    bw, bh = int(pw * rng.uniform(1.02, 1.4) * scale / 0.9 * 0.9), int(ph * rng.uniform(1.05, 1.6) * scale)
    bw, bh = max(bw, int(pw * scale) + 2), max(bh, int(ph * scale) + 2)
    canvas = Image.new("RGB", (bw, bh), tuple(int(v) for v in rng.integers(40, 200, 3)))
    small = page.resize((int(pw * scale), int(ph * scale)), Image.BILINEAR)
    ox, oy = int(rng.integers(0, bw - small.width + 1)), int(rng.integers(0, bh - small.height + 1))
    canvas.paste(small, (ox, oy))
    # ICAO 9303 TD3: the machine-readable zone is the bottom 23.2 mm of the 88 mm page, full width
    zone = (0, ph - ph * 23.2 / 88, pw, ph) if ZONE_LABEL else box
    frac = ((ox + zone[0] * scale) / bw, (oy + zone[1] * scale) / bh,
            (ox + zone[2] * scale) / bw, (oy + zone[3] * scale) / bh)
    return np.asarray(canvas), frac


def page(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``render``'s image resized to the model's 256x256 (nearest, RGB uint8) and its zone as fractions."""
    from PIL import Image

    image, box = render(rng)
    return np.asarray(Image.fromarray(image).resize((256, 256), Image.NEAREST)), box


def generate(force: bool = False) -> Path:
    path = data_dir("fastmrz") / "pages_zone.npz"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    images, boxes = zip(*(page(rng) for _ in range(N_PAGES)), strict=True)
    np.savez_compressed(path, images=np.stack(images), boxes=np.array(boxes, np.float32))
    return path


def prep(images: np.ndarray) -> np.ndarray:
    """RGB uint8 [N, 256, 256, 3] -> the model input: BGR (as cv2.imread gives) / 255, float32 NHWC."""
    return (images[..., ::-1] / 255).astype(np.float32)


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n pages rendered as ``generate`` does but from CALIBRATION_SEED, one ``{INPUT: [1, 256, 256, 3]}`` per file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for _ in range(n):
            yield {INPUT: prep(page(rng)[0][None])}

    return calibration_folder("fastmrz", MODELS, relative_model, n, feeds)


def found_boxes(model_path, images: np.ndarray) -> list[tuple[int, int, int, int] | None]:
    """The bounding box (x0, y0, x1, y1) of the largest region of mask > 0.25 per image, at 256x256."""
    from scipy import ndimage

    sess = session(model_path)
    x = prep(images)
    masks = np.concatenate([sess.run(None, {INPUT: x[i:i + 8]})[0]
                            for i in range(0, len(x), 8)])[..., 0] > 0.25
    found = []
    for mask in masks:
        labels, n = ndimage.label(mask)
        if n == 0:
            found.append(None)
            continue
        largest = 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, n + 1))))
        ys, xs = np.nonzero(labels == largest)
        found.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return found


def ious(model_path) -> list[float]:
    with np.load(generate()) as data:
        images, boxes = data["images"], data["boxes"] * 256
    out = []
    for box, (x0, y0, x1, y1) in zip(found_boxes(model_path, images), boxes, strict=True):
        if box is None:
            out.append(0.0)
            continue
        ix = max(0.0, min(box[2], x1) - max(box[0], x0))
        iy = max(0.0, min(box[3], y1) - max(box[1], y0))
        inter = ix * iy
        union = (box[2] - box[0]) * (box[3] - box[1]) + (x1 - x0) * (y1 - y0) - inter
        out.append(inter / union)
    return out


def found_rate(model_path) -> float:
    return float(np.mean([iou >= 0.5 for iou in ious(model_path)]))


def evaluate(model_path) -> float:
    return float(np.mean(ious(model_path)))
