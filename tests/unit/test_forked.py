"""Resolving in forked workers (`validate` on a large fleet) finds what one process finds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.policy import project as project_module
from orchestrator.policy.forked import WorkerFailedError, in_workers, slices

HOSTS = 9


def _project(tmp_path: Path, broken_on: Sequence[int] = ()) -> WorktreeSource:
    hosts = "\n".join(
        f"  h{n:02d}: {{address: 10.0.0.{n}, ring: {'canary' if n < 3 else 'broad'}, "
        f"groups: [web], vars: {{serial: {n}{', bad: true' if n in broken_on else ''}}}}}"
        for n in range(1, HOSTS + 1)
    )
    files = {
        "inventory/hosts.yml": f"rings: [{{name: canary}}, {{name: broad}}]\nhosts:\n{hosts}\n",
        "policies/app.yml": (
            "name: app\nselect: {all: true}\npackages:\n  - name: app\n"
            "files:\n  - path: /etc/app.conf\n    template: templates/app.j2\n"
            "  - path: /etc/id\n    content: '{{ serial }}'\n"
        ),
        "templates/app.j2": (
            "{% if bad is defined %}{{ missing }}{% endif %}host={{ host.name }}\n"
        ),
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def test_slices_are_contiguous_near_equal_and_cover_every_name() -> None:
    names = [str(n) for n in range(10)]
    assert [list(s) for s in slices(names, 3)] == [names[:4], names[4:7], names[7:]]
    assert slices(names[:2], 5) == [["0"], ["1"]]
    assert slices(names, 1) == [names]


def test_results_come_back_in_slice_order_from_other_processes() -> None:
    results = in_workers(lambda part: (os.getpid(), list(part)), list("abcdefg"), 3)
    assert [names for _, names in results] == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    pids = {pid for pid, _ in results}
    assert len(pids) == 3 and os.getpid() in pids


def test_a_failing_worker_is_raised_in_the_parent() -> None:
    def work(part: Sequence[str]) -> int:
        if "z" in part:
            raise KeyError("z")
        return len(part)

    with pytest.raises(WorkerFailedError, match="KeyError"):
        in_workers(work, list("abcz"), 2)


@pytest.mark.parametrize("broken_on", [(), (2,), (7, 8), (1, 9)])
def test_counts_and_problems_match_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken_on: tuple[int, ...]
) -> None:
    source = _project(tmp_path, broken_on)

    def outcome(workers: int) -> object:
        monkeypatch.setattr(project_module, "workers_for", lambda hosts: workers)
        try:
            project = load_project(source, counts_only=True)
        except ValidationError as error:
            return [str(d) for d in error.diagnostics]
        return dict(project.resource_counts or {}), project.desired

    alone = outcome(1)
    assert outcome(3) == alone
    if broken_on:  # the first broken host in inventory order is the one named
        assert isinstance(alone, list) and f"(host h{broken_on[0]:02d})" in alone[0]
    else:
        full = load_project(source).desired
        assert alone == ({h: len(s.resources) for h, s in full.items()}, {})
