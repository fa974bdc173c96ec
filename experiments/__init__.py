"""Reproduce scripts, thesis settings and benchmarks of nnopt.

Installed beside :mod:`nnopt` (never imported by it). Each ``reproduce_*.py``
module defines ``REPRODUCTION = nnopt.reproduce.Reproduction(id=...,
thesis=..., items=(...), run=run)``, declared as an entry point of the group
``nnopt.reproductions`` in ``pyproject.toml``, where
``run(out_dir: pathlib.Path, quick: bool) -> list[nnopt.reproduce.Claim]``
checks the thesis claims of its items and draws their figures into
``out_dir``. ``nnopt reproduce --list`` shows them; ``nnopt reproduce ID``
runs one into ``out/ID/``; ``nnopt report out`` summarizes the claims.
Settings that configs share with reproduce scripts live here too (e.g.
:mod:`experiments.kreis_ch5`). Benchmarks live in ``experiments/bench/``.
"""
