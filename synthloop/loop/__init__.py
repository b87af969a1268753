"""The feedback loop's steps as plain functions the Prefect tasks call (no Prefect here):
its configuration (:mod:`~synthloop.loop.config`), the real data and its split
(:mod:`~synthloop.loop.real`), identities, seeds and files of rounds
(:mod:`~synthloop.loop.rounds`), and the analysis that derives the next distribution
(:mod:`~synthloop.loop.analyse`). What differs between tasks is asked of the task object
(:mod:`synthloop.taskspec`)."""
