"""Security tracker JSON: the compact index, release filtering, urgency normalisation, and
malformed input reported at file:line:col or at its JSON path, never as a traceback."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import ValidationError
from orchestrator.model.patching import Urgency
from orchestrator.patching.tracker import normalise_urgency, parse_tracker
from tests.unit.patching_samples import release, tracker_json

DATA = tracker_json(
    {
        "openssl": {
            "CVE-2026-0001": {
                "bookworm": release(
                    "resolved",
                    "3.0.21-1~deb12u1",
                    "high",
                    repositories={
                        "bookworm": "3.0.20-1~deb12u2",
                        "bookworm-security": "3.0.21-1~deb12u1",
                    },
                ),
                "trixie": release("resolved", "0", "unimportant"),
                "sid": release("resolved", "3.5.0-1", "high"),
            },
            "TEMP-0000000-ABCDEF": {
                "bookworm": release(
                    "open", urgency="low**", nodsa="Minor issue", nodsa_reason="postponed"
                )
            },
        },
        "bash": {"CVE-2026-0002": {"bookworm": release("undetermined", urgency=None)}},
    }
)


def test_index_by_source_cve_and_release() -> None:
    tracker = parse_tracker(DATA, "tracker.json")
    assert tracker.releases == {"bookworm", "trixie", "sid"}
    assert tracker.cve_count == 3
    entries = dict(tracker.entries("openssl", "bookworm"))
    assert set(entries) == {"CVE-2026-0001", "TEMP-0000000-ABCDEF"}
    fixed = entries["CVE-2026-0001"]
    assert (fixed.status, fixed.fixed_version, fixed.urgency) == (
        "resolved",
        "3.0.21-1~deb12u1",
        Urgency.HIGH,
    )
    temp = entries["TEMP-0000000-ABCDEF"]
    assert (temp.urgency, temp.nvd_derived, temp.nodsa, temp.nodsa_reason) == (
        Urgency.LOW,
        True,
        "Minor issue",
        "postponed",
    )
    assert dict(tracker.entries("openssl", "trixie"))["CVE-2026-0001"].not_affected
    missing = dict(tracker.entries("bash", "bookworm"))["CVE-2026-0002"]
    assert missing.urgency is Urgency.NOT_YET_ASSIGNED  # an omitted urgency is not yet assigned
    assert list(tracker.entries("nginx", "bookworm")) == []


def test_release_filter_keeps_only_what_is_needed() -> None:
    tracker = parse_tracker(DATA.encode(), releases=("bookworm",))
    assert tracker.releases == {"bookworm", "trixie", "sid"}  # what the data knows
    assert list(tracker.entries("openssl", "sid")) == []
    assert tracker.cve_count == 3
    trixie_only = parse_tracker(DATA, releases=("trixie",))
    assert list(trixie_only.sources) == ["openssl"]  # sources without trixie data are dropped


def test_identical_statuses_are_shared() -> None:
    data = tracker_json(
        {f"pkg{i}": {f"CVE-2026-{i:04d}": {"bookworm": release("open")}} for i in range(50)}
    )
    tracker = parse_tracker(data)
    statuses = {
        id(status)
        for source in tracker.sources
        for _, status in tracker.entries(source, "bookworm")
    }
    assert len(statuses) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("low", (Urgency.LOW, False)),
        ("low**", (Urgency.LOW, True)),
        ("medium**", (Urgency.MEDIUM, True)),
        ("high**", (Urgency.HIGH, True)),
        ("not yet assigned", (Urgency.NOT_YET_ASSIGNED, False)),
        ("end-of-life", (Urgency.END_OF_LIFE, False)),
        ("critical", None),
    ],
)
def test_urgency_normalisation(text: str, expected: tuple[Urgency, bool] | None) -> None:
    assert normalise_urgency(text) == expected


def test_urgency_order() -> None:
    ordered = [Urgency.UNIMPORTANT, Urgency.LOW, Urgency.MEDIUM, Urgency.HIGH]
    assert [u.rank for u in ordered] == sorted(u.rank for u in ordered)
    assert len({u.rank for u in ordered}) == 4
    assert Urgency.NOT_YET_ASSIGNED.rank == Urgency.HIGH.rank  # unassessed never hides
    assert Urgency.END_OF_LIFE.rank == Urgency.UNIMPORTANT.rank


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_tracker(text, "cache/tracker.json")
    return [str(d) for d in caught.value.diagnostics]


def test_syntax_errors_are_located() -> None:
    assert problems('{"openssl": {\n  "CVE-1": {"releases": }\n}') == [
        "cache/tracker.json:2:25: error: invalid JSON: Expecting value"
    ]
    assert problems(b"\xff\xfe{") == ["cache/tracker.json: error: not UTF-8 JSON"]
    assert problems("") == ["cache/tracker.json:1:1: error: invalid JSON: Expecting value"]
    assert problems("[" * 100_000 + "]" * 100_000) == [
        "cache/tracker.json: error: JSON nested too deeply"
    ]


def test_shape_errors_name_their_json_path() -> None:
    bad = {
        "openssl": {
            "CVE-2026-1": {"releases": {"bookworm": {"status": "fixed"}}},
            "CVE-2026-2": {
                "releases": {"bookworm": {"status": "resolved", "fixed_version": "not a version"}}
            },
            "CVE-2026-3": {"releases": {"bookworm": {"status": "open", "urgency": "critical"}}},
            "CVE-2026-4": {"releases": {"bookworm": {"urgency": "low"}}},
            "CVE-2026-5": {"description": "no releases"},
            "CVE-2026-6": {"releases": {"bookworm": {"status": 3}}},
            "CVE-2026-7": {"releases": {"bookworm": {"status": "open", "nodsa": 1}}},
            "CVE-2026-8": {"releases": ["bookworm"]},
        },
        "lib odd name": [],
    }
    assert problems(json.dumps(bad)) == [
        "cache/tracker.json: error: $.openssl.CVE-2026-1.releases.bookworm.status: unknown "
        "status 'fixed' (expected resolved, open, undetermined)",
        "cache/tracker.json: error: $.openssl.CVE-2026-2.releases.bookworm.fixed_version: "
        "'not a version' is not a Debian version",
        "cache/tracker.json: error: $.openssl.CVE-2026-3.releases.bookworm.urgency: unknown "
        "urgency 'critical' (expected unimportant, low, medium, high, not yet assigned, "
        "end-of-life)",
        "cache/tracker.json: error: $.openssl.CVE-2026-4.releases.bookworm.status: missing",
        "cache/tracker.json: error: $.openssl.CVE-2026-5: expected a CVE object with "
        "'releases', got an object without 'releases'",
        "cache/tracker.json: error: $.openssl.CVE-2026-6.releases.bookworm.status: expected "
        "a string",
        "cache/tracker.json: error: $.openssl.CVE-2026-7.releases.bookworm.nodsa: expected a "
        "string, got int",
        "cache/tracker.json: error: $.openssl.CVE-2026-8.releases: expected an object, got an "
        "array",
        'cache/tracker.json: error: $["lib odd name"]: expected an object of CVEs, got an array',
    ]
    assert problems("[]") == [
        "cache/tracker.json: error: $: expected an object of source packages, got an array"
    ]


def test_problems_are_capped() -> None:
    bad = {f"pkg{i:03d}": "nonsense" for i in range(30)}
    found = problems(json.dumps(bad))
    assert len(found) == 21
    assert found[-1] == "cache/tracker.json: error: ... and 10 more problems"


def test_mutated_tracker_data_gives_a_result_or_located_errors_only() -> None:
    import random

    rng = random.Random(4)
    outcomes = set()
    for _ in range(300):
        chars = list(DATA)
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(len(chars))
            chars[index] = rng.choice(['"', "{", "}", "[", "1", "null", ",", ":", "", "x"])
        try:
            parse_tracker("".join(chars), "t.json")
            outcomes.add("parsed")
        except ValidationError as error:
            assert all(str(d).startswith("t.json") for d in error.diagnostics)
            outcomes.add("rejected")
    assert outcomes == {"parsed", "rejected"}
