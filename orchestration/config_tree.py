"""The composed config as a tree a user can read at the start of a run: one line per key, the
values resolved, and the keys the experiment file or the command line set marked.

Plain text rather than ``rich`` (lightning-hydra-template's choice): no extra package, and the
same lines in a terminal, a log file and a SLURM output file.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

MARKS = {"experiment": "# experiment", "command line": "# command line"}


def keys_of(node, prefix: str = "") -> set[str]:
    """Every dotted key of a (possibly nested) mapping's leaves (an empty mapping is a leaf)."""
    out: set[str] = set()
    for k, v in node.items():
        key = f"{prefix}{k}"
        out |= keys_of(v, key + ".") if isinstance(v, dict) and v else {key}
    return out


def experiment_keys(conf_dir: Path, name: str | None) -> dict[str, str]:
    """What ``conf/experiment/<name>.yaml`` sets: ``{dotted key: mark}``, each key it sets marked
    ``# experiment``, each group it chooses (``override /model: lstm``) ``# experiment: model=lstm``."""
    if not name:
        return {}
    path = conf_dir / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return {}
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    marks = {key: MARKS["experiment"] for key in keys_of({k: v for k, v in raw.items() if k != "defaults"})}
    for entry in raw.get("defaults") or []:
        if isinstance(entry, dict):
            for group, choice in entry.items():
                group = str(group).removeprefix("override").strip().lstrip("/")
                marks[group.replace("/", ".")] = f"{MARKS['experiment']}: {group}={choice}"
    return marks


def command_line_keys(overrides: list[str]) -> set[str]:
    """The keys of Hydra's task overrides (``trainer.max_epochs=1``, ``+x=1``, ``~y``)."""
    keys = set()
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~").strip()
        if key and not key.startswith("hydra"):
            keys.add(key.split("@", 1)[0].replace("/", "."))
    return keys


def _mark(key: str, experiment: dict[str, str], command: set[str]) -> str:
    if key in command:
        return "  " + MARKS["command line"]
    if key in experiment:
        return "  " + experiment[key]
    return ""


def config_tree(cfg: DictConfig, experiment: dict[str, str] | None = None, command: set[str] = frozenset()) -> str:
    """``cfg`` resolved, one line per key, indented by depth; a key set on the command line ends
    in ``# command line``, one the experiment sets in its mark from :func:`experiment_keys`.
    Lists of scalars stay on their key's line."""
    experiment = experiment or {}
    lines: list[str] = []

    def walk(node, prefix: str, depth: int) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            pad = "  " * depth
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:{_mark(key, experiment, command)}")
                walk(v, key + ".", depth + 1)
            elif isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
                lines.append(f"{pad}{k}:{_mark(key, experiment, command)}")
                for x in v:
                    lines.append(f"{pad}  - {x}")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}{_mark(key, experiment, command)}")

    walk(OmegaConf.to_container(cfg, resolve=True), "", 0)
    return "\n".join(lines)


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return str(v) if v else ("{}" if isinstance(v, dict) else "[]")
    return str(v)

