"""The runner on a Dask cluster: ``python -m evaluation.run ... --scheduler ADDRESS|local:N``.

The (method, photo) work of :mod:`evaluation.engine` goes to the workers of a Dask cluster through
Dask's concurrent.futures executor (:meth:`distributed.Client.get_executor`), with the same task
function and the same submission loop as ``--workers N`` (:func:`evaluation.engine.compute_map`,
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
deterministic and stop the run at once, as they do locally. The torch methods (DBM) run in the
client, as with ``--workers``.

Scheduler spellings (:func:`parse_scheduler`):

``local:N``
    a :class:`distributed.LocalCluster` of ``N`` worker processes with one thread each, started
    for the run and stopped after it (one machine; the same work as ``--workers N``).
``tcp://HOST:8786`` (or any address Dask's client accepts)
    an existing cluster, started e.g. with ``dask scheduler`` and ``dask worker tcp://HOST:8786
    --nworkers N --nthreads 1`` on each machine (which needs the suite installed, same versions),
    or by dask-jobqueue (SLURM, PBS, ...) or dask-kubernetes.

Needs the ``dask`` extra (``pip install ".[dask]"``); without it ``--scheduler`` stops with one line.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import CancelledError, Executor

from baselines.interface import InputError

from .engine import Backend, _single_threaded_children

__all__ = ["CONNECT_TIMEOUT_S", "DaskCluster", "SCHEDULER_HELP", "TASK_RETRIES", "parse_scheduler"]

#: Times Dask re-runs a task that raised (worker deaths are counted separately, by the scheduler's
#: ``allowed-failures``). 0: the suite's errors are deterministic, a retry would only repeat them.
TASK_RETRIES = 0
#: Seconds the client waits to reach a ``--scheduler`` address.
CONNECT_TIMEOUT_S = 30
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


class DaskCluster(Backend):
    """Maps computed by the workers of a Dask cluster (the runner's ``--scheduler``).

    Parameters
    ----------
    scheduler : str
        ``local:N`` or a scheduler address (:func:`parse_scheduler`).
    shared_fs : bool
        Workers read the photos from their paths (they share the client's file system) instead
        of receiving their bytes.
    """

    def __init__(self, scheduler: str, *, shared_fs: bool = False) -> None:
        super().__init__()
        self.target = parse_scheduler(scheduler)
        self.sends_photos = not shared_fs
        self.client = None
        self.cluster = None
        _distributed()  # a missing install stops the run before any work

    def _start(self) -> Executor:
        distributed = _distributed()
        if isinstance(self.target, int):
            with _single_threaded_children():  # inherited by the worker processes
                self.cluster = distributed.LocalCluster(n_workers=self.target, threads_per_worker=1, processes=True,
                                                        dashboard_address=None, silence_logs=logging.ERROR)
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

    @property
    def window(self) -> int:
        """Tasks kept submitted: twice the worker threads the cluster has now (workers may join later)."""
        if self.client is not None:
            try:
                self.slots = max(1, sum(self.client.nthreads().values()))
            except (OSError, TimeoutError):  # the scheduler is gone: the running tasks will say so
                pass
        return 2 * max(1, self.slots)

    def failure(self, exc: BaseException) -> BaseException:
        distributed = _distributed()
        if isinstance(exc, distributed.KilledWorker):
            return OSError(f"Dask gave up on a task whose workers kept dying ({' '.join(str(exc).split())}); the maps "
                           "computed so far are cached: run the same command again to resume")
        if isinstance(exc, CancelledError):  # the scheduler or the connection to it was lost
            return OSError("the Dask scheduler cancelled the run (connection lost or scheduler stopped); the maps "
                           "computed so far are cached: run the same command again to resume")
        if isinstance(exc, ModuleNotFoundError):
            return OSError(f"a Dask worker cannot import {exc.name!r}: install the suite (same version) on every "
                           "worker")
        return exc

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
