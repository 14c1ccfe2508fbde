"""Quotas per user and per group: machines, vCPUs, memory, GPUs per type, storage."""
