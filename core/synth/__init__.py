"""Synthetic training data and held-out evaluation questions from the project's chunks.

``run(SynthParams(project_dir=...), events=, cancel=)`` → ``SynthResult``;
``export_items(project, fmt, out)`` writes the items for other trainers.
"""
from doctune.core.synth.export import export_items
from doctune.core.synth.recipes import EVAL_RECIPES, TRAIN_RECIPES
from doctune.core.synth.step import SynthInputError, SynthParams, SynthResult, estimate, plan, run

__all__ = ["run", "SynthParams", "SynthResult", "SynthInputError", "plan", "estimate", "export_items",
           "TRAIN_RECIPES", "EVAL_RECIPES"]
