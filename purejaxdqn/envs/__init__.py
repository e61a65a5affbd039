"""Environments: gymnax ids, simulator bridges (envpool, gymnasium) and probe environments,
all behind one `EnvSpec` that the training loop steps as a vector of environments.
"""

from purejaxdqn.envs.spec import EnvSpec, check_env_id, make_env, vector_reset, vector_step

__all__ = ["EnvSpec", "check_env_id", "make_env", "vector_reset", "vector_step"]
