"""The ``onnx-share`` command line: argument groups that add their flags and apply them to the config, one module
per command, and ``main`` gluing them together (heavy modules are imported inside each command's ``run``)."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHECK_FAILED = 3
EXIT_NOT_VALIDATED = 4

EXAMPLES = """examples:
  onnx-share optimize model.onnx small.onnx --bits 4
  onnx-share optimize model.onnx small.onnx --scheme uniform --bits 4 --check --report report.json
  onnx-share optimize model.onnx small.onnx --granularity channel --exclude '*embeddings*'
  onnx-share optimize bert.onnx bert4.onnx --input-shapes input_ids:[1,128] attention_mask:[1,128]
  onnx-share optimize model.onnx small.onnx --bits 4 --inputs batch.npz --report-html report.html
  onnx-share inspect model.onnx --bits 4
  onnx-share compare model.onnx small.onnx --inputs a.npz b.npz --report-html compare.html
  onnx-share compare model.onnx small.onnx --input-shapes input_ids:[1,128] --trt --fp16
  onnx-share check --target tensorrt small.onnx

exit codes: 0 ok, 1 error (bad input or options), 2 usage,
            3 --check failed, compare found an output outside the tolerances, or check found an error,
            4 not validated: the models could not be compared (an input that cannot be synthesized, or an
              original that fails on the synthesized inputs); OUT was written
Every output path is checked before any work. Once OUT is written (it passed onnx's checker) it stays, also
when a later step fails: the summary and reports are still written, and the exit code says what happened.
"""
