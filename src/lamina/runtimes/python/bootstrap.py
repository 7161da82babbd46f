"""lamina's built-in Python runtime: the program that runs inside a function's process.

Launch contract (what an execution environment's launcher provides):

    argv  <python3.10..3.13> -s -u /path/to/bootstrap.py [handler]
    env   AWS_LAMBDA_RUNTIME_API=host:port   the Runtime API (2018-06-01) to poll
          _HANDLER=module.function           unless argv carries the handler
          LAMBDA_TASK_ROOT=/path/to/code     first on sys.path
          LAMINA_LAYER_PATHS=/opt/python:... optional, after the task root, in order
          AWS_LAMBDA_FUNCTION_NAME, _VERSION, _MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME,
          AWS_LAMBDA_LOG_STREAM_NAME         read into the context object
          AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_LOG_LEVEL   optional
    exit  1 after an init error has been reported; 0 when the Runtime API is gone.

Only the standard library is used, so a function's own dependencies never clash
with the runtime's. This file stays tiny because a script is compiled on every
start; the runtime proper is a package in this folder, imported (and its bytecode
cached) under a private name so that it can never shadow, or be shadowed by, the
function's modules.
"""

import os
import sys

PACKAGE = "_lamina_runtime"


def load_runtime():  # -> the `_lamina_runtime.runtime` module
    here = os.path.dirname(os.path.abspath(__file__))
    # Python puts a script's folder first on sys.path; the function must not import
    # from here (nor find a `bootstrap` of ours before its own).
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    package = sys.modules.get(PACKAGE)
    if package is None:
        package = type(sys)(PACKAGE)
        package.__path__ = [here]
        package.__file__ = os.path.join(here, "__init__.py")
        package.__package__ = PACKAGE
        sys.modules[PACKAGE] = package
    # Launchers set PYTHONDONTWRITEBYTECODE to keep the function's folders clean;
    # the runtime's own bytecode is worth caching (about 5 ms of compiling per start).
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        __import__(PACKAGE + ".runtime")
    finally:
        sys.dont_write_bytecode = dont_write
    return sys.modules[PACKAGE + ".runtime"]


if __name__ == "__main__":
    sys.exit(load_runtime().main(sys.argv, os.environ))
