"""Reproductions of thesis figures and tables, stated as checked claims.

A reproduce script is a module (nnopt's are ``experiments/reproduce_*.py``)
that defines one :class:`Reproduction` and is declared as an entry point of
the group ``nnopt.reproductions`` (:mod:`nnopt.reproduce.registry`):

.. code-block:: python

    from nnopt.reproduce import Claims, Reproduction

    def run(out_dir, quick):
      claims = Claims('kreis')
      n = count_params(...)
      claims.equal('Table 4.3', 'FNN 2-5-2 has 27 parameters', n, 27,
                   name='params')
      ...                          # draw figures into out_dir (PNG)
      return claims

    REPRODUCTION = Reproduction(
        id='sensli_tables', thesis='kreis', items=('Table 4.3',), run=run,
        title='SensLI parameter and FLOP tables', cost='seconds')

``nnopt reproduce ID`` runs it into ``OUT/ID/`` (:mod:`nnopt.reproduce.runner`)
and writes ``claims.json``, a list of records ``{"thesis", "item", "claim",
"measured", "status"}`` (plus ``"reason"`` when the status is ``"NOT RUN"``;
:mod:`nnopt.reproduce.claims`), and ``run.json`` (timing, quick mode, error).
Every claim is ``PASS``, ``FAIL`` or ``NOT RUN`` with a reason: never silent.
A script that raises gets one ``NOT RUN`` claim per item naming the error
(traceback in ``error.log``).
"""

from nnopt.reproduce.claims import (CLAIMS_FILE, FAIL, NOT_RUN, PASS, RUN_FILE,
                                    STATUSES, THESES, Claim, Claims,
                                    ReproduceError, check, count_statuses,
                                    jsonable, not_run, read_claims,
                                    write_claims)
from nnopt.reproduce.registry import (ENTRY_POINT_GROUP, Registry,
                                      Reproduction, discover)
from nnopt.reproduce.runner import Result, run_reproduction

__all__ = [
    "CLAIMS_FILE", "Claim", "Claims", "ENTRY_POINT_GROUP", "FAIL", "NOT_RUN",
    "PASS", "RUN_FILE", "Registry", "ReproduceError", "Reproduction", "Result",
    "STATUSES", "THESES", "check", "count_statuses", "discover", "jsonable",
    "not_run", "read_claims", "run_reproduction", "write_claims",
]
