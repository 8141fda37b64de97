"""A fork server for tests that run many short ``onnx-deploy`` commands and Python scripts.

Each command of a skill's code blocks used to start a new Python that imported torch,
torchvision, onnxscript and transformers again: about 3-6 s of imports for a command that
works for one or two (64 commands in the skills). Here one server process imports them once;
every command is a ``fork()`` of it that sets the caller's folder, environment and standard
streams, then runs exactly what a fresh process would: ``onnx_deploy.cli.main(argv)``, or a
script as ``__main__``. Nothing runs in the server before it forks (no thread pools exist
yet; it checks that it has one thread), and the exit code comes back to the caller.

The client is ``python forkserver.py --client SOCKET onnx-deploy ARGS`` (or ``... python
SCRIPT``), written as an ``onnx-deploy`` shim first on PATH by ``ForkServer.shim``; where the
server cannot be reached it runs the real command instead. The skills' commands are still
run cold elsewhere: tests/test_packaging.py (a core install), tests/test_cli.py (--help
imports no torch), tests/test_big_model.py (one process per command, for peak memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# imported by the server before it forks: what the skills' commands spend their start on
PRELOAD = (
    "numpy", "onnx", "onnxruntime", "torch", "torchvision", "torch.onnx", "torch.export",
    "onnxscript", "onnxslim", "transformers", "matplotlib.pyplot",
    "transformers.models.bert.modeling_bert", "transformers.models.distilbert.modeling_distilbert",
    "transformers.models.qwen2.modeling_qwen2", "transformers.models.llama.modeling_llama",
    "onnx_deploy.cli", "onnx_deploy.workflows.pipeline", "onnx_deploy.convert.export",
)  # fmt: skip


def _run_child(request: dict, fds: list[int]) -> int:
    """In the forked child: become the caller's process, then run its command."""
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    argv = request["argv"]
    try:
        if argv[0] == "onnx-deploy":
            from onnx_deploy.cli import main

            sys.argv = list(argv)
            sys.path[0] = str(Path(sys.executable).parent)  # as the installed script has it
            code = main(argv[1:])
        else:  # python SCRIPT ARGS
            import runpy

            sys.argv = list(argv[1:])
            sys.path[0] = str(Path(argv[1]).resolve().parent)
            runpy.run_path(argv[1], run_name="__main__")
            code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return int(code or 0)


def serve(path: str) -> None:
    """The server: import ``PRELOAD``, then fork once per request on the socket ``path``."""
    import importlib
    import threading

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        # an optional extra missing: the command imports it (or says it is missing) itself
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    assert threading.active_count() == 1, "a thread started at import: forking is unsafe"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}  # child pid -> its caller, told its exit code
    while True:
        # several at once: a block may start a server in the background and call it
        if select.select([listener], [], [], 0.02)[0]:
            conn, _ = listener.accept()
            size = struct.unpack("!I", conn.recv(4, socket.MSG_WAITALL))[0]
            data, fds, _, _ = socket.recv_fds(conn, size, 3, socket.MSG_WAITALL)
            request = json.loads(data)
            if request.get("stop"):
                return
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in (conn, *waiting.values()):
                    other.close()
                os._exit(_run_child(request, fds))
            for fd in fds:
                os.close(fd)
            conn.sendall(struct.pack("!i", pid))  # the caller forwards its signals to it
            waiting[pid] = conn
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                with conn, contextlib.suppress(OSError):
                    conn.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))


def client(path: str, argv: list[str]) -> int:
    """Send this process's folder, environment, streams and ``argv`` to the server; its exit
    code is ours. Without a server: run ``argv`` as a fresh process."""
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
    except OSError:
        real = os.environ.get("FORKSERVER_REAL_ONNX_DEPLOY", "onnx-deploy")
        return subprocess.call([real if argv[0] == "onnx-deploy" else sys.executable, *argv[1:]])
    with conn:
        conn.sendall(struct.pack("!I", len(request)))
        socket.send_fds(conn, [request], [0, 1, 2])
        child = struct.unpack("!i", conn.recv(4, socket.MSG_WAITALL))[0]
        # `kill -INT $!` in a block reaches this process: pass it on, as if it were the command
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda number, _frame: os.kill(child, number))
        reply = conn.recv(4, socket.MSG_WAITALL)
    return struct.unpack("!i", reply)[0] if len(reply) == 4 else 1


class ForkServer:
    """Start a server (``with ForkServer() as fs``); ``fs.shim(folder)`` writes the
    ``onnx-deploy`` command that runs through it; ``fs.python(script)`` is the argv that runs
    a Python script through it."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="forkserver-")
        self.path = os.path.join(self._dir, "socket")
        self._proc: subprocess.Popen[str] | None = None
        self.shim_dir: Path | None = None

    def __enter__(self) -> ForkServer:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        said = []
        for line in self._proc.stdout or ():  # import warnings, then "ready"
            if line.strip() == "ready":
                return self
            said.append(line)
        raise RuntimeError(f"the fork server did not start: {''.join(said)[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)

    def shim(self, folder: Path) -> Path:
        """A folder with an ``onnx-deploy`` that runs through this server; put it first on PATH."""
        folder.mkdir(parents=True, exist_ok=True)
        real = Path(sys.executable).parent / "onnx-deploy"
        script = folder / "onnx-deploy"
        script.write_text(
            f"#!/bin/sh\nFORKSERVER_REAL_ONNX_DEPLOY='{real}' exec '{sys.executable}' "
            f"'{__file__}' --client '{self.path}' onnx-deploy \"$@\"\n"
        )
        script.chmod(0o755)
        self.shim_dir = folder
        return folder

    def python(self, script: Path) -> list[str]:
        return [sys.executable, __file__, "--client", self.path, "python", str(script)]


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "--client":
        sys.exit(client(sys.argv[2], sys.argv[3:]))
