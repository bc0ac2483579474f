"""Jump hosts and ssh_config: parsing hops, located errors, what an ssh_config gives a host, and
the ProxyJump of the ssh_config verify writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.inventory import collect_inventory, load_inventory
from orchestrator.inventory.sshconfig import read_ssh_config
from orchestrator.model.jump import JumpHop, JumpHost, parse_jump_hosts
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.policy.resolve import host_target
from orchestrator.verify.sshlink import SshConfig

HOSTS = "hosts: {web1: {address: 10.0.0.5}, web2: {address: web2.lab, port: 2200}}\n"


def source(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> WorktreeSource:
    (tmp_path / "inventory").mkdir(exist_ok=True)
    (tmp_path / "inventory" / "site.yml").write_text(text, encoding="utf-8")
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    return WorktreeSource(tmp_path)


def messages(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> list[str]:
    _, found = collect_inventory(source(tmp_path, text, files))
    return [str(problem) for problem in found]


def test_hops_from_a_string_or_a_list() -> None:
    assert parse_jump_hosts("ops@bastion.example:2222, [fd00::1]:22") == (
        JumpHost(address="bastion.example", user="ops", port=2222),
        JumpHost(address="fd00::1", port=22),
    )
    assert parse_jump_hosts(["10.0.0.1", "a@10.0.0.2,10.0.0.3"]) == (
        JumpHost(address="10.0.0.1"),
        JumpHost(address="10.0.0.2", user="a"),
        JumpHost(address="10.0.0.3"),
    )
    assert JumpHost(address="fd00::1", user="a", port=22).text() == "a@[fd00::1]:22"


def test_hops_take_the_hosts_user_key_and_port_22(tmp_path: Path) -> None:
    text = (
        "ssh: {user: deploy, identity_file: /keys/id, known_hosts: /keys/known, "
        "jump_host: [bastion.lab, 'ops@10.0.0.2:2222']}\n" + HOSTS
    )
    inventory = load_inventory(source(tmp_path, text))
    target = host_target(inventory, inventory.hosts["web2"])
    assert target.jump_hosts == (
        JumpHop(address="bastion.lab", port=22, user="deploy", identity_file="/keys/id"),
        JumpHop(address="10.0.0.2", port=2222, user="ops", identity_file="/keys/id"),
    )
    assert (target.address, target.port, target.user) == ("web2.lab", 2200, "deploy")
    no_jump = load_inventory(source(tmp_path, HOSTS))
    assert host_target(no_jump, no_jump.hosts["web1"]).jump_hosts == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '"root@bad;host"',
            "jump host 'root@bad;host' has an invalid host 'bad;host' (not an IP address or a "
            "DNS name); write [user@]host[:port]",
        ),
        (
            '"-oProxyCommand=sh"',
            "jump host '-oProxyCommand=sh' has an invalid host '-oProxyCommand=sh' (not an IP "
            "address or a DNS name); write [user@]host[:port]",
        ),
        (
            '"$(id)@bastion"',
            "jump host '$(id)@bastion' has an invalid user '$(id)'; write [user@]host[:port]",
        ),
        (
            '"`id`@bastion"',
            "jump host '`id`@bastion' has an invalid user '`id`'; write [user@]host[:port]",
        ),
        (
            '"bastion\\nProxyCommand sh"',
            "jump host 'bastion\\nProxyCommand sh' has an invalid host 'bastion\\nProxyCommand "
            "sh' (not an IP address or a DNS name); write [user@]host[:port]",
        ),
        (
            '"a@b:99999"',
            "jump host 'a@b:99999' has an invalid port '99999' (not 1 to 65535); "
            "write [user@]host[:port]",
        ),
        (
            "[ok.example, 'x@[fd00::1']",
            "jump host 'x@[fd00::1' has an unclosed or misplaced '[' ']'; write [user@]host[:port]",
        ),
        ('"a,,b"', "jump_host 'a,,b' has an empty hop"),
        ("5", "jump_host must be a string or a list of strings"),
    ],
)
def test_bad_jump_hosts_are_located_errors(tmp_path: Path, value: str, message: str) -> None:
    text = f"ssh: {{jump_host: {value}}}\n" + HOSTS
    assert messages(tmp_path, text) == [f"inventory/site.yml:1:18: error: {message}"]


CONFIG = """\
# the team's ssh_config
Host bastion
  HostName 10.0.0.1
  User ops
  Port 2222
  IdentityFile /keys/ops
Host web2.lab
  HostName 10.0.0.6
  Port 2201
  ProxyJump bastion
  ForwardAgent yes
Match host 10.0.0.5
  User nobody
Host *
  User admin
  IdentityFile /keys/admin
  ServerAliveInterval 5
  forwardagent no
"""


def test_ssh_config_gives_aliases_users_ports_keys_and_jump_hosts(tmp_path: Path) -> None:
    text = "ssh: {config_file: ssh_config}\n" + HOSTS
    inventory, found = collect_inventory(source(tmp_path, text, {"inventory/ssh_config": CONFIG}))
    assert [str(problem) for problem in found] == [
        f"inventory/site.yml:1:7: warning: ssh config_file {tmp_path.resolve()}/inventory/"
        f"ssh_config: option '{option}' is not used by patchring; ignored"
        for option in ("ForwardAgent", "Match", "ServerAliveInterval")
    ]
    assert inventory is not None
    web1 = host_target(inventory, inventory.hosts["web1"])
    assert (web1.address, web1.port, web1.user, web1.identity_file) == (
        "10.0.0.5",
        22,
        "admin",  # the Match block is ignored whole
        "/keys/admin",
    )
    assert web1.jump_hosts == ()
    web2 = host_target(inventory, inventory.hosts["web2"])
    assert (web2.address, web2.port, web2.user) == ("10.0.0.6", 2200, "admin")  # host port wins
    assert web2.jump_hosts == (
        JumpHop(address="10.0.0.1", port=2222, user="ops", identity_file="/keys/ops"),
    )


def test_inventory_settings_win_over_the_ssh_config(tmp_path: Path) -> None:
    text = (
        "ssh: {config_file: ssh_config, user: root, port: 22, identity_file: /keys/mine, "
        "jump_host: []}\n" + HOSTS
    )
    inventory = load_inventory(source(tmp_path, text, {"inventory/ssh_config": CONFIG}))
    web2 = host_target(inventory, inventory.hosts["web2"])
    assert (web2.user, web2.identity_file, web2.jump_hosts) == ("root", "/keys/mine", ())
    assert web2.address == "10.0.0.6"  # an alias the inventory cannot say otherwise


def test_bad_ssh_config_values_and_a_missing_file_are_errors_at_the_setting(
    tmp_path: Path,
) -> None:
    bad = "Host web2.lab\n  HostName web;rm\n  Port 0\n  ProxyJump -oProxyCommand=sh\n"
    text = "ssh:\n  config_file: bad_config\n" + HOSTS
    where = f"inventory/site.yml:2:16: error: ssh config_file {tmp_path.resolve()}/inventory/"
    assert messages(tmp_path, text, {"inventory/bad_config": bad}) == [
        where + "bad_config: Host 'web2.lab': HostName 'web;rm' is not an IP address or a DNS "
        "name (like 10.0.0.5 or web1.example.org)",
        where + "bad_config: Host 'web2.lab': Port '0' is not a port (1 to 65535)",
        where + "bad_config: Host 'web2.lab': ProxyJump jump host '-oProxyCommand=sh' has an "
        "invalid host '-oProxyCommand=sh' (not an IP address or a DNS name); "
        "write [user@]host[:port]",
    ]
    missing = messages(tmp_path, "ssh: {config_file: nowhere}\n" + HOSTS)
    assert missing == [
        f"inventory/site.yml:1:20: error: cannot read ssh config_file "
        f"{tmp_path.resolve()}/inventory/nowhere: No such file or directory"
    ]


def test_proxy_jump_none_and_hops_of_hops() -> None:
    config = "Host a\n  ProxyJump none\nHost b\n  ProxyJump j1\nHost j1\n  HostName 10.9.9.9\n"
    reading = read_ssh_config(config, ["a", "b"])
    assert reading.entries["a"].jump_hosts == ()
    assert reading.entries["b"].jump_hosts == (JumpHost(address="j1"),)
    assert reading.entries["j1"].hostname == "10.9.9.9"
    assert reading.problems == reading.ignored == []


def test_verify_ssh_config_jumps_and_checks_the_jump_hosts_key(tmp_path: Path) -> None:
    text = "ssh: {known_hosts: /keys/known, identity_file: /keys/id, jump_host: ops@10.0.0.1}\n"
    inventory = load_inventory(source(tmp_path, text + HOSTS))
    targets = [host_target(inventory, host) for host in inventory.hosts.values()]
    written = SshConfig.write(targets, tmp_path).path.read_text()
    assert written.count("  ProxyJump ops@10.0.0.1:22\n") == 2
    jump_block = written.split('Host "10.0.0.1"\n', 1)[1]
    assert "  StrictHostKeyChecking yes\n" in jump_block
    assert '  UserKnownHostsFile "/keys/known"\n' in jump_block
    assert '  IdentityFile "/keys/id"\n' in jump_block
    assert "ProxyJump" not in jump_block
