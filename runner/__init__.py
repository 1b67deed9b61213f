"""Running an experiment from its Hydra config: checks, results, reporting.

`train.py` is the composition root; the pieces it needs that are not a LightningModule, a
DataModule or a Callback live here.
"""
