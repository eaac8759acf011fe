"""The ``onnx-share`` command line: argument groups that add their flags and apply them to the config, one function
per command.
"""
