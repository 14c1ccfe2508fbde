"""The bootstrap exchange between the portal and a cloud-init machine.

``userdata`` is the launch's *context* step: it builds the session's
:class:`daaas.contextualisation.Context` from the portal's data (the one place the reconciler and
``daaas context render`` do it), mints the machine's single-use bootstrap token and renders the
user-data carrying it. ``service`` is the *phone home* step: it trades that token once for the
machine's secrets and records the machine's status report for the reconciler. ``api`` is the
VM-facing ``/api/v1/context/<machine>/...`` (contextualisation/BOOTSTRAP_PROTOCOL.md); ``cli``
is ``daaas context render``.
"""
