"""OpenPGP public keys as apt reads them: armored or binary, and the fingerprints they hold.

apt takes a `signed-by` keyring either ASCII-armored (a `.asc` file) or as binary OpenPGP packets
(a `.gpg` file). This module tells the two apart, converts between them, and lists the
fingerprints of the primary keys and subkeys in a keyring (v4: SHA-1, v5 and v6: SHA-256 over
the key packet, RFC 4880 12.2 and RFC 9580 5.5.4), so a key fetched from a URL or found on a host
is checked against a policy's `fingerprint:` without gpg. Standard library only and nothing from
patchring: `verify.export` copies it verbatim into exported checks, as it does `verify.probes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator

ARMOR_BEGIN = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = b"-----END PGP PUBLIC KEY BLOCK-----"
_PUBLIC_KEY_TAGS = {6, 14}  # public key, public subkey
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


class OpenPGPError(ValueError):
    """The data is not an OpenPGP public key in a form apt reads."""


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as 40 (v4) or 64 (v6) uppercase hex digits; spaces (as gpg prints it) and
    a leading 0x are dropped. Raises OpenPGPError for anything else."""
    clean = "".join(text.split()).upper().removeprefix("0X")
    if not _FINGERPRINT.fullmatch(clean):
        raise OpenPGPError(
            f"'{text}' is not an OpenPGP fingerprint (40 or 64 hex digits, spaces allowed)"
        )
    return clean


def is_armored(data: bytes) -> bool:
    return data.lstrip().startswith(ARMOR_BEGIN)


def dearmor(data: bytes) -> bytes:
    """The binary packets of an ASCII-armored key block (as `gpg --dearmor`)."""
    text = data.strip()
    if not text.startswith(ARMOR_BEGIN) or ARMOR_END not in text:
        raise OpenPGPError("not an ASCII-armored public key block")
    body = text[len(ARMOR_BEGIN) : text.index(ARMOR_END)].strip().splitlines()
    while body and b":" in body[0]:  # armor headers (Comment:, Version:) end at a blank line
        body.pop(0)
    lines = [line.strip() for line in body if line.strip() and not line.startswith(b"=")]
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise OpenPGPError("the armored key block is not valid base64") from None


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(data: bytes) -> bytes:
    """Binary key packets as an ASCII-armored block (as `gpg --armor --export`)."""
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    crc = base64.b64encode(_crc24(data).to_bytes(3, "big"))
    return b"\n".join([ARMOR_BEGIN, b"", *lines, b"=" + crc, ARMOR_END]) + b"\n"


def _packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet, old and new formats (RFC 4880 4.2)."""
    at = 0
    while at < len(data):
        first = data[at]
        if not first & 0x80:
            raise OpenPGPError(f"byte {at} does not start an OpenPGP packet")
        if first & 0x40:  # new format
            tag, at = first & 0x3F, at + 1
            if at >= len(data):
                raise OpenPGPError("an OpenPGP packet is cut short")
            octet = data[at]
            if octet < 192:
                length, at = octet, at + 1
            elif octet < 224:
                length, at = ((octet - 192) << 8) + data[at + 1] + 192, at + 2
            elif octet == 255:
                length, at = int.from_bytes(data[at + 1 : at + 5], "big"), at + 5
            else:
                raise OpenPGPError("partial-length packets do not occur in keys")
        else:  # old format
            tag, kind, at = (first >> 2) & 0x0F, first & 0x03, at + 1
            if kind == 3:
                raise OpenPGPError("indeterminate-length packets do not occur in keys")
            size = (1, 2, 4)[kind]
            length, at = int.from_bytes(data[at : at + size], "big"), at + size
        if at + length > len(data):
            raise OpenPGPError("an OpenPGP packet is cut short")
        yield tag, data[at : at + length]
        at += length


def binary_fingerprints(data: bytes) -> list[str]:
    """Fingerprints of every primary key and subkey in binary key packets, in order."""
    found = []
    for index, (tag, body) in enumerate(_packets(data)):
        if index == 0 and tag != 6:
            raise OpenPGPError(f"the first packet is not a public key (packet tag {tag})")
        if tag not in _PUBLIC_KEY_TAGS or not body:
            continue
        version = body[0]
        if version == 4:
            digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
        elif version in (5, 6):
            prefix = b"\x9a" if version == 5 else b"\x9b"
            digest = hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest()
        else:
            raise OpenPGPError(f"OpenPGP key version {version} is not supported")
        found.append(digest.upper())
    if not found:
        raise OpenPGPError("no public key in the data")
    return found


def key_fingerprints(data: bytes) -> list[str]:
    """Fingerprints of the keys in an armored or binary keyring. Raises OpenPGPError."""
    return binary_fingerprints(dearmor(data) if is_armored(data) else data)


def key_format(data: bytes) -> str:
    """`armored` or `binary` for a valid public key (its packets parse); raises OpenPGPError
    naming what the data is not."""
    if is_armored(data):
        binary_fingerprints(dearmor(data))
        return "armored"
    if not data or not data[0] & 0x80:
        raise OpenPGPError("neither an ASCII-armored public key nor an OpenPGP binary key")
    binary_fingerprints(data)
    return "binary"
