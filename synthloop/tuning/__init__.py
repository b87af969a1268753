"""Hyper-parameter tuning of gaze training with Optuna: one study per (method, source
batch, target, budget), stored in ``<home>/optuna.db`` (or ``SYNTHLOOP_OPTUNA_URL``, e.g.
PostgreSQL, so several workers can share a study), one MLflow run per trial nested under
one parent run per study.

Trials use Optuna's ask/tell interface, so each trial is a self-contained call
(:func:`~synthloop.tuning.study.run_trial`) that a Prefect task can wrap, and an
interrupted study continues: :func:`~synthloop.tuning.jobs.tune_gaze` with ``trials=N``
runs trials until the study holds ``N`` finished (complete or pruned) ones; a trial
killed mid-way stays ``RUNNING`` and is not counted.

**The objective.** Tuning an unsupervised domain-adaptation method needs a score of
the target; three kinds are offered (:data:`~synthloop.tuning.space.OBJECTIVES`):

* ``target_error``: mean angular error on the target's held-out part, with its labels.
  The default where the target has labels (``labels.csv``): the usual protocol is a
  small labeled real validation set. The labels are only scored, never trained on, and
  the trained model still selects its checkpoint label-free.
* ``source_error``: error on a fixed synthetic validation batch (says nothing about the
  target; a sanity baseline).
* ``entropy``, ``im``, ``snd``: the label-free selection scores of
  :data:`models.tasks.gaze.GAZE_SELECTORS` on target images. Known to be unreliable
  across hyper-parameters (Musgrave et al. 2021, "Unsupervised Domain Adaptation: A Reality
  Check"): use them when no labels exist at all, and look at the trials.

The value of a trial is the objective at its last evaluation (the model the budget
gives); intermediate evaluations are reported so that the median pruner can stop
trials that are worse than the median of earlier trials at the same step.

The search spaces and objectives (:mod:`~synthloop.tuning.space`, light: the command
line and the flow's form read them), the study and its trials
(:mod:`~synthloop.tuning.study`), and the jobs the CLI and the Prefect tasks call
(:mod:`~synthloop.tuning.jobs`).
"""
