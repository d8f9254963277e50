"""Publish built tables to a Hugging Face dataset repository (one folder per table)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from explainers.errors import XaiLensError, first_line


def push_tables(directories: Sequence[Path], dataset: str, token: str | None = None) -> str:
    """Upload each table folder to `dataset` (created if missing); returns the dataset URL."""
    try:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(dataset, repo_type="dataset", exist_ok=True)
        for directory in directories:
            api.upload_folder(
                folder_path=str(directory),
                path_in_repo=Path(directory).name,
                repo_id=dataset,
                repo_type="dataset",
                commit_message=f"Neuron concept table: {Path(directory).name}",
            )
    except Exception as exc:  # network, auth and validation errors all become one line for people
        reason = first_line(exc, limit=200)
        raise XaiLensError(
            f"Could not publish to the Hugging Face dataset '{dataset}' ({reason}). "
            "Check the network and log in with `hf auth login` (or set HF_TOKEN)."
        ) from None
    return f"https://huggingface.co/datasets/{dataset}"
