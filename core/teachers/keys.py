"""API keys for endpoint teachers: from an environment variable or the OS keyring, never from a file.

The keyring entry is service ``doctune``, user ``teacher:<base_url>``; ``doctune
teacher set-key`` stores one there.
"""
from __future__ import annotations

import os

KEYRING_SERVICE = "doctune"


def keyring_user(base_url: str) -> str:
    return f"teacher:{base_url.rstrip('/')}"


def read_api_key(base_url: str, env_name: str = "") -> str | None:
    """The key from ``$env_name`` if set there, else from the OS keyring, else None (local servers need none)."""
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, keyring_user(base_url))
    except Exception:  # no keyring backend on this machine (headless Linux): no stored key
        return None


def store_api_key(base_url: str, key: str) -> None:
    import keyring

    keyring.set_password(KEYRING_SERVICE, keyring_user(base_url), key)
