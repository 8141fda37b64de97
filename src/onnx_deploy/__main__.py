"""``python -m onnx_deploy`` is the ``onnx-deploy`` command."""

import sys

from onnx_deploy.cli import main

sys.exit(main())
