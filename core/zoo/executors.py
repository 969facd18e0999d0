"""Where work units run: in this process (the default) or as Ray tasks on a cluster.

An executor runs a pure function over a list of tasks (``fn(task, progress, should_stop)`` →
result, e.g. ``core.zoo.tasks.train_chunk``) and yields ``(index, result)`` as each finishes; the
caller — the driver, the only process that writes to the store — commits each result as it
arrives. So a model set built on a Ray cluster lands in the store exactly as one built here.

- ``LocalExecutor``: the tasks one after another in this process, with per-step progress and
  cancellation (today's behaviour; needs nothing beyond the lab's requirements).
- ``RayExecutor``: every task is submitted at once as a Ray task (``num_cpus`` and
  ``num_gpus`` per task: a GPU fraction lets several tasks share one GPU) and collected as it
  finishes. A worker that dies (a system failure: killed process, lost node) is retried by Ray
  up to ``max_retries`` times; a task that raises is resubmitted by the driver up to
  ``max_retries`` times, except for a ``LabError`` (bad input: the same again would fail the
  same way), which is raised as is. Inside a task, torch uses exactly ``cpus_per_task`` threads
  (``LAB_THREADS``), so the arithmetic does not depend on how busy a worker's node is.

Ray is optional (``requirements-ray.txt``) and imported only when a ``RayExecutor`` is used.
With no ``address`` it starts a local Ray instance (the machine's cores, or ``num_cpus``);
``auto`` joins the cluster this machine belongs to; ``HOST:PORT`` the head node's GCS (checked
to be reachable first: Ray itself would wait minutes). Every node needs the lab importable at
the driver's path (a shared checkout, or the lab on ``PYTHONPATH``) and, for CIFAR-10, the data
(``LAB_DATA_ROOT`` or ``--data-root``). A cluster started with token authentication (Ray ≥ 2.59
turns it on for ``ray start``) wants ``RAY_AUTH_MODE=token`` and its token in the driver's
environment too, else Ray refuses the connection ("cannot connect to the Ray cluster").
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from core.common.config import check_int
from core.common.errors import ConfigError, LabError

RAY_HINT = "install the ray extra: pip install -r requirements-ray.txt"
EXECUTORS = ("local", "ray")
# fn(task, progress(fraction) | None, should_stop() | None) -> result
TaskFn = Callable[[Any, Callable[[float], None] | None, Callable[[], bool] | None], Any]
# progress(task index, fraction of that task done)
TaskProgress = Callable[[int, float], None]
log = logging.getLogger(__name__)


class TaskFailed(LabError):
    """A task kept failing on the cluster after every retry."""


class Executor:
    """Runs tasks and yields ``(index, result)`` as each finishes (any order)."""

    name = "executor"

    def device(self, asked: str | None) -> str:
        """The device name tasks train on for the ``--device`` asked (checked here)."""
        raise NotImplementedError

    def slots(self) -> int:
        """How many tasks can run at once (a build's default chunk size spreads its models
        over them)."""
        return 1

    def run(
        self,
        fn: TaskFn,
        tasks: Sequence[Any],
        *,
        progress: TaskProgress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (a local Ray instance)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """The tasks in order, in this process."""

    name = "local"

    def device(self, asked: str | None) -> str:
        from core.common.device import resolve_device

        return str(resolve_device(asked))

    def run(self, fn, tasks, *, progress=None, should_stop=None):
        for i, task in enumerate(tasks):
            tick = None if progress is None else (lambda f, i=i: progress(i, f))
            yield i, fn(task, tick, should_stop)


def import_ray():
    """The ``ray`` module, or a ``ConfigError`` saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from err
    return ray


def check_address(address: str) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://HOST:PORT``) nobody answers on, within seconds."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"--address must be HOST:PORT (the head node's GCS, port 6379 by default), "
            f"ray://HOST:PORT or auto; got {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it with "
            "`ray start --head` on the head node, or check the address"
        ) from None


def _in_worker(fn: TaskFn, task: Any, threads: int) -> Any:
    """Run one task on a Ray worker on exactly ``threads`` CPU threads."""
    import torch

    os.environ["LAB_THREADS"] = str(
        threads
    )  # core.common.threads: no idle-core guessing on a worker
    torch.set_num_threads(threads)
    return fn(task, None, None)


def _cause(err: BaseException) -> BaseException:
    """The exception a Ray task raised (Ray wraps it), else ``err``."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


class RayExecutor(Executor):
    """Tasks as Ray tasks; see the module docstring.

    ``address``: None or ``local`` (start Ray here), ``auto`` or ``HOST:PORT``.
    ``gpus_per_task``: GPUs per task (0: CPU tasks; a fraction ≤ 1 shares a GPU).
    ``cpus_per_task``: CPUs per task, also its torch threads. ``max_retries``: Ray's retries of
    a task whose worker died, and the driver's resubmissions of a task that raised.
    ``num_cpus``: CPUs of a local instance started here (default: the machine's).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        gpus_per_task: float = 0.0,
        *,
        cpus_per_task: int = 1,
        max_retries: int = 2,
        num_cpus: int | None = None,
    ) -> None:
        gpus_per_task = float(gpus_per_task)
        g = gpus_per_task
        if not (math.isfinite(g) and g >= 0 and (g <= 1 or g.is_integer())):
            raise ConfigError(
                f"--gpus-per-task must be 0, a fraction up to 1, or a whole number; got {gpus_per_task}"
            )
        check_int("cpus per task", cpus_per_task, 1)
        check_int("max_retries", max_retries, 0)
        if address is not None:
            check_address(address)  # before Ray is even imported: a typo fails fast
        self.address, self.gpus_per_task = address, gpus_per_task
        self.cpus_per_task, self.max_retries, self.num_cpus = cpus_per_task, max_retries, num_cpus
        self._started = False

    def _ray(self):
        ray = import_ray()
        if ray.is_initialized():  # a caller's own ray.init (tests, notebooks): used as is
            return ray
        try:
            if self.address in (None, "local"):
                ray.init(num_cpus=self.num_cpus, include_dashboard=False,
                         logging_level=logging.WARNING)  # fmt: skip
            else:
                ray.init(address=self.address, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise ConfigError(
                f"cannot connect to the Ray cluster at {self.address}: {err}"
            ) from None
        self._started = True
        return ray

    def device(self, asked: str | None) -> str:
        from core.common.device import DEVICE_CHOICES

        name = (asked or os.environ.get("LAB_DEVICE") or "auto").strip().lower()
        base = name.split(":")[0]
        if base not in DEVICE_CHOICES:
            raise ConfigError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
        if base == "auto":
            base = "cuda" if self.gpus_per_task > 0 else "cpu"
        if base == "cuda" and self.gpus_per_task == 0:
            raise ConfigError(
                "a Ray task sees a GPU only when it asks for one: add --gpus-per-task (1, or a "
                "fraction such as 0.25 to let 4 tasks share a GPU)"
            )
        if base != "cuda" and self.gpus_per_task > 0:
            raise ConfigError(f"--gpus-per-task reserves GPUs that --device {base} would not use")
        ray = self._ray()
        if self.gpus_per_task > 0:
            have = float(ray.cluster_resources().get("GPU", 0.0))
            if have < self.gpus_per_task:
                raise ConfigError(
                    f"the Ray cluster has {have:g} GPUs; a task asks for {self.gpus_per_task:g}"
                )
        return base

    def slots(self) -> int:
        res = self._ray().cluster_resources()
        if self.gpus_per_task > 0:
            return max(1, int(float(res.get("GPU", 0.0)) / self.gpus_per_task + 1e-9))
        return max(1, int(float(res.get("CPU", 1.0)) // self.cpus_per_task))

    def run(self, fn, tasks, *, progress=None, should_stop=None):
        from core.zoo.ensemble import Cancelled

        ray = self._ray()
        remote = ray.remote(_in_worker).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
            max_retries=self.max_retries, retry_exceptions=False,
        )  # fmt: skip
        fn_ref = ray.put(fn)
        pending: dict[Any, tuple[int, int]] = {}

        def submit(i: int, attempt: int) -> None:
            pending[remote.remote(fn_ref, tasks[i], self.cpus_per_task)] = (i, attempt)

        for i in range(len(tasks)):
            submit(i, 0)
        try:
            while pending:
                if should_stop is not None and should_stop():
                    raise Cancelled("training was cancelled")
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    i, attempt = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        cause = _cause(err)
                        if isinstance(cause, LabError):
                            raise cause from None
                        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                        if attempt >= self.max_retries:
                            raise TaskFailed(
                                f"task {i} failed on the Ray cluster {attempt + 1} time(s): "
                                f"{type(cause).__name__}: {first[:300]}"
                            ) from err
                        log.warning("task %d failed (%s); resubmitting it", i, first[:200])
                        submit(i, attempt + 1)
                        continue
                    if progress is not None:
                        progress(i, 1.0)
                    yield i, result
        finally:
            for ref in pending:  # stopped, failed or abandoned: nothing left running
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False


def make_executor(
    name: str = "local", address: str | None = None, gpus_per_task: float | None = None
) -> Executor:
    """The executor the CLI's ``--executor``, ``--address`` and ``--gpus-per-task`` ask for."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None or gpus_per_task is not None:
            raise ConfigError("--address and --gpus-per-task need --executor ray")
        return LocalExecutor()
    return RayExecutor(address, gpus_per_task or 0.0)
