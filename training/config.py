"""Compose configs from the Hydra tree in ``configs/`` with command-line overrides, or resume a run's saved config."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A bad override or config; the message is one line."""


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """``configs/<config_name>.yaml`` plus overrides, resolved to a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    store_code_defaults()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        cause = f"\n{exc.__cause__}" if exc.__cause__ else ""  # Hydra keeps "Key ... is not in struct" here
        raise ConfigError(one_line(f"{exc}{cause}")) from None


def store_code_defaults() -> None:
    """Config groups whose defaults are defined in code: ``agent: default`` is ``agents.AgentConfig``."""
    from hydra.core.config_store import ConfigStore

    from agents.network import AgentConfig

    ConfigStore.instance().store(group="agent", name="default", node=AgentConfig)


def one_line(message: str) -> str:
    """Hydra's multi-line messages ("Available options: ...") folded into one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid configuration"
    head, rest = lines[0], lines[1:]
    if rest and rest[0].lower().startswith("available options"):
        options = []
        for line in rest[1:]:
            if line.lower().startswith("config search path"):  # Hydra's search path follows the options
                break
            options.append(line.lstrip("- ").strip())
        return f"{head} Available: {', '.join(options)}"
    unknown_key = next((line for line in rest if "not in struct" in line), None)
    if unknown_key:
        return f"{head} ({unknown_key}); check the spelling against the keys in configs/"
    return head


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Dotted ``key=value`` overrides on an existing (saved) config; keys must exist."""
    base = OmegaConf.create(config)
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except Exception as exc:  # omegaconf's errors for unknown keys and bad values
        raise ConfigError(one_line(str(exc))) from None
    return OmegaConf.to_container(merged, resolve=True)


def compose_or_resume(overrides: list[str], config_name: str, own: tuple[str, ...], own_words: str,
                      load: Callable[[Path], dict[str, Any]] | None = None
                      ) -> tuple[dict[str, Any], Path | None, dict[str, Any] | None]:
    """(config, run folder, checkpoint) for ``memrl train`` and ``memrl supervised``.

    A new run: ``configs/<config_name>.yaml`` plus the overrides; no folder and no checkpoint yet
    (make it with ``run_dir.new_run_dir`` once everything is checked). With ``resume=<run>``: the
    run's checkpoint (read by ``load``), its saved config plus the other overrides, and its folder.
    The config groups in ``own`` (``own_words`` in the error) belong to the run and cannot change.
    """
    from .run_dir import load_checkpoint, resolve_checkpoint

    resume = override_value(overrides, "resume")
    if not resume:
        return compose(config_name, overrides), None, None
    path = resolve_checkpoint(resume)
    checkpoint = (load or load_checkpoint)(path)
    groups = [o for o in overrides if o.split("=", 1)[0] in own]
    if groups:
        raise ConfigError(f"resume continues the run's own {own_words}; drop {groups} or start a new run")
    cfg = apply_overrides(checkpoint["config"], [o for o in overrides if not o.startswith("resume=")])
    return cfg, path.parent, checkpoint


def override_value(overrides: list[str], key: str) -> str | None:
    """The value of ``key=value`` among the overrides; None when absent, empty or null."""
    for o in overrides:
        if o.startswith(f"{key}="):
            value = o.split("=", 1)[1]
            return value if value not in ("", "null", "None") else None
    return None
