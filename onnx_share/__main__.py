"""``python -m onnx_share``: the ``onnx-share`` command."""

import sys

from onnx_share.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
