"""The recipe registry: one module per recipe, read by synthesis, the estimate, the CLI help and the window."""
import pkgutil
import subprocess
import sys

import doctune.core.synth.recipes as recipes_package
from doctune.core.config import SynthSettings
from doctune.core.synth.recipes import EVAL_RECIPES, REGISTRY, TRAIN_RECIPES, plan_eval_tasks, plan_tasks


def test_every_recipe_module_defines_the_recipe_of_its_name():
    modules = {module.name for module in pkgutil.iter_modules(recipes_package.__path__)}
    assert modules == set(REGISTRY)
    assert all(REGISTRY[name].name == name for name in modules)
    assert set(TRAIN_RECIPES) | set(EVAL_RECIPES) == set(REGISTRY)
    assert TRAIN_RECIPES == ("qa", "focal", "rephrase", "entigraph")


def test_plans_follow_each_recipes_own_planner():
    settings = SynthSettings(per_chunk=2, amplification=0.0, eval_mc_per_chunk=1, eval_open_per_chunk=2,
                             recipes={"qa": 1.0, "entigraph": 1.0})
    chunks = [{"id": f"c{i}", "doc_id": "d", "ordinal": i, "text": "Some text.", "n_tokens": 10} for i in range(3)]
    tasks = plan_tasks(chunks, {"qa": 1.0, "entigraph": 0.5}, settings)
    assert [t.recipe for t in tasks].count("qa") == 6  # two per chunk
    entigraph = [t for t in tasks if t.recipe == "entigraph"]
    assert len({t.source.id for t in entigraph}) == 1 and len(entigraph) == 3  # one window of three chunks
    held_out = plan_eval_tasks(chunks, settings)
    assert [t.recipe for t in held_out[:3]] == ["eval_mc", "eval_open", "eval_open"]
    assert len(held_out) == 9


def test_calls_per_task_come_from_the_schemas_a_recipe_asks_for():
    settings = SynthSettings()
    assert {name: r.calls_per_task(settings) for name, r in REGISTRY.items()} == {
        "qa": 1, "focal": 2, "rephrase": 1, "entigraph": 1, "eval_mc": 1, "eval_open": 1}
    assert len(REGISTRY["entigraph"].setup_schemas(settings)) == 1


def test_cli_help_describes_each_training_recipe():
    result = subprocess.run([sys.executable, "-m", "doctune.core", "synth", "--help"], capture_output=True,
                            text=True, timeout=120, env={"COLUMNS": "400", "PATH": ""})
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    for name in TRAIN_RECIPES:
        assert f"{name}: {' '.join(REGISTRY[name].description.split())}" in help_text
