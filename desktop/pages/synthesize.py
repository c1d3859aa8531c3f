"""Synthesize: recipe mix, estimate, run, browse and delete items, coverage per document."""
from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from doctune.core.synth.recipes import REGISTRY, TRAIN_RECIPES
from doctune.desktop.jobs import SUCCEEDED
from doctune.desktop.pages.base import Page
from doctune.desktop.widgets import JobProgress, explanation, run_cli_json

ALL = "All"
AMOUNT_EXPLANATION = ("More study material teaches the student more but takes the teacher longer: the studies DocTune "
                      "follows needed about 100× the documents' text or more to beat searching them. Estimate shows "
                      "the time and the disk it takes; a larger amount later adds to what exists.")


class SynthesizePage(Page):
    key = "synthesize"
    title = "Synthesize"
    summary = ("The teacher turns each passage into study material for the student. Pick the kinds of material and "
               "how much of each; Estimate shows the work before anything runs.")

    def __init__(self, runner, parent=None) -> None:
        super().__init__(runner, parent)
        self.items: list = []
        self.documents: dict[str, str] = {}
        self.mix_shown_for = None  # the project whose settings the mix and amount were last set from
        grid = QGridLayout()
        self.recipe_boxes: dict[str, tuple[QCheckBox, QDoubleSpinBox]] = {}
        for row, name in enumerate(TRAIN_RECIPES):
            recipe = REGISTRY[name]
            box = QCheckBox(recipe.label.replace("&", "&&"))
            box.setToolTip(f"recipe '{name}'")
            weight = QDoubleSpinBox()
            weight.setRange(0.1, 10.0)
            weight.setSingleStep(0.5)
            weight.setValue(1.0)
            weight.setToolTip("Relative weight of this recipe in the mix")
            grid.addWidget(box, row, 0)
            grid.addWidget(weight, row, 1)
            grid.addWidget(explanation(recipe.description), row, 2)
            self.recipe_boxes[name] = (box, weight)
        grid.setColumnStretch(2, 1)
        self.body.addLayout(grid)
        amount = QHBoxLayout()
        amount.addWidget(QLabel("Amount"))
        self.amplification = QDoubleSpinBox()
        self.amplification.setRange(0, 1000)
        self.amplification.setDecimals(0)
        self.amplification.setSingleStep(4)
        self.amplification.setSuffix("× the documents' text")
        self.amplification.setToolTip("Synthetic text to generate, as a multiple of the documents' text")
        amount.addWidget(self.amplification)
        amount.addWidget(explanation(AMOUNT_EXPLANATION), 1)
        self.body.addLayout(amount)
        buttons = QHBoxLayout()
        self.estimate_button = QPushButton("Estimate")
        self.run_button = QPushButton("Generate")
        self.run_button.setToolTip("Generate the training material (Ctrl+R); re-running continues where it stopped")
        self.eval_button = QPushButton("Held-out questions")
        self.eval_button.setToolTip("Write the test questions used by Evaluate (never trained on)")
        for button in (self.estimate_button, self.run_button, self.eval_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.body.addLayout(buttons)
        self.progress = JobProgress()
        self.body.addWidget(self.progress)
        self.estimate = explanation("")
        self.body.addWidget(self.estimate)
        filters = QHBoxLayout()
        self.recipe_filter = QComboBox()
        self.document_filter = QComboBox()
        self.view_button = QPushButton("View")
        self.delete_button = QPushButton("Delete")
        filters.addWidget(QLabel("Recipe"))
        filters.addWidget(self.recipe_filter)
        filters.addWidget(QLabel("Document"))
        filters.addWidget(self.document_filter, 1)
        filters.addWidget(self.view_button)
        filters.addWidget(self.delete_button)
        self.body.addLayout(filters)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(("Recipe", "Document", "Kind", "Text"))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(220)
        self.body.addWidget(self.table, 1)
        self.body.addWidget(QLabel("Coverage per document"))
        self.coverage_table = QTableWidget(0, 2)
        self.coverage_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.coverage_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.coverage_table.verticalHeader().setVisible(False)
        self.body.addWidget(self.coverage_table)
        self.coverage = explanation("")
        self.body.addWidget(self.coverage)
        self.estimate_button.clicked.connect(lambda: self.run_synth(dry_run=True))
        self.run_button.clicked.connect(lambda: self.run_synth(dry_run=False))
        QShortcut(QKeySequence("Ctrl+R"), self, lambda: self.run_synth(dry_run=False))
        self.eval_button.clicked.connect(lambda: self._follow(self.start_job("Held-out questions", ["synth", "--eval"])))
        self.recipe_filter.currentIndexChanged.connect(self._fill_table)
        self.document_filter.currentIndexChanged.connect(self._fill_table)
        self.table.doubleClicked.connect(self.view_selected)
        self.view_button.clicked.connect(self.view_selected)
        self.delete_button.clicked.connect(self.delete_selected)

    def _follow(self, job):
        self.progress.follow(job)
        return job

    def recipe_weights(self) -> dict[str, float]:
        return {name: weight.value() for name, (box, weight) in self.recipe_boxes.items() if box.isChecked()}

    def synth_args(self) -> list[str]:
        """The chosen mix and amount, passed to the job as options (the project's doctune.toml is left as it is)."""
        weights = self.recipe_weights()
        args = ["synth", "--amplification", f"{self.amplification.value():g}"]
        return args + (["--recipes", ",".join(f"{name}={weight:g}" for name, weight in weights.items())] if weights
                       else [])

    def run_synth(self, dry_run: bool):
        args = self.synth_args()
        if dry_run:
            job = self.start_job("Estimate synthesis", [*args, "--dry-run"])
            self.estimate.setText("")
            job.finished.connect(lambda state: self._show_estimate(job, state))
            return self._follow(job)
        return self._follow(self.start_job("Generate training material", args))

    def _show_estimate(self, job, state: str) -> None:
        """The estimate in its own line; the progress line, which would repeat it, goes away (it stays to say why
        an estimate failed)."""
        if state == SUCCEEDED:
            self.estimate.setText(job.record.message)
            self.progress.setVisible(False)

    # ----- items ---------------------------------------------------------------------
    def refresh(self) -> None:
        from doctune.core.items import load_training_items

        project = self.open_config()
        if self.mix_shown_for != self.project:  # the project's settings first; then what the user chose stays
            self.mix_shown_for = self.project
            self._show_mix(project.config.synth)
        self.items = load_training_items(project)
        self._show_items()
        run_cli_json(self, ["status", "--json", "-p", str(self.project)], self._with_documents)

    def _show_mix(self, synth) -> None:
        for name, (box, weight) in self.recipe_boxes.items():
            box.setChecked(name in synth.recipes)
            weight.setValue(synth.recipes.get(name, 1.0))
        self.amplification.setSpecialValueText(f"{synth.per_chunk} per passage and kind")
        self.amplification.setValue(synth.amplification)

    def _with_documents(self, data: dict | None, _error: str) -> None:
        if data is not None:
            self.documents = {doc["id"]: doc["name"] for doc in data["documents"] if doc["status"] == "ok"}
            self._show_items()

    def _show_items(self) -> None:
        self._fill_filter(self.recipe_filter, sorted({item.recipe for item in self.items}))
        self._fill_filter(self.document_filter, sorted({self._document(item) for item in self.items}))
        self._fill_table()
        self._show_coverage()

    def _show_coverage(self) -> None:
        """One row per document: its items in all, per kind of material, and the tasks not written (yet)."""
        from doctune.core.records import ProjectLayout, read_deleted_ids, unwritten_by_document

        layout = ProjectLayout(self.project)
        written = {item.id for item in self.items} | read_deleted_ids(layout)
        recipes = [name for name in TRAIN_RECIPES if any(item.recipe == name for item in self.items)]
        per_recipe = Counter((self._document(item), item.recipe) for item in self.items)
        totals = Counter(self._document(item) for item in self.items)
        unwritten = Counter({self.documents.get(doc_id) or doc_id[:12]: n for doc_id, n in
                             unwritten_by_document(layout, written).items()})
        names = sorted(set(totals) | set(self.documents.values()) | set(unwritten))
        headers = ["Document", "Items", *(REGISTRY[name].label for name in recipes)]
        if unwritten:
            headers.append("Not written")
        table = self.coverage_table
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setRowCount(len(names))
        for row, name in enumerate(names):
            values = [name, str(totals[name]) if totals[name] else "none yet",
                      *(str(per_recipe[name, recipe]) for recipe in recipes)]
            if unwritten:
                values.append(str(unwritten[name]))
            for column, value in enumerate(values):
                cell = QTableWidgetItem(value)
                if column:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, cell)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(headers)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        table.setVisible(bool(names))
        rows_height = sum(table.rowHeight(row) for row in range(min(len(names), 8)))
        table.setFixedHeight(table.horizontalHeader().sizeHint().height() + rows_height + 2 * table.frameWidth() + 2)
        not_written = sum(unwritten.values())
        note = (f" {not_written} planned item(s) not written: the teacher failed or the checks turned its reply "
                "down (Generate again retries the failed ones).") if not_written else ""
        self.coverage.setText(f"{len(self.items)} item(s) from {sum(1 for n in names if totals[n])} of "
                              f"{len(names)} document(s).{note}" if names else "No training material yet.")

    def _document(self, item) -> str:
        return self.documents.get(item.doc_id) or item.doc_id[:12]

    @staticmethod
    def _fill_filter(combo: QComboBox, values: list[str]) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems([ALL, *values])
        combo.setCurrentText(current if current in values else ALL)
        combo.blockSignals(False)

    def shown_items(self) -> list:
        recipe, document = self.recipe_filter.currentText(), self.document_filter.currentText()
        return [item for item in self.items
                if recipe in (ALL, "", item.recipe) and document in (ALL, "", self._document(item))]

    def _fill_table(self) -> None:
        shown = self.shown_items()
        self.table.setRowCount(len(shown))
        for row, item in enumerate(shown):
            text = item.text if item.kind == "document" else " / ".join(m.content for m in item.messages)
            for column, value in enumerate((item.recipe, self._document(item), item.kind, (text or "")[:300])):
                cell = QTableWidgetItem(value)
                cell.setData(Qt.ItemDataRole.UserRole, item.id)
                self.table.setItem(row, column, cell)

    def _selected_items(self) -> list:
        shown = self.shown_items()
        return [shown[index.row()] for index in self.table.selectionModel().selectedRows()]

    def view_selected(self) -> None:
        for item in self._selected_items()[:1]:
            dialog = QDialog(self)
            dialog.setWindowTitle(f"{item.recipe} item from {self._document(item)}")
            text = QPlainTextEdit(item.text if item.kind == "document" else
                                  "\n\n".join(f"{m.role.upper()}:\n{m.content}" for m in item.messages))
            text.setReadOnly(True)
            QVBoxLayout(dialog).addWidget(text)
            dialog.resize(640, 420)
            dialog.open()

    def delete_selected(self) -> None:
        from doctune.core.records import ProjectLayout, mark_deleted

        chosen = self._selected_items()
        if not chosen:
            return
        mark_deleted(ProjectLayout(self.project), [item.id for item in chosen])
        self.refresh()
        self.changed.emit()
