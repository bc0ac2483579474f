"""Policy files as users write them: one YAML document per file under `policies/`.

Every string field may use `{{ var }}` (Jinja2, StrictUndefined); rendering happens at
resolution time, per host. Field descriptions here become the JSON Schema editors use.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.model.base import Frozen
from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.grammar import (
    AptUrl,
    AptWord,
    HostPath,
    PackageName,
    PolicyLine,
    PolicyLogin,
    RepoPath,
    SysctlFile,
    SysctlValue,
    UnitName,
    check_password_hash,
)
from orchestrator.openpgp import normalize_fingerprint

# Debian policy: [epoch:]upstream[-revision]; upstream starts with a digit.
DEBIAN_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
MODE = r"^0?[0-7]{3,4}$"


def check_fingerprint(value: str) -> str:
    return normalize_fingerprint(value)


def check_debian_version(value: str) -> str:
    if "{{" not in value and not DEBIAN_VERSION.match(value):
        raise ValueError(f"'{value}' is not a Debian version (like 1.0-2 or 1:2.3-1~deb12u1)")
    return value


RESOURCE_ID = r"^[a-z][a-z_]*:\S.*$"


def _check_resource_id(value: str) -> str:
    if "{{" not in value and not re.match(RESOURCE_ID, value):
        raise ValueError(f"'{value}' is not a resource id (kind:key, like package:nginx)")
    return value


ResourceId = Annotated[PolicyLine, AfterValidator(_check_resource_id)]


class ResourceSpec(Frozen):
    """What every entry of a policy section (a resource) shares."""

    after: tuple[ResourceId, ...] = Field(
        (),
        description="Resource ids (as plans show them, e.g. package:nginx, file:/etc/x, "
        "service:nginx) this resource must apply after, on every host that has it. The "
        "default order is apt sources, groups, users, directories, packages, patches, files, "
        "lines, settings, blocks, sysctls, commands, deploys, services; `after` moves a "
        "resource later than the ones it names.",
    )


def field_names(model: type[BaseModel]) -> list[str]:
    """A model's field names as people read them: a resource's own keys first, then those
    every resource shares (`after`); other models in declaration order."""
    shared = ResourceSpec.model_fields if issubclass(model, ResourceSpec) else {}
    own = [name for name in model.model_fields if name not in shared]
    return own + list(shared)


class Selector(Frozen):
    """Which hosts a policy applies to: a host matches if any listed criterion matches."""

    all: bool = Field(False, description="Apply to every host in the inventory.")
    groups: tuple[str, ...] = Field((), description="Hosts in any of these groups.")
    rings: tuple[str, ...] = Field((), description="Hosts in any of these rings.")
    hosts: tuple[str, ...] = Field((), description="These hosts by name.")

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if not (self.all or self.groups or self.rings or self.hosts):
            raise ValueError("selects no host: set all: true, or groups, rings or hosts")
        return self


class AptRepository(ResourceSpec):
    """An apt source with its signing key: a one-line `/etc/apt/sources.list.d/<name>.list`
    (`format: list`) or a deb822 `<name>.sources` (`format: sources`), and the key in a keyring
    file (`keyring:`, default `/etc/apt/keyrings/<name>.asc` for an armored key, `.gpg` for a
    binary one). The key comes from exactly one of `key` (inline), `key_file` (a file in the
    repository, armored or binary, kept as it is) or `key_url` (fetched by the controller at
    apply time and installed only if it holds `fingerprint`); or set none and name an existing
    keyring (e.g. one a package ships) in `signed_by`."""

    name: str = Field(pattern=NAME, description="File name of the source and its key.")
    url: AptUrl = Field(description="Repository URL, e.g. http://deb.example.org/debian")
    suite: AptWord = Field(description="Suite (distribution), e.g. bookworm.")
    components: tuple[AptWord, ...] = ("main",)
    key: str | None = Field(
        None, description="ASCII-armored public signing key (inline or from a variable)."
    )
    key_file: RepoPath | None = Field(
        None,
        description="Public signing key from a file in the repository, ASCII-armored or "
        "binary (`gpg --export`); copied byte for byte.",
    )
    key_url: AptUrl | None = Field(
        None,
        description="Where the controller fetches the public key at apply time (http or "
        "https); requires `fingerprint`.",
    )
    fingerprint: str | None = Field(
        None,
        description="The key's OpenPGP fingerprint (40 or 64 hex digits, spaces allowed): a "
        "fetched key, or a key file, must hold it.",
    )
    keyring: HostPath | None = Field(
        None,
        description="Where the key is written, ending in .asc (armored) or .gpg (binary), "
        "e.g. /usr/share/keyrings/example.gpg. Default /etc/apt/keyrings/<name>.asc or .gpg.",
    )
    signed_by: HostPath | None = Field(
        None,
        description="A keyring the repository does not write (e.g. one a package installs), "
        "used in `signed-by` when no key is given.",
    )
    format: Literal["list", "sources"] = Field(
        "list",
        description="`list`: one-line sources.list.d/<name>.list; `sources`: deb822 "
        "sources.list.d/<name>.sources.",
    )

    _fingerprint = field_validator("fingerprint")(
        lambda v: v if v is None or "{{" in v else check_fingerprint(v)
    )

    @field_validator("key_url")
    @classmethod
    def _fetchable(cls, value: str | None) -> str | None:
        if value is not None and "{{" not in value and not value.startswith(("http:", "https:")):
            raise ValueError(f"'{value}' is not an http or https URL (the controller fetches it)")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> AptRepository:
        given = [k for k in ("key", "key_file", "key_url") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of key, key_file or key_url (here: {', '.join(given)})")
        if not given and self.signed_by is None:
            raise ValueError(
                "set one of key, key_file or key_url (or signed_by for a keyring "
                "the repository does not manage)"
            )
        if given and self.signed_by is not None:
            raise ValueError(
                "signed_by names a keyring managed elsewhere; with a key, set "
                "keyring: to choose where it is written"
            )
        if self.key_url is not None and self.fingerprint is None:
            raise ValueError("key_url needs the key's fingerprint: set fingerprint")
        if self.keyring is not None and not self.keyring.endswith((".asc", ".gpg", "}}")):
            raise ValueError("keyring must end in .asc (armored key) or .gpg (binary key)")
        return self


class Package(ResourceSpec):
    """A Debian package: present, absent, latest, or pinned to an exact version."""

    name: PackageName
    state: Literal["present", "absent", "latest"] = "present"
    version: str | None = Field(None, description="Exact version to install (pin).")
    hold: bool = Field(False, description="apt-mark hold the package at its version.")

    _version = field_validator("version")(lambda v: v if v is None else check_debian_version(v))

    @model_validator(mode="after")
    def _coherent(self) -> Package:
        if self.version is not None and self.state != "present":
            raise ValueError(f"version is set, so state must be 'present', not '{self.state}'")
        if self.hold and self.state == "absent":
            raise ValueError("an absent package cannot be held")
        return self


class TemplateOptions(Frozen):
    """Jinja2 whitespace options for template files (unset: Jinja2's default, off)."""

    trim_blocks: bool | None = Field(
        None, description="Drop the first newline after a block tag ({% ... %})."
    )
    lstrip_blocks: bool | None = Field(
        None, description="Strip spaces and tabs before a block tag at the start of a line."
    )


class File(ResourceSpec):
    """A file with inline content, a Jinja2 template, or a file copied verbatim from the
    policy repository (`source:`, byte for byte: keys, certificates, archives)."""

    path: HostPath = Field(description="Absolute path on the host.")
    content: str | None = Field(None, description="Inline content.")
    template: RepoPath | None = Field(
        None, description="Jinja2 template, relative to the repo root."
    )
    source: RepoPath | None = Field(
        None,
        description="A file copied verbatim (never templated, any bytes), relative to the "
        "repo root.",
    )
    template_options: TemplateOptions | None = Field(
        None, description="Jinja2 options for this template (over the policy's)."
    )
    owner: PolicyLogin = "root"
    group: PolicyLogin = "root"
    mode: str = Field("0644", pattern=MODE)
    restart: tuple[UnitName, ...] = Field((), description="Services to restart when it changes.")

    @model_validator(mode="after")
    def _one_source(self) -> File:
        if [self.content, self.template, self.source].count(None) != 2:
            raise ValueError("set exactly one of content, template or source")
        if self.template_options is not None and self.template is None:
            raise ValueError("template_options apply to template: files only")
        return self


def check_regex(value: str | None) -> str | None:
    """A Python regular expression, compiled now so a typo is a located error, not a plan error."""
    if value is None or "{{" in value:
        return value
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"invalid regular expression: {error}") from None
    return value


EDIT_KEY = r"^[A-Za-z0-9_][A-Za-z0-9_.@/:-]*$"
EDIT_SECTION = r"^[^\]\[\n\r]+$"


class FileEdit(ResourceSpec):
    """What every partial edit of a file shares: the file, and what its change restarts."""

    path: HostPath = Field(description="Absolute path of the file on the host.")
    create: bool = Field(
        False, description="Create the file (root:root 0644) when missing; else a plan error."
    )
    restart: tuple[UnitName, ...] = Field((), description="Services to restart when it changes.")


class LineEdit(FileEdit):
    """One line of a file: present (replacing the lines `match` finds, else inserted) or
    absent (every line `match` finds, or equal to `line`, removed)."""

    line: PolicyLine | None = Field(None, description="The whole line (without newline).")
    match: str | None = Field(
        None, description="Python regex: lines it finds are replaced by `line` (or removed)."
    )
    state: Literal["present", "absent"] = "present"
    insert_after: str | None = Field(
        None, description="Python regex: insert after the last line it finds."
    )
    insert_before: str | None = Field(
        None, description="Python regex: insert before the first line it finds."
    )

    _regexes = field_validator("match", "insert_after", "insert_before")(check_regex)

    @model_validator(mode="after")
    def _coherent(self) -> LineEdit:
        if self.state == "present" and self.line is None:
            raise ValueError("state is 'present', so set line")
        if self.state == "absent" and self.line is None and self.match is None:
            raise ValueError("state is 'absent': set match or line (which lines to remove)")
        if self.insert_after is not None and self.insert_before is not None:
            raise ValueError("set at most one of insert_after or insert_before")
        return self


class Setting(FileEdit):
    """A key's value in a settings file: `key value` (login.defs, sshd_config), `key=value`
    (also `key = value`), or an INI file with `[section]` (systemd units and drop-ins)."""

    format: Literal["space", "equals", "ini"] = Field(
        description="space: `key value`; equals: `key=value`; ini: `key=value` in [sections]."
    )
    section: str | None = Field(
        None, pattern=EDIT_SECTION, description="INI section, e.g. Service (ini format only)."
    )
    key: str = Field(pattern=EDIT_KEY)
    # YAML reads `365` and `yes` as a number and a boolean; the loader takes them as text.
    value: Annotated[
        PolicyLine | None,
        WithJsonSchema(
            {
                "type": ["string", "integer", "number", "boolean", "null"],
                "description": "The value; required unless absent.",
            }
        ),
    ] = None
    state: Literal["present", "absent"] = "present"

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _coherent(self) -> Setting:
        if self.state == "present" and self.value is None:
            raise ValueError("state is 'present', so set value")
        if self.section is not None and self.format != "ini":
            raise ValueError(f"section is only for format 'ini', not '{self.format}'")
        return self


class Block(FileEdit):
    """Lines kept between two marker lines (`# BEGIN patchring <name>` ... `# END ...`)."""

    name: str = Field(pattern=NAME, description="Names the block in its markers.")
    content: str | None = Field(None, description="Inline content of the block.")
    template: RepoPath | None = Field(
        None, description="Jinja2 template for the content, relative to the repo root."
    )
    marker: PolicyLine = Field(
        "# {mark} patchring {name}",
        description="Marker line; {mark} becomes BEGIN and END, {name} the block's name.",
    )
    state: Literal["present", "absent"] = "present"
    insert_after: str | None = Field(
        None, description="Python regex: insert after the last line it finds."
    )
    insert_before: str | None = Field(
        None, description="Python regex: insert before the first line it finds."
    )

    _regexes = field_validator("insert_after", "insert_before")(check_regex)

    @model_validator(mode="after")
    def _coherent(self) -> Block:
        if "{mark}" not in self.marker:
            raise ValueError("marker must contain {mark} (BEGIN and END tell the markers apart)")
        if self.state == "present" and (self.content is None) == (self.template is None):
            raise ValueError("set exactly one of content or template")
        if self.insert_after is not None and self.insert_before is not None:
            raise ValueError("set at most one of insert_after or insert_before")
        return self


class Directory(ResourceSpec):
    path: HostPath
    owner: PolicyLogin = "root"
    group: PolicyLogin = "root"
    mode: str = Field("0755", pattern=MODE)


class Service(ResourceSpec):
    """A systemd service."""

    name: UnitName
    running: bool = True
    enabled: bool = True


class Sysctl(ResourceSpec):
    """A kernel parameter, set now and persisted in /etc/sysctl.d/: one line `key = value` in
    its file, changed in place when the value changes."""

    key: str = Field(pattern=r"^[a-z0-9_]+(\.[A-Za-z0-9_*-]+)+$")
    # YAML reads `value: 0` as a number; it is taken as its text, so the schema allows both.
    value: Annotated[SysctlValue, WithJsonSchema({"type": ["string", "number"]})]
    file: SysctlFile | None = Field(
        None,
        description="Where the value is persisted: a file of /etc/sysctl.d/ ending in .conf. "
        "Default: the policy's sysctl_file, else /etc/sysctl.d/90-patchring.conf.",
    )

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class Group(ResourceSpec):
    """A local group (groupadd/groupmod); groups are created before the users that need them."""

    name: PolicyLogin
    present: bool = True
    gid: int | None = Field(None, ge=0, le=4294967294, description="Group id; changed in place.")
    system: bool = Field(False, description="Create it as a system group (groupadd -r).")


class User(ResourceSpec):
    """A local user (useradd/usermod)."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    present: bool = True
    uid: int | None = Field(None, ge=0, le=4294967294, description="User id; changed in place.")
    group: PolicyLogin | None = Field(
        None, description="Primary group; declare it under groups: to fix its gid."
    )
    groups: tuple[PolicyLogin, ...] = Field((), description="Supplementary groups.")
    groups_mode: Literal["append", "exact"] = Field(
        "append",
        description="append: add the user to groups, keep other memberships; exact: the user's "
        "supplementary groups are exactly groups (removed from any other).",
    )
    home: HostPath | None = None
    shell: HostPath | None = None
    system: bool = False
    create_home: bool | None = Field(
        None,
        description="Create the home directory (from /etc/skel) and keep it present. Default: "
        "true for a normal user, false for a system user (as Debian's adduser does).",
    )
    password: str | None = Field(
        None,
        description="crypt(3) hash for /etc/shadow ($y$, $6$ or $5$), from a variable "
        "('{{ deploy_password_hash }}', which is then secret and masked everywhere), or '!' / "
        "'*' for a locked account.",
    )

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        rendered = bool((info.context or {}).get("rendered"))
        if not rendered and ("{{" in value or "{%" in value):
            return value
        if not rendered and value.startswith("$"):
            raise ValueError(
                "a password hash must come from a secret variable, not the policy text: "
                "set it in the inventory (e.g. under secret_vars) and write "
                "password: '{{ name_of_the_variable }}'"
            )
        return check_password_hash(value)

    @property
    def makes_home(self) -> bool:
        """Whether the home directory is created and kept (see `create_home`)."""
        return self.create_home if self.create_home is not None else not self.system


class Command(ResourceSpec):
    """An escape hatch: a shell command that states how it is idempotent."""

    name: PolicyLine
    run: str
    creates: HostPath | None = Field(None, description="Skip when this path exists.")
    unless: str | None = Field(None, description="Skip when this command exits 0.")

    @model_validator(mode="after")
    def _idempotent(self) -> Command:
        if self.creates is None and self.unless is None:
            raise ValueError("a command must say how it is idempotent: set creates or unless")
        return self


class Patch(ResourceSpec):
    """A security advisory: hosts below the fixed version are upgraded to it."""

    advisory: PolicyLine = Field(description="Advisory id, e.g. DSA-5678-1.")
    cves: tuple[PolicyLine, ...] = ()
    package: PackageName
    fixed: str = Field(description="First fixed version (Debian ordering).")
    description: str = ""

    _fixed = field_validator("fixed")(check_debian_version)


class Deploy(ResourceSpec):
    """Call a pyinfra deploy from the `deploys` package with arguments."""

    name: PolicyLine
    use: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:function inside the deploys package, e.g. motd:configure_motd",
    )
    args: dict[str, Any] = {}


class PolicyDocument(Frozen):
    """One policy file."""

    name: str = Field(pattern=NAME)
    description: str = ""
    select: Selector
    vars: dict[str, Any] = Field({}, description="Defaults; the inventory overrides them.")
    apt_repositories: tuple[AptRepository, ...] = ()
    packages: tuple[Package, ...] = ()
    files: tuple[File, ...] = ()
    lines: tuple[LineEdit, ...] = Field((), description="Lines of files a package owns.")
    settings: tuple[Setting, ...] = Field((), description="Key/value settings inside files.")
    blocks: tuple[Block, ...] = Field((), description="Managed blocks between marker lines.")
    directories: tuple[Directory, ...] = ()
    services: tuple[Service, ...] = ()
    sysctl: tuple[Sysctl, ...] = ()
    sysctl_file: SysctlFile | None = Field(
        None,
        description="Where this policy's sysctl entries are persisted unless an entry sets "
        "file: (default /etc/sysctl.d/90-patchring.conf).",
    )
    groups: tuple[Group, ...] = ()
    users: tuple[User, ...] = ()
    commands: tuple[Command, ...] = ()
    patches: tuple[Patch, ...] = ()
    deploy: tuple[Deploy, ...] = ()
    patch_baseline: PatchBaseline | None = Field(
        None,
        description="Which pending updates `patchring patches lock` approves for the hosts this "
        "policy selects; rollouts then install exactly the locked versions.",
    )
    checks: tuple[RepoPath, ...] = Field(
        (),
        description="Your own pytest-testinfra test files (repository-relative paths, e.g. "
        "checks/test_agent.py), run by `verify` against the hosts this policy selects.",
    )
    template_options: TemplateOptions | None = Field(
        None, description="Jinja2 options for every template file of this policy."
    )
