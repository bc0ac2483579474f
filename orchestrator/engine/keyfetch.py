"""Apt keys named by URL (`key_url:`): fetched by the controller at apply time, verified, then
sent to the host like any other file.

The controller fetches rather than the host because a minimal Debian host has neither curl nor
gpg to check what it fetched; here the key's fingerprints are computed (`openpgp`) and the key
is installed only if it holds the policy's `fingerprint:`. It is converted to the keyring's
format (apt reads `.asc` as armored, anything else as binary). Failures are per host (the
engine reports them as that host's failure), never a crash. Imports urllib and `openpgp`.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from orchestrator.openpgp import OpenPGPError, armor, dearmor, is_armored, key_fingerprints

MAX_KEY_BYTES = 1024 * 1024


class KeyFetchError(Exception):
    """The key could not be fetched, or is not the key the policy names."""


def fetch_key(url: str, fingerprint: str, keyring: str, timeout: float) -> bytes:
    """The key at `url`, checked to hold `fingerprint`, in the format `keyring`'s name asks for."""
    if not url.startswith(("http://", "https://")):
        raise KeyFetchError(f"key {url}: only http and https keys are fetched")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read(MAX_KEY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise KeyFetchError(f"cannot fetch the key {url}: {reason}") from None
    if len(data) > MAX_KEY_BYTES:
        raise KeyFetchError(f"the key {url} is larger than {MAX_KEY_BYTES // 1024} KiB")
    try:
        held = key_fingerprints(data)
        armored = is_armored(data)
        binary = dearmor(data) if armored else data
    except OpenPGPError as error:
        raise KeyFetchError(f"the key {url} is not a public key: {error}") from None
    if fingerprint not in held:
        raise KeyFetchError(
            f"the key {url} does not hold {fingerprint} (it holds {', '.join(held)}): not installed"
        )
    if keyring.endswith(".asc"):
        return data if armored else armor(binary)
    return binary
