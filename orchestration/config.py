"""From a composed Hydra config to objects, with every user mistake reported in one line: the
resolvers ``conf/`` uses, the optional extras a command line asks for, instantiation with
errors that name the config key, and the checks of trainer settings and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from base.errors import ConfigError, UserError, check, check_int, with_prefix

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def run_name(experiment: str | None, model: str | None) -> str:
    """The run's name: the experiment's, or the model config's when no experiment is chosen."""
    return str(experiment or model or "run")


def num_symbols(language: str, end_symbol: bool = False) -> int:
    """Symbols of a counting language (``anb2n`` -> 2, ``anb2nc3n`` -> 3; one more with
    ``data.end_symbol``), so that a model config follows the data."""
    from base.languages import LANGUAGES, num_symbols as symbols_of

    if language not in LANGUAGES:
        raise ConfigError(f"data.language={language!r} is invalid; allowed: one of {', '.join(LANGUAGES)}")
    if not isinstance(end_symbol, bool):
        raise ConfigError(f"data.end_symbol={end_symbol!r} is invalid; allowed: true or false")
    return symbols_of(language, end_symbol)


def ddp_strategy(model_target: str) -> str:
    """``${ddp_strategy:${model._target_}}`` (``conf/trainer/ddp.yaml``): see ``orchestration.launch.ddp_strategy``."""
    from orchestration.launch import ddp_strategy as strategy

    return strategy(model_target)


def recurrent_engine(seeds: Any, cell: Any, peepholes: Any, optimizer_target: Any) -> str:
    """``${recurrent_engine:...}``: the engine a recurrent run gets by default, written into the
    saved config (the module's own rule, ``lightning_modules.recurrent.default_engine``)."""
    from lightning_modules.recurrent import default_engine

    return default_engine(seeds, cell, peepholes, str(optimizer_target).endswith(".DEKF"))


def register_resolvers() -> None:
    """``${run_name:...}``, ``${num_symbols:...}``, ``${ddp_strategy:...}`` and
    ``${recurrent_engine:...}`` used by ``conf/``; call before composing."""
    for name, fn in (("run_name", run_name), ("num_symbols", num_symbols), ("ddp_strategy", ddp_strategy), ("recurrent_engine", recurrent_engine)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def group_options(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Config group -> the option names in it (``experiment`` -> ``[kmnist_conv, ...]``)."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(conf_dir.iterdir())
        if d.is_dir() and d.name != "hydra"
    }


# Features that come with an optional extra of the package: (module that provides it, extra).
OPTUNA = ("hydra_plugins.hydra_optuna_sweeper", "optuna")
SUBMITIT = ("hydra_plugins.hydra_submitit_launcher", "slurm")


def needed_extra(override: str) -> tuple[str, str] | None:
    """The extra an override asks for: an Optuna search, or a submitit launcher (SLURM, local)."""
    key, _, value = override.partition("=")
    key = key.lstrip("+~")
    if key == "hparams_search" and value not in ("", "null"):
        return OPTUNA
    if key == "hydra/sweeper" and value == "optuna":
        return OPTUNA
    if key == "hydra/launcher" and (value.startswith("submitit") or value == "slurm"):
        return SUBMITIT
    return None


def check_extras(overrides: list[str]) -> None:
    """``hparams_search=...`` without ``.[optuna]`` installed (or a SLURM launcher without
    ``.[slurm]``) is one line naming the install command, not Hydra's missing-config report."""
    import importlib.util

    for text in overrides:
        need = needed_extra(text)
        if need is None:
            continue
        module, extra = need
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # hydra_plugins itself absent
            found = False
        if not found:
            raise ConfigError(f"{text} needs the optional extra '{extra}', which is not installed; install it with: pip install -e \".[{extra}]\"")


def _is_config_mistake(exc: BaseException) -> bool:
    """Exceptions a constructor raises for bad arguments (not bugs deeper down)."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    return isinstance(exc, (TypeError, ValueError, MisconfigurationException))


def instantiate_group(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a bad value comes back as one line starting
    with ``key`` (``model.hidden_units=0 is invalid; allowed: an integer >= 1``), and a config
    that cannot be resolved (``model=srn`` with KMNIST data: no ``data.language``) names the
    two choices that do not belong together."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    def build():
        try:
            return instantiate(node, **kwargs)
        except InstantiationException as exc:
            cause = exc.__cause__
            if cause is not None and not isinstance(cause, UserError) and _is_config_mistake(cause):
                raise UserError(f"{key}: {cause}") from None  # already names the group: no prefix
            raise
        except OmegaConfBaseException as exc:
            cause: BaseException | None = exc
            while cause is not None:  # raised by one of our resolvers: it names its key itself
                if isinstance(cause, ConfigError):
                    raise UserError(str(cause)) from None
                cause = cause.__cause__ or cause.__context__
            raise UserError(f"{key}: {str(exc).splitlines()[0]} (do {_choices('data', 'model')} belong together?)") from None

    try:
        return with_prefix(key, build)
    except ConfigError as exc:
        raise ConfigError(typed_key(node, key, str(exc))) from None


def typed_key(node: DictConfig, key: str, message: str) -> str:
    """An error about ``<key>.<name>=...`` names the key the user typed when the config only
    passes it on: ``model.analyse_seed: ${analyse_seed}`` makes ``analyse_seed=50 is invalid``,
    not ``model.analyse_seed=50 is invalid``."""
    import re

    match = re.match(rf"{re.escape(key)}\.(\w+)=", message)
    if not match or not isinstance(node, DictConfig):
        return message
    raw = OmegaConf.to_container(node, resolve=False).get(match.group(1))
    source = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
    return source.group(1) + message[match.end() - 1 :] if source else message


def _choices(*groups: str) -> str:
    """``data=kmnist and model=srn``: the options this run chose for ``groups``."""
    from hydra.core.hydra_config import HydraConfig

    chosen = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return " and ".join(f"{g}={chosen.get(g)}" for g in groups)


def check_trainer(trainer_cfg: DictConfig) -> None:
    """Values Lightning would accept but that make no sense for a training run."""

    def checks():
        check_int("max_epochs", trainer_cfg.get("max_epochs"), 1)
        steps = trainer_cfg.get("max_steps")  # absent: Lightning's default, -1
        check(steps is None or steps == -1 or (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1), "max_steps", steps, "-1 (no limit) or an integer >= 1")

    with_prefix("trainer", checks)


def check_checkpoint(ckpt_path: str | None, model) -> str | None:
    """Make sure ``ckpt_path`` is a readable Lightning checkpoint of this very model, so that a
    wrong path or a checkpoint of another network is one clear line, not a long traceback."""
    if ckpt_path is None:
        return None
    import torch

    path = Path(str(ckpt_path))
    if not path.is_file():
        raise UserError(f"ckpt_path={str(ckpt_path)!r}: no such file (give the path of a checkpoint, e.g. <run>/checkpoints/last.ckpt)")
    try:  # tensors and plain containers only: nothing in a checkpoint is executed to inspect it
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"ckpt_path={str(ckpt_path)!r} is not a readable checkpoint: {first}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "epoch" not in ckpt:
        raise UserError(f"ckpt_path={str(ckpt_path)!r} is not a Lightning checkpoint (no state_dict/epoch in it)")
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    if want != have:
        saved = ckpt.get("hyper_parameters", {})
        raise UserError(
            f"ckpt_path={str(ckpt_path)!r} holds a different model (saved with {dict(saved)}); "
            f"this run builds {dict(model.hparams)}"
        )
    return str(path)
