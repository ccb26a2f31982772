"""Managed engines: an inference server run as a child process over the archive's files,
started on demand, watched, restarted with a backoff after a crash and stopped when it is not
needed. One `Engine` supervises one process. Spec: docs/design/engines.md."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emeritus.runtime.backend import BackendError
from emeritus.store import atomic_write, iso, utc_now

if TYPE_CHECKING:
    from emeritus.store import Store

log = logging.getLogger(__name__)

DRAIN_WAIT = 10.0  # seconds between SIGTERM and SIGKILL
MAX_BACKOFF = 60.0
CRASH_MEMORY = 600.0  # a crash this long after the last one starts the backoff again at 1 s
PORT_RETRIES = 3  # starts on a new free port when another process took the one chosen
LOG_TAIL = 20  # lines of the engine's log kept in a failure's event
# Files in HOME/engines/MODEL, one set per supervising process (two gateways on one home each
# supervise their own engine): its state, its engine's log; and the marker `emeritus engines
# stop` leaves for the engine it stopped.
STATE_FILE, LOG_FILE, STOP_MARKER = "state-{pid}.json", "engine-{pid}.log", "stop-{pid}"


class EngineState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    CRASHED = "crashed"


class EngineUnavailable(BackendError):
    """The engine is not ready: starting, backing off after a crash, or refused its start. The
    gateway answers 503 with `Retry-After: retry_after`."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


@dataclass(frozen=True)
class EngineCommand:
    """How to run one engine: its argument list (`{port}` is filled at each start), the health
    path, extra environment, and checks to run before a start (each returns a problem or None)."""

    kind: str
    argv: tuple[str, ...]
    health: str = "/health"
    env: Mapping[str, str] = field(default_factory=dict)
    preflight: Sequence[Callable[[], str | None]] = ()

    def at(self, port: int) -> list[str]:
        return [a.replace("{port}", str(port)) for a in self.argv]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _with_parent(argv: list[str]) -> list[str]:
    """The command run so that it gets SIGTERM when the thread that started it (its supervisor)
    ends: a gateway killed with SIGKILL leaves no engine behind. util-linux's `setpriv` sets the
    parent-death signal and execs the engine (same pid); without it, the engine outlives a
    killed gateway (`emeritus engines list` shows it as gone, `engines stop` ends it)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


class Engine:
    """One engine process for one model, and its life cycle (docs/design/engines.md)."""

    def __init__(
        self,
        model: str,
        command: EngineCommand,
        *,
        folder: Path,
        slots: int,
        health_timeout: float = 120.0,
        port: int | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model, self.command, self.folder = model, command, folder
        self.slots, self.health_timeout, self.fixed_port = slots, health_timeout, port
        self.store, self.clock = store, clock  # events go to the store's log, where given
        self.state = EngineState.STOPPED
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.failure = ""  # the last crash or failed start, in one line
        self.crashes = 0
        self.backoff_until = 0.0
        self._last_crash = -CRASH_MEMORY
        self._stop_reason: str | None = None  # set when the supervisor asked the engine to end
        self._started_at = 0.0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE.format(pid=os.getpid())

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE.format(pid=os.getpid())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- asking for it

    def ensure(self, wait: float) -> str:
        """The ready engine's base URL, starting it when stopped (or crashed, once its backoff
        is over); EngineUnavailable when it is not ready within `wait` seconds (it goes on
        starting in the background)."""
        deadline = self.clock() + wait
        with self._cond:
            while True:
                if self.state is EngineState.READY:
                    return self.base_url
                if self.state in (EngineState.STOPPED, EngineState.CRASHED):
                    left = self.backoff_until - self.clock()
                    if left > 0:
                        raise EngineUnavailable(
                            f"{self.model}: its engine {self.failure or 'failed'}; "
                            f"the next start in {left:.0f} s",
                            left,
                        )
                    self._start()
                remaining = deadline - self.clock()
                if remaining <= 0:
                    last = f"; its last start {self.failure}" if self.failure else ""
                    raise EngineUnavailable(
                        f"{self.model}: its engine is starting (not ready within {wait:g} s{last})",
                        max(wait, 1.0),
                    )
                self._cond.wait(min(remaining, 0.5))

    def stop(self, reason: str, wait: float = DRAIN_WAIT) -> None:
        """Stop the engine (SIGTERM, SIGKILL after `wait` seconds) and wait for its end. The
        pool calls this only once no request uses the model."""
        with self._cond:
            if self.state in (EngineState.STOPPED, EngineState.CRASHED):
                return  # no process (a crashed one has been reaped)
            # Starting (perhaps before its process exists: the supervising thread checks this
            # at each step and stops there), ready, or already draining.
            self._stop_reason = reason
            process = self.process
            if self.state is EngineState.READY:
                self.state = EngineState.DRAINING
                self._write_state()
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with self._cond:  # the supervising thread records the stop; wait for it, briefly
            self._cond.wait_for(
                lambda: self.state in (EngineState.STOPPED, EngineState.CRASHED), wait + 5.0
            )

    # -- the supervising thread

    def _start(self) -> None:
        """(lock held) From stopped or crashed to starting, on a thread that starts the process,
        waits for health and then watches it until it ends."""
        self.state, self._stop_reason, self._started_at = EngineState.STARTING, None, self.clock()
        self._write_state()
        self._thread = threading.Thread(
            target=self._supervise, name=f"emeritus-engine-{self.model}", daemon=True
        )
        self._thread.start()

    def _supervise(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug here must not leave requests waiting for ever
            log.exception("the engine of %s failed", self.model)
            self._crashed(f"failed to start: {exc}", "runtime.engine_failed", None)

    def _run(self) -> None:
        for check in self.command.preflight:
            problem = check()
            if problem:
                self._crashed(f"was not started: {problem}", "runtime.engine_failed", None)
                return
        if self._stop_reason is not None:  # stopped before there was anything to start
            with self._cond:
                self.state = EngineState.STOPPED
                self._write_state()
                self._cond.notify_all()
            return
        if self.fixed_port is not None and port_taken(self.fixed_port):
            self._crashed(
                f"was not started: port {self.fixed_port} is taken by another process",
                "runtime.engine_failed",
                None,
            )
            return
        for _attempt in range(PORT_RETRIES):
            port = self.fixed_port or free_port()
            process = self._spawn(port)
            problem = self._wait_healthy(process)
            if problem is None:
                break
            _kill(process)
            if self._stop_reason is not None:
                self._ended(process)
                return
            if self.fixed_port is None and "address already in use" in self._tail().lower():
                continue  # another process took the free port in between: another one
            self._crashed(problem, "runtime.engine_failed", process)
            return
        else:
            self._crashed(
                "could not bind a free port", "runtime.engine_failed", None
            )  # pragma: no cover - three races in a row
            return
        with self._cond:
            self.state = EngineState.READY
            self._write_state()
            self._cond.notify_all()
        self._event(
            "runtime.engine_started",
            {
                "kind": self.command.kind,
                "pid": process.pid,
                "port": port,
                "slots": self.slots,
                "seconds": round(self.clock() - self._started_at, 3),
            },
        )
        process.wait()
        self._ended(process)

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = self.command.at(port)
        with self.log_path.open("ab") as handle:
            header = f"=== starting on port {port} at {iso(utc_now())}: {' '.join(argv)}\n"
            handle.write(header.encode())
            handle.flush()
            process = subprocess.Popen(
                _with_parent(argv),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.command.env},
                start_new_session=True,  # a signal to the gateway's group is not the engine's
            )
        with self._cond:
            self.process, self.port = process, port
            self._write_state()
        return process

    def _wait_healthy(self, process: subprocess.Popen[bytes]) -> str | None:
        """None once the health path answers 200; else why not (exited, or not in time)."""
        import httpx

        deadline, delay = self.clock() + self.health_timeout, 0.1
        url = f"http://127.0.0.1:{self.port}{self.command.health}"
        with httpx.Client(timeout=2.0) as client:
            while self.clock() < deadline:
                if process.poll() is not None:
                    return f"exited with status {process.returncode} while starting"
                if self._stop_reason is not None:
                    return "stopped while starting"
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return None
                time.sleep(delay)
                delay = min(1.0, delay * 1.5)
        return f"was not ready within {self.health_timeout:g} s"

    def _ended(self, process: subprocess.Popen[bytes]) -> None:
        """The process has exited: stopped when asked (or by SIGTERM from an operator), else
        crashed."""
        _end_group(process)
        code = process.returncode
        ran = round(self.clock() - self._started_at, 3)
        asked = self._stop_reason
        if asked is None and (self._operator_stopped(process.pid) or code == -signal.SIGTERM):
            asked = "operator"  # emeritus engines stop, or anyone's SIGTERM: not a crash
        if asked is None:
            self._crashed(f"crashed (exit status {code})", "runtime.engine_crashed", process)
            return
        with self._cond:
            self.state, self.process = EngineState.STOPPED, None
            self._write_state()
            self._cond.notify_all()
        self._event("runtime.engine_stopped", {"reason": asked, "seconds": ran, "status": code})

    def _crashed(self, why: str, kind: str, process: subprocess.Popen[bytes] | None) -> None:
        if process is not None:
            _end_group(process)
        now = self.clock()
        with self._cond:
            self.crashes = self.crashes + 1 if now - self._last_crash < CRASH_MEMORY else 1
            self._last_crash = now
            # The first crash restarts at the next request; each one after it within
            # CRASH_MEMORY waits twice as long: 1, 2, 4 ... seconds, at most MAX_BACKOFF.
            backoff = 0.0 if self.crashes == 1 else min(MAX_BACKOFF, 2.0 ** (self.crashes - 2))
            self.state, self.failure = EngineState.CRASHED, why
            self.backoff_until, self.process = now + backoff, None
            self._write_state()
            self._cond.notify_all()
        payload: dict[str, Any] = {"kind": self.command.kind, "reason": why, "backoff": backoff}
        if process is not None:
            payload["pid"], payload["status"] = process.pid, process.returncode
            payload["log"] = self._tail()
        self._event(kind, payload)

    def _operator_stopped(self, pid: int) -> bool:
        """Whether `emeritus engines stop` asked this process to end (its marker names the
        pid); the marker is removed."""
        marker = self.folder / STOP_MARKER.format(pid=pid)
        if not marker.exists():
            return False
        marker.unlink(missing_ok=True)
        return True

    # -- state, logs, events

    def _tail(self, lines: int = LOG_TAIL) -> str:
        try:
            text = self.log_path.read_bytes()[-16_384:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_state(self) -> None:
        """(lock held) HOME/engines/MODEL/state-PID.json, for `emeritus engines list`."""
        state = {
            "model": self.model,
            "kind": self.command.kind,
            "state": self.state.value,
            "pid": self.process.pid if self.process is not None else None,
            "port": self.port,
            "slots": self.slots,
            "supervisor": os.getpid(),
            "failure": self.failure,
            "crashes": self.crashes,
            "updated": iso(utc_now()),
            "log": self.log_path.name,
        }
        try:
            atomic_write(self.state_path, json.dumps(state, indent=1).encode() + b"\n")
        except OSError:
            log.warning("cannot write the state of %s's engine", self.model)

    def _event(self, kind: str, payload: dict[str, Any]) -> None:
        if self.store is None:
            return
        try:
            self.store.record(kind, f"model:{self.model}", payload)
        except Exception:  # the engine's life must not depend on the event log's
            log.exception("cannot record %s for %s", kind, self.model)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """Kill what the ended engine left in its process group: vLLM's API server runs its engine
    core and workers as children, and they outlive an API server that was killed or crashed.
    The engine leads its own group (`start_new_session`), so the group is its pid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def stop_engine(folder: Path, pid: int) -> bool:
    """Ask the engine `pid` of a supervisor keeping `folder` to stop (`emeritus engines stop`):
    the marker says it was asked, then SIGTERM. False when it was not running."""
    marker = folder / STOP_MARKER.format(pid=pid)
    atomic_write(marker, b"")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        marker.unlink(missing_ok=True)
        return False
    return True


def engine_states(home: Path) -> list[dict[str, Any]]:
    """Every engine's last recorded state under HOME/engines, with whether its process and its
    supervisor are alive."""
    found = []
    for path in sorted((home / "engines").glob("*/" + STATE_FILE.format(pid="*"))):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        state["alive"] = _alive(state.get("pid"))
        if not _alive(state.get("supervisor")):
            state["state"] = "gone"  # its gateway ended without stopping it
        found.append(state)
    return found


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
