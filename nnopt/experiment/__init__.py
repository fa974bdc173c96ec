"""The implementation of :mod:`nnopt.config` (import from there).

* :mod:`~nnopt.experiment.schema`: keys, types, defaults; merging partial configs.
* :mod:`~nnopt.experiment.overrides`: ``--set`` overrides; :func:`resolve`.
* :mod:`~nnopt.experiment.validation`: names and options against registries
  and signatures; the hook registry.
* :mod:`~nnopt.experiment.build`: :class:`Experiment`, :func:`build`, config
  files.
"""
