"""Fake training outputs for registry tests (what train and evaluate would write)."""

from __future__ import annotations

import json
from pathlib import Path

MODEL = "clips"


def make_model_dir(root: Path, name: str, *, classes: tuple[str, ...] = ("a", "b")) -> Path:
    """A training-output directory with the files registration copies (content is opaque)."""
    model_dir = root / name
    (model_dir / "saved_model" / "variables").mkdir(parents=True, exist_ok=True)
    (model_dir / "saved_model" / "saved_model.pb").write_bytes(f"graph {name}".encode())
    (model_dir / "saved_model" / "variables" / "variables.index").write_bytes(b"idx")
    (model_dir / "label_map.txt").write_text("\n".join(classes) + "\n")
    (model_dir / "experiment.yaml").write_text("data:\n  num_frames: 4\n")
    (model_dir / "checkpoints").mkdir(exist_ok=True)
    (model_dir / "checkpoints" / "ckpt-1.data").write_bytes(b"x" * 10)
    return model_dir


def write_metrics(path: Path, top_1: float) -> Path:
    """A metrics.json like the evaluate step's."""
    path.write_text(
        json.dumps(
            {
                "top_1": top_1,
                "top_5": 1.0,
                "mean_per_class_accuracy": top_1,
                "num_clips": 8,
                "class_names": ["a", "b"],
                "confusion_matrix": [[3, 1], [1, 3]],
                "per_class": {"a": top_1, "b": top_1},
            }
        )
    )
    return path
