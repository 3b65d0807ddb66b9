"""her_policy.deploy."""
