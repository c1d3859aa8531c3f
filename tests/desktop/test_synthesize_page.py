"""Synthesize: the mix and the amount go to the job as options; the project's doctune.toml is left as it is."""
from __future__ import annotations

from qt_helpers import wait_for_job

from doctune.desktop.jobs import FAILED


def test_the_mix_and_amount_are_options_and_stay_chosen(qtbot, make_window, project):
    toml = (project.root / "doctune.toml").read_bytes()
    window = make_window()
    window.open_project(project.root)
    page = window.page("synthesize")
    assert page.amplification.value() == 0 and "per passage" in page.amplification.text()  # the project's amount
    page.amplification.setValue(24)
    box, weight = page.recipe_boxes["focal"]
    box.setChecked(False)
    page.recipe_boxes["qa"][1].setValue(2)
    assert page.synth_args() == ["synth", "--amplification", "24", "--recipes", "qa=2"]
    assert wait_for_job(qtbot, page.run_synth(dry_run=True), 120) == FAILED  # no documents yet: said, not crashed
    page.refresh()
    assert page.amplification.value() == 24 and not box.isChecked()  # what the user chose stays chosen
    assert (project.root / "doctune.toml").read_bytes() == toml
