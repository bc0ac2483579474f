"""What a value that reaches a shell, an ssh_config or a file on a host may look like.

Each check takes a string and returns it unchanged or raises `ValueError` in plain words, so the
loaders report it at the value's `file:line:col`. The grammars are narrow on purpose: an address
is an IP address or a DNS name, a user or unit name matches its own grammar, a path is absolute
and normal, and none of them can hold a newline, a NUL, shell metacharacters or a leading `-`
(option injection). Quoting at each destination stays the second line of defence, not the only
one. Policy strings may be `{{ templates }}`: such a value is checked once rendered, for the host
(the resolver validates rendered resources with the context `{"rendered": True}`).
Imports only the standard library and pydantic; no I/O.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import urllib.parse
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo

MAX_PATH = 4096
MAX_NAME = 253

_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*")
_UNIT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]*")
_PATH_CHARS = re.compile(r"[A-Za-z0-9/._+@%,:=~-]*")
_APT_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+~/-]*")
_SYSCTL_VALUE = re.compile(r"[A-Za-z0-9 \t._+,:=/%|@-]*")


def shown(value: str, limit: int = 80) -> str:
    """`value` fit for a one-line message: control characters escaped (a newline reads `\\n`),
    cut after `limit` characters."""
    text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in value[:limit])
    return text + ("..." if len(value) > limit else "")


def _control(value: str) -> str | None:
    """Why `value` cannot stand on one line, or None: a newline, NUL or other control char."""
    for char in value:
        if char == "\n":
            return "contains a newline"
        if char == "\0":
            return "contains a NUL character"
        if not char.isprintable() and char not in " \t":
            return f"contains the control character {repr(char)[1:-1]}"
    return None


def _fail(value: str, reason: str) -> ValueError:
    return ValueError(f"'{shown(value)}' {reason}")


def check_line(value: str) -> str:
    """One line of text (names and titles in records): no newline, NUL or control character."""
    problem = _control(value)
    if problem:
        raise _fail(value, problem)
    return value


def check_address(value: str) -> str:
    """An IP address (v4, or v6 without a zone) or an RFC 1123 DNS name."""
    problem = _control(value)
    if problem:
        raise _fail(value, f"is not an IP address or a DNS name: it {problem}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise _fail(value, "is an IPv6 address with a zone; zones are not supported")
    if address is not None:
        return value
    labels = value.split(".")
    if (
        len(value) > MAX_NAME
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise _fail(value, "is not an IP address or a DNS name (like 10.0.0.5 or web1.example.org)")
    return value


def check_label(value: str) -> str:
    """A host, group or ring name: letters, digits, `_ . -`, starting with a letter or digit,
    no `..` (ring names become Git ref names)."""
    if (
        len(value) > MAX_NAME
        or not _LABEL.fullmatch(value)
        or ".." in value
        or value.endswith(".lock")
    ):
        raise _fail(
            value,
            "is not a valid name (letters, digits, _ . -; starting with a letter or digit)",
        )
    return value


def check_login(value: str) -> str:
    """A POSIX user or group name: letters, digits, `_ . -`, not starting with `-` or a digit,
    at most 32 characters."""
    if not _LOGIN.fullmatch(value):
        raise _fail(
            value,
            "is not a valid user or group name (letters, digits, _ . -; starting with a letter "
            "or _; at most 32 characters)",
        )
    return value


def check_package(value: str) -> str:
    """A Debian package name: lowercase letters, digits, `+ . -`, starting with a letter or
    digit (Debian policy 5.6.1, which also asks for two characters; one is let through)."""
    if not _DEBIAN_PACKAGE.fullmatch(value):
        raise _fail(
            value,
            "is not a Debian package name (lowercase letters, digits, + . -; starting with a "
            "letter or digit)",
        )
    return value


def check_unit(value: str) -> str:
    """A systemd unit name (with or without its `.service` suffix); template units
    (`getty@tty1`) are allowed."""
    if len(value) > 255 or not _UNIT.fullmatch(value):
        raise _fail(value, "is not a systemd unit name (letters, digits, _ . : @ -)")
    return value


def check_host_path(value: str, allow_root: bool = False) -> str:
    """An absolute, normal path on a host: no `..`, `.` or `//`, no trailing `/`, no space,
    quote, `;`, `$`, backtick or control character; not `/` itself unless `allow_root`."""
    problem = _control(value)
    if problem:
        raise _fail(value, problem)
    if not value.startswith("/"):
        raise _fail(value, "is not an absolute path")
    if len(value) > MAX_PATH:
        raise _fail(value, f"is longer than {MAX_PATH} characters")
    if value == "/" and not allow_root:
        raise _fail(value, "is the root directory itself; name a file or directory below it")
    if posixpath.normpath(value) != value or value.startswith("//"):
        raise _fail(value, "is not a normal path (no '..', '.', '//' or trailing '/')")
    if not _PATH_CHARS.fullmatch(value):
        raise _fail(
            value,
            "contains a character not allowed in a path (letters, digits, / . _ + @ % , : = ~ -)",
        )
    return value


def check_local_path(value: str) -> str:
    """A path on the controller (an ssh key, a known_hosts file), relative or absolute: the
    characters of `check_host_path`, so no `${` (OpenSSH expands it and has no escape), no
    quote, space or `;`, and no leading `-`."""
    problem = _control(value)
    if problem:
        raise _fail(value, problem)
    if not value or value.startswith("-"):
        raise _fail(value, "is not a path (empty, or starting with '-')")
    if not _PATH_CHARS.fullmatch(value):
        allowed = "letters, digits, / . _ + @ % , : = ~ -"
        raise _fail(value, f"contains a character not allowed in a path ({allowed})")
    return value


def check_repo_path(value: str) -> str:
    """A repository-relative file name (templates, check files): one line; the project source
    refuses paths that leave the repository."""
    return check_line(value)


def check_sysctl_value(value: str) -> str:
    """A kernel parameter value: numbers, words, paths and `|` pipes (core_pattern), but no
    `;`, quote, `$`, backtick, `&`, `<`, `>`, parenthesis or newline."""
    if not _SYSCTL_VALUE.fullmatch(value):
        raise _fail(
            value,
            "is not a sysctl value (letters, digits, spaces and . _ + , : = / % | @ -; "
            "no ; $ ` quotes or newlines)",
        )
    return value


def check_apt_url(value: str) -> str:
    """An apt repository URL: http, https or file, one word, no brackets."""
    check_line(value)
    parsed = urllib.parse.urlsplit(value)
    if (
        parsed.scheme not in ("http", "https", "file")
        or any(char in value for char in " \t[]'\"\\")
        or (parsed.scheme != "file" and not parsed.netloc)
    ):
        raise _fail(value, "is not an apt repository URL (like http://deb.debian.org/debian)")
    return value


def check_apt_word(value: str) -> str:
    """An apt suite or component: letters, digits, `_ . + ~ / -`."""
    if not _APT_WORD.fullmatch(value):
        raise _fail(value, "is not an apt suite or component (letters, digits, _ . + ~ / -)")
    return value


SYSCTL_DIR = "/etc/sysctl.d"
# crypt(3) hashes Debian's passwd and mkpasswd write: yescrypt, SHA-512, SHA-256; a leading `!`
# locks an account and keeps its hash.
_CRYPT_HASH = re.compile(
    r"!?(?:\$y\$[./A-Za-z0-9]+\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{43}"
    r"|\$6\$(?:rounds=[0-9]+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}"
    r"|\$5\$(?:rounds=[0-9]+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43})"
)
LOCKED_PASSWORDS = frozenset({"!", "*", "!*"})


def check_sysctl_file(value: str) -> str:
    """A file of /etc/sysctl.d/ that systemd-sysctl reads: `/etc/sysctl.d/<name>.conf`."""
    check_host_path(value)
    folder, _, name = value.rpartition("/")
    if folder != SYSCTL_DIR or not name.endswith(".conf") or name == ".conf":
        raise _fail(
            value, f"is not a file of {SYSCTL_DIR}/ ending in .conf (like {SYSCTL_DIR}/60-net.conf)"
        )
    return value


def check_password_hash(value: str) -> str:
    """A crypt(3) hash as /etc/shadow holds it, or `!`/`*` for a locked account. The message
    never repeats the value: it may be a password typed by mistake."""
    if value in LOCKED_PASSWORDS or _CRYPT_HASH.fullmatch(value):
        return value
    raise ValueError(
        "password is not a crypt(3) hash ($y$..., $6$... or $5$..., e.g. from "
        "`mkpasswd -m yescrypt`) nor '!' or '*' for a locked account; the value is not shown"
    )


def templatable(check: Callable[[str], str]) -> Callable[[str, ValidationInfo], str]:
    """`check` for a policy string that may be a template: a `{{ }}` or `{% %}` value is left
    alone at load time and checked once rendered (context `{"rendered": True}`)."""

    def validate(value: str, info: ValidationInfo) -> str:
        rendered = bool((info.context or {}).get("rendered"))
        if not rendered and ("{{" in value or "{%" in value):
            return value
        return check(value)

    return validate


Port = Annotated[int, Field(ge=1, le=65535)]

# Inventory fields (never rendered).
Address = Annotated[str, AfterValidator(check_address)]
Label = Annotated[str, AfterValidator(check_label)]
Login = Annotated[str, AfterValidator(check_login)]
LocalPath = Annotated[str, AfterValidator(check_local_path)]
Line = Annotated[str, AfterValidator(check_line)]

# Policy fields (may be templates).
HostPath = Annotated[str, AfterValidator(templatable(check_host_path))]
PolicyLogin = Annotated[str, AfterValidator(templatable(check_login))]
PackageName = Annotated[str, AfterValidator(templatable(check_package))]
UnitName = Annotated[str, AfterValidator(templatable(check_unit))]
SysctlValue = Annotated[str, AfterValidator(templatable(check_sysctl_value))]
AptUrl = Annotated[str, AfterValidator(templatable(check_apt_url))]
AptWord = Annotated[str, AfterValidator(templatable(check_apt_word))]
SysctlFile = Annotated[str, AfterValidator(templatable(check_sysctl_file))]
PolicyLine = Annotated[str, AfterValidator(templatable(check_line))]
RepoPath = Annotated[str, AfterValidator(check_repo_path)]
