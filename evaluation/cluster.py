"""The runner on a Dask cluster: ``python -m evaluation.run ... --scheduler ADDRESS|local:N``.

The (method, photo) work of :mod:`evaluation.engine` goes to the workers of a Dask cluster through
Dask's concurrent.futures executor (:meth:`distributed.Client.get_executor`), with the same task
function and the same submission loop as ``--workers N`` (:func:`evaluation.engine.compute_maps`,
:class:`evaluation.engine.Backend`). The client keeps everything else:

* learned methods (Liu08, Shi14) are trained, or their state loaded, in the client; the trained
  detector travels pickled with every task (:class:`evaluation.engine.ShippedDetector`);
* the client reads each photo and sends its bytes, so workers need not share its file system
  (``--shared-fs``: they read the photo's path themselves);
* each worker returns the 8-bit map and the compute seconds; the client writes them into the map
  cache as each result arrives and scores the maps from the cache, each photo once, so an
  interrupted distributed run resumes like a local one.

A worker that dies (killed, out of memory) loses the tasks it was running; the scheduler gives
them to other workers, up to ``distributed.scheduler.allowed-failures`` times per task (Dask's
default: 3) before the run stops with one line. A task that *raised* is not retried unless
:data:`TASK_RETRIES` says so: the suite's errors (a damaged photo, a bad setting) are
deterministic and stop the run at once, as they do locally.

The torch methods (DBM) run in the client, on ``--device``, as with ``--workers``, unless
``--gpu-workers`` is given: then their tasks go to the workers that declare the Dask resource
:data:`GPU_RESOURCE` (``dask worker ADDRESS --nthreads 1 --resources GPU=1``, one worker per
GPU, each started with its own ``CUDA_VISIBLE_DEVICES``: ``--nworkers N`` would put N workers
on the same ``cuda:0``; dask-cuda's ``dask cuda worker`` starts one per GPU, and takes
``--resources GPU=1`` too), :data:`TORCH_BATCH` photos per task, and ``--device`` names the
device on those workers (``auto`` = their ``cuda:0``). The network travels as its weight
file's path and SHA-256; each worker finds the same weights (shipped ones in its own
installation, others at the same path) and checks the device, or stops the run with one line
(:meth:`dbm.detector.DBM.__setstate__`). The run waits up to :data:`CONNECT_TIMEOUT_S` for a
first GPU worker and stops with one line if none comes; if every GPU worker leaves later, the
remaining tasks wait for one to join (interrupt and resume).

Scheduler spellings (:func:`parse_scheduler`):

``local:N``
    a :class:`distributed.LocalCluster` of ``N`` worker processes with one thread each, started
    for the run and stopped after it (one machine; the same work as ``--workers N``).
``tcp://HOST:8786`` (or another address Dask's client accepts, with its protocol: ``tls://``, ...)
    an existing cluster, started e.g. with ``dask scheduler`` and ``dask worker tcp://HOST:8786
    --nworkers N --nthreads 1`` on each machine (the scheduler and the workers need the suite
    installed, same version: the scheduler unpickles the tasks, which name the suite's
    functions), or by dask-jobqueue (SLURM, PBS, ...) or dask-kubernetes.

Needs the ``dask`` extra (``pip install ".[dask]"``); without it ``--scheduler`` stops with one line.
"""

from __future__ import annotations

import logging
import math
import re
import time
from concurrent.futures import CancelledError, Executor

from baselines.interface import THREADS_ENV, InputError

from .engine import Backend, _single_threaded_children

__all__ = ["CONNECT_TIMEOUT_S", "DaskCluster", "GPU_RESOURCE", "GPU_WORKERS_HELP", "LOCAL_CONFIG", "RECOUNT_S",
           "SCHEDULER_HELP", "TASK_RETRIES", "TORCH_BATCH", "parse_scheduler"]

#: Times Dask re-runs a task that raised (worker deaths are counted separately, by the scheduler's
#: ``allowed-failures``). 0: the suite's errors are deterministic, a retry would only repeat them.
TASK_RETRIES = 0
#: Seconds the client waits to reach a ``--scheduler`` address.
CONNECT_TIMEOUT_S = 30
#: Seconds between two counts of the cluster's workers (the tasks kept submitted follow them).
RECOUNT_S = 1.0
#: The Dask resource a worker with a GPU declares (``dask worker ADDRESS --resources GPU=1``).
GPU_RESOURCE = "GPU"
#: Photos per task of a torch method on a GPU worker.
TORCH_BATCH = 8
#: Dask settings of a ``local:N`` cluster's workers. Their statistical profiler samples the running
#: task's stack every 10 ms, for a dashboard nobody looks at here: measured on 2 cores (12 CUHK
#: photos, HiFST, Yi16 and gradient statistics), the run took 44.0-46.4 s with it, 42.6-43.1 s
#: without (``--workers 2``: 40.3-42.1 s). Workers of a cluster of one's own take it from their
#: environment: ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False dask worker ...``.
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False}
#: Help text of the runner's ``--gpu-workers``.
GPU_WORKERS_HELP = (f"with --scheduler ADDRESS: DBM's maps are computed on the workers that declare the Dask resource "
                    f"{GPU_RESOURCE} (dask worker ADDRESS --resources {GPU_RESOURCE}=1), {TORCH_BATCH} photos per task, "
                    "on --device there (auto: their cuda:0); default: in this process")
#: Help text of the runner's ``--scheduler``.
SCHEDULER_HELP = ("compute maps on a Dask cluster: the scheduler's address (tcp://HOST:8786) or local:N (a local "
                  "cluster of N one-thread worker processes); needs pip install \".[dask]\"; not with --workers")
_INSTALL = 'pip install ".[dask]"'
_LOCAL = re.compile(r"local:(\d+)")


def parse_scheduler(text: str) -> int | str:
    """Read a ``--scheduler`` value.

    Parameters
    ----------
    text : str
        ``local:N`` or a scheduler address (``tcp://HOST:PORT``, ``tls://...``, ...).

    Returns
    -------
    int or str
        ``N`` (worker processes of a local cluster) or the address.

    Raises
    ------
    InputError
        For ``local:0``, ``local`` without a number, or an address without a protocol.
    """
    value = str(text).strip()
    m = _LOCAL.fullmatch(value)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise InputError(f"--scheduler {text}: a local cluster needs at least one worker (local:N, N >= 1)")
        return n
    if value.startswith("local") or "://" not in value:
        raise InputError(f"--scheduler {text!r}: expected local:N (N worker processes here) or a scheduler "
                         "address such as tcp://HOST:8786")
    return value


def _distributed():
    """The ``distributed`` package, or a one-line error saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise InputError(f"--scheduler needs Dask's distributed scheduler, which is not installed; {_INSTALL}") from None
    return distributed


class _OnDask(Backend):
    """A backend whose executor is a Dask client's: closing it cancels the executor's tasks without waiting.

    Its :attr:`window` follows the workers the cluster has now (they may join later), counted at
    most every :data:`RECOUNT_S` seconds (each count is a round trip to the scheduler).
    """

    _counted_at = -math.inf

    def _client(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _count_slots(self, client) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def window(self) -> int:
        """Tasks kept submitted: twice the slots the cluster has now."""
        client = self._client()
        if client is not None and time.monotonic() - self._counted_at >= RECOUNT_S:
            try:
                self.slots = max(1, self._count_slots(client))
            except (OSError, TimeoutError):  # the scheduler is gone: the running tasks will say so
                pass
            self._counted_at = time.monotonic()
        return 2 * max(1, self.slots)

    def close(self) -> None:
        if self._executor is not None:  # cancels its futures, running ones too, at once
            self._executor.shutdown(wait=False)
            self._executor = None


class DaskCluster(_OnDask):
    """Maps computed by the workers of a Dask cluster (the runner's ``--scheduler``).

    Parameters
    ----------
    scheduler : str
        ``local:N`` or a scheduler address (:func:`parse_scheduler`).
    shared_fs : bool
        Workers read the photos from their paths (they share the client's file system) instead
        of receiving their bytes.
    gpu_workers : bool
        The torch methods go to the workers that declare :data:`GPU_RESOURCE` (``--gpu-workers``;
        :meth:`for_torch`).
    """

    def __init__(self, scheduler: str, *, shared_fs: bool = False, gpu_workers: bool = False) -> None:
        super().__init__()
        self.target = parse_scheduler(scheduler)
        if gpu_workers and isinstance(self.target, int):
            raise InputError(f"--gpu-workers sends DBM to the workers that declare a {GPU_RESOURCE} resource; a "
                             f"local:N cluster has none: give the address of a cluster with such workers")
        self.gpu_workers = gpu_workers
        self.sends_photos = not shared_fs
        self.client = None
        self.cluster = None
        self._gpu_backends: list[_GPUWorkers] = []
        _distributed()  # a missing install stops the run before any work

    def _start(self) -> Executor:
        distributed = _distributed()
        if isinstance(self.target, int):
            import dask

            # inherited by the worker processes; without the statistical profiler (LOCAL_CONFIG). A
            # worker the nanny restarts gets Dask's OMP_NUM_THREADS=1 and, through env, one thread for
            # the methods (not the client's --threads)
            with _single_threaded_children(), dask.config.set(LOCAL_CONFIG):
                self.cluster = distributed.LocalCluster(n_workers=self.target, threads_per_worker=1, processes=True,
                                                        dashboard_address=":0", silence_logs=logging.ERROR,
                                                        env={THREADS_ENV: "1"})
            self.client = distributed.Client(self.cluster)
        else:
            try:
                self.client = distributed.Client(self.target, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {self.target}: cannot reach the scheduler ({' '.join(str(exc).split())}); "
                                 "start one with `dask scheduler` (and workers with `dask worker ADDRESS`) or "
                                 "check the address") from None
        try:  # a cluster that scales up (dask-jobqueue, adaptive) may have no worker yet
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {self.target}: no worker joined within {CONNECT_TIMEOUT_S} s "
                             f"({' '.join(str(exc).split())}); start workers with `dask worker ADDRESS`") from None
        return self.client.get_executor(pure=False, retries=TASK_RETRIES)

    def _client(self):
        return self.client

    def _count_slots(self, client) -> int:
        return sum(client.nthreads().values())  # worker threads

    def for_torch(self) -> Backend:
        """With ``gpu_workers``: the cluster's workers that declare :data:`GPU_RESOURCE`; else this process.

        Nothing is started here: the cluster is reached when the first torch map is to be computed.
        """
        if not self.gpu_workers:
            return super().for_torch()
        gpu = _GPUWorkers(self)
        self._gpu_backends.append(gpu)
        return gpu

    def failure(self, exc: BaseException) -> BaseException:
        distributed = _distributed()
        if isinstance(exc, distributed.KilledWorker):
            return OSError(f"Dask gave up on a task whose workers kept dying ({' '.join(str(exc).split())}); the maps "
                           "computed so far are cached: run the same command again to resume")
        if isinstance(exc, CancelledError):  # the scheduler or the connection to it was lost
            return OSError("the Dask scheduler cancelled the run (connection lost or scheduler stopped); the maps "
                           "computed so far are cached: run the same command again to resume")
        if isinstance(exc, RuntimeError) and "deserialization of the task graph" in str(exc):
            return OSError("the Dask scheduler cannot read the tasks: install the suite (same version) on the "
                           "scheduler's machine too, then run the same command again")
        if isinstance(exc, ModuleNotFoundError):
            return OSError(f"a Dask worker cannot import {exc.name!r}: install the suite (same version) on every "
                           "worker")
        return exc

    def close(self) -> None:
        super().close()
        for gpu in self._gpu_backends:
            gpu.close()
        self._gpu_backends.clear()
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def _gpu_worker_count(client) -> int:
    """How many of the cluster's workers declare :data:`GPU_RESOURCE`.

    Read from the scheduler's description of all its workers (Dask 2025.4 to 2026.6 describe
    only the first five unless asked for all), not computed on the scheduler.
    """
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(1 for w in workers if (w.get("resources") or {}).get(GPU_RESOURCE, 0) > 0)


class _GPUWorkers(_OnDask):
    """The workers of a :class:`DaskCluster` that declare :data:`GPU_RESOURCE`: tasks of :data:`TORCH_BATCH` photos.

    Shares the cluster's client (started on first use); closing it stops only its own executor.
    """

    batch = TORCH_BATCH

    def __init__(self, cluster: DaskCluster) -> None:
        super().__init__()
        self.cluster = cluster
        self.sends_photos = cluster.sends_photos

    def _start(self) -> Executor:
        self.cluster.executor()
        client = self.cluster.client
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not (n := _gpu_worker_count(client)):
            if time.monotonic() > deadline:
                raise InputError(f"--gpu-workers: no worker of {self.cluster.target} declares the {GPU_RESOURCE} "
                                 f"resource after {CONNECT_TIMEOUT_S} s; start one per GPU with `dask worker ADDRESS "
                                 f"--nthreads 1 --resources {GPU_RESOURCE}=1`, or leave out --gpu-workers")
            time.sleep(0.5)
        self.slots, self._counted_at = n, time.monotonic()
        return client.get_executor(pure=False, retries=TASK_RETRIES, resources={GPU_RESOURCE: 1})

    def _client(self):
        return self.cluster.client if self._executor is not None else None

    def _count_slots(self, client) -> int:
        return _gpu_worker_count(client)  # one task at a time on each

    def failure(self, exc: BaseException) -> BaseException:
        return self.cluster.failure(exc)
