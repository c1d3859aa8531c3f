"""The student: a Hugging Face id or a local folder, resolved to a checked local folder.

A hub id is downloaded into the standard Hugging Face cache (safetensors and
tokenizer files only) with progress events, unless the project is offline (or
``HF_HUB_OFFLINE`` is set): then only an already cached copy is used, and a
missing one is a clear error. Every folder is checked before training starts:
it must hold a config of a causal language model and safetensors weights.
"""
from __future__ import annotations

import re
from pathlib import Path

from doctune.core.events import Events
from doctune.core.hub import hub_offline, progress_bar_class
from doctune.core.train.errors import TrainError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and not name.startswith((".", "~"))


def _download(repo_id: str, revision: str, offline: bool, events: Events) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        if offline:
            folder = snapshot_download(repo_id, revision=revision or None, allow_patterns=DOWNLOAD_PATTERNS,
                                       local_files_only=True)
        else:
            events.log(f"Downloading {repo_id} into the Hugging Face cache")
            folder = snapshot_download(repo_id, revision=revision or None, allow_patterns=DOWNLOAD_PATTERNS,
                                       tqdm_class=progress_bar_class(events, "downloading the student"))
    except LocalEntryNotFoundError:
        if offline:
            raise TrainError(
                f"The student '{repo_id}' is not in the Hugging Face cache, and downloads are off (offline mode).",
                "Turn off [privacy] offline (and unset HF_HUB_OFFLINE) to download it, "
                "or set [student] model to a local folder.",
                window_hint="On the Train page, press Folder… next to Student model to pick a model folder on this "
                            "computer. (Downloads are off because the project works offline: privacy.offline in "
                            "the project's doctune.toml; the window has no switch for it.)",
            ) from None
        raise TrainError(f"Could not download the student '{repo_id}': no connection to the Hugging Face hub.",
                         "Check the network, or set [student] model to a local folder.",
                         window_hint="Check the network, or on the Train page press Folder… next to Student model "
                                     "to pick a model folder on this computer.") from None
    except RepositoryNotFoundError:
        raise TrainError(f"The student '{repo_id}' does not exist on the Hugging Face hub (or needs a login).",
                         "Check the id's spelling, or run 'hf auth login' for a gated model.",
                         window_hint="Check the spelling of the Student model on the Train page; a gated model "
                                     "also needs a Hugging Face login on this computer ('hf auth login' in a "
                                     "terminal).") from None
    except HfHubHTTPError as exc:
        raise TrainError(f"Downloading the student '{repo_id}' failed: {exc}", "Try again later.") from None
    return Path(folder)


def trusted_now(model: str, revision: str, current) -> bool:
    """Whether the student ``model`` at ``revision``, named by a run folder's files, may run its own code: only
    when the user's current settings (``current``, the project's [student]) trust that very student. A file in
    the project (a run's config.json: copied, downloaded, crafted) is never the user's consent."""
    return bool(current.trust_remote_code) and (model, revision or "") == (current.model, current.revision or "")


def check_student_folder(folder: Path, trust_remote_code: bool = False) -> None:
    """Raise ``TrainError`` unless ``folder`` holds a causal LM with safetensors weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not (folder / "config.json").is_file():
        raise TrainError(f"{folder} is not a model folder (it has no config.json).",
                         "Point [student] model at a Hugging Face model folder or a hub id.",
                         window_hint="On the Train page, set Student model to a Hugging Face model folder (Folder…) "
                                     "or a hub id.")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        remote_code = "trust_remote_code" in str(exc)
        hint = ("This model ships its own code; set [student] trust_remote_code = true only if you trust it."
                if remote_code else "Use a supported model family (Llama, Qwen2, Qwen3, Mistral…).")
        window_hint = ("This model ships its own code, which the window does not run: choose another Student model "
                       "on the Train page (Llama, Qwen2, Qwen3, Mistral…), or allow its code with [student] "
                       "trust_remote_code = true in the project's doctune.toml only if you trust it."
                       if remote_code else "Choose a Student model of a supported family (Llama, Qwen2, Qwen3, "
                       "Mistral…) on the Train page.")
        raise TrainError(f"{folder}: the model config cannot be read ({exc}).", hint, window_hint) from None
    architectures = getattr(config, "architectures", None) or []
    causal_heads = [a for a in architectures if a.endswith(("ForCausalLM", "LMHeadModel"))]
    if (architectures and not causal_heads) or config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise TrainError(f"{folder} holds a '{config.model_type}' model, which is not a causal language model.",
                         "Choose a text-generation model (Llama, Qwen2, Qwen3, Mistral, SmolLM2…).")
    if not any(folder.glob("*.safetensors")):
        raise TrainError(f"{folder} has no .safetensors weights (only safetensors are loaded, for safety).",
                         "Use a model published in safetensors format, or convert it first.")


def resolve_student(name: str, *, revision: str = "", offline: bool = False, trust_remote_code: bool = False,
                    events: Events | None = None) -> Path:
    """A local folder for the student named by ``name`` (folder path or hub id)."""
    events = events or Events()
    if not name.strip():
        raise TrainError("No student model is set.",
                         "Set [student] model in doctune.toml (a Hugging Face id or a folder), or pass --student.",
                         window_hint="On the Train page, enter a Hugging Face id under Student model, or press "
                                     "Folder… to pick a model folder.")
    local = Path(name).expanduser()
    if local.exists():
        folder = local.resolve()
    elif looks_like_hub_id(name):
        folder = _download(name, revision, hub_offline(offline), events)
    else:
        raise TrainError(f"The student folder {local} does not exist.",
                         "Check the path in [student] model (or --student), or give a Hugging Face id such as "
                         "HuggingFaceTB/SmolLM2-135M-Instruct.",
                         window_hint="On the Train page, check the Student model (Folder… picks one), or enter a "
                                     "Hugging Face id such as HuggingFaceTB/SmolLM2-135M-Instruct.")
    check_student_folder(folder, trust_remote_code)
    return folder
