"""Stop training each seed once its task is solved and has stayed solved."""

from __future__ import annotations

from typing import Optional

from pytorch_lightning import Callback

from analysis.stopping import after_evaluation, stop_due
from base.contracts import StoppableSeeds
from base.errors import ConfigError, check, check_int, is_number


class SolvedStopping(Callback):
    """End a seed ``patience`` updates after its ``monitor`` (default ``acc/val``) has been >=
    ``threshold`` on ``evaluations`` consecutive evaluations (``patience`` 0: at once; None:
    never, it trains its full schedule: training on after solving is what can carry the counting
    to longer blocks). A single run is one seed; in a population every seed follows the rule on
    its own, and the run ends when every seed has ended.

    Lightning's ``EarlyStopping(stopping_threshold=...)`` stops the whole run at the first
    evaluation that reaches the threshold; a recurrent net can pass a check once by luck and
    lose it again, so this one asks for the result to hold, and acts per seed. The rule is
    checked after every update, so a patience that is not a multiple of the evaluation interval
    stops at exactly that update. ``results()`` puts the update at which the analysed seed
    stopped in results.json (when it was first solved, the module measures in every run).
    """

    def __init__(self, monitor: str = "acc/val", threshold: float = 1.0, evaluations: int = 3, patience: Optional[int] = 0):
        check_int("evaluations", evaluations, 1)
        check(is_number(threshold), "threshold", threshold, "a finite number")
        if patience is not None:
            check_int("patience", patience, 0)
        self.monitor, self.threshold, self.evaluations, self.patience = monitor, threshold, evaluations, patience
        self.streak: list[int] = []
        self.held_at: list[Optional[int]] = []  # per seed: the update at which its streak first reached `evaluations`
        self._analysed_stop: Optional[int] = None

    @staticmethod
    def _module(pl_module) -> StoppableSeeds:
        if not isinstance(pl_module, StoppableSeeds):
            raise ConfigError(f"callbacks.solved_stopping acts on the recurrent study's seeds; {type(pl_module).__name__} has none (set callbacks.solved_stopping=null)")
        return pl_module

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        values = self._module(pl_module).val_metric(self.monitor)
        if len(self.streak) != len(values):
            self.streak, self.held_at = [0] * len(values), [None] * len(values)
        for i, value in enumerate(values):
            if value is not None:  # evaluated here: a seed of this process still training
                self.streak[i], self.held_at[i] = after_evaluation(self.streak[i], self.held_at[i], value >= self.threshold, trainer.global_step, self.evaluations)
        self._stop_the_due(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._stop_the_due(trainer, pl_module)

    def _stop_the_due(self, trainer, pl_module) -> None:
        for i, held in enumerate(self.held_at):
            if stop_due(held, self.patience, trainer.global_step):
                pl_module.end_seed(i, early=True)  # nothing for a seed that has ended already

    def on_test_end(self, trainer, pl_module):
        self._analysed_stop = pl_module.stopped_early[pl_module.seed_list.index(pl_module.analysed_seed())]

    def state_dict(self):
        return {"streak": list(self.streak), "held_at": list(self.held_at)}

    def load_state_dict(self, state_dict):
        self.streak, self.held_at = list(state_dict["streak"]), list(state_dict["held_at"])

    def results(self) -> dict:
        return {"stopped_early_at_update": self._analysed_stop}
