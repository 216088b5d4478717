"""Warm start: stage processes forked from a server that has already imported the heavy libraries.

A heavy stage spends 5-6 s of a 2-core machine importing torch, transformers, pandas, spaCy and
sentence-transformers before its own work, a fifth of an evaluate stage. `python -m stages.launch`,
the command of every stage in dvc.yaml, therefore first asks a warm server to run the stage:

- the server (``python -m aligntax.warm``) imports ``PRELOAD`` once and waits on a socket;
- for each request it forks; the fork takes the launcher's stdin/stdout/stderr (passed over the
  socket), working folder, environment and arguments, and runs ``stages.<stage>`` as ``python -m``
  would; its exit status becomes the launcher's, and the launcher passes on SIGINT/SIGTERM/SIGHUP;
- with no server (the first stage of a run) the launcher starts one in the background and runs its
  stage itself, as before.

A fork computes what a fresh process computes. Only third-party libraries are preloaded: a fork
drops every `aligntax` and `stages` module and imports them from its own working folder, so an edit
is always seen, and `dvc exp run --queue` workspaces each run their own code. The server runs no
torch op (no thread pool to inherit). It serves only the same Python, the same installed packages
(the site-packages folder's mtime), the same server code and the same environment (variables
named DVC_* aside, which DVC sets per stage): anything else gets its own server. The socket is
abstract (no file) and both ends check that the other runs as the same user.

``ALIGNTAX_WARM=off`` turns it off (every stage starts cold, as with a launcher other than python);
``ALIGNTAX_WARM_IDLE`` is how many seconds a server waits after its last stage ends (default 120).
Linux only; elsewhere every stage starts cold.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

ENV = "ALIGNTAX_WARM"
"""Environment variable: `off` starts every stage cold."""
IDLE_ENV = "ALIGNTAX_WARM_IDLE"
"""Environment variable: seconds a server waits for a request after its last stage ended."""
IDLE_DEFAULT = 120.0
PRELOAD = (
    "numpy", "pandas", "pyarrow.parquet", "yaml", "tqdm", "scipy.stats", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.feature_extraction.text", "torch", "safetensors.torch", "transformers",
    "transformers.models.auto.modeling_auto", "transformers.models.llama.modeling_llama", "transformers.trainer",
    "transformers.generation.utils", "datasets", "accelerate", "peft", "trl", "dvclive", "spacy",
    "sentence_transformers",
)
"""What a server imports once (a module that fails to import is skipped: the stage imports it itself)."""
OWN = ("aligntax", "stages")
"""Packages a fork always imports afresh from its working folder."""
_HEADER = struct.Struct("!i")


def enabled() -> bool:
    return sys.platform == "linux" and os.environ.get(ENV, "").strip().lower() not in {"off", "0", "false", "no"}


def server_key(env: Mapping[str, str]) -> str:
    """What a server must share with a launcher to serve it (see the module docstring)."""
    purelib = sysconfig.get_paths()["purelib"]
    try:
        installed = os.stat(purelib).st_mtime_ns
    except OSError:
        installed = None
    stable = {k: v for k, v in env.items() if not k.startswith("DVC_")}
    text = json.dumps({"python": sys.executable, "version": sys.version, "purelib": purelib, "installed": installed,
                       "server": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(), "env": stable},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def address(key: str) -> str:
    """The server's abstract socket name (Linux: no file, gone with the server)."""
    return f"\0aligntax-warm-{os.getuid()}-{key[:32]}"


def _same_user(sock: socket.socket) -> bool:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1] == os.getuid()


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


def _recv_int(sock: socket.socket) -> int | None:
    data = _recv_exact(sock, _HEADER.size)
    return None if data is None else _HEADER.unpack(data)[0]


def start_server() -> None:
    """A server for this environment, in the background (its own session, no terminal, no output)."""
    subprocess.Popen([sys.executable, "-m", "aligntax.warm"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def run(module: str, args: list[str]) -> int | None:
    """Run ``python -m module *args`` in a fork of this environment's warm server: its exit status,
    or None when no server took it (the caller runs the stage itself; a server is started for the next)."""
    if not enabled():
        return None
    idle_seconds()  # a bad value ends the stage here, with the fix, not silently in the server
    key = server_key(os.environ)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address(key))
    except OSError:
        sock.close()
        start_server()
        return None
    with sock:
        try:
            if not _same_user(sock):
                return None
            body = json.dumps({"key": key, "module": module, "args": args, "cwd": os.getcwd(),
                               "env": dict(os.environ)}).encode()
            socket.send_fds(sock, [_HEADER.pack(len(body))], [0, 1, 2])
            sock.sendall(body)
            pid = _recv_int(sock)
        except OSError:
            return None
        if pid is None or pid <= 0:  # refused or gone before it started: nothing ran
            return None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda n, _frame: os.kill(pid, n))
        code = _recv_int(sock)
    if code is None:
        print(f"error: the stage process {pid} (warm start) ended without an exit status: it was killed; "
              f"re-run, or set {ENV}=off", file=sys.stderr)
        return 1
    return code


def _exit_when_orphaned(sock: socket.socket) -> None:
    """The launcher closed its end (it was killed): end this fork too."""
    try:
        while sock.recv(1):
            pass
    except OSError:
        pass
    os._exit(1)


def _exit_code(err: SystemExit) -> int:
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code
    print(err.code, file=sys.stderr)
    return 1


def _child(conn: socket.socket, key: str) -> None:
    """In the fork: take the launcher's stdio, folder, environment and arguments; run the stage; report."""
    code = 1
    try:
        msg, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
        body = _recv_exact(conn, _HEADER.unpack(msg)[0])
        request = json.loads(body) if body is not None and len(fds) == 3 else None
        if request is None or request.get("key") != key:
            conn.sendall(_HEADER.pack(-1))
            return
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=stream.isatty())
        for name in [m for m in sys.modules if m.split(".")[0] in OWN]:
            del sys.modules[name]
        importlib.invalidate_caches()
        sys.path[0] = request["cwd"]
        sys.argv = [request["module"], *request["args"]]
        conn.sendall(_HEADER.pack(os.getpid()))
        threading.Thread(target=_exit_when_orphaned, args=(conn,), daemon=True).start()
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as err:
            code = _exit_code(err)
        except KeyboardInterrupt:
            traceback.print_exc()
            code = 128 + signal.SIGINT
        except BaseException:  # what an uncaught exception does to `python -m`: traceback, status 1
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(_HEADER.pack(code))
    finally:
        os._exit(code)


def serve(idle: float) -> None:
    """Claim this environment's address, import ``PRELOAD``, fork a stage process per request; exit
    after ``idle`` seconds with no stage running and no request."""
    key = server_key(os.environ)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address(key))
    except OSError:  # another server has it
        return
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional: a stage that needs it imports it (and reports why)
            pass
    sock.listen(16)
    sock.settimeout(1.0)
    children: set[int] = set()
    last = time.monotonic()
    while True:
        for pid in list(children):
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
                last = time.monotonic()
        if not children and time.monotonic() - last > idle:
            return
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        if not _same_user(conn):
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(conn, key)
        children.add(pid)
        conn.close()
        last = time.monotonic()


def idle_seconds() -> float:
    """$ALIGNTAX_WARM_IDLE (default 120), checked: a number of seconds > 0."""
    value = os.environ.get(IDLE_ENV, "").strip()
    try:
        seconds = float(value) if value else IDLE_DEFAULT
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"${IDLE_ENV}={value[:40]!r}: use a number of seconds > 0 (default {IDLE_DEFAULT:g}), "
                         f"or {ENV}=off")
    return seconds


if __name__ == "__main__":
    serve(idle_seconds())
