"""Optional bundle signing: an Ed25519 signature over SHA256SUMS, with the model owner's key.

SHA256SUMS catches accidents (a truncated copy, an edited file), not an attacker who edits a
file and rewrites the sums. A signature over SHA256SUMS closes that: `idv-export
signing_key=<private key PEM>` writes ``SHA256SUMS.sig``, and `load_bundle(...,
public_key=<PEM>)` (or the environment's ``IDV_BUNDLE_PUBLIC_KEY``, a PEM file path) verifies
it before anything else is read. With a key configured, a missing or invalid signature is an
error, so deleting the signature file does not bypass the check; without one, the bundle
loads on its checksums alone, as before. Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo
public), made once by the model owner:

    python -m idv.serving.signing keygen owner.key owner.pub
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from idv.errors import IdvError

SIGNATURE_FILE = "SHA256SUMS.sig"
SUMS_FILE = "SHA256SUMS"
PUBLIC_KEY_ENV = "IDV_BUNDLE_PUBLIC_KEY"


class SignatureError(IdvError, RuntimeError):
    """A bundle whose signature is missing, malformed or does not verify; names the bundle."""


def _read_key(path: str | os.PathLike, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    file = Path(path)
    if not file.is_file():
        raise SignatureError(f"signing key {file} not found")
    data = file.read_bytes()
    try:
        if private:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        what = "private" if private else "public"
        raise SignatureError(f"{file}: not a PEM {what} key ({err})") from err
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise SignatureError(f"{file}: an Ed25519 key is required, got {type(key).__name__}")
    return key


def sign_bundle(bundle_dir: str | os.PathLike, private_key: str | os.PathLike) -> Path:
    """Write ``SHA256SUMS.sig`` (base64 Ed25519 signature of SHA256SUMS' bytes)."""
    root = Path(bundle_dir)
    sums = root / SUMS_FILE
    if not sums.is_file():
        raise SignatureError(f"bundle {root}: {SUMS_FILE} is missing; write it before signing")
    signature = _read_key(private_key, private=True).sign(sums.read_bytes())
    out = root / SIGNATURE_FILE
    out.write_text(base64.b64encode(signature).decode() + "\n")
    return out


def configured_public_key(public_key: str | os.PathLike | None) -> str | None:
    """The public key to verify with: the argument, else ``IDV_BUNDLE_PUBLIC_KEY``. The
    variable set but empty is a misconfiguration, refused (failing open would load unsigned
    bundles without a word)."""
    if public_key:
        return str(public_key)
    value = os.environ.get(PUBLIC_KEY_ENV)
    if value is not None and not value.strip():
        raise SignatureError(
            f"{PUBLIC_KEY_ENV} is set but empty: give the public key's PEM file, or unset it"
        )
    return value or None


def verify_signature(bundle_dir: str | os.PathLike, public_key: str | os.PathLike) -> None:
    """Check ``SHA256SUMS.sig`` against SHA256SUMS with `public_key`; SignatureError naming
    the bundle when the signature is missing, malformed or wrong."""
    from cryptography.exceptions import InvalidSignature

    root = Path(bundle_dir)
    key = _read_key(public_key, private=False)
    file = root / SIGNATURE_FILE
    if not file.is_file():
        raise SignatureError(
            f"bundle {root}: {SIGNATURE_FILE} is missing, and a public key is configured "
            f"({public_key}): an unsigned bundle is refused"
        )
    try:
        signature = base64.b64decode(file.read_text().strip(), validate=True)
    except ValueError as err:
        raise SignatureError(f"bundle {root}: {SIGNATURE_FILE} is not base64 ({err})") from err
    sums = root / SUMS_FILE
    if not sums.is_file():
        raise SignatureError(f"bundle {root}: {SUMS_FILE} is missing")
    try:
        key.verify(signature, sums.read_bytes())
    except InvalidSignature:
        raise SignatureError(
            f"bundle {root}: the signature in {SIGNATURE_FILE} does not verify with {public_key} "
            f"(SHA256SUMS altered, or signed by another key)"
        ) from None


def generate_keypair(private_path: str | os.PathLike, public_path: str | os.PathLike) -> None:
    """A new Ed25519 key pair as PEM files (the private one readable by its owner only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    Path(public_path).write_bytes(public)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "keygen":
        sys.exit("usage: python -m idv.serving.signing keygen PRIVATE.pem PUBLIC.pem")
    generate_keypair(sys.argv[2], sys.argv[3])
