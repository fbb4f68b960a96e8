"""Targets: one sub-package per target behind the protocol in targets.base, and the hardware specs."""
