"""Ray for every command that can run on a cluster (``tune``, ``encode``): one way to join or
start one.

A cluster is named by ``--ray-address`` or Ray's own ``RAY_ADDRESS`` variable; without either a
local cluster is started with one CPU per worker and stopped at the end. A Ray session that is
already running in this process (a notebook's, a test's) is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

from salesfusion.errors import InputError


def require_ray(module: str = "ray") -> None:
    """Raise an ``InputError`` with the install hint when ``module`` (ray, ray.data, ray.tune)
    cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise InputError(f"--backend ray needs {module}: pip install 'salesfusion[ray]'"
                         ) from None


@contextlib.contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[None]:
    """Inside: a Ray session. Joins the cluster at ``address`` (else ``RAY_ADDRESS``), else
    starts a local one of ``workers`` CPUs; shuts down only a session it started."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        # Workers inherit the driver's thread settings; a local cluster has one CPU per worker.
        # Workers' output stays in Ray's logs: it would interleave with our progress lines.
        ray.init(address=address, num_cpus=None if address else workers,
                 include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level="WARNING")
    except ConnectionError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"Ray cluster {address!r} could not be joined: {reason}") from None
    try:
        yield
    finally:
        ray.shutdown()
