"""CLI command modules; each has ``register(subparsers)`` (see ``doctune.core.cli``)."""
