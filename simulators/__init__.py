"""Device simulators: world generator, device physics, scenarios with ground truth, traffic runner."""

from simulators._world import REFERENCE, WorldSummary, write_world

__all__ = ["REFERENCE", "WorldSummary", "write_world"]
