"""The lock file as a project input: its approved versions become per-host upgrade pins.

`read_lock` reads `patches.lock.yml` from the same `ProjectSource` as the policies (so a
rollout applies the lock of the commit it rolls out), with located errors. `locked_resources`
turns the approvals of the host's baseline, for the host's release, into `patch` resources:
the compiler installs exactly the locked version, only on a host that has the package installed
at a lower version (a lock never installs new software, never downgrades), and verify checks
"at or above the locked version". The host's release is its `debian_release` variable; without
one, the baseline's only release in the lock (several releases and no variable is an error).
Pure; imports the package's model, errors and `policy` YAML modules; never `patching` or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.model.desired import Resource, VarValue
from orchestrator.model.patchlock import LOCK_FILE, PatchLock
from orchestrator.model.policy import Patch
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource
from orchestrator.policy.validation import validate_located
from orchestrator.policy.yamlsource import LocatedYaml, parse_yaml
from orchestrator.source import SourceLocation

LOCK_ADVISORY = LOCK_FILE
"""The `advisory` of a locked pin: plans, checks and reports name the lock as its origin."""
RELEASE_VAR = "debian_release"


@dataclass(frozen=True)
class LoadedLock:
    """A valid lock and where each of its keys and values is written."""

    lock: PatchLock
    yaml: LocatedYaml


def read_lock(source: ProjectSource) -> tuple[LoadedLock | None, list[Diagnostic]]:
    """The project's lock, None when there is none, or the problems that make it unusable."""
    where = SourceLocation(LOCK_FILE)
    try:
        text = source.read_text(LOCK_FILE)
    except FileNotFoundError:
        return None, []
    except UnicodeDecodeError:
        return None, [Diagnostic(where, "not a UTF-8 text file")]
    except PathOutsideRootError as error:
        return None, [Diagnostic(where, error.message)]
    except OSError as error:
        return None, [Diagnostic(where, f"cannot read the file: {error.strerror or error}")]
    try:
        located = parse_yaml(text, LOCK_FILE, "lock")
    except ValidationError as error:
        return None, list(error.diagnostics)
    lock, problems = validate_located(PatchLock, located)
    if lock is None:
        return None, problems
    return LoadedLock(lock, located), []


def host_release(
    loaded: LoadedLock, baseline: str, host: str, variables: Mapping[str, VarValue]
) -> tuple[str | None, Diagnostic | None]:
    """Which release of the baseline's lock applies to a host, or why none can be chosen."""
    releases = sorted(loaded.lock.baselines.get(baseline, {}))
    var = variables.get(RELEASE_VAR)
    if var is not None:
        return str(var.value), None
    if len(releases) <= 1:
        return (releases[0] if releases else None), None
    where = loaded.yaml.key_location(("baselines", baseline))
    message = (
        f"baseline '{baseline}' has approvals for several releases ({', '.join(releases)}): "
        f"set the inventory variable '{RELEASE_VAR}' of host '{host}' to say which applies"
    )
    return None, Diagnostic(where, message)


def locked_resources(
    loaded: LoadedLock, baseline: str, host: str, variables: Mapping[str, VarValue]
) -> tuple[list[Resource], list[Diagnostic]]:
    """One `patch` resource per package the host's baseline approves on the host's release."""
    codename, problem = host_release(loaded, baseline, host, variables)
    if problem is not None:
        return [], [problem]
    release = loaded.lock.baselines.get(baseline, {}).get(codename or "")
    if release is None:
        return [], []
    resources: list[Resource] = []
    for package, approved in sorted(release.approved.items()):
        path = ("baselines", baseline, codename or "", "approved", package)
        spec = Patch(
            advisory=LOCK_ADVISORY,
            cves=approved.fixes,
            package=package,
            fixed=approved.version,
            description=approved.reason,
        )
        resources.append(
            Resource(
                kind="patch",
                key=f"{LOCK_ADVISORY}/{package}",
                policy=baseline,
                location=loaded.yaml.key_location(path),
                spec=spec,
                field_locations={"fixed": loaded.yaml.value_location((*path, "version"))},
            )
        )
    return resources, []
