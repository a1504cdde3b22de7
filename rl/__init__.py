"""Reinforcement learning on the twin (Gymnasium environments, training, evaluation): see issue 4."""

__all__: list[str] = []
