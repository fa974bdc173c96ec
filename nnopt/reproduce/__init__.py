"""Reproductions of thesis figures and tables, stated as checked claims.

A reproduce script is a module (nnopt's are ``experiments/reproduce_*.py``)
that defines one :class:`Reproduction` and is declared as an entry point of
the group ``nnopt.reproductions`` (:mod:`nnopt.reproduce.registry`):

.. code-block:: python

    from nnopt.reproduce import Claims, Reproduction

    QUOTE = 'ADAM and M-SIGN-SGD display surprisingly similar performance'

    def run(out_dir, quick):
      claims = Claims('balles', dataset='fashion_mnist')
      losses = ...                 # {method: {seed: final train loss}}
      claims.compare('Fig 5.4', 'ADAM ≈ M-SSD in final train loss',
                     losses['adam'], losses['msign_sgd'], relation='≈',
                     margin=MARGIN, names=('ADAM', 'M-SSD'), quote=QUOTE)
      ...                          # draw figures into out_dir (PNG)
      return claims

    REPRODUCTION = Reproduction(
        id='balles_p1_fmnist', thesis='balles', items=('Fig 5.4',), run=run,
        title='...', cost='seconds', smoke='scikit-learn digits, 150 steps')

``nnopt reproduce ID`` runs it into ``OUT/ID/`` (:mod:`nnopt.reproduce.runner`)
and writes ``claims.json``, a list of records ``{"thesis", "item", "claim",
"scope", "measured", "status"}`` plus, where they apply, ``"reason"`` (NOT
RUN), ``"quote"`` (the thesis sentence), ``"dataset"``, ``"stand_in"``
(smoke) and ``"comparison"`` (n, means, standard errors and the 95 % interval
of a difference over runs; :mod:`nnopt.reproduce.intervals`), and
``run.json`` (timing, quick mode, error). Statuses: PASS, FAIL, INCONCLUSIVE,
NOT RUN (with a reason: never silent) and INFO. A quick run writes only
``scope: smoke`` records. A script that raises gets one ``NOT RUN`` claim per
item naming the error (traceback in ``error.log``).
"""

from nnopt.reproduce.claims import (CLAIMS_FILE, FAIL, FULL, INCONCLUSIVE,
                                    INFO, NOT_RUN, PASS, RUN_FILE, SCOPES,
                                    SMOKE, STATUSES, THESES, VERDICTS, Claim,
                                    Claims, ReproduceError, check,
                                    count_statuses, jsonable, not_run,
                                    read_claims, smoke_label, write_claims)
from nnopt.reproduce.intervals import (Difference, decide,
                                       difference_interval)
from nnopt.reproduce.registry import (ENTRY_POINT_GROUP, Registry,
                                      Reproduction, discover)
from nnopt.reproduce.runner import Result, run_and_report, run_reproduction

__all__ = [
    "CLAIMS_FILE", "Claim", "Claims", "Difference", "ENTRY_POINT_GROUP",
    "FAIL", "FULL", "INCONCLUSIVE", "INFO", "NOT_RUN", "PASS", "RUN_FILE",
    "Registry", "ReproduceError", "Reproduction", "Result", "SCOPES", "SMOKE",
    "STATUSES", "THESES", "VERDICTS", "check", "count_statuses", "decide",
    "difference_interval", "discover", "jsonable", "not_run", "read_claims",
    "run_and_report", "run_reproduction", "smoke_label", "write_claims",
]
