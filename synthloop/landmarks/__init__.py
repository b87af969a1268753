"""The landmarks task: rendered faces with exact dense landmarks and the 68-point iBug
subset. :mod:`~synthloop.landmarks.spec` is the task object (:mod:`synthloop.taskspec`);
the jobs behind it are training (:mod:`~synthloop.landmarks.train`, its data in
:mod:`~synthloop.landmarks.source`), label transfer and output routes
(:mod:`~synthloop.landmarks.transfer`), loading for serving
(:mod:`~synthloop.landmarks.load`), evaluation (:mod:`~synthloop.landmarks.evaluate`)
and the feedback loop's rounds (:mod:`~synthloop.landmarks.rounds`). Plain functions:
MLflow is used here, Prefect never."""
