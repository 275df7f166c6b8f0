"""Tables, figures, CSV and an HTML page about a PBT run, drawn from its :class:`~pybt.history.RunHistory`.

The live trainer (``trainer.run_history``) and a run folder (``pybt.store.load_run(run_dir)
.history``) give the same history, so both report alike; the history decides what the score
is, which way is better and which member is best::

    from pybt.report import plot_scores, schedule_table, write_html
    print(schedule_table(trainer.run_history, space=trainer.space))
    write_html("report.html", trainer.run_history, {"space": trainer.space}, status="finished")

    run = pybt.load_run(run_dir)          # what ``pybt report RUN_DIR`` does
    write_html("report.html", run.history, run.config, status=run.status, created_at=run.created_at,
               updated_at=run.updated_at, version=run.version)

The figures and the page need matplotlib (``pip install 'pybt[plot]'``), imported only when a
figure is drawn; the tables and the CSV need neither matplotlib nor pandas (for a DataFrame,
``history.frame()``). Nothing in ``import pybt`` imports this package.
"""

from __future__ import annotations

from pybt.lineage import merged_schedule
from pybt.report.figures import (
    plot_hyperparameters,
    plot_lineage,
    plot_metrics,
    plot_schedule,
    plot_scores,
)
from pybt.report.page import render_html, write_html
from pybt.report.rows import Summary, run_summary
from pybt.report.tables import (
    config_table,
    exploits_table,
    failures_table,
    schedule_rows,
    schedule_table,
    summary,
    write_csv,
)

__all__ = [
    "Summary",
    "config_table",
    "exploits_table",
    "failures_table",
    "merged_schedule",
    "plot_hyperparameters",
    "plot_lineage",
    "plot_metrics",
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
