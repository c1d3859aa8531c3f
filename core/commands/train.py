"""``doctune train``: LoRA-train the student on the project's training items."""
from __future__ import annotations

import argparse
from pathlib import Path

from doctune.core.commands import CommandContext, add_command
from doctune.core.exitcodes import ExitCode

FLAGS = [  # (flag, [train] field, type, help)
    ("--max-steps", "max_steps", int, "stop after N optimizer steps (0: use epochs)"),
    ("--epochs", "epochs", float, "passes over the training mix"),
    ("--lr", "learning_rate", float, "peak learning rate"),
    ("--batch-tokens", "batch_tokens", int, "tokens per step and process (sequences packed together)"),
    ("--max-seq-len", "max_seq_len", int, "longest sequence; longer items are truncated"),
    ("--lora-rank", "lora_rank", int, "LoRA rank"),
    ("--seed", "seed", int, "seed for data order and initialisation"),
    ("--checkpoint-every", "checkpoint_every", int, "save a resumable checkpoint every N steps"),
    ("--replay-fraction", "replay_fraction", float, "share of tokens from replay answers (0 turns replay off)"),
    ("--open-book", "open_book_fraction", float,
     "share of question-answer items also trained with their source among other passages, as retrieval asks"),
]


def register(sub) -> None:
    parser = add_command(sub, "train", cmd_train,
                         "Train a LoRA adapter for the student on the project's training items (resumable).")
    parser.add_argument("--items", metavar="FILE", type=Path,
                        help="JSONL of training items to use instead of the project's generated items")
    parser.add_argument("--resume", metavar="RUN", help="continue run RUN (a folder name under runs/) from its last checkpoint")
    parser.add_argument("--student", metavar="MODEL", help="Hugging Face id or local folder (default: [student] model)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where to train (default: auto)")
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], help="compute precision (default: auto)")
    parser.add_argument("--objective", choices=["sft", "distill", "mix"],
                        help="how question-answer items teach: next-token loss (sft), the answer as the base model "
                             "gives it with the source passage in its prompt (distill), or both (mix)")
    parser.add_argument("--train-embeddings", action=argparse.BooleanOptionalAction, default=None,
                        help="also train the embeddings and output layer in full")
    parser.add_argument("--qlora", action=argparse.BooleanOptionalAction, default=None,
                        help="load the student in 4 bits (CUDA with bitsandbytes only)")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="recompute activations to save memory")
    for flag, _, kind, text in FLAGS:
        parser.add_argument(flag, type=kind, help=text)


def _train_overrides(args: argparse.Namespace) -> dict:
    overrides = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in FLAGS}
    for name in ("device", "dtype", "objective", "train_embeddings", "qlora", "gradient_checkpointing"):
        overrides[name] = getattr(args, name)
    return {key: value for key, value in overrides.items() if value is not None}


def cmd_train(ctx: CommandContext) -> int:
    from doctune.core.commands import UsageError
    from doctune.core.train import TrainParams, run

    args = ctx.args
    overrides = _train_overrides(args)
    if args.resume and (overrides or args.student or args.items):
        raise UsageError("--resume continues a run with the settings it started with; drop the other options.")
    project = ctx.project()
    params = TrainParams(project_dir=project.root, items_file=args.items, resume=args.resume,
                         student={"model": args.student} if args.student else {}, train=overrides)
    result = run(params, events=ctx.events, cancel=ctx.cancel)
    if not result.reports:  # another process of the same run reports it
        return ExitCode.OK
    ctx.events.done(result.message(), run_id=result.run_id, run_dir=str(result.run_dir))
    if not ctx.jsonl:
        ctx.print(f"Adapter: {result.adapter_dir}")
        ctx.print(f"Next: doctune export -p {project.root}")
    return ExitCode.OK
