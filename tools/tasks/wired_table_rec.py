"""wired-table-rec CenterNet: cell detection F1 on drawn ruled tables.

Preprocessing follows the wheel's ``table_line_rec.py``: the image (BGR) is placed by an affine warp that maps
a square of side max(H, W) centred on the image onto 1024x1024 (black border), then (x/255 - mean) / std with
mean (0.408, 0.447, 0.470) and std (0.289, 0.274, 0.278), NCHW. Decoding follows ``bbox_decode``: sigmoid of
heat-map channel 0 (cell centres), 3x3 max-pool peaks (top 1000), centre + ``reg`` offset, four corners =
centre - ``c2v`` (8 channels), mapped back through the inverse warp (output stride 4); cells scoring > 0.3 are
kept (the wheel's threshold) after its NMS at IoU 0.3. The wheel then snaps corners to the vertex heat map
(``gbox``) and merges neighbours; that refinement is not done here. Tables: 2-7 columns x 3-10 rows of random
widths and heights, ruled in black (1-3 px), cell text in DejaVu fonts, on white pages of random size with a
title. Score: F1 of the cells' bounding boxes against the drawn cells at IoU >= 0.75 (strict, so that
localisation counts), over 16 pages. Calibration: 32 more tables from another seed, one warped page [1, 3, 1024, 1024]
per file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, font, session

PACKAGE = "wired-table-rec"
MODELS = ["wired_table_rec/models/cycle_center_net_v1.onnx"]
METRIC = "cell F1 at IoU 0.75, 16 drawn ruled tables"
N_PAGES, INP, K = 16, 1024, 1000
INPUT, SEED, CALIBRATION_SEED = "input", 3, 33
MEAN = np.array([0.408, 0.447, 0.470], np.float32)
STD = np.array([0.289, 0.274, 0.278], np.float32)
WORDS = ["Total", "Amount", "2024", "Qty", "Price", "12.50", "Name", "Date", "ID", "N/A", "Region", "Sales",
         "37", "1,204", "Item", "Notes", "Yes", "No", "Paid", "Status", "Code", "A-17"]


def render(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A page with one ruled table; returns the RGB image and the cells [n, 4] (x0, y0, x1, y1)."""
    from PIL import Image, ImageDraw

    cols, rows = int(rng.integers(2, 8)), int(rng.integers(3, 11))
    widths = rng.integers(70, 200, cols)
    heights = rng.integers(34, 70, rows)
    left, top = int(rng.integers(30, 120)), int(rng.integers(80, 160))
    w = int(left + widths.sum() + rng.integers(30, 120))
    h = int(top + heights.sum() + rng.integers(30, 150))
    page = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    draw.text((left, top - 60), "Table " + str(rng.integers(1, 20)), font=font(28, "DejaVuSans-Bold.ttf"),
              fill=(0, 0, 0))
    xs = left + np.concatenate([[0], np.cumsum(widths)])
    ys = top + np.concatenate([[0], np.cumsum(heights)])
    line = int(rng.integers(1, 4))
    f = font(int(rng.integers(14, 22)), str(rng.choice(["DejaVuSans.ttf", "DejaVuSerif.ttf"])))
    cells = []
    for r in range(rows):
        for c in range(cols):
            cells.append((xs[c], ys[r], xs[c + 1], ys[r + 1]))
            if rng.random() < 0.85:
                draw.text((xs[c] + 8, ys[r] + 8), str(rng.choice(WORDS)), font=f, fill=(0, 0, 0))
    for x in xs:
        draw.line((x, ys[0], x, ys[-1]), fill=(0, 0, 0), width=line)
    for y in ys:
        draw.line((xs[0], y, xs[-1], y), fill=(0, 0, 0), width=line)
    return np.asarray(page), np.array(cells, np.float32)


def generate(force: bool = False) -> Path:
    path = data_dir("wired_table_rec") / "tables.npz"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    arrays = {}
    for i in range(N_PAGES):
        image, cells = render(rng)
        arrays[f"image{i}"], arrays[f"cells{i}"] = image, cells
    np.savez_compressed(path, **arrays)
    return path


def preprocess(image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """The wheel's centred square warp onto 1024x1024 (black border); returns the input, s and c."""
    from PIL import Image

    h, w = image.shape[:2]
    s = float(max(h, w))
    c = np.array([w / 2.0, h / 2.0], np.float32)
    # output pixel q <- input point p = (q - 512) * s / 1024 + c  (the inverse of the wheel's warp)
    k = s / INP
    coeffs = (k, 0.0, c[0] - INP / 2 * k, 0.0, k, c[1] - INP / 2 * k)
    warped = Image.fromarray(image[..., ::-1].copy()).transform(
        (INP, INP), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    x = (np.asarray(warped, np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), s, c


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n tables rendered as ``generate`` does but from CALIBRATION_SEED, one ``{INPUT: [1, 3, 1024, 1024]}`` per
    file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for _ in range(n):
            yield {INPUT: preprocess(render(rng)[0])[0]}

    return calibration_folder("wired_table_rec", MODELS, relative_model, n, feeds)


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    order, keep = np.argsort(-scores), []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ix = np.maximum(0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]))
        iy = np.maximum(0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]))
        inter = ix * iy
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= thresh]
    return np.array(keep, int)


def detect(sess, image: np.ndarray) -> np.ndarray:
    """Cells as axis-aligned boxes [n, 4] in image pixels."""
    x, s, c = preprocess(image)
    hm, _v2c, c2v, reg = sess.run(None, {INPUT: x})[:4]
    heat = 1 / (1 + np.exp(-hm[0, 0]))
    padded = np.pad(heat, 1)
    pooled = np.max([padded[dy:dy + heat.shape[0], dx:dx + heat.shape[1]] for dy in range(3) for dx in range(3)],
                    axis=0)
    peaks = heat * (pooled == heat)
    flat = np.argsort(peaks.ravel())[::-1][:K]
    scores = peaks.ravel()[flat]
    flat = flat[scores > 0.3]
    scores = scores[scores > 0.3]
    ys, xs = np.divmod(flat, heat.shape[1])
    cx = xs + reg[0, 0].ravel()[flat]
    cy = ys + reg[0, 1].ravel()[flat]
    offsets = c2v[0].reshape(8, -1)[:, flat]
    px = np.stack([cx - offsets[0], cx - offsets[2], cx - offsets[4], cx - offsets[6]], 1)
    py = np.stack([cy - offsets[1], cy - offsets[3], cy - offsets[5], cy - offsets[7]], 1)
    scale = s / (INP // 4)
    px, py = (px - INP // 8) * scale + c[0], (py - INP // 8) * scale + c[1]
    boxes = np.stack([px.min(1), py.min(1), px.max(1), py.max(1)], 1)
    return boxes[nms(boxes, scores, 0.3)] if len(boxes) else boxes


def f1(found: np.ndarray, truth: np.ndarray, thresh: float = 0.75) -> tuple[int, int, int]:
    """Greedy one-to-one matching by IoU; returns (true positives, found, truth)."""
    if len(found) == 0 or len(truth) == 0:
        return 0, len(found), len(truth)
    f, t = found[:, None, :], truth[None, :, :]
    ix = np.maximum(0, np.minimum(f[..., 2], t[..., 2]) - np.maximum(f[..., 0], t[..., 0]))
    iy = np.maximum(0, np.minimum(f[..., 3], t[..., 3]) - np.maximum(f[..., 1], t[..., 1]))
    inter = ix * iy
    area_f = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
    area_t = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    iou = inter / (area_f[:, None] + area_t[None, :] - inter)
    tp = 0
    while iou.size and iou.max() >= thresh:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        tp += 1
        iou[i, :], iou[:, j] = -1, -1
    return tp, len(found), len(truth)


def evaluate(model_path) -> float:
    sess = session(model_path)
    tp = nf = nt = 0
    with np.load(generate()) as data:
        for i in range(N_PAGES):
            a, b, c = f1(detect(sess, data[f"image{i}"]), data[f"cells{i}"])
            tp, nf, nt = tp + a, nf + b, nt + c
    return 2 * tp / (nf + nt) if nf + nt else 0.0
