"""Adapters that put the reward service behind trainers users already run.

- `reward_api.integrations.trl`: `CodeReward`, an async reward function for TRL's `GRPOTrainer`.
- `reward_api.integrations.verl`: `compute_score` / `compute_score_batch` for verl's
  `custom_reward_function`.

Both talk to reward servers over gRPC only: a trainer machine needs neither Docker nor the
server's dependencies, and neither TRL nor verl is imported here.
"""
