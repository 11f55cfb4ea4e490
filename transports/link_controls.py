"""What a scenario sets on the in-memory network's links: per-link behaviour and blocks.

Kept apart from the transport that moves the messages: these are the knobs
(``set_link``, ``block``, ...) that faults and scenarios turn, and the
transport reads ``_link_overrides``, ``default_link`` and ``_blocked`` for
every message it sends.
"""

from __future__ import annotations

from .link_statistics import Link
from .links import LinkConfig


class LinkControls:
    """Per-link overrides of the default ``LinkConfig``, and blocked directed links."""

    def __init__(self, default_link: LinkConfig) -> None:
        self.default_link = default_link
        self._link_overrides: dict[Link, LinkConfig] = {}
        self._blocked: set[Link] = set()

    def link_config(self, src: int, dst: int) -> LinkConfig:
        return self._link_overrides.get((src, dst), self.default_link)

    def set_link(self, src: int, dst: int, config: LinkConfig) -> None:
        """Override one directed link's behaviour."""
        self._link_overrides[(src, dst)] = config

    def set_default_link(self, config: LinkConfig) -> None:
        self.default_link = config

    def reset_links(self) -> None:
        """Forget every per-link override."""
        self._link_overrides.clear()

    def block(self, src: int, dst: int) -> None:
        """Drop everything sent from ``src`` to ``dst`` from now on."""
        self._blocked.add((src, dst))

    def unblock(self, src: int, dst: int) -> None:
        self._blocked.discard((src, dst))

    def unblock_all(self) -> None:
        self._blocked.clear()

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self._blocked

    @property
    def blocked_links(self) -> list[Link]:
        return sorted(self._blocked)
