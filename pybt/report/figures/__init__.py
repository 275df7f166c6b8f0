"""The five figures of a PBT run, drawn with matplotlib (the optional ``plot`` extra).

- :func:`plot_scores`: every member's score over epochs; an exploit shows as a dashed jump
  from the donor's point, and the best member's lineage is underlaid in grey.
- :func:`plot_metrics`: one panel per recorded metric (validation and training losses,
  accuracy, ...), every member's value over epochs.
- :func:`plot_hyperparameters`: one panel per hyperparameter, every member's value over
  epochs, with a marker where a member copied a donor and explored.
- :func:`plot_lineage`: members as rows, epochs across; one member's ancestry drawn bold,
  exploits as arrows from donor to member.
- :func:`plot_schedule`: one member's schedule, one step plot per hyperparameter.

Each draws from a :class:`~pybt.history.RunHistory` and returns a
:class:`matplotlib.figure.Figure`. By default it is a new pyplot figure (so ``plt.show()``
and notebooks show it); pass ``fig=matplotlib.figure.Figure()`` to draw without pyplot, as
:func:`pybt.report.write_html` does. Nothing here calls ``plt.show()``, and matplotlib is
imported only when a figure is drawn.
"""

from __future__ import annotations

from pybt.report.figures.hyperparameters import plot_hyperparameters
from pybt.report.figures.lineage import plot_lineage
from pybt.report.figures.metrics import plot_metrics
from pybt.report.figures.schedule import plot_schedule
from pybt.report.figures.scores import plot_scores

__all__ = ["plot_hyperparameters", "plot_lineage", "plot_metrics", "plot_schedule", "plot_scores"]
