"""Prometheus metrics at ``/metrics`` (docs/admin.md, "Metrics").

What the database knows (machines by state, launches, failures, launch phases, bootstrap
exchanges, HPC submissions, open desktops) is counted from the database when Prometheus
scrapes (:mod:`daaas.portal.metrics.collect`), so every web process on every host answers
the same figures. What only a worker sees (its cycles and its provider calls) is kept in the
worker's own registry (:mod:`daaas.portal.metrics.worker`) and written to
``<var_dir>/metrics/`` after each cycle, where the scrape reads it with a ``worker`` label.
"""
