"""From a composed Hydra config to objects, with every user mistake reported in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.errors import ConfigError, UserError, check, check_int, with_prefix

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def run_name(experiment: str | None, model: str | None) -> str:
    """The run's name: the experiment's, or the model config's when no experiment is chosen."""
    return str(experiment or model or "run")


def num_symbols(language: str) -> int:
    """Symbols of a counting language (``anb2n`` -> 2, ``anb2nc3n`` -> 3), so that a model
    config follows ``data.language``."""
    from datamodules.grammar import LANGUAGES

    if language not in LANGUAGES:
        raise ConfigError(f"data.language={language!r} is invalid; allowed: one of {', '.join(LANGUAGES)}")
    return 3 if LANGUAGES[language][1] else 2


def register_resolvers() -> None:
    """``${run_name:...}`` and ``${num_symbols:...}`` used by ``conf/``; call before composing."""
    for name, fn in (("run_name", run_name), ("num_symbols", num_symbols)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def group_options(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Config group -> the option names in it (``experiment`` -> ``[kmnist_conv, ...]``)."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(conf_dir.iterdir())
        if d.is_dir() and d.name != "hydra"
    }


def check_group_choices(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse ``experiment=nope`` (also inside a sweep, ``experiment=a,nope``) with one line
    naming the allowed options, before Hydra composes anything (its own message spans a dozen lines).

    Only our config groups are checked; an override the parser cannot read is named.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    options = group_options(conf_dir)
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        if text.startswith("-"):
            continue
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as exc:
            reason = " ".join(str(exc).split("\nSee https://hydra.cc")[0].split())
            raise ConfigError(f"cannot read the override {text!r}: {reason}") from None
    for o in parsed:
        if o.key_or_group not in options or o.is_delete():
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        for value in values:
            if value is None or value == "null":
                continue
            if not isinstance(value, str) or value not in options[o.key_or_group]:
                raise ConfigError(
                    f"{o.key_or_group}={value!r} is not a known {o.key_or_group}; allowed: {', '.join(options[o.key_or_group])}"
                )


def check_composes(overrides: list[str], conf_dir: Path = CONF_DIR, config_name: str = "train") -> None:
    """Compose the config once before Hydra does, so that a typo in a key or a value that cannot
    be parsed is one line (``Could not override 'trainer.limt'... (Key 'limt' is not in struct)``)
    instead of Hydra's multi-line report.

    Skipped when Hydra flags are given (``-m``, ``--cfg``, ``--help``...): Hydra handles those.
    """
    if any(o.startswith("-") for o in overrides):
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except HydraException as exc:
        message = str(exc).split("\nSee https://hydra.cc")[0]
        if exc.__cause__ is not None:
            message += f" ({str(exc.__cause__).splitlines()[0]})"
        raise ConfigError(" ".join(message.split())) from None
    # data and model do not depend on Hydra's runtime values: resolve them now, so that a model
    # paired with the wrong data (model=srn on KMNIST: no data.language) is one line too
    from omegaconf.errors import OmegaConfBaseException

    for key in ("data", "model"):
        try:
            OmegaConf.to_container(cfg.get(key), resolve=True)
        except OmegaConfBaseException as exc:
            cause: BaseException | None = exc
            while cause is not None:  # raised by one of our resolvers: report it as it is
                if isinstance(cause, ConfigError):
                    raise ConfigError(str(cause)) from None
                cause = cause.__cause__ or cause.__context__
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{key}: {first} (do data={choice(cfg, 'data')} and model={choice(cfg, 'model')} belong together?)") from None


def choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for ``group`` in a composed config (``hydra.runtime.choices``)."""
    return str(cfg.hydra.runtime.choices.get(group))


def first_combination(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first run: every sweep (``a,b``, ``range(0,5)``) at its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for text in overrides:
        o = parser.parse_overrides([text])[0]
        out.append(f"{text.split('=', 1)[0]}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else text)
    return out


def check_sweep_launch(overrides: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Before a multirun starts: refuse several processes per run (DDP) unless SLURM starts them."""
    from hydra import compose, initialize_config_dir

    from runner.launch import check_multirun_devices

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("train", overrides=first_combination(overrides), return_hydra_config=True)
    check_multirun_devices(cfg.trainer, str(cfg.hydra.launcher.get("_target_", "")))


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


def preflight(argv: list[str]) -> None:
    """Every check that can run before Hydra starts. With Hydra's own flags (``--cfg job``,
    ``--help``, ``-cn``...), whose values are not overrides, Hydra alone reads the command line;
    a ``-m`` sweep has its group choices checked, and DDP in it refused, before any run starts."""
    register_resolvers()
    check_extras([a for a in argv if not a.startswith("-")])
    flags = [a for a in argv if a.startswith("-")]
    if any(f not in ("-m", "--multirun") for f in flags):
        return
    check_group_choices(argv)
    overrides = [a for a in argv if not a.startswith("-")]
    if flags:
        check_sweep_launch(overrides)
    else:
        check_composes(overrides)


def _is_config_mistake(exc: BaseException) -> bool:
    """Exceptions a constructor raises for bad arguments (not bugs deeper down)."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    return isinstance(exc, (TypeError, ValueError, MisconfigurationException))


def instantiate_group(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a bad value comes back as one line starting
    with ``key`` (``model.hidden_units=0 is invalid; allowed: an integer >= 1``)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    def build():
        try:
            return instantiate(node, **kwargs)
        except InstantiationException as exc:
            cause = exc.__cause__
            if cause is not None and not isinstance(cause, UserError) and _is_config_mistake(cause):
                raise UserError(f"{key}: {cause}") from None  # already names the group: no prefix
            raise

    return with_prefix(key, build)


def check_trainer(trainer_cfg: DictConfig) -> None:
    """Values Lightning would accept but that make no sense for a training run."""

    def checks():
        check_int("max_epochs", trainer_cfg.get("max_epochs"), 1)
        steps = trainer_cfg.get("max_steps", -1)
        check(steps == -1 or (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1), "max_steps", steps, "-1 (no limit) or an integer >= 1")

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
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
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
