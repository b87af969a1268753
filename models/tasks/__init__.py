"""Training tasks: what differs between gaze and landmarks inside the one training loop
(labels, augmentation, loss, metrics, evaluation, checkpoint selectors). Each task is a
module here that registers itself (:func:`models.registration.register_task`); the
interface is :class:`models.tasks.base.Task`."""
