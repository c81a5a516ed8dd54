"""Capillary: cancer samples in object storage become PCGR reports on short-lived workers."""

__version__ = "0.1.0"
