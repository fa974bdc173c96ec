"""Growing networks during training: SensLI layer insertion and widening.

Pure functions over (architecture, parameters, optimizer state), Kreis ch. 4:

* :func:`candidates`, :func:`identity_params`, :func:`fully_extend`,
  :func:`insert` — where layers can go and how they start as the identity;
* :func:`sensitivities`, :func:`candidate_merits`, :func:`reference_merits`
  and the norms of :mod:`nnopt.growth.norms` — the Lagrange-multiplier merit;
* :func:`select` — max / min / random / fixed rules and the threshold (4.18);
* :func:`sensli_step` — Algorithm 6 (:mod:`nnopt.growth.sensli`), and
  :class:`SensLI`, the engine adapter that runs it in the training loop
  (:mod:`nnopt.growth.hook`);
* :func:`widen`, :func:`widen_all`, :func:`widening_merits` — §4.4;
* :func:`surviving_mean`, :class:`StopAtTestError` — the reference code's
  stop at zero test error and its mean over surviving runs;
  :class:`ReduceLROnPlateau` — Exp1's learning-rate halving on the test
  accuracy;
* :func:`graft` — optimizer state across a change of architecture;
* :func:`param_count`, :func:`epoch_flops`, :func:`run_flops` — Tables 4.2–4.4.
"""

from nnopt.growth.architecture import (RESNET_POSITIONS, Candidate,
                                       GrowthError, candidates, family,
                                       fully_extend, identity_params, insert,
                                       insert_unchecked, layer_input_shapes,
                                       resnet_positions_name)
from nnopt.growth.flops import (epoch_flops, forward_flops, param_count,
                                run_flops)
from nnopt.growth.graft import graft, graft_optimizer, scale_hyperparam
from nnopt.growth.hook import SensLI
from nnopt.growth.norms import (NORMS, conv_operator_sq, conv_operator_sq_repo,
                                conv_per_output_l1_sq, conv_per_output_sum_sq,
                                frobenius_sq, frobenius_sq_scaled, norm_fn)
from nnopt.growth.selection import RULES, Selection, select
from nnopt.growth.sensitivity import (Sensitivity, candidate_merits,
                                      reference_merits, sensitivities,
                                      weight_merits)
from nnopt.growth.plateau import ReduceLROnPlateau
from nnopt.growth.sensli import SensLIResult, sensli_step
from nnopt.growth.stopping import (StopAtTestError, SurvivingMean,
                                   error_rate_fn, stop_epochs, stopped_curves,
                                   surviving_mean)
from nnopt.growth.widening import widen, widen_all, widening_merits

__all__ = [
    "Candidate", "GrowthError", "NORMS", "RESNET_POSITIONS", "RULES",
    "ReduceLROnPlateau",
    "Selection", "SensLI", "SensLIResult", "Sensitivity", "StopAtTestError",
    "SurvivingMean", "candidate_merits",
    "candidates", "conv_operator_sq", "conv_operator_sq_repo",
    "conv_per_output_l1_sq", "conv_per_output_sum_sq", "epoch_flops",
    "error_rate_fn", "family",
    "forward_flops", "frobenius_sq", "frobenius_sq_scaled", "fully_extend",
    "graft", "graft_optimizer", "identity_params", "insert",
    "insert_unchecked", "layer_input_shapes", "norm_fn", "param_count",
    "reference_merits", "resnet_positions_name", "run_flops",
    "scale_hyperparam", "select",
    "sensitivities", "sensli_step", "stop_epochs", "stopped_curves",
    "surviving_mean", "weight_merits", "widen", "widen_all",
    "widening_merits",
]
