"""her_policy.app."""
