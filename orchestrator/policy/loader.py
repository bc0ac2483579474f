"""Load every policy file of a project and validate it, collecting every problem in every file.

Reads `policies/**/*.yml|yaml` through a `ProjectSource`, parses each with locations, validates it
against `PolicyDocument`, reads the testinfra files its `checks:` names (a missing one is an error
at its entry), and checks what spans files (a policy name used twice). Returns the loaded policies
in file order, keeping each file's locations for resolution and `explain`.
Imports only the package's model, errors, source and `policy` modules; never the CLI or pyinfra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.model.desired import DeployModule, UserCheckFile
from orchestrator.model.policy import PolicyDocument
from orchestrator.policy.deploys import load_deploys
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource, check_relative
from orchestrator.policy.salvage import salvage_policy
from orchestrator.policy.secretvars import misplaced_secrets, source_references
from orchestrator.policy.validation import check_var_names, validate_located
from orchestrator.policy.yamlsource import LocatedYaml, parse_yaml
from orchestrator.source import SourceLocation

POLICY_FOLDER = "policies"


@dataclass(frozen=True)
class LoadedPolicy:
    """One policy file: its document and the location of every key and value in it."""

    file: str
    document: PolicyDocument
    yaml: LocatedYaml
    checks: tuple[UserCheckFile, ...] = ()
    dropped: tuple[tuple[str, Any], ...] = ()
    """Invalid entries left out, as (section, raw entry); a file with any is reported invalid."""
    deploys: tuple[DeployModule | None, ...] = ()
    """Per `deploy:` entry, its module when it comes from the policy repository."""

    @property
    def name(self) -> str:
        return self.document.name


def read_located(
    source: ProjectSource, path: str, what: str, label: str | None = None
) -> tuple[LocatedYaml | None, list[Diagnostic]]:
    """Read and parse one YAML file, located as `label` (default: `path`); unreadable files
    become diagnostics at the file."""
    label = label or path
    try:
        return parse_yaml(source.read_text(path), label, what, source_references(source)), []
    except ValidationError as error:
        return None, list(error.diagnostics)
    except UnicodeDecodeError:
        return None, [Diagnostic(SourceLocation(label), "not a UTF-8 text file")]
    except FileNotFoundError:
        return None, [Diagnostic(SourceLocation(label), "file not found")]
    except PathOutsideRootError as error:
        return None, [Diagnostic(SourceLocation(label), error.message)]
    except OSError as error:
        return None, [Diagnostic(SourceLocation(label), f"cannot read the file: {error.strerror}")]


def load_policy_file(
    source: ProjectSource, path: str
) -> tuple[LoadedPolicy | None, list[Diagnostic]]:
    """Parse and validate one policy file: the policy (with only its valid entries when it has
    invalid ones, so resolution still finds the errors beyond them) and every problem."""
    located, problems = read_located(source, path, "policy")
    if located is None:
        return None, problems
    document, problems = validate_located(PolicyDocument, located)
    problems += check_var_names(located, ("vars",), located.mapping_at(("vars",)))
    problems += misplaced_secrets(located, [("vars",)])
    dropped: tuple[tuple[str, Any], ...] = ()
    if document is None:
        # Invalid, but its valid entries still go on to resolution: every error in one run.
        document, located, dropped = salvage_policy(located)
    if document is None:
        return None, problems
    checks: list[UserCheckFile] = []
    for index, name in enumerate(document.checks):
        where = located.value_location(("checks", index))
        check, problem = read_check_file(source, name, document.name, where)
        problems += [Diagnostic(where, problem)] if problem else []
        checks += [check] if check else []
    deploys, found = load_deploys(source, document, located)
    problems += found
    return LoadedPolicy(path, document, located, tuple(checks), dropped, deploys), problems


def read_check_file(
    source: ProjectSource, path: str, policy: str, where: SourceLocation
) -> tuple[UserCheckFile | None, str | None]:
    """A policy's `checks:` entry with its content, or the reason it cannot be used."""
    if not path.endswith(".py"):
        return None, f"check file '{path}' is not a Python file (a pytest-testinfra test file)"
    try:
        clean = check_relative(path).as_posix()
        content = source.read_text(clean)
    except (FileNotFoundError, IsADirectoryError):
        return None, f"check file '{path}' not found"
    except PathOutsideRootError as error:
        return None, f"check file {error.message}"
    except UnicodeDecodeError:
        return None, f"check file '{path}' is not a UTF-8 text file"
    except OSError as error:
        return None, f"cannot read check file '{path}': {error.strerror}"
    return UserCheckFile(path=clean, policy=policy, location=where, content=content), None


def _duplicate_names(policies: list[LoadedPolicy]) -> list[Diagnostic]:
    first: dict[str, LoadedPolicy] = {}
    found: list[Diagnostic] = []
    for policy in policies:
        earlier = first.setdefault(policy.name, policy)
        if earlier is not policy:
            where = policy.yaml.value_location(("name",))
            message = (
                f"duplicate policy name '{policy.name}' "
                f"(first used at {earlier.yaml.value_location(('name',))})"
            )
            found.append(Diagnostic(where, message))
    return found


def collect_policies(
    source: ProjectSource, folder: str = POLICY_FOLDER
) -> tuple[tuple[LoadedPolicy, ...], list[Diagnostic]]:
    """Every policy that can be resolved, in file order, and every problem found in any file
    (a policy with problems is listed too when its valid parts could be kept)."""
    policies: list[LoadedPolicy] = []
    problems: list[Diagnostic] = []
    for path in source.list_files(folder):
        policy, found = load_policy_file(source, path)
        problems.extend(found)
        if policy is not None:
            policies.append(policy)
    problems.extend(_duplicate_names(policies))
    return tuple(policies), problems


def load_policies(source: ProjectSource, folder: str = POLICY_FOLDER) -> tuple[LoadedPolicy, ...]:
    """Every policy in file order; raises one ValidationError listing every problem."""
    policies, problems = collect_policies(source, folder)
    if problems:
        raise ValidationError(problems)
    return policies
