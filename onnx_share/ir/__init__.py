"""The model as the passes see it: weight discovery, selection with per-tensor specs, graph surgery verbs and opset
planning.
"""
