"""Which token claim makes its principal an admin (`--auth-admin-claim`); pure, and free of PyJWT."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AdminClaim"]


@dataclass(frozen=True, slots=True)
class AdminClaim:
    """`NAME=VALUE`: the claim is the string VALUE, or a list holding it (`roles=admin` for `"roles": ["admin"]`);
    `NAME` alone: the claim is JSON `true`. NAME is a claim's name, or else a dotted path into nested claims
    (`realm_access.roles=admin`, as Keycloak puts roles); a name that holds dots itself (Auth0's namespaced
    claims, `https://example.com/roles`) is found whole first."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> AdminClaim:
        """Raises: ValueError: no claim name."""
        name, equals, value = text.partition("=")
        if not name.strip():
            raise ValueError(f"--auth-admin-claim {text!r}: NAME=VALUE or NAME expected")
        return cls(name.strip(), value.strip() if equals else None)

    def holds(self, claims: Mapping[str, object]) -> bool:
        """Whether `claims` (a verified token's) make its principal an admin."""
        found = _claim(claims, self.name)
        if self.value is None:
            return found is True  # not merely truthy: "false" or 1 make nobody an admin
        if isinstance(found, list):
            return self.value in found
        return found == self.value


def _claim(claims: Mapping[str, object], name: str) -> object:
    if name in claims:
        return claims[name]
    current: object = claims
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current
