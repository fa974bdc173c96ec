"""Reproduce scripts and benchmarks of nnopt (not part of the installed package).

Each ``reproduce_*.py`` module defines ``REPRODUCTION = nnopt.reproduce.
Reproduction(id=..., thesis=..., items=(...), run=run)`` where
``run(out_dir: pathlib.Path, quick: bool) -> list[nnopt.reproduce.Claim]``
checks the thesis claims of its items and draws their figures into
``out_dir``. ``nnopt reproduce --list`` shows them; ``nnopt reproduce ID``
runs one into ``out/ID/``; ``nnopt report out`` summarizes the claims.
Benchmarks live in ``experiments/bench/``.
"""
