"""Tables, figures and an HTML report of a PBT run, from its plain rows.

Every function takes the rows a run leaves behind (see :mod:`pybt.member`): ``steps``,
``exploits``, ``failures``, and for the page a small ``config`` dict. The live trainer
(``trainer.history``, ``trainer.exploits``, ``trainer.failures``) and a run folder's
journal give the same rows, so both report alike::

    from pybt.report import write_html, plot_scores
    write_html("report.html", trainer.history, trainer.exploits, trainer.failures,
               {"metric": trainer.metric, "mode": trainer.mode})

The figures need matplotlib (``pip install 'pybt[plot]'``), :func:`history_frame` needs
pandas; the tables and the CSV need neither.
"""

from __future__ import annotations

from pybt.report.figures import plot_hyperparameters, plot_lineage, plot_schedule, plot_scores
from pybt.report.page import render_html, write_html
from pybt.report.rows import Standing, Summary, best_member, merged_schedule, run_summary
from pybt.report.tables import (
    config_table,
    exploits_table,
    failures_table,
    history_frame,
    schedule_rows,
    schedule_table,
    summary,
    write_csv,
)

__all__ = [
    "Standing",
    "Summary",
    "best_member",
    "config_table",
    "exploits_table",
    "failures_table",
    "history_frame",
    "merged_schedule",
    "plot_hyperparameters",
    "plot_lineage",
    "plot_schedule",
    "plot_scores",
    "render_html",
    "run_summary",
    "schedule_rows",
    "schedule_table",
    "summary",
    "write_csv",
    "write_html",
]
