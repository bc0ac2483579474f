"""What resolution checks in files copied verbatim, and the whitespace options of templates.

A `source:` file is copied byte for byte, never rendered. An apt `key_file:` must be a public
key apt can read: ASCII-armored or binary OpenPGP packets, kept as it is; the keyring it goes to
must have the matching extension (apt reads `.asc` as armored and anything else as binary), and
a `fingerprint:` given beside it must be one of its keys. Template options (`trim_blocks`,
`lstrip_blocks`) come from the file's `template_options:`, else its policy's, else off.
Pure; imports the package's model and `openpgp` only.
"""

from __future__ import annotations

from orchestrator.model.policy import AptRepository, TemplateOptions
from orchestrator.openpgp import OpenPGPError, key_fingerprints, key_format


def template_flags(
    policy: TemplateOptions | None, file: TemplateOptions | None
) -> tuple[bool, bool]:
    """(trim_blocks, lstrip_blocks) for one template file: the file's options over its
    policy's, each off unless set."""

    def pick(name: str) -> bool:
        for options in (file, policy):
            value = getattr(options, name) if options is not None else None
            if value is not None:
                return bool(value)
        return False

    return pick("trim_blocks"), pick("lstrip_blocks")


def key_file_problems(repo: AptRepository, data: bytes) -> list[tuple[str, str]]:
    """(field, message) for each problem of an apt repository's key file: not a key, a keyring
    extension that does not match its format, a fingerprint it does not hold."""
    name = repo.key_file
    try:
        kind = key_format(data)
        held = key_fingerprints(data)
    except OpenPGPError as error:
        return [("key_file", f"key file '{name}' is not a public key apt can read: {error}")]
    problems: list[tuple[str, str]] = []
    keyring = repo.keyring
    wanted = ".asc" if kind == "armored" else ".gpg"
    if keyring is not None and not keyring.endswith(wanted):
        problems.append(
            (
                "keyring",
                f"keyring '{keyring}' must end in {wanted}: key file '{name}' is a {kind} "
                "key, and apt reads a .asc keyring as armored and any other as binary",
            )
        )
    if repo.fingerprint is not None and repo.fingerprint not in held:
        problems.append(
            (
                "fingerprint",
                f"key file '{name}' does not hold key {repo.fingerprint} "
                f"(it holds {', '.join(held)})",
            )
        )
    return problems
