"""Evaluate: the scoreboard (table and chart), per-question drill-down, the HTML report."""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
)

from doctune.core.records import EvalSummary, ProjectLayout
from doctune.desktop.pages.base import Page
from doctune.desktop.state import latest_eval_summary
from doctune.desktop.widgets import JobProgress, LazyPlot, explanation, open_in_system

COLUMNS = ("System", "Multiple\nchoice", "95%\ninterval", "Open: judged\ncorrect", "Open: word\noverlap",
           "First\ntoken", "Seconds\nper answer", "Context tokens\nper answer")  # two lines: the table fits 1024 px
CHART_LABELS = {"base": "Base", "base+rag": "Base\n+ retrieval", "tuned": "Tuned", "tuned+rag": "Tuned\n+ retrieval"}
SIDE_BY_SIDE_WIDTH = 1100  # narrower pages show the chart under the table, so neither needs sideways scrolling
BAR_COLOURS = ("#2f80ed", "#27ae60", "#f2994a", "#9b51e0")


def _percent(score: dict | None) -> str:
    if not score or score.get("accuracy") is None:
        return "—"
    return f"{score['accuracy']:.0%} ({score['correct']}/{score['n']})"


def _interval(score: dict | None) -> str:
    ci = (score or {}).get("ci95")
    return f"{ci[0]:.0%} – {ci[1]:.0%}" if ci else "—"


def _number(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def scoreboard_rows(summary: dict) -> list[tuple[str, ...]]:
    """One row per system, under the same names as Compare's panes."""
    from doctune.core.evaluate.verdict import answer_costs, system_label

    costs = answer_costs(summary)
    rows = []
    for system in summary.get("systems", []):
        scores = summary["scores"][system]
        rows.append((system_label(system), _percent(scores.get("mc_likelihood")),
                     _interval(scores.get("mc_likelihood")), _percent(scores.get("open_judge")),
                     _number(scores.get("open_f1", {}).get("mean")),
                     _number(scores.get("ttft_s", {}).get("median"), " s"),
                     _number(costs[system]["seconds_per_answer"], " s"),
                     _number(costs[system]["context_tokens_per_answer"], digits=0)))
    return rows


def cost_text(cost: dict) -> str:
    """The one-time cost of tuning in a sentence."""
    from doctune.desktop.widgets import format_seconds

    parts = [f"{cost['items']:,} synthetic items from the teacher ({cost['teacher_tokens']:,} tokens, "
             f"{format_seconds(cost['teacher_seconds'])} of teacher time)"]
    if cost.get("train_seconds") is not None:
        parts.append(f"training {format_seconds(cost['train_seconds'])}")
    return ("One-time cost of tuning: " + ", ".join(parts) + ". A closed-book answer then needs no retrieval "
            "and fewer context tokens: compare the last two columns.")


class EvaluatePage(Page):
    key = "evaluate"
    title = "Evaluate"
    summary = ("Held-out questions (never used for training) are put to the base model, the base model with "
               "retrieval, the tuned model and the tuned model with retrieval. The scoreboard shows who knows "
               "your documents best, with 95% intervals.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        options = QHBoxLayout()
        self.run_button = QPushButton("Run evaluation")
        self.run_button.setToolTip("Score every system; re-running continues where it stopped (Ctrl+R)")
        self.limit = QSpinBox()
        self.limit.setRange(0, 100_000)
        self.limit.setSpecialValueText("all questions")
        self.judge = QCheckBox("Let the teacher judge open answers")
        self.judge.setChecked(True)
        self.report_button = QPushButton("Open HTML report")
        options.addWidget(self.run_button)
        options.addWidget(QLabel("Questions:"))
        options.addWidget(self.limit)
        options.addWidget(self.judge)
        options.addStretch(1)
        options.addWidget(self.report_button)
        self.body.addLayout(options)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.verdict = explanation("")
        font = self.verdict.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.verdict.setFont(font)
        self.verdict.setObjectName("verdict")
        self.body.addWidget(self.verdict)
        self.headline = explanation("")
        self.body.addWidget(self.headline)
        self.cost = explanation("")
        self.body.addWidget(self.cost)
        self.board = board = QSplitter()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.summary_data: dict | None = None
        self.chart = LazyPlot(self._configure_chart, minimum_height=220)
        board.addWidget(self.table)
        board.addWidget(self.chart)
        board.setSizes([680, 320])
        board.setMinimumHeight(220)
        drill = QSplitter()
        self.questions = QTableWidget(0, 2)
        self.questions.setHorizontalHeaderLabels(("Kind", "Question"))
        self.questions.verticalHeader().setVisible(False)
        self.questions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.questions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.questions.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.detail = QTextBrowser()
        drill.addWidget(self.questions)
        drill.addWidget(self.detail)
        drill.setMinimumHeight(240)
        self.stacked = stacked = QSplitter(Qt.Orientation.Vertical)  # scoreboard above, drill-down below; the user can drag
        stacked.addWidget(board)
        stacked.addWidget(drill)
        stacked.setSizes([300, 420])
        stacked.setMinimumHeight(560)
        self.body.addWidget(stacked, 1)
        self.records: dict[str, list[dict]] = {}
        self.question_list: list = []
        self.run_button.clicked.connect(self.run_eval)
        QShortcut(QKeySequence("Ctrl+R"), self, self.run_eval)
        self.report_button.clicked.connect(self.open_report)
        self.questions.itemSelectionChanged.connect(self._show_question)

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt's name
        super().resizeEvent(event)
        wide = self.width() >= SIDE_BY_SIDE_WIDTH
        if wide == (self.board.orientation() == Qt.Orientation.Horizontal):
            return
        self.board.setOrientation(Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical)
        self.board.setMinimumHeight(220 if wide else 460)  # the table's rows, and the chart under them
        self.stacked.setMinimumHeight(560 if wide else 760)
        self.board.setSizes([680, 320] if wide else [200, 260])

    def _configure_chart(self, chart) -> None:
        chart.setLabel("left", "multiple choice correct", units="%")
        chart.setYRange(0, 100)
        chart.setMouseEnabled(x=False, y=False)
        chart.getAxis("bottom").setHeight(2 * chart.fontMetrics().height() + 14)  # two-line labels, not clipped
        if self.summary_data is not None:
            self._draw_chart(self.summary_data)

    def run_eval(self):
        args = ["eval"]
        if self.limit.value():
            args += ["--limit", str(self.limit.value())]
        if not self.judge.isChecked():
            args.append("--no-judge")
        job = self.start_job("Evaluate", args)
        self.progress.follow(job)
        return job

    def open_report(self):
        job = self.start_job("Write the HTML report", ["report"])
        self.progress.follow(job)

        def opened(state: str) -> None:
            folder = job.record.last_event or {}
            path = folder.get("path") or folder.get("report")
            reports = sorted(ProjectLayout(self.project).reports.glob("*.html"), key=lambda p: p.stat().st_mtime)
            target = Path(path) if path else (reports[-1] if reports else None)
            if state == "succeeded" and target is not None:
                open_in_system(self, target, "HTML report")

        job.finished.connect(opened)
        return job

    # ----- showing ------------------------------------------------------------------
    def refresh(self) -> None:
        path = latest_eval_summary(self.project)
        record = EvalSummary.load_or_none(path) if path is not None else None
        summary = record.to_data() if record is not None else None
        self.report_button.setEnabled(summary is not None)
        if summary is None:
            self.verdict.setText("")
            self.cost.setText("")
            self.headline.setText("No evaluation yet. It needs held-out questions (Synthesize) and, for the tuned "
                                  "systems, an exported model.")
            self.table.setRowCount(0)
            self.summary_data = None
            if self.chart.widget is not None:
                self.chart.widget.clear()
            return
        from doctune.core.evaluate.verdict import FEW_QUESTIONS, tuning_cost, verdict

        questions = summary.get("questions", {})
        self.verdict.setText(verdict(summary))
        few = questions.get("total", 0) < FEW_QUESTIONS
        self.headline.setText(
            f"Evaluation {summary.get('eval_id')}: {questions.get('total', 0)} questions "
            f"({questions.get('mc', 0)} multiple choice, {questions.get('open', 0)} open)."
            + (f" With fewer than {FEW_QUESTIONS} questions every interval is wide; more held-out questions "
               "(Synthesize page) make the comparison sharper." if few else ""))
        try:
            self.cost.setText(cost_text(tuning_cost(self.open_config())))
        except Exception:  # noqa: BLE001 — the cost line is extra; an unreadable items file leaves it out
            self.cost.setText("")
        rows = scoreboard_rows(summary)
        self.table.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.summary_data = summary
        if self.chart.widget is not None:  # else the chart is drawn when it is built
            self._draw_chart(summary)
        self._load_records(path.parent)

    def _draw_chart(self, summary: dict) -> None:
        import numpy as np
        import pyqtgraph as pg

        chart = self.chart.widget
        chart.clear()
        systems = summary.get("systems", [])
        for index, system in enumerate(systems):
            score = summary["scores"][system].get("mc_likelihood") or {}
            accuracy = (score.get("accuracy") or 0.0) * 100
            chart.addItem(pg.BarGraphItem(x=[index], height=[accuracy], width=0.6,
                                               brush=BAR_COLOURS[index % len(BAR_COLOURS)]))
            ci = score.get("ci95")
            if ci:
                chart.addItem(pg.ErrorBarItem(x=np.array([index]), y=np.array([accuracy]),
                                                   top=np.array([ci[1] * 100 - accuracy]),
                                                   bottom=np.array([accuracy - ci[0] * 100]), beam=0.2))
        chart.getAxis("bottom").setTicks([[(i, CHART_LABELS.get(s, s)) for i, s in enumerate(systems)]])

    def _load_records(self, folder: Path) -> None:
        from doctune.core.items import load_eval_questions
        from doctune.core.records import EvalAnswer, EvalLayout, read_records

        self.records = defaultdict(list)
        for record in read_records(EvalAnswer, EvalLayout(folder).results):
            self.records[record.question_id].append(record.to_data())
        self.question_list = [q for q in load_eval_questions(self.open_config()) if q.id in self.records]
        self.questions.setRowCount(len(self.question_list))
        for row, question in enumerate(self.question_list):
            self.questions.setItem(row, 0, QTableWidgetItem("multiple choice" if question.kind == "mc" else "open"))
            self.questions.setItem(row, 1, QTableWidgetItem(question.question))

    def _show_question(self) -> None:
        from doctune.core.evaluate.verdict import system_label

        rows = self.questions.selectionModel().selectedRows()
        if not rows:
            return
        question = self.question_list[rows[0].row()]
        parts = [f"<h3>{html.escape(question.question)}</h3>"]
        if question.kind == "mc":
            parts.append("<ol type='A'>" + "".join(f"<li>{html.escape(o)}</li>" for o in question.options) + "</ol>")
        parts.append(f"<p><b>Expected:</b> {html.escape(str(question.answer))}</p>")
        for record in self.records[question.id]:
            verdict = self._verdict(record)
            parts.append(f"<p><b>{html.escape(system_label(record['system']))}</b> — {verdict}<br>"
                         f"{html.escape(record.get('answer') or record.get('error') or '')}</p>")
        parts.append(f"<p><small>Source passage: {html.escape(question.source_text[:800])}</small></p>")
        self.detail.setHtml("".join(parts))

    @staticmethod
    def _verdict(record: dict) -> str:
        if record.get("mc") is not None:
            return "<span style='color:#27ae60'>right</span>" if record["mc"].get("likelihood_correct") \
                else "<span style='color:#c0392b'>wrong</span>"
        verdict = (record.get("open") or {}).get("verdict")
        return verdict or f"F1 {(record.get('open') or {}).get('f1', 0):.2f}"
