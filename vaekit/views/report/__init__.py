"""``vaekit report RUN [RUN ...]``: a run (or several side by side) as one self-contained HTML page.

``runs`` reads a run folder, ``sections`` draws each part of the page, ``pages`` puts one run's page or a
comparison together and adds the CLI verb."""

from vaekit.views.report.pages import add_report_parser, comparison_report, run_report, write_report
from vaekit.views.report.runs import Run, read_run

__all__ = ["Run", "add_report_parser", "comparison_report", "read_run", "run_report", "write_report"]
