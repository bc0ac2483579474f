"""Origins-Pattern parsing and matching (unattended-upgrades semantics), security classification,
and the inventory's `patching:` model with located errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticError

from orchestrator.model.patching import (
    AptOrigin,
    PatchingSettings,
    PendingUpdate,
    parse_origin_pattern,
)
from orchestrator.patching.origins import (
    classify_update,
    matches_origin,
    security_patterns,
    substitute,
)
from orchestrator.policy.validation import validate_located
from orchestrator.policy.yamlsource import parse_yaml
from tests.unit.patching_samples import POINT as MAIN
from tests.unit.patching_samples import SECURITY

LAB = AptOrigin(origin="Lab, Inc.", label="lab", archive="lab-security", component="main")


@pytest.mark.parametrize(
    ("pattern", "origin", "expected"),
    [
        ("l=Debian-Security", SECURITY, True),
        ("l=Debian-Security", MAIN, False),
        ("label=debian-security", SECURITY, False),  # case-sensitive
        ("origin=Debian,codename=bookworm-security,label=Debian-Security", SECURITY, True),
        ("o=Debian,n=bookworm-security", MAIN, False),  # every term must match
        ("a=*-security", SECURITY, True),
        ("suite=oldstable-security", SECURITY, True),
        ("archive=oldstable*", MAIN, True),
        ("c=main,site=deb.debian.org", MAIN, True),
        ("component=contrib", MAIN, False),
        ("n=bookworm-?ecurity", SECURITY, True),
        ("o=Lab\\, Inc.", LAB, True),  # \, is a literal comma
        ("o=Lab", LAB, False),
        ("", SECURITY, False),  # empty matches nothing
        ("   ", SECURITY, False),
        ("l=*", AptOrigin(archive="now"), False),  # the dpkg status origin never matches
        ("site=*", AptOrigin(), True),  # unreported fields are empty strings
    ],
)
def test_origin_pattern_matching(pattern: str, origin: AptOrigin, expected: bool) -> None:
    assert matches_origin(parse_origin_pattern(pattern), origin) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("x=Debian", "unknown key 'x'"),
        ("origin=Debian,release=12", "unknown key 'release'"),
        ("Debian-Security", "'Debian-Security' is not key=value"),
    ],
)
def test_bad_patterns_are_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_origin_pattern(pattern)


def test_distro_substitution() -> None:
    pattern = parse_origin_pattern("origin=${distro_id},codename=${distro_codename}-security")
    filled = substitute(pattern, "bookworm")
    assert filled.terms == (("origin", "Debian"), ("codename", "bookworm-security"))
    assert matches_origin(filled, SECURITY)
    assert not matches_origin(substitute(pattern, "trixie"), SECURITY)


def _update(*origins: AptOrigin) -> PendingUpdate:
    return PendingUpdate(
        package="telnet",
        installed_version="1.0",
        candidate_version="1.1",
        architecture="all",
        origins=origins,
    )


def test_classification_default_and_configured() -> None:
    default = security_patterns(PatchingSettings(), "bookworm")
    assert classify_update(_update(MAIN, SECURITY), default) == "security"  # any origin
    assert classify_update(_update(MAIN), default) == "other"
    assert classify_update(_update(), default) == "other"
    lab = security_patterns(PatchingSettings(security_origins=("a=lab-security",)), "bookworm")
    assert classify_update(_update(LAB), lab) == "security"
    assert classify_update(_update(SECURITY), lab) == "other"
    nothing = security_patterns(PatchingSettings(security_origins=()), "bookworm")
    assert classify_update(_update(SECURITY), nothing) == "other"


def test_settings_reject_unknown_keys_with_a_located_error() -> None:
    text = "security_origins:\n  - l=Debian-Security\n  - colour=blue\n"
    located = parse_yaml(text, "inventory/patching.yml", "inventory")
    settings, problems = validate_located(PatchingSettings, located)
    assert settings is None
    assert [str(p) for p in problems] == [
        "inventory/patching.yml:3:5: error: origin pattern 'colour=blue': unknown key 'colour' "
        "(allowed: a, archive, c, codename, component, l, label, n, o, origin, site, suite)"
    ]
    with pytest.raises(PydanticError):
        PatchingSettings(security_origins=("l=Debian-Security",), unknown=1)  # type: ignore[call-arg]
