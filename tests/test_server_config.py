"""The reward server's config: bad combinations refused with the fix (no engine needed)."""

from __future__ import annotations

import pytest

from reward_server.config import ServerConfig


def test_listening_beyond_loopback_needs_tls_and_a_token() -> None:
    with pytest.raises(ValueError, match="needs --tls-cert/--tls-key and --token"):
        ServerConfig(host="0.0.0.0")
    ServerConfig(host="0.0.0.0", insecure=True)
    ServerConfig(host="::1")
