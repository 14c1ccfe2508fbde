"""Warm pools (issue 20): machines booted ahead of any user, claimed by a launch.

- ``rules``: the setting ``warm_pools`` parsed, pool keys (pure functions);
- ``service``: the pool account, the claim a launch makes, the pools' figures;
- ``keeper``: the worker's part: refill, replace over-age machines, give way to users'
  launches, hand a claimed machine to its user (:meth:`Provider.personalise`).
"""
