"""aipo envs inside other trainers: :mod:`aipo.integrations.trl` (TRL's ``GRPOTrainer``)."""
