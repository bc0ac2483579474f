"""Verbatim files and apt repositories as fleets have them, on two real lab hosts.

One host gets the lab repository as a deb822 `.sources` file with a binary key from the policy
repository in /usr/share/keyrings (`key_file:`); the other gets the same repository with its key
fetched by the controller from the lab repository's own URL (`key_url:` + `fingerprint:`). Both
get a binary file copied verbatim (`source:`) and a package from that repository, which only
installs if apt accepts the key.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.policy import WorktreeSource, load_project
from orchestrator.verify import verify_hosts
from tests.integration.conftest import Lab
from tests.integration.fleet import host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 90}
KEYRING = "/usr/share/keyrings/patchring-lab.gpg"
BLOB_PATH = "/etc/patchring-test/blob.bin"
BLOB = bytes(range(256)) * 8 + b"\x00\xff\xfe"  # not UTF-8: a binary file


def _changes(doc: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    entry = next(h for h in doc["hosts"] if h["host"] == name)
    return {c["resource_id"]: c for c in entry["changes"]}


def _repository(**key: str) -> dict[str, Any]:
    return {
        "name": "patchring-lab",
        "url": "{{ lab_apt_url }}",
        "suite": "lab",
        "format": "sources",
        "keyring": KEYRING,
        **key,
    }


def _policy(name: str, hostname: str, **key: str) -> dict[str, Any]:
    return {
        "name": name,
        "select": {"hosts": [hostname]},
        "apt_repositories": [_repository(**key)],
        "files": [{"path": BLOB_PATH, "source": "files/blob.bin", "mode": "0600"}],
        "packages": [{"name": "acme-tool"}],
    }


@pytest.fixture
def setup(tmp_path: Path, lab: Lab) -> tuple[Path, list[str], bytes, str]:
    names = lab.hosts[:2]
    lab.reset(names)
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)
    shutil.rmtree(repo / "policies")  # only this test's policies, on two hosts
    inventory = yaml.safe_load((repo / "inventory" / "lab.yml").read_text())
    armored = inventory["vars"]["lab_apt_key"].encode()
    binary = subprocess.run(
        ["gpg", "--dearmor"], input=armored, capture_output=True, check=True
    ).stdout
    shown = subprocess.run(
        ["gpg", "--show-keys", "--with-colons"], input=armored, capture_output=True, check=True
    ).stdout.decode()
    fingerprint = next(line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr"))
    (repo / "keys").mkdir()
    (repo / "keys" / "lab.gpg").write_bytes(binary)
    (repo / "files").mkdir(exist_ok=True)
    (repo / "files" / "blob.bin").write_bytes(BLOB)
    url = inventory["vars"]["lab_apt_url"].rstrip("/") + "/lab-archive-key.asc"
    write_yaml(
        repo / "policies" / "from-file.yml", _policy("from-file", names[0], key_file="keys/lab.gpg")
    )
    write_yaml(
        repo / "policies" / "from-url.yml",
        _policy("from-url", names[1], key_url=url, fingerprint=fingerprint),
    )
    yield repo, names, binary, fingerprint
    lab.reset(names)


def test_verbatim_binary_file_and_deb822_repository_with_keys_from_file_and_url(
    setup: tuple[Path, list[str], bytes, str], lab: Lab
) -> None:
    repo, (by_file, by_url), binary, fingerprint = setup
    blob_sha = hashlib.sha256(BLOB).hexdigest()
    plan = patchring(repo, "plan", "--json", "--host", by_file, "--host", by_url)
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    for name in (by_file, by_url):
        changes = _changes(doc, name)
        blob = changes[f"file:{BLOB_PATH}"]
        assert blob["summary"] == (
            f"{BLOB_PATH} (absent) -> created, mode 0600 (binary, sha256 {blob_sha})"
        )
        assert blob["diff"].endswith(f"binary file created, sha256 {blob_sha}\n")
        repo_change = changes["apt_repository:patchring-lab"]
        assert repo_change["summary"].endswith(
            "; apt lists refreshed because patchring-lab changed"
        )
        assert "+Types: deb\n" in repo_change["diff"]
        assert f"+Signed-By: {KEYRING}\n" in repo_change["diff"]
    key_sha = hashlib.sha256(binary).hexdigest()
    assert (
        f"binary file created, sha256 {key_sha}"
        in _changes(doc, by_file)["apt_repository:patchring-lab"]["diff"]
    )
    assert (
        f"installed only if it holds {fingerprint} (now: absent)"
        in _changes(doc, by_url)["apt_repository:patchring-lab"]["diff"]
    )

    applied = patchring(repo, "apply", "--json", "--host", by_file, "--host", by_url)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert {h["status"] for h in applied.json()["hosts"]} == {"changed"}
    for name in (by_file, by_url):
        h = host(lab.address(name), lab.ssh_config)
        assert h.package("acme-tool").is_installed  # apt accepted the key: the repository works
        assert h.file(BLOB_PATH).sha256sum == blob_sha
        assert h.file(KEYRING).sha256sum == key_sha  # the fetched armored key, dearmored
        assert h.file("/etc/apt/sources.list.d/patchring-lab.sources").exists
        assert not h.file("/etc/apt/sources.list.d/patchring-lab.list").exists

    fleet = load_project(WorktreeSource(repo)).desired
    results = verify_hosts({name: fleet[name] for name in (by_file, by_url)})
    for name, verification in results.items():
        failed = [(r.check_id, r.actual) for r in verification.results if r.status != "passed"]
        assert verification.status == "passed", failed
        checks = {r.check_id: r for r in verification.results}
        blob_check = checks[
            f"{'from-file' if name == by_file else 'from-url'}/file:{BLOB_PATH}/content"
        ]
        assert blob_check.expected == f"sha256 {blob_sha}"
    url_key = next(r for r in results[by_url].results if r.check_id.endswith("patchring-lab/key"))
    assert url_key.expected == f"key {fingerprint}"

    again = patchring(repo, "apply", "--json", "--host", by_file, "--host", by_url)
    assert again.code == 0
    assert {h["status"] for h in again.json()["hosts"]} == {"unchanged"}

    # A changed binary file shows both hashes; a key without the fingerprint is never installed.
    lab.exec(by_file, "sh", "-c", f"printf 'other\\377' > {BLOB_PATH}")
    drift = patchring(repo, "plan", "--json", "--host", by_file).json()
    diff = _changes(drift, by_file)[f"file:{BLOB_PATH}"]["diff"]
    other_sha = hashlib.sha256(b"other\xff").hexdigest()
    assert diff.endswith(f"binary file changed, sha256 {other_sha} -> {blob_sha}\n")
    wrong = "F" * 40
    policy = repo / "policies" / "from-url.yml"
    policy.write_text(policy.read_text().replace(fingerprint, wrong))
    lab.exec(by_url, "rm", "-f", KEYRING)
    failed = patchring(repo, "apply", "--json", "--host", by_url)
    assert failed.code == 3
    (result,) = failed.json()["hosts"]
    assert result["status"] == "failed"
    assert f"does not hold {wrong}" in (result["error"] or "")
    assert not host(lab.address(by_url), lab.ssh_config).file(KEYRING).exists
