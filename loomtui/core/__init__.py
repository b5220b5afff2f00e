"""The domain: rollout tree, nodes, distributions, samplers, sessions and importers.

Nothing here imports textual, rich or torch (a test checks it), so the core runs headless and
loads fast.
"""

from loomtui.core.errors import LoomError, ModelError, SessionError, TreeError
from loomtui.core.node import ORIGINS, Distribution, Node, Sampler, TokenChoice
from loomtui.core.tree import Tree

__all__ = [
    "ORIGINS", "Distribution", "LoomError", "ModelError", "Node", "Sampler", "SessionError",
    "TokenChoice", "Tree", "TreeError",
]
