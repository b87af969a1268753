"""The gaze task: eye patches with exact gaze labels. :mod:`~synthloop.gaze.spec` is the
task object (:mod:`synthloop.taskspec`); the jobs behind it are training
(:mod:`~synthloop.gaze.train`), evaluation (:mod:`~synthloop.gaze.evaluate`), their data
(:mod:`~synthloop.gaze.source`) and the feedback loop's rounds (:mod:`~synthloop.gaze.rounds`).
Plain functions: MLflow is used here, Prefect never."""
