"""Contextualisation in the portal: the bootstrap exchange with a machine and its readiness report.

``build`` makes a session's :class:`daaas.contextualisation.Context` from the portal's data (the one
place both the reconciler and ``daaas context render`` do it); ``service`` mints the bootstrap
token at launch, trades it for the machine's secrets and records what the machine reports;
``api`` is the VM-facing ``/api/v1/context/<machine>/...`` (see
contextualisation/BOOTSTRAP_PROTOCOL.md).
"""
