"""CPU threads for torch: ``threads: auto`` picks a count by model size and machine load.

torch's default (one thread per core) is the fastest choice on a quiet machine for models
large enough to split: CNNs train 1.6-1.9x faster on two threads. Small MLPs gain nothing
from a second thread, and on a busy machine torch's OpenMP threads, which spin while they
wait for work, take cores other jobs need and wait for cores those jobs hold: the default
depth study took 48 minutes instead of 2 on a 2-core machine at a load of 15-28.

``auto`` therefore decides, per model, from two things:

* load: what other processes use (the 1-minute load average less this process's own
  threads, or the tasks running right now if more); the count never exceeds the cores
  left free (at least one). Under contention that is one.
* model size: a short timed probe (a few training steps of a copy of the model on random
  data) at 1, 2, 4, ... threads; a doubling is kept only if it makes a step at least
  ``MIN_SPEEDUP`` times faster. The timings are cached in a small JSON file (see
  :func:`cache_path`), keyed by CPU and model-size class, so each class is measured once
  per machine, and only when the machine has cores to spare (a probe on a busy machine
  measures the neighbours, not the model).

:func:`choose_threads` is the decision alone (load, cores, timings in; a count and the
reason out); :func:`use_threads` measures, decides and applies. Knows nothing of Kedro.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

AUTO = "auto"
# A doubling of threads must make a training step this much faster to be used: a second
# thread that buys less costs a shared machine more than it gives this run.
MIN_SPEEDUP = 1.25
# Roughly how long the probe spends timing each thread count (a few steps; at least one).
PROBE_SECONDS = 0.15
CACHE_ENV = "CNN_LAB_CACHE_DIR"
CACHE_VERSION = 1
THREADS_HELP = "use auto, 0 (torch's default: one thread per core) or a number of threads >= 1"

logger = logging.getLogger(__name__)


def check_threads(value: Any, key: str | None = None) -> int | str:
    """The ``threads`` setting as ``"auto"`` or an int >= 0 (``"2"`` from the command line
    is 2); anything else raises ValueError saying what is allowed (naming ``key`` and the
    value given when ``key`` is set; parameter schemas add both themselves)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit():
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"{key}: got {value!r}; {THREADS_HELP}" if key else THREADS_HELP)


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count a run uses and why (logged to MLflow beside ``perf_threads``)."""

    requested: int | str
    threads: int
    reason: str

    def as_params(self) -> dict[str, Any]:
        return {"perf_threads_requested": self.requested, "perf_threads_reason": self.reason}


def free_cores(cpus: int, load: float, own_threads: int, running: float = 0.0) -> float:
    """Cores not used by other processes: ``cpus`` minus what others use, taken as the
    larger of the 1-minute ``load`` less this process's ``own_threads`` (part of the load
    average) and the other tasks ``running`` right now (a job that started seconds ago
    has barely moved the average yet)."""
    others = max(0.0, load - own_threads, running)
    return max(0.0, cpus - others)


def thread_cap(cpus: int, load: float, own_threads: int, running: float, default: int) -> int:
    """At most the free cores, rounded (a core others use half the time is still free
    enough), at most torch's ``default``, at least one."""
    return max(1, min(default, math.floor(free_cores(cpus, load, own_threads, running) + 0.5)))


def threads_that_pay(timings: Mapping[int, float]) -> int:
    """The largest of 1, 2, 4, ... threads reached by doublings that each made a step at
    least MIN_SPEEDUP times faster (``timings``: seconds per step by thread count)."""
    threads = 1
    while (
        threads in timings
        and 2 * threads in timings
        and timings[2 * threads] > 0
        and timings[threads] / timings[2 * threads] >= MIN_SPEEDUP
    ):
        threads *= 2
    return threads


def choose_threads(
    requested: int | str,
    *,
    cpus: int,
    load: float,
    own_threads: int = 1,
    running: float = 0.0,
    default: int | None = None,
    timings: Mapping[int, float] | None = None,
) -> ThreadChoice:
    """The thread count for ``requested`` (``"auto"``, 0 = torch's ``default``, or a
    count), given ``cpus`` usable cores, the 1-minute ``load`` average, the threads this
    process itself keeps busy, other tasks ``running`` now, and probe ``timings``
    (seconds per step by thread count; None: no probe, e.g. a GPU run or a busy
    machine). Pure: no measurement here."""
    default = default or cpus
    requested = check_threads(requested, "threads")
    if requested != AUTO:
        count = int(requested) or default
        return ThreadChoice(requested, count, "set" if requested else "torch default")
    cap = thread_cap(cpus, load, own_threads, running, default)
    where = f"load {load:.1f}, {running:.0f} other(s) running, on {cpus} CPUs"
    if cap == 1 and default > 1:
        return ThreadChoice(AUTO, 1, f"busy machine ({where}): 1 thread")
    if not timings:
        return ThreadChoice(AUTO, cap, f"{cap} free core(s) ({where}), not probed")
    pays = threads_that_pay(timings)
    measured = ", ".join(f"{n}: {1000 * s:.2f} ms" for n, s in sorted(timings.items()))
    if pays == 1:
        reason = f"a 2nd thread does not pay for this model (step {measured})"
        return ThreadChoice(AUTO, 1, reason)
    count = min(pays, cap)
    return ThreadChoice(AUTO, count, f"{count} of {cap} free core(s) ({where}; step {measured})")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average; 0.0 where the OS has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def running_now(samples: int = 5, interval: float = 0.01) -> float:
    """Other tasks running right now (Linux ``/proc/loadavg``: runnable tasks less the
    one reading it), the median of a few samples; 0.0 where there is no such file."""
    counts = []
    for i in range(samples):
        try:
            field = Path("/proc/loadavg").read_text().split()[3]
        except (OSError, IndexError):
            return 0.0
        counts.append(max(0, int(field.split("/")[0]) - 1))
        if i < samples - 1:
            time.sleep(interval)
    return float(sorted(counts)[len(counts) // 2])


@lru_cache(maxsize=1)
def torch_default_threads() -> int:
    """What torch chose before anything changed it: OMP_NUM_THREADS, else its own default."""
    import torch

    configured = os.environ.get("OMP_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return _INITIAL_THREADS or torch.get_num_threads()


def cpu_key() -> str:
    """The CPU the timings belong to: model name, usable cores, torch version."""
    import torch

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} x{usable_cpus()} torch {torch.__version__}"


def model_key(model: Any, in_shape: tuple[int, ...], batch_size: int) -> str:
    """The model-size class: conv or dense, parameters to the nearest power of two,
    input shape and batch size (what the cost of one step depends on)."""
    from torch import nn

    parameters = sum(p.numel() for p in model.parameters())
    kind = "conv" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "dense"
    size = round(math.log2(parameters)) if parameters else 0
    return f"{kind} 2^{size} params, input {'x'.join(map(str, in_shape))}, batch {batch_size}"


def cache_path() -> Path:
    """``$CNN_LAB_CACHE_DIR/threads.json``, else the user cache folder (XDG_CACHE_HOME or
    ~/.cache; %LOCALAPPDATA% on Windows) ``/cnn_lab/threads.json``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "threads.json"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cnn_lab" / "threads.json"


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cached entries (an unreadable or older file counts as empty)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def cached_timings(path: Path, key: str) -> dict[int, float]:
    entry = read_cache(path).get(key) or {}
    steps = entry.get("seconds_per_step") or {}
    return {int(n): float(s) for n, s in steps.items()}


def write_timings(path: Path, key: str, timings: Mapping[int, float], load: float) -> None:
    """Merge ``timings`` into the cache under ``key`` (written whole and renamed into
    place, so a concurrent reader never sees half a file)."""
    entries = read_cache(path)
    steps = {**(entries.get(key) or {}).get("seconds_per_step", {})}
    steps.update({str(n): s for n, s in sorted(timings.items())})
    entries[key] = {
        "seconds_per_step": dict(sorted(steps.items(), key=lambda item: int(item[0]))),
        "load_when_measured": round(load, 2),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        json.dump({"version": CACHE_VERSION, "entries": entries}, file, indent=1, sort_keys=True)
    os.replace(file.name, path)


def probe_step_seconds(
    model: Any, in_shape: tuple[int, ...], batch_size: int, counts: list[int]
) -> dict[int, float]:
    """Seconds per training step (forward, cross-entropy, backward, SGD) of a copy of
    ``model`` on random CPU data, at each thread count in ``counts``: the best of two
    interleaved rounds of a few steps each. The caller's model, thread count and random
    state are left as they were."""
    import torch

    before = torch.get_num_threads()
    probe = copy.deepcopy(model).to("cpu").train()
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn((batch_size, *in_shape), generator=generator)
    optimizer = torch.optim.SGD(probe.parameters(), lr=1e-6)
    with torch.random.fork_rng(devices=[]):
        with torch.no_grad():  # eval: BatchNorm takes a batch of one there
            classes = probe.eval()(inputs[:1]).shape[-1]
        probe.train()
        targets = torch.randint(0, classes, (batch_size,), generator=generator)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(probe(inputs), targets).backward()
            optimizer.step()

        try:
            torch.set_num_threads(1)
            step()  # warm-up: allocations, lazy initialisation
            start = time.perf_counter()
            step()
            first = time.perf_counter() - start
            steps = max(1, min(20, int(PROBE_SECONDS / max(first, 1e-6))))
            best = {n: math.inf for n in counts}
            for _ in range(2):
                for n in counts:
                    torch.set_num_threads(n)
                    step()
                    start = time.perf_counter()
                    for _ in range(steps):
                        step()
                    best[n] = min(best[n], (time.perf_counter() - start) / steps)
        finally:
            torch.set_num_threads(before)
    return best


def use_threads(
    requested: int | str,
    model: Any = None,
    *,
    device: Any = "cpu",
    in_shape: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    cache: Path | None = None,
) -> ThreadChoice:
    """Resolve ``requested`` and apply it (``torch.set_num_threads``). With ``"auto"``
    and a CPU ``model`` (with its ``in_shape`` and ``batch_size``), the model-size class
    is probed once per machine (cached); without a model only the load decides."""
    import torch

    requested = check_threads(requested, "threads")
    cpus, load, default = usable_cpus(), load_average(), torch_default_threads()
    own = _last_threads if _last_threads is not None else 1
    running = running_now() if requested == AUTO else 0.0
    timings = None
    probing = (
        requested == AUTO
        and model is not None
        and in_shape is not None
        and batch_size is not None
        and str(torch.device(device).type) == "cpu"
    )
    if probing:
        cap = thread_cap(cpus, load, own, running, default)
        if cap > 1:
            path = cache or cache_path()
            key = f"{cpu_key()} | {model_key(model, in_shape, batch_size)}"
            counts = [1 << i for i in range(cap.bit_length()) if 1 << i <= cap]
            timings = cached_timings(path, key)
            if any(n not in timings for n in counts):
                measured = probe_step_seconds(model, in_shape, batch_size, counts)
                try:
                    write_timings(path, key, measured, load)
                except OSError as error:  # a read-only home: measure again next time
                    logger.warning("could not cache thread timings in %s: %s", path, error)
                timings = {**timings, **measured}
            timings = {n: timings[n] for n in counts}
    choice = choose_threads(
        requested,
        cpus=cpus,
        load=load,
        own_threads=own,
        running=running,
        default=default,
        timings=timings,
    )
    _apply(choice.threads)
    if probing:
        logger.info("threads: %d (%s)", choice.threads, choice.reason)
    return choice


_last_threads: int | None = None


def _apply(threads: int) -> None:
    global _last_threads
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _last_threads = threads


def _initial_threads() -> int | None:
    """torch's thread count when this module was first imported, if torch was loaded
    (nothing in cnn_lab changes it before a study's first node)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


_INITIAL_THREADS = _initial_threads()
