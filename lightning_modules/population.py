"""What the grid and the recurrent modules share: S >= 1 networks, seeds ``init_seed .. init_seed
+ S - 1``, each with its own life (attempts, end), one process's share of them under several
processes, and the population's summary.

A single run is a population of one: the same code trains it, and its results are what a single
run has always reported (the population adds its per-seed entries only when S > 1).

Under several processes (``trainer=ddp``) each process trains its share of the seeds
(``base.seeds.seeds_of_rank``) on its own: the seeds need no gradient averaging, so Lightning
starts the processes without wrapping the module in DistributedDataParallel
(``orchestration.launch.PopulationStrategy``); when training ends the processes exchange their
seeds, so every process holds every trained seed for the test and rank 0 writes one results.json.
"""

from __future__ import annotations

from typing import Any, Optional

from analysis.population import success_rate, updates_distribution
from base.errors import check, check_int
from base.seeds import seeds_of_rank
from lightning_modules.attempts import Attempts


class SeedPopulation:
    """Mixin of a LightningModule that trains ``len(seed_list)`` networks.

    The module provides ``first_success_key``, ``_leave(i)`` (seed i trains elsewhere: it is
    frozen here), ``_seed_state(i) -> dict`` and ``_load_seed_state(i, dict)`` (a trained seed
    moving between processes), and ``_test_succeeded(i) -> bool``."""

    first_success_key: str

    def _population(self, seeds: int, init_seed: int, restarts: int, restart_after: int, analyse_seed: Optional[int]) -> None:
        check_int("seeds", seeds, 1)
        self.seed_list = [int(init_seed) + i for i in range(seeds)]
        check(analyse_seed is None or analyse_seed in self.seed_list, "analyse_seed", analyse_seed,
              f"null (the first seed that succeeds) or one of the trained seeds, {self.seed_list[0]}..{self.seed_list[-1]}")
        self.attempts = [Attempts(s, restarts, restart_after, first_key=self.first_success_key) for s in self.seed_list]
        self.ended = [False] * seeds

    @property
    def population(self) -> bool:
        """More than one network: results.json adds the per-seed entries and the success rate."""
        return len(self.seed_list) > 1

    # -- processes ---------------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer (a module used on its own)
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def my_seeds(self) -> list[int]:
        """The indices of the seeds this process trains and evaluates."""
        return seeds_of_rank(len(self.seed_list), *self._world())

    def take_share(self) -> None:
        """Before training: leave every seed another process trains."""
        mine = set(self.my_seeds())
        for i in range(len(self.seed_list)):
            if i not in mine:
                self._leave(i)

    def gather_seeds(self) -> None:
        """After training: every process sends the seeds it trained and takes the others'."""
        world, _ = self._world()
        if world == 1:
            return
        import torch.distributed as dist

        mine: dict[int, Any] = {i: self._seed_state(i) for i in self.my_seeds()}
        everyone: list[dict[int, Any] | None] = [None] * world
        dist.all_gather_object(everyone, mine)
        for states in everyone:
            for i, state in (states or {}).items():
                if int(i) not in mine:
                    self._load_seed_state(int(i), state)

    def stop_when_every_seed_has_ended(self) -> None:
        """Stop the run once every seed has ended, on every process at the same update (they
        meet at every evaluation). Called after the callbacks' hooks, which may end seeds."""
        done = all(self.ended[i] for i in self.my_seeds())
        if self._world()[0] > 1:
            done = self.trainer.strategy.reduce_boolean_decision(done, all=True)
        if done:
            self.trainer.should_stop = True

    def on_train_start(self):
        self.take_share()

    def on_train_end(self):
        self.gather_seeds()

    # -- the seed the figures and the printout show ------------------------------------------------
    def analysed_seed(self) -> int:
        """``analyse_seed``, else the first seed that succeeded on the test, else the first seed."""
        if self.hparams.analyse_seed is not None:
            return int(self.hparams.analyse_seed)
        return next((s for i, s in enumerate(self.seed_list) if self._test_succeeded(i)), self.seed_list[0])

    def watched_seed(self) -> int:
        """The seed whose training the histograms follow: ``analyse_seed``, else the first seed
        (the analysed seed is only chosen by the test)."""
        return int(self.hparams.analyse_seed) if self.hparams.analyse_seed is not None else self.seed_list[0]

    def watched_process(self) -> bool:
        """Whether this process trains the watched seed (under DDP a seed lives on one process)."""
        return self.seed_list.index(self.watched_seed()) in self.my_seeds()

    def failed_seed(self) -> Optional[int]:
        """The first seed that did not succeed on the test, if any (a population draws it too)."""
        return next((s for i, s in enumerate(self.seed_list) if not self._test_succeeded(i)), None)

    def shown_seeds(self) -> list[int]:
        """The seeds whose figures are drawn: the analysed one, and in a population one that failed."""
        shown = [self.analysed_seed()]
        failed = self.failed_seed()
        if self.population and failed is not None and failed not in shown:
            shown.append(failed)
        return shown

    def population_summary(self, per_seed: list[dict]) -> dict:
        """results.json's population entries: every seed's outcome (without its attempt records),
        the success rate with its Wilson interval and the updates to first success (seeds that
        never succeeded censored at the updates they made)."""
        outcomes = [r["outcome"] == "succeeded" for r in per_seed]
        key = self.first_success_key
        return {
            "population": len(self.seed_list),
            "seeds": [{k: v for k, v in r.items() if k != "attempt_records"} for r in per_seed],
            "success": success_rate(outcomes),
            "success_rate": sum(outcomes) / len(outcomes),
            "updates_to_success": updates_distribution([r[key] if r["outcome"] == "succeeded" else None for r in per_seed], [r["updates"] for r in per_seed]),
        }
