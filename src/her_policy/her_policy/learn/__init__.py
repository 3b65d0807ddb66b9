"""her_policy.learn."""
