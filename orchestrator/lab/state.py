"""Where a lab keeps its files, and the JSON record of a running lab (`state.json`).

The record holds the configuration and, per host, the runner PID with its start time and the
host's cgroups, so `lab_status`, `lab_down` and the faults work from any later process. Written
atomically (temp file + rename). Imports only `orchestrator.errors` and `.config`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.errors import LabError

from .config import DEFAULT_RELEASE, LabConfig

STATE_VERSION = 1


@dataclass(frozen=True)
class LabPaths:
    """The layout of a lab's state directory."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def identity_file(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def archive_key(self) -> Path:
        return self.root / "lab-archive-key.asc"

    @property
    def gnupg(self) -> Path:
        return self.root / "gnupg"

    @property
    def apt_repo(self) -> Path:
        return self.root / "apt"

    @property
    def apt_lock(self) -> Path:
        return self.root / "apt.lock"

    @property
    def security_data(self) -> Path:
        return self.root / "security-tracker.json"

    @property
    def identities(self) -> Path:
        return self.root / "identities"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def runner_script(self) -> Path:
        return self.run / "host-runner.sh"

    def host_dir(self, host: str) -> Path:
        return self.hosts / host

    def host_log(self, host: str) -> Path:
        return self.logs / f"{host}.log"


@dataclass(frozen=True)
class ProcessRecord:
    """A detached process found again later: PID, start time (against PID reuse), cgroups."""

    pid: int
    start_time: int
    cgroups: tuple[str, ...]


@dataclass(frozen=True)
class HostRecord:
    name: str
    index: int
    address: str
    ring: str
    groups: tuple[str, ...]
    netns: str
    veth: str
    runner: ProcessRecord | None
    release: str = DEFAULT_RELEASE


@dataclass(frozen=True)
class LabRecord:
    """What `state.json` holds about a running lab."""

    name: str
    hosts: int
    subnet: str
    rings: tuple[str, ...]
    apt_port: int
    bridge: str
    base_images: dict[str, str]  # release -> image directory
    inventory_path: str | None
    host_records: tuple[HostRecord, ...]
    http: ProcessRecord | None
    version: int = field(default=STATE_VERSION)

    def same_shape(self, config: LabConfig) -> bool:
        return (self.hosts, self.subnet, tuple(self.rings), self.apt_port) == (
            config.hosts,
            config.subnet,
            tuple(config.rings),
            config.apt_port,
        )

    def host(self, name: str) -> HostRecord:
        for record in self.host_records:
            if record.name == name:
                return record
        known = ", ".join(record.name for record in self.host_records)
        raise LabError(f"lab {self.name!r} has no host {name!r}", hint=f"its hosts: {known}")


def save_record(paths: LabPaths, record: LabRecord) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    temporary = paths.state_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, paths.state_file)


def load_record(paths: LabPaths) -> LabRecord | None:
    """The saved record, or None when the lab has none (never started, or cleanly stopped)."""
    try:
        raw = json.loads(paths.state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(
            f"cannot read {paths.state_file}: {exc}",
            hint="remove it after stopping the lab's processes",
        ) from None
    if raw.get("version") != STATE_VERSION:
        raise LabError(f"{paths.state_file} was written by another patchring version")
    return LabRecord(
        name=raw["name"],
        hosts=raw["hosts"],
        subnet=raw["subnet"],
        rings=tuple(raw["rings"]),
        apt_port=raw["apt_port"],
        bridge=raw["bridge"],
        # Records of labs started before releases could be mixed name one bookworm image.
        base_images=raw.get("base_images") or {DEFAULT_RELEASE: raw["base_image"]},
        inventory_path=raw["inventory_path"],
        host_records=tuple(_host_from_json(item) for item in raw["host_records"]),
        http=_process_from_json(raw["http"]),
    )


def _process_from_json(raw: dict[str, object] | None) -> ProcessRecord | None:
    if raw is None:
        return None
    cgroups = raw["cgroups"]
    assert isinstance(cgroups, list)
    return ProcessRecord(
        pid=int(str(raw["pid"])), start_time=int(str(raw["start_time"])), cgroups=tuple(cgroups)
    )


def _host_from_json(raw: dict[str, object]) -> HostRecord:
    groups = raw["groups"]
    assert isinstance(groups, list)
    runner = raw["runner"]
    assert runner is None or isinstance(runner, dict)
    return HostRecord(
        name=str(raw["name"]),
        index=int(str(raw["index"])),
        address=str(raw["address"]),
        ring=str(raw["ring"]),
        groups=tuple(groups),
        netns=str(raw["netns"]),
        veth=str(raw["veth"]),
        runner=_process_from_json(runner),
        release=str(raw.get("release", DEFAULT_RELEASE)),
    )


def require_record(paths: LabPaths, name: str) -> LabRecord:
    """The record of a lab that was started; LabError when there is none."""
    record = load_record(paths)
    if record is None:
        raise LabError(f"lab {name!r} is not running (no {paths.state_file})", hint=up_hint(name))
    return record


def up_hint(name: str) -> str:
    return "start it with `patchring lab up`" + ("" if name == "lab" else f" (lab name {name!r})")


def down_hint(name: str) -> str:
    return "stop it with `patchring lab down`" + ("" if name == "lab" else f" (lab name {name!r})")
