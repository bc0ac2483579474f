"""Work over a large fleet spread on the machine's cores, in forked copies of this process.

Resolving ten thousand hosts is pure Python and CPU-bound. A forked child starts with
everything already loaded (policies, inventory, compiled templates: nothing is pickled on the
way in) and resolves a contiguous slice of the hosts; it sends back only a small result (for
`validate`: the problems found and each host's resource count), never the desired states, whose
pickling would cost more than the second core saves. The parent works on the first slice
itself. Results come back in slice order, so merging them gives what one process would have
found. Imports the standard library only.
"""

from __future__ import annotations

import itertools
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

MIN_HOSTS_PER_WORKER = 1000
"""Below this many hosts per process a fork costs more than it saves."""


def workers_for(hosts: int) -> int:
    """How many processes to resolve `hosts` hosts with: one per usable core, at most one per
    MIN_HOSTS_PER_WORKER hosts."""
    if sys.platform != "linux" or _gevent_patched_os():
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, hosts // MIN_HOSTS_PER_WORKER))


def _gevent_patched_os() -> bool:
    """Whether gevent serves fork and waitpid through its hub (commands that reach hosts patch;
    `validate` does not): then one process does the work."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("os"))


def slices(names: Sequence[str], parts: int) -> list[Sequence[str]]:
    """`names` in `parts` contiguous slices of near-equal size, in order (none empty)."""
    parts = max(1, min(parts, len(names)))
    size, extra = divmod(len(names), parts)
    cuts = [0]
    for index in range(parts):
        cuts.append(cuts[-1] + size + (1 if index < extra else 0))
    return [names[a:b] for a, b in itertools.pairwise(cuts)]


class WorkerFailedError(RuntimeError):
    """A forked worker raised, died or sent nothing: a bug, reported as one."""


def in_workers(work: Callable[[Sequence[str]], T], names: Sequence[str], workers: int) -> list[T]:
    """`work(slice)` for each of `workers` slices of `names`, in slice order: the first here,
    the others in forked children. A child's exception is raised here."""
    parts = slices(names, workers)
    if len(parts) < 2:
        return [work(names)]
    children: list[tuple[int, int]] = []
    for part in parts[1:]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            os.close(read_end)
            _run_child(work, part, write_end)
        os.close(write_end)
        children.append((pid, read_end))
    results = [work(parts[0])]
    failure: str | None = None
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()  # before waiting: a child blocks until its result is read
        _, status = os.waitpid(pid, 0)
        try:
            ok, value = pickle.loads(data)
        except Exception:  # a child killed or crashed before it wrote a whole result
            ok, value = False, f"worker {pid} ended with status {status} and no result"
        if ok:
            results.append(value)
        else:
            failure = failure or str(value)
    if failure is not None:
        raise WorkerFailedError(failure)
    return results


def _run_child(work: Callable[[Sequence[str]], T], part: Sequence[str], write_end: int) -> None:
    """Compute, send, and leave at once: no atexit handlers, no buffered output of the parent's
    flushed twice."""
    code = 0
    try:
        try:
            message: tuple[bool, object] = (True, work(part))
        except BaseException as error:
            message = (False, f"{type(error).__name__}: {error}")
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(message, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        code = 1
    finally:
        os._exit(code)
