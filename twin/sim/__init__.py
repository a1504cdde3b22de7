"""Simulating: the Mesa model, the engine protocol and registry, both engines, records, rng."""
