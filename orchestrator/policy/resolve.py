"""Per-host resolution: which policies apply, the layered variables, and rendered resources.

For each host: the policies whose `select` matches; variables layered policy `vars` < inventory
`vars` < groups (in the host's order, later wins) < ring < host, each keeping where it was set;
every templated string of every resource rendered (plus `template:` files into content); then
resources merged across policies, checked for conflicts and for `after` naming an unknown
resource or forming a cycle, then put in their apply order (`model.order`). A problem that
repeats on every host is reported once, naming one host. Pure; imports jinja2 (through
`render`) and the package's model and `policy` modules; never the CLI or pyinfra.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from pydantic import BaseModel

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import (
    KIND_ORDER,
    DesiredState,
    HostTarget,
    Resource,
    ResourceKind,
    Spec,
    VarValue,
)
from orchestrator.model.inventory import Inventory, InventoryHost, password_source
from orchestrator.model.jump import SshConfigEntry, resolve_hops
from orchestrator.model.order import topological_order
from orchestrator.model.policy import AptRepository, Block, File, Selector
from orchestrator.policy.accounts import with_policy_defaults
from orchestrator.policy.conflicts import (
    check_baselines,
    check_edited_files,
    check_patch_pins,
    merge_resources,
    resource_key,
)
from orchestrator.policy.defaults import overridden_defaults
from orchestrator.policy.loader import LoadedPolicy
from orchestrator.policy.locked import LoadedLock, locked_resources
from orchestrator.policy.ordering import after_locations, check_order
from orchestrator.policy.render import RenderError, TemplateRenderer, is_template
from orchestrator.policy.secretvars import marked_texts
from orchestrator.policy.sharing import (
    EntryReads,
    OrderMemo,
    PolicyReads,
    SharedResolution,
    entry_reads,
    variables_key,
)
from orchestrator.policy.validation import quote, suggest, validate_located
from orchestrator.policy.verbatim import key_file_problems, template_flags
from orchestrator.policy.yamlsource import YamlPath
from orchestrator.source import SourceLocation

# Policy sections and the resource kind of their entries, in PolicyDocument field order.
SECTIONS: tuple[tuple[str, ResourceKind], ...] = (
    ("apt_repositories", "apt_repository"),
    ("packages", "package"),
    ("files", "file"),
    ("lines", "line"),
    ("settings", "setting"),
    ("blocks", "block"),
    ("directories", "directory"),
    ("services", "service"),
    ("sysctl", "sysctl"),
    ("groups", "group"),
    ("users", "user"),
    ("commands", "command"),
    ("patches", "patch"),
    ("deploy", "deploy"),
)


@dataclass
class Reporter:
    """Collects diagnostics once each: the same problem on many hosts is reported for the first."""

    found: dict[tuple[SourceLocation, str], Diagnostic] = field(default_factory=dict)

    def add(
        self,
        where: SourceLocation,
        message: str,
        host: str | None = None,
        key: str | None = None,
        severity: str = "error",
    ) -> None:
        """Record a problem unless one with the same location and `key` (default: the message)
        is already recorded; `host` is named in the message."""
        suffix = f" (host {host})" if host else ""
        found = Diagnostic(where, message + suffix, severity)
        self.found.setdefault((where, key or message), found)

    def extend(
        self, diagnostics: Iterable[Diagnostic], host: str | None = None, key: str | None = None
    ) -> None:
        for diagnostic in diagnostics:
            self.add(diagnostic.location, diagnostic.message, host, key, diagnostic.severity)

    def diagnostics(self) -> list[Diagnostic]:
        return sorted(self.found.values())


def selector_matches(select: Selector, host: InventoryHost) -> bool:
    """A host matches when any criterion of the selector matches it."""
    return (
        select.all
        or host.name in select.hosts
        or (host.ring is not None and host.ring in select.rings)
        or any(group in select.groups for group in host.groups)
    )


def check_selectors(policies: Sequence[LoadedPolicy], inventory: Inventory) -> list[Diagnostic]:
    """Selectors naming a group, ring or host the inventory does not know (almost always typos)."""
    known = {
        "group": inventory.group_names(),
        "ring": inventory.ring_names(),
        "host": tuple(inventory.hosts),
    }
    problems: list[Diagnostic] = []
    for policy in policies:
        for what, names in known.items():
            for index, name in enumerate(getattr(policy.document.select, what + "s")):
                if name in names:
                    continue
                listed = f" (known {what}s: {', '.join(names)})" if names and what != "host" else ""
                where = policy.yaml.value_location(("select", what + "s", index))
                problems.append(
                    Diagnostic(where, f"unknown {what} '{name}'{suggest(name, names) or listed}")
                )
    return problems


def inventory_vars(inventory: Inventory, host: InventoryHost) -> dict[str, VarValue]:
    """Inventory layers for a host: all < groups (host's order, later wins) < ring < host."""
    layered = dict(inventory.vars)
    for name in host.groups:
        group = inventory.groups.get(name)
        layered.update(group.vars if group else {})
    ring = inventory.ring(host.ring) if host.ring else None
    layered.update(ring.vars if ring else {})
    layered.update(host.vars)
    return layered


def policy_defaults(policy: LoadedPolicy) -> dict[str, VarValue]:
    """A policy's `vars:`, located."""
    return {
        name: VarValue(
            value=value,
            location=policy.yaml.value_location(("vars", name)),
            secrets=marked_texts(policy.yaml, ("vars", name), value),
        )
        for name, value in policy.document.vars.items()
    }


def host_vars(
    inventory: Inventory,
    host: InventoryHost,
    policies: Sequence[LoadedPolicy],
    reporter: Reporter,
    shared: SharedResolution | None = None,
    layered: dict[str, VarValue] | None = None,
) -> dict[str, VarValue]:
    """Every variable of a host, sorted by name: policy defaults under the inventory layers
    (`layered`, when already known). Two policies giving a variable different defaults is a
    conflict unless the inventory sets it."""
    layered = inventory_vars(inventory, host) if layered is None else layered
    defaults: dict[str, VarValue] = {}
    for policy in policies:
        own = shared.defaults.get(id(policy)) if shared is not None else None
        if own is None:
            own = policy_defaults(policy)
            if shared is not None:
                shared.defaults[id(policy)] = own
        for name, here in own.items():
            value = here.value
            earlier = defaults.setdefault(name, here)
            if name not in layered and earlier is not here and earlier.value != value:
                message = (
                    f"variable '{name}' default {quote(value)} conflicts with default "
                    f"{quote(earlier.value)} set at {earlier.location}; set it in the inventory"
                )
                reporter.add(here.location, message, host.name)
    return dict(sorted({**defaults, **layered}.items()))


def host_target(inventory: Inventory, host: InventoryHost) -> HostTarget:
    ssh = inventory.host_ssh(host)
    source = password_source(ssh) if ssh.sudo else None
    target = HostTarget(
        name=host.name,
        address=host.address,
        port=host.port or ssh.port,
        user=ssh.user,
        ring=host.ring,
        groups=host.groups,
        identity_file=ssh.identity_file,
        known_hosts=ssh.known_hosts,
        connect_timeout=ssh.connect_timeout,
        command_timeout=ssh.command_timeout,
        sudo=ssh.sudo,
        sudo_user=ssh.sudo_user if ssh.sudo else None,
        sudo_password=inventory.sudo_passwords.get(source) if source else None,
        sudo_password_source=source,
    )
    return _reach(target, inventory, host)


def _reach(target: HostTarget, inventory: Inventory, host: InventoryHost) -> HostTarget:
    """`target` with what `ssh: config_file:` says for its address (where the inventory
    leaves a value unset: the inventory wins) and its jump hosts resolved."""
    ssh, explicit = inventory.host_ssh(host), inventory.host_ssh_given(host)
    entry = inventory.ssh_config.get(host.address, SshConfigEntry())
    user = target.user if "user" in explicit else entry.user or target.user
    identity = target.identity_file or entry.identity_file
    hops = ssh.jump_host if "jump_host" in explicit else entry.jump_hosts or ()
    return target.model_copy(
        update={
            "address": entry.hostname or target.address,
            "port": host.port or (ssh.port if "port" in explicit else entry.port or ssh.port),
            "user": user,
            "identity_file": identity,
            "jump_hosts": resolve_hops(hops, inventory.ssh_config, user, identity),
        }
    )


def template_context(host: InventoryHost, variables: Mapping[str, VarValue]) -> dict[str, Any]:
    """What templates see: every variable by name, and the built-in `host`."""
    context: dict[str, Any] = {name: var.value for name, var in variables.items()}
    context["host"] = {
        "name": host.name,
        "address": host.address,
        "ring": host.ring,
        "groups": list(host.groups),
    }
    return context


@dataclass
class _HostRender:
    """Renders one policy's resources for one host, reporting problems at their locations."""

    policy: LoadedPolicy
    renderer: TemplateRenderer
    context: dict[str, Any]
    host: str
    reporter: Reporter
    failed: bool = False
    templated: bool = False

    def report(self, error: RenderError, where: SourceLocation) -> None:
        self.failed = True
        self.reporter.add(
            error.location or where, error.message, self.host if error.per_host else None
        )

    def tree(self, value: Any, path: YamlPath) -> Any:
        """Every templated string inside `value` rendered; other values unchanged."""
        if isinstance(value, str) and is_template(value):
            self.templated = True
            try:
                return self.renderer.render_text(value, self.context)
            except RenderError as error:
                self.report(error, self.policy.yaml.value_location(path))
                return value
        if isinstance(value, dict):
            return {key: self.tree(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.tree(item, (*path, index)) for index, item in enumerate(value)]
        return value

    def resource(
        self, section: str, kind: ResourceKind, index: int, spec: BaseModel
    ) -> Resource | None:
        path: YamlPath = (section, index)
        located = self.policy.yaml
        raw = located.data[section][index]
        rendered = self.tree(raw, path)
        final: BaseModel | None = spec
        if self.templated and not self.failed:
            final, problems = validate_located(type(spec), located, path, rendered, rendered=True)
            # A rendered value usually differs per host: report each field once, for one host.
            self.reporter.extend(problems, self.host, key="invalid after rendering")
        if final is not None:
            final = with_policy_defaults(final, self.policy.document)
        content = self.content(final, path) if final is not None and not self.failed else None
        data = self.data(final, path) if final is not None and not self.failed else None
        if self.failed or final is None:
            return None
        return Resource(
            kind=kind,
            key=resource_key(kind, final),
            policy=self.policy.name,
            location=located.value_location(path),
            spec=cast(Spec, final),  # every policy section holds one Spec model
            content=content,
            data=data,
            field_locations={name: located.value_location((*path, name)) for name in raw}
            | after_locations(located, path, raw),
        )

    def content(self, spec: BaseModel, path: YamlPath) -> str | None:
        if not isinstance(spec, File | Block) or spec.template is None:
            return spec.content if isinstance(spec, File | Block) else None
        own = spec.template_options if isinstance(spec, File) else None
        flags = template_flags(self.policy.document.template_options, own)
        try:
            return self.renderer.render_file(spec.template, self.context, flags)
        except RenderError as error:
            self.report(error, self.policy.yaml.value_location((*path, "template")))
            return None

    def data(self, spec: BaseModel, path: YamlPath) -> bytes | None:
        """The bytes of a file copied verbatim (`source:`, apt `key_file:`), checked."""
        if isinstance(spec, File) and spec.source is not None:
            return self.verbatim(spec.source, "source file", (*path, "source"))
        if not isinstance(spec, AptRepository) or spec.key_file is None:
            return None
        data = self.verbatim(spec.key_file, "key file", (*path, "key_file"))
        for field_name, message in key_file_problems(spec, data) if data is not None else []:
            where = self.policy.yaml.value_location((*path, field_name))
            self.report(RenderError(message, per_host=False), where)
        return data

    def verbatim(self, name: str, what: str, path: YamlPath) -> bytes | None:
        try:
            return self.renderer.read_verbatim(name, what)
        except RenderError as error:
            self.report(error, self.policy.yaml.value_location(path))
            return None


def _entry_resource(
    work: _HostRender, section: str, kind: ResourceKind, index: int, spec: Any
) -> Resource | None:
    resource = work.resource(section, kind, index, spec)
    deploys = work.policy.deploys
    if resource is not None and kind == "deploy" and index < len(deploys):
        resource = resource.model_copy(update={"deploy_module": deploys[index]})
    return resource


def policy_resources(
    policy: LoadedPolicy,
    renderer: TemplateRenderer,
    context: dict[str, Any],
    host: str,
    reporter: Reporter,
) -> list[tuple[ResourceKind, int, Resource]]:
    """The policy's resources for one host, as (kind, position in file, resource)."""
    found: list[tuple[ResourceKind, int, Resource]] = []
    for section, kind in SECTIONS:
        for index, spec in enumerate(getattr(policy.document, section)):
            work = _HostRender(policy, renderer, context, host, reporter)
            resource = _entry_resource(work, section, kind, index, spec)
            if resource is not None:
                found.append((kind, index, resource))
    return found


def _entries(policy: LoadedPolicy, renderer: TemplateRenderer) -> list[EntryReads]:
    return [
        entry_reads(section, kind, index, spec, policy.yaml.data[section][index], renderer)
        for section, kind in SECTIONS
        for index, spec in enumerate(getattr(policy.document, section))
    ]


def shared_policy_resources(
    policy: LoadedPolicy,
    renderer: TemplateRenderer,
    context: dict[str, Any],
    variables: Mapping[str, VarValue],
    host: str,
    reporter: Reporter,
    shared: SharedResolution,
) -> list[tuple[ResourceKind, int, Resource, object]]:
    """`policy_resources`, each entry built once per distinct set of the variables it reads
    (see `policy.sharing`), with for each resource the object that stands for its structure:
    itself, or the resource it copies with other content."""
    reads = shared.reads.get(id(policy))
    if reads is None:
        reads = shared.reads[id(policy)] = PolicyReads.of(_entries(policy, renderer))
    found: list[tuple[ResourceKind, int, Resource, object]] = []
    for number, (names, group) in enumerate(reads.common):
        key = (id(policy), number, variables_key(names, variables))
        common = shared.rendered.get(key)
        if common is None:
            built = (
                (e, _entry_resource(_HostRender(policy, renderer, context, host, reporter), *e.at))
                for e in group
            )
            common = [(e.kind, e.index, r, r) for e, r in built if r is not None]
            shared.rendered[key] = common
        found += common
    for entry in reads.per_host:
        work = _HostRender(policy, renderer, context, host, reporter)
        where = (id(policy), entry.section, entry.index)
        base = shared.bases.get(where) if entry.content_only else None
        if base is None:
            resource = _entry_resource(work, *entry.at)
            if resource is not None and entry.content_only:
                shared.bases[where] = resource
            base = resource
        else:
            content = work.content(base.spec, (entry.section, entry.index))
            resource = None if work.failed else base.model_copy(update={"content": content})
        if resource is not None:
            found.append((entry.kind, entry.index, resource, base))
    return found


KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


PolicyItems = list[tuple[ResourceKind, int, Resource, object]]


def _merged_in_order(
    found: Sequence[PolicyItems],
    matching: Sequence[LoadedPolicy],
    name: str,
    reporter: Reporter,
    shared: SharedResolution | None,
) -> list[Resource]:
    """The host's resources (`found`: per matching policy, then its lock pins) in the default
    order of kinds, merged, checked and in apply order; with `shared`, the outcome for a list
    of the same structure (see `policy.sharing`) is reused, sorting included."""
    flat = [item for items in found for item in items]
    key = (*(id(p) for p in matching), 0, *(id(item[3]) for item in flat))
    memo = shared.orders.get(key) if shared is not None else None
    if memo is None:
        ranked = sorted(
            (KIND_RANK[item[0]], number, item[1], position)
            for number, items in enumerate(found)
            for position, item in enumerate(items, start=sum(len(i) for i in found[:number]))
        )
        ordered = [flat[rank[3]][2] for rank in ranked]
        resources, conflicts = merge_resources(ordered)
        problems = conflicts + check_patch_pins(resources) + check_edited_files(resources)
        order_problems = check_order(resources, _invalid_ids(matching))
        resources = topological_order(resources)
        if shared is not None and len(resources) == len(flat) and not conflicts:
            where = {id(item[2]): position for position, item in enumerate(flat)}
            kept = (*matching, *(item[3] for item in flat))
            memo = OrderMemo(
                tuple(where[id(r)] for r in resources), tuple(problems), tuple(order_problems), kept
            )
            shared.orders[key] = memo
        reporter.extend(problems)
        reporter.extend(order_problems, name)
        return resources
    reporter.extend(memo.problems)
    reporter.extend(memo.order_problems, name)
    return [flat[position][2] for position in memo.positions]


def resolve_host(
    policies: Sequence[LoadedPolicy],
    inventory: Inventory,
    name: str,
    renderer: TemplateRenderer,
    reporter: Reporter,
    lock: LoadedLock | None = None,
    shared: SharedResolution | None = None,
    matching: list[LoadedPolicy] | None = None,
    layered: dict[str, VarValue] | None = None,
) -> DesiredState:
    """The desired state of one host; problems go to `reporter`. With a lock, the host's
    baseline adds its locked versions as patches (after the policies' own resources).
    `shared` shares work between the hosts of one resolution; `matching` (the policies that
    select the host) and `layered` (its inventory variables) are given when already known."""
    host = inventory.hosts[name]
    if matching is None:
        matching = [p for p in policies if selector_matches(p.document.select, host)]
    variables = host_vars(inventory, host, matching, reporter, shared, layered)
    context = renderer.bind(template_context(host, variables))
    found: list[PolicyItems] = [
        shared_policy_resources(policy, renderer, context, variables, name, reporter, shared)
        if shared is not None
        else [
            (*item, item[2]) for item in policy_resources(policy, renderer, context, name, reporter)
        ]
        for policy in matching
    ]
    reporter.extend(check_baselines(matching, name))
    baseline = next((p.name for p in matching if p.document.patch_baseline is not None), None)
    if lock is not None and baseline is not None:
        pins, problems = locked_resources(lock, baseline, name, variables)
        reporter.extend(problems)
        found.append([("patch", index, pin, pin) for index, pin in enumerate(pins)])
    resources = _merged_in_order(found, matching, name, reporter, shared)
    return DesiredState(
        host=host_target(inventory, host),
        resources=tuple(resources),
        vars=variables,
        policies=tuple(policy.name for policy in matching),
        patch_baseline=baseline,
        user_checks=tuple(check for policy in matching for check in policy.checks),
    )


def _invalid_ids(policies: Sequence[LoadedPolicy]) -> set[str]:
    """The ids of entries left out as invalid (when their key can be read), so an `after` that
    names one is not reported as unknown on top of the entry's own error."""
    kinds = dict(SECTIONS)
    found = set()
    for policy in policies:
        for section, raw in policy.dropped:
            try:
                found.add(
                    f"{kinds[section]}:{resource_key(kinds[section], SimpleNamespace(**raw))}"
                )
            except (KeyError, TypeError, AttributeError):
                continue
    return found


def _matching_policies(
    policies: Sequence[LoadedPolicy], inventory: Inventory
) -> dict[str, list[LoadedPolicy]]:
    """The policies that select each host, in policy order; worked out once per distinct
    ring, groups and naming selectors (hosts mostly share them)."""
    naming = [p for p in policies if p.document.select.hosts]
    known: dict[tuple[object, ...], list[LoadedPolicy]] = {}
    matching: dict[str, list[LoadedPolicy]] = {}
    for name, host in inventory.hosts.items():
        shape = (host.ring, host.groups, *(name in p.document.select.hosts for p in naming))
        found = known.get(shape)
        if found is None:
            found = [p for p in policies if selector_matches(p.document.select, host)]
            known[shape] = found
        matching[name] = found
    return matching


def resolve_hosts(
    policies: Sequence[LoadedPolicy],
    inventory: Inventory,
    renderer: TemplateRenderer,
    lock: LoadedLock | None = None,
    names: Collection[str] | None = None,
) -> tuple[dict[str, DesiredState], list[Diagnostic]]:
    """The desired state of every host (or of those in `names`) in inventory order, and every
    problem found (each once)."""
    fleet = FleetResolution.start(policies, inventory, renderer, lock)
    desired = fleet.resolve([name for name in inventory.hosts if names is None or name in names])
    return desired, fleet.reporter.diagnostics()


@dataclass
class FleetResolution:
    """One resolution of a fleet: what every host shares (variable layers, matching policies,
    memos), the fleet-wide checks done, and a reporter; hosts are resolved on demand."""

    policies: Sequence[LoadedPolicy]
    inventory: Inventory
    renderer: TemplateRenderer
    lock: LoadedLock | None
    reporter: Reporter
    layers: dict[str, dict[str, VarValue]]
    matching: dict[str, list[LoadedPolicy]]
    shared: SharedResolution

    @classmethod
    def start(
        cls,
        policies: Sequence[LoadedPolicy],
        inventory: Inventory,
        renderer: TemplateRenderer,
        lock: LoadedLock | None = None,
    ) -> FleetResolution:
        reporter = Reporter()
        reporter.extend(check_selectors(policies, inventory))
        layers = {name: inventory_vars(inventory, host) for name, host in inventory.hosts.items()}
        matching = _matching_policies(policies, inventory)
        selects: dict[str, list[InventoryHost]] = {policy.name: [] for policy in policies}
        for name, host in inventory.hosts.items():
            for policy in matching[name]:
                selects[policy.name].append(host)
        reporter.extend(overridden_defaults(policies, layers, selects))
        fleet = cls(
            policies, inventory, renderer, lock, reporter, layers, matching, SharedResolution()
        )
        return fleet

    def resolve(self, names: Iterable[str]) -> dict[str, DesiredState]:
        """These hosts' desired states, in the order given; problems go to `reporter`."""
        return {
            name: resolve_host(
                self.policies,
                self.inventory,
                name,
                self.renderer,
                self.reporter,
                self.lock,
                self.shared,
                self.matching[name],
                self.layers[name],
            )
            for name in names
        }
