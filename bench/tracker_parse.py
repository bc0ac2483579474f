"""Benchmark: parsing a Debian Security Tracker JSON file of realistic size.

Run: `.venv/bin/python -m bench.tracker_parse [--entries 95000]`. Generates a synthetic file in
the tracker's exact format (source -> CVE -> releases, with descriptions, scopes, bug numbers,
repositories, NVD-derived urgencies, `<not-affected>` and `<unfixed>` entries) in a temporary
folder, then measures `parse_tracker` wall time and peak memory (tracemalloc, in a separate run
since tracing slows parsing), with and without a release filter, beside a plain `json.loads`.
Prints figures; asserts nothing. Offline: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.patching.tracker import parse_tracker

RELEASES = ("bullseye", "bookworm", "trixie", "forky", "sid")
URGENCIES = ("low", "medium", "high", "unimportant", "not yet assigned", "low**", "medium**")
BIG_SOURCES = {"linux": 0.13, "chromium": 0.04, "firefox-esr": 0.025, "imagemagick": 0.01}


def _release(rng: random.Random, name: str, version: str) -> dict[str, Any]:
    roll = rng.random()
    entry: dict[str, Any] = {"repositories": {name: version}, "urgency": rng.choice(URGENCIES)}
    if name in ("bullseye", "bookworm", "trixie"):
        entry["repositories"][f"{name}-security"] = version + "+deb1u1"
    if roll < 0.70:
        entry.update(status="resolved", fixed_version=version + "+deb12u" + str(rng.randint(1, 9)))
    elif roll < 0.80:
        entry.update(status="resolved", fixed_version="0")
    elif roll < 0.95:
        entry.update(status="open")
        if rng.random() < 0.5:
            entry["nodsa"] = "Minor issue"
            entry["nodsa_reason"] = rng.choice(["ignored", "postponed"])
    else:
        entry.update(status="undetermined")
    return entry


def synthetic_tracker(entries: int, seed: int = 1) -> dict[str, Any]:
    """A tracker document with about `entries` (source, CVE) pairs over ~1,500 sources."""
    rng = random.Random(seed)
    data: dict[str, Any] = {}
    weights = dict(BIG_SOURCES)
    small = [f"pkg{index:04d}" for index in range(1500)]
    rest = (1 - sum(weights.values())) / len(small)
    weights.update({name: rest for name in small})
    words = [
        "buffer",
        "overflow",
        "in",
        "the",
        "parser",
        "allows",
        "remote",
        "attackers",
        "to",
        "cause",
        "a",
        "denial",
    ]
    for source, share in weights.items():
        version = (
            f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}"
        )
        cves: dict[str, Any] = {}
        for _ in range(max(1, int(entries * share))):
            cve = f"CVE-{rng.randint(2005, 2026)}-{rng.randint(1000, 99999)}"
            cves[cve] = {
                "description": " ".join(rng.choices(words, k=rng.randint(25, 45))),
                "scope": rng.choice(["remote", "local"]),
                "debianbug": rng.randint(100000, 1100000),
                "releases": {name: _release(rng, name, version) for name in RELEASES},
            }
        data[source] = cves
    return data


def _timed(action: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _peak_mib(action: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    kept = action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del kept
    return peak / 2**20


def _retained_mib(action: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    kept = action()
    gc.collect()
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return current / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=95_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tracker.json"
        path.write_text(json.dumps(synthetic_tracker(args.entries)), encoding="utf-8")
        raw = path.read_bytes()
    tracker = parse_tracker(raw)
    print(
        f"file: {len(raw) / 2**20:.1f} MiB, {len(tracker.sources)} sources, "
        f"{tracker.cve_count} (source, CVE) entries"
    )
    cases: dict[str, Callable[[], Any]] = {
        "json.loads (reference)": lambda: json.loads(raw),
        "parse_tracker, all releases": lambda: parse_tracker(raw),
        "parse_tracker, bookworm+trixie": lambda: parse_tracker(
            raw, releases=("bookworm", "trixie")
        ),
    }
    for name, action in cases.items():
        seconds = min(_timed(action) for _ in range(3))
        print(
            f"{name:34} {seconds:6.2f} s   peak {_peak_mib(action):6.0f} MiB   "
            f"kept {_retained_mib(action):6.0f} MiB"
        )


if __name__ == "__main__":
    main()
