"""The agent network (encoder -> memory core -> heads), V-trace, and the RLlib adapter."""
from .encoders import UnsupportedSpaceError, action_sizes, build_encoder, env_actions, num_parameters
from .network import Agent, AgentConfig, AgentOutput
from .vtrace import VTraceReturns, vtrace

__all__ = ["Agent", "AgentConfig", "AgentOutput", "UnsupportedSpaceError", "VTraceReturns", "action_sizes", "build_encoder", "env_actions", "num_parameters", "vtrace"]
