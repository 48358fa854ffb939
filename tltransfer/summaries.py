"""What a run writes for TensorBoard: its scalars after each evaluation, and its HParams with
the experiment config that names, orders and describes them, all derived from Config.

Every run writes the same experiment config (it depends on Config alone), so TensorBoard's
HParams dashboard finds it in whichever run it reads first, and the log root holds no events
of its own that TensorBoard would list as a run beside the study's.
"""

import dataclasses

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tltransfer.config import CHOICES, METRICS, Config, metric_of, scalar_tag

FIELDS = dataclasses.fields(Config)
N_TRAIN_HELP = "training images of the run's task (the P-subset of a 6-9 net)"


def _hparam(position, name, help, domain=None):
    # TensorBoard orders the dashboard's columns by name and shows the first five: numbered
    # names put them in Config's order (mode, p, dropout, seed first); the display name is
    # the plain one.
    return hp.HParam(f"{position:02d}_{name}", domain, display_name=name, description=help)


HPARAMS = [*(_hparam(i, f.name, f.metadata["help"],
                     hp.Discrete(list(CHOICES[f.name])) if f.name in CHOICES else None)
             for i, f in enumerate(FIELDS)),
           _hparam(len(FIELDS), "n_train", N_TRAIN_HELP)]


def _metric(tag, source):
    whose = ("a 0-5 source net's (--mode=source), on its own classes" if source else
             "a 6-9 net's (scratch, frozen, finetune), on the target classes")
    return hp.Metric(tag, display_name=tag, description=f"{METRICS[metric_of(tag)]}; {whose}. "
                     "The dashboard shows the value at the run's last step.")


# Test metrics first (the dashboard shows five by default), each 6-9 one before its source one.
METRIC_INFOS = [_metric(scalar_tag(mode, name), mode == "source")
                for name in sorted(METRICS, key=lambda n: not n.startswith("test/"))
                for mode in ("scratch", "source")]


def hparams(config, task):
    """What TensorBoard's HParams dashboard shows of one run: every field of the Config, and
    the run's number of training images, keyed by HPARAMS' names."""
    values = [*(getattr(config, f.name) for f in FIELDS), len(task.y_train)]
    return {param.name: value for param, value in zip(HPARAMS, values)}


def write_hparams(config, task):
    """The experiment config and this run's HParams, into the default summary writer."""
    hp.hparams_config(hparams=HPARAMS, metrics=METRIC_INFOS)
    hp.hparams(hparams(config, task), trial_id=config.name)


def write_scalars(mode, step, values):
    """`values` ({METRICS key: value}) at `step` (training samples seen), under the mode's tags,
    each described (TensorBoard shows the description beside its chart)."""
    for name, value in values.items():
        tf.summary.scalar(scalar_tag(mode, name), value, step=step, description=METRICS[name])
