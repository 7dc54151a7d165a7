"""The state stores of the contract suite (every one, Redis and SQLite files included), for the outbox's deliverer."""

from tests.contract.conftest import backing, store

__all__ = ["backing", "store"]
