"""her_policy.artefact.store."""
