"""A per-host cache of pyinfra facts: many facts read in one remote command, each kept until an
operation changes what it describes.

pyinfra keeps no facts between calls: every `host.get_fact` is a remote command, and operations
read the same facts again and again (a file's stat, `uname -s`, passwd and group), once while
operations are prepared and again while they run. Here a host's `get_fact` is served from a
cache. The first miss reads, in one remote command, every fact the host's operations are known
to read (`predicted_facts`); each fact runs pyinfra's own command and is parsed by pyinfra's own
fact class, so a cached value is exactly what pyinfra would have read. A fact outside that list
is read once, through pyinfra, and cached too.

Facts must stay true after an operation changes the host: when an operation runs a command or
uploads a file, the facts it may have touched are dropped (`effect_of`: a file operation touches
its path, its parents and children; a sysctl its key and persist file; patchring's own shell
steps the paths they declare; a package install or any other shell command anything), and the
next miss reads, in one command, every dropped fact that the host's operations read so far or
will read (`FactCache.expect`). Facts read with privilege escalation or another shell bypass the
cache. Only the engine imports this module (it imports pyinfra).
"""

from __future__ import annotations

import copy
import inspect
import posixpath
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pyinfra.api.arguments import all_global_arguments
from pyinfra.api.command import StringCommand
from pyinfra.api.facts import FactBase, ShortFactBase
from pyinfra.api.host import Host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, FindInFile, Sha256File
from pyinfra.facts.server import Groups, Os, Sysctl, TmpDir, Users, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations.util.files import adjust_regex

from orchestrator.compiler.opspec import OpSpec

FactKey = tuple[str, tuple[tuple[str, str], ...]]
FactRequest = tuple[type[FactBase[Any]], dict[str, Any]]
# What a fact describes, or what an operation may change: absolute paths, and a few subjects
# outside the file system. None means "anything".
Subjects = tuple[str, ...] | None

ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
# what useradd and groupadd write besides the account files
USERADD_FILES = ("/etc/subuid", "/etc/subgid", "/var/mail", "/var/spool/mail", "/var/log")
SYSTEMD_UNITS = "systemd:units"
DPKG_DATABASE = "/var/lib/dpkg"
COMMAND_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_GLOBAL_ARGUMENTS = {name for name, _ in all_global_arguments()}
# Global arguments that change what a fact reads (who runs it, where, with which shell).
_CONTEXT_ARGUMENTS = ("_sudo", "_su_user", "_doas", "_chdir", "_env")
_HOST_SUDO_ARGUMENTS = ("_sudo", "_sudo_user", "_sudo_password")
_MISSING_COMMAND = "##PYINFRA_NOCMD##"


def fact_key(cls: type[FactBase[Any]], args: Sequence[Any], kwargs: dict[str, Any]) -> FactKey:
    """The cache key of a fact read: its name and its arguments bound to its command, as pyinfra
    binds them (so `File("/x")` and `File(path="/x")` are one fact)."""
    return (cls.name, tuple(sorted((k, repr(v)) for k, v in _bound(cls, args, kwargs).items())))


def _bound(cls: type[FactBase[Any]], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the fact's command binds them, defaults filled in (as getcallargs
    does); the signature is read once per fact class, not once per read (a tenth of the
    controller CPU of a first apply went to reading it again)."""
    if not args and not kwargs:
        return {}
    bound = _command_signature(cls).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


_SIGNATURES: dict[str, inspect.Signature] = {}


def _command_signature(cls: type[FactBase[Any]]) -> inspect.Signature:
    key = f"{cls.__module__}.{cls.__qualname__}"
    found = _SIGNATURES.get(key)
    if found is None:
        found = _SIGNATURES[key] = inspect.signature(cls().command)  # bound: no `self`
    return found


def _path(spec_args: dict[str, Any], name: str) -> tuple[str, ...]:
    value = spec_args.get(name)
    return (posixpath.normpath(value),) if isinstance(value, str) and value.startswith("/") else ()


def predicted_facts(specs: Iterable[OpSpec]) -> list[FactRequest]:
    """The facts pyinfra's operations read for these specs (read in one batch on first need).
    A fact missing here is still read, one by one: this list only saves round trips."""
    wanted: list[FactRequest] = []
    for spec in specs:
        args = spec.args
        if spec.operation == "files.put":
            for dest in _path(args, "dest"):
                parent = posixpath.dirname(dest)
                wanted += [(File, {"path": dest}), (Sha256File, {"path": dest})]
                wanted += [(Directory, {"path": dest}), (Directory, {"path": parent})]
                wanted.append((TmpDir, {}))  # where an upload goes first
        elif spec.operation == "files.directory":
            wanted += [(Directory, {"path": p}) for p in _path(args, "path")]
        elif spec.operation in {"server.user", "server.group"}:
            wanted += [(Users, {}), (Groups, {}), (Os, {}), (Which, {"command": "useradd"})]
            wanted += [(Directory, {"path": p}) for p in _path(args, "home")]
        elif spec.operation == "server.sysctl":
            wanted.append((Sysctl, {"keys": [args["key"]]}))
            wanted += _persisted_sysctl_facts(args)
        elif spec.operation == "apt.packages":
            wanted += [(DebPackages, {}), (Os, {})]
        elif spec.operation == "systemd.service":
            services = [args["service"]]
            wanted += [(SystemdStatus, {"services": services})]
            wanted += [(SystemdEnabled, {"services": services})]
    return wanted


def _sysctl_paths(keys: object) -> tuple[str, ...]:
    """Where the kernel shows these sysctl keys (`net.ipv4.ip_forward`:
    /proc/sys/net/ipv4/ip_forward); all of /proc/sys for keys of another form."""
    if not isinstance(keys, list) or not keys:
        return ("/proc/sys",)
    if not all(isinstance(k, str) and k and "/" not in k and ".." not in k for k in keys):
        return ("/proc/sys",)
    return tuple(f"/proc/sys/{key.replace('.', '/')}" for key in keys)


def _persisted_sysctl_facts(args: dict[str, Any]) -> list[FactRequest]:
    """The two line searches `server.sysctl` makes in its persist file (through `files.line`):
    the setting with any spacing, and the exact line it writes."""
    path = args.get("persist_file")
    if not args.get("persist") or not isinstance(path, str):
        return []
    key, value = args["key"], args["value"]
    shown = " ".join(f"{v}" for v in value) if isinstance(value, list) else f"{value}"
    patterns = (adjust_regex(f"{key}[[:space:]]*=[[:space:]]*{shown}", False), f"^{key} = {shown}$")
    return [(FindInFile, {"path": path, "pattern": pattern}) for pattern in patterns]


def fact_subjects(name: str, bound: dict[str, Any]) -> Subjects:
    """What a fact describes, so an operation's change drops just the facts it touched."""
    path = bound.get("path")
    if isinstance(path, str):
        return (posixpath.normpath(path),) if path.startswith("/") else None
    if name in {"server.Os", "server.TmpDir"}:
        return ()  # the kernel's name, the login's temporary folder: no operation changes them
    if name == "server.Which":
        return COMMAND_DIRS
    if name in {"server.Users", "server.Groups"}:
        return ACCOUNT_FILES
    if name == "server.Sysctl":
        return _sysctl_paths(bound.get("keys"))
    if name == "deb.DebPackages":
        return (DPKG_DATABASE,)
    if name.startswith("systemd."):
        return (SYSTEMD_UNITS,)
    return None  # anything may change it: dropped at every change


def effect_of(spec: OpSpec) -> Subjects:
    """What running a spec's operation may change on the host (None: anything). Whatever
    starts a program of the host (a package's scripts, a service, a shell command) may change
    anything."""
    args = spec.args
    if spec.operation == "files.put":
        return _path(args, "dest")
    if spec.operation == "files.directory":
        return _path(args, "path")
    if spec.operation == "server.sysctl":
        return (*_sysctl_paths([args.get("key")]), *_path(args, "persist_file"))
    if spec.operation in {"server.user", "server.group"}:
        return (*ACCOUNT_FILES, *USERADD_FILES, *_path(args, "home"))
    if spec.operation == "apt.update":
        return ("/var/lib/apt", "/var/cache/apt")
    declared = spec.effect
    if spec.operation == "server.shell" and declared and all(p.startswith("/") for p in declared):
        return tuple(posixpath.normpath(path) for path in declared)
    return None


def touches(effect: Subjects, subjects: Subjects) -> bool:
    """Whether a change to `effect` may alter a fact about `subjects`: the same path, a parent
    (creating /etc/acme/x may create /etc/acme) or a child (a recursive chown)."""
    if subjects == ():
        return False  # a fact no operation changes
    if effect is None or subjects is None:
        return True
    return any(
        a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
        for a in effect
        for b in subjects
    )


def batch_command(requests: Sequence[FactRequest], marker: str) -> tuple[str, list[Any]]:
    """One shell script that runs each fact's own command in a subshell, its output between
    marker lines with its exit status, and the fact objects that made the commands (a fact may
    keep what its command was given for its `process`). Facts that need their own shell or a
    precondition check are left out (None): pyinfra reads them itself."""
    parts: list[str] = []
    facts: list[Any] = []
    for index, (cls, kwargs) in enumerate(requests):
        fact = cls()
        command = _command_text(fact, kwargs)
        facts.append(None if command is None else fact)
        if command is not None:
            parts.append(
                f"echo '{marker} begin {index}'; ( {command}\n) 2>/dev/null </dev/null; "
                f"s=$?; echo; echo '{marker} end {index}' $s"
            )
    return "\n".join(parts) + "\n", facts


def _command_text(fact: Any, kwargs: dict[str, Any]) -> str | None:
    if fact.shell_executable or type(fact).check_preconditions is not FactBase.check_preconditions:
        return None
    bound = _bound(type(fact), (), kwargs)
    command = fact.command(**bound) if callable(fact.command) else fact.command
    text = _raw(command)
    needs = fact.requires_command(**bound)
    if needs:
        text = (
            f"if command -v {_raw(needs)} >/dev/null 2>&1; then ( {text}\n); "
            f"else echo '{_MISSING_COMMAND}'; fi"
        )
    return text


def _raw(value: object) -> str:
    return value.get_raw_value() if isinstance(value, StringCommand) else str(value)


def parse_batch(
    requests: Sequence[FactRequest], facts: Sequence[Any], lines: Sequence[str], marker: str
) -> dict[FactKey, Any]:
    """Each fact whose command succeeded, parsed by its own fact class as pyinfra parses it:
    its stdout lines (the default value when there are none). `lines` are the batch's stdout
    lines as pyinfra reads them."""
    values: dict[FactKey, Any] = {}
    begin: int | None = None
    for number, line in enumerate(lines):
        if line.startswith(f"{marker} begin "):
            begin = number
            continue
        if not line.startswith(f"{marker} end ") or begin is None:
            continue
        _, _, index_text, status = line.split(" ")
        stdout = list(lines[begin + 1 : number])
        begin = None
        # The script ends each fact's output with a newline: an empty last line is that
        # newline (the output ended with its own), a non-empty one ended the output's last line.
        if stdout and stdout[-1] == "":
            stdout.pop()
        index = int(index_text)
        fact = facts[index]
        if status != "0" or stdout == [_MISSING_COMMAND] or fact is None:
            continue  # pyinfra reads it itself and handles the failure its own way
        cls, kwargs = requests[index]
        try:
            values[fact_key(cls, (), kwargs)] = fact.process(stdout) if stdout else fact.default()
        except Exception:  # a fact pyinfra would fail to parse: pyinfra reads it and says so
            continue
    return values


@dataclass
class FactCache:
    """The facts of one host, served to pyinfra's operations through `host.get_fact`."""

    host: Host
    predicted: list[FactRequest]
    read_fact: Callable[..., Any]  # pyinfra's own host.get_fact
    run_command: Callable[..., Any]  # pyinfra's own host.run_shell_command
    values: dict[FactKey, Any] = field(default_factory=dict)
    subjects: dict[FactKey, Subjects] = field(default_factory=dict)
    # every fact read so far (key -> how to read it again), for the batch after a change
    known: dict[FactKey, FactRequest] = field(default_factory=dict)
    # the operations (by hash) that read each fact while they were prepared
    readers: dict[FactKey, set[str]] = field(default_factory=dict)
    # the running operation, and the facts it has read since it started to run
    running: str | None = None
    read_by_running: set[FactKey] = field(default_factory=set)
    effect: Subjects = None  # what the operation now running may change
    reads: int = 0  # remote commands spent reading facts
    reading: bool = False

    def get_fact(self, cls: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(cls, type) or not issubclass(cls, ShortFactBase | FactBase):
            return self._read_one(cls, args, kwargs)  # not a fact class: pyinfra says what
        if issubclass(cls, ShortFactBase):
            return cls().process_data(self.get_fact(cls.fact, *args, **kwargs))
        if self._context_changes_fact(kwargs):
            return self._read_one(cls, args, kwargs)
        key = fact_key(cls, args, kwargs)
        self._note_reader(key)
        if key not in self.values:
            bound = _bound(cls, args, kwargs)
            self.known.setdefault(key, (cls, bound))
            self.subjects[key] = fact_subjects(cls.name, bound)
            self._read_batch(key)
        if key not in self.values:
            self.values[key] = self._read_one(cls, args, kwargs)
        return copy.deepcopy(self.values[key])  # operations may change what they are given

    def expect(self, spec: OpSpec, op_hashes: Iterable[str]) -> None:
        """The facts a spec's operations will read when they run, noted as if they had read
        them while prepared (pyinfra does not run them then: see `check_for_changes`), so a
        batch after a change reads them ahead."""
        hashes = set(op_hashes)
        for cls, kwargs in predicted_facts([spec]):
            self.readers.setdefault(fact_key(cls, (), kwargs), set()).update(hashes)

    def _note_reader(self, key: FactKey) -> None:
        if not self.host.state.is_executing:
            if self.host.current_op_hash is not None:
                self.readers.setdefault(key, set()).add(self.host.current_op_hash)
            return
        running = self.host.executing_op_hash or self.host.current_op_hash
        if running != self.running:
            self.running, self.read_by_running = running, set()
        self.read_by_running.add(key)

    def _context_changes_fact(self, kwargs: dict[str, Any]) -> bool:
        """Whether the fact is read in another context than the host's own (the host's sudo,
        set for all its commands, reads the same facts as every cached read)."""
        context: dict[str, Any] = {**self._op_arguments(), **kwargs}
        shell = context.get("_shell_executable")
        own = self._host_context()
        return any(
            context.get(name) and context.get(name) != own.get(name)
            for name in (*_CONTEXT_ARGUMENTS, "_sudo_user")
        ) or shell not in {None, "sh"}

    def _host_context(self) -> dict[str, Any]:
        """The sudo arguments the host's data gives all its commands (see engine.session)."""
        data = getattr(self.host, "data", None)
        return {
            name: value
            for name in _HOST_SUDO_ARGUMENTS
            if (value := getattr(data, name, None)) is not None
        }

    def _op_arguments(self) -> dict[str, Any]:
        """The global arguments (`_sudo`, `_timeout`...) of the operation reading facts."""
        return dict(cast(dict[str, Any], self.host.current_op_global_arguments or {}))

    def _read_batch(self, missing: FactKey) -> None:
        """Read in one command every fact known or predicted for this host that is not cached:
        at the first miss all of them; while operations run, the one asked for and those that
        later operations read when they were prepared (facts an earlier change dropped)."""
        requests = {fact_key(c, (), k): (c, k) for c, k in self.predicted}
        requests.update(self.known)
        still_read = self._still_read()
        if still_read is not None:
            still_read.add(missing)
        wanted = [
            req
            for key, req in requests.items()
            if key not in self.values and (still_read is None or key in still_read)
        ]
        if len(wanted) < 2:
            return  # one fact: pyinfra reads it itself, at the same cost
        for key, (cls, bound) in requests.items():
            self.subjects.setdefault(key, fact_subjects(cls.name, bound))
        marker = f"patchring-facts-{uuid.uuid4().hex}"
        timeout = self._op_arguments().get("_timeout")
        script, facts = batch_command(wanted, marker)
        self.reading = True
        self.reads += 1
        try:
            ok, output = self.run_command(
                StringCommand(script), _timeout=timeout, **self._host_context()
            )
        finally:
            self.reading = False
        if ok:
            self.values.update(parse_batch(wanted, facts, output.stdout_lines, marker))

    def _still_read(self) -> set[FactKey] | None:
        """While operations run: the facts still to be read, as their operations read them
        when prepared: those of later operations, and those the running operation has not
        read yet (None before they run: every fact may still be read). What the running
        operation read already and reads again after its own change (passwd after a
        useradd) is read when it asks, not in advance."""
        if not self.host.state.is_executing:
            return None
        order = self.host.op_hash_order
        running = self.host.executing_op_hash or self.host.current_op_hash
        later = set(order[order.index(running) + 1 :] if running in order else order)
        return {
            key
            for key, hashes in self.readers.items()
            if hashes & later or (running in hashes and key not in self.read_by_running)
        }

    def _read_one(self, cls: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        self.reading = True
        self.reads += 1
        try:
            return self.read_fact(cls, *args, **kwargs)
        finally:
            self.reading = False

    def changed(self) -> None:
        """An operation is about to change the host: drop the facts it may touch."""
        if self.reading:
            return
        self.values = {
            key: value
            for key, value in self.values.items()
            if not touches(self.effect, self.subjects.get(key))
        }


def install_fact_cache(host: Host, predicted: list[FactRequest]) -> FactCache:
    """Serve this host's facts from a cache; every command or upload that is not a fact read
    drops the facts the running operation may change."""
    original_run, original_put = host.run_shell_command, host.put_file
    cache = FactCache(host, predicted, read_fact=host.get_fact, run_command=original_run)

    def run_shell_command(*args: Any, **kwargs: Any) -> Any:
        cache.changed()
        return original_run(*args, **kwargs)

    def put_file(*args: Any, **kwargs: Any) -> Any:
        cache.changed()
        return original_put(*args, **kwargs)

    host.get_fact = cache.get_fact  # type: ignore[method-assign, assignment]
    host.run_shell_command = run_shell_command  # type: ignore[method-assign]
    host.put_file = put_file  # type: ignore[method-assign]
    return cache
