"""Save and load fitted classifiers with metadata.json; a model from other library versions is refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from nlp.classifier import CVReport, TextClassifier

__all__ = [
    "ArtifactError",
    "ArtifactVersionError",
    "ModelInfo",
    "library_versions",
    "load",
    "read_info",
    "save",
]

FORMAT = 1
MODEL_FILE = "model.pkl"
META_FILE = "metadata.json"
# Pickled scikit-learn objects are only safe with the exact versions that wrote them; jieba's dictionary
# changes segmentation and so the vocabulary; numpy and scipy are pinned by minor version.
_EXACT = ("scikit-learn", "jieba", "zhconv")
_MINOR = ("numpy", "scipy", "python")


class ArtifactError(Exception):
    """A model directory that cannot be used; the message says which and why."""


class ArtifactVersionError(ArtifactError):
    """A model written by other library versions: retrain it rather than risk wrong or crashing output."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What metadata.json says about a saved model."""

    path: Path
    data: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return list(self.data.get("labels", []))

    @property
    def multilabel(self) -> bool:
        return bool(self.data.get("multilabel"))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "scipy", "jieba", "zhconv"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _mismatches(saved: dict[str, str]) -> list[str]:
    current = library_versions()
    problems = []
    for name in _EXACT + _MINOR:
        was, now = saved.get(name, "unknown"), current[name]
        same = was == now if name in _EXACT else _minor(was) == _minor(now)
        if not same:
            problems.append(f"{name} {was} (this installation has {now})")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(
    model: TextClassifier,
    directory: str | Path,
    *,
    data_hash: str,
    report: CVReport | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model.pkl and metadata.json atomically: a reader sees the old model or the new, never half."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # mkdtemp makes the directory private; a model is read by other service accounts too.
    staging.chmod(0o755)
    try:
        model_path = staging / MODEL_FILE
        with model_path.open("wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        info: dict[str, Any] = {
            "format": FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "libraries": library_versions(),
            "multilabel": model.multilabel,
            "labels": list(model.labels),
            "thresholds": model.thresholds,
            "config": model.config.as_dict(),
            "data_hash": data_hash,
            "cv": report.as_dict() if report else None,
            "model_sha256": _sha256(model_path),
            "model_bytes": model_path.stat().st_size,
        }
        if extra:
            info.update(extra)
        (staging / META_FILE).write_text(
            json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        if target.exists():
            old = target.with_name(f".{target.name}-old-{os.getpid()}")
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_info(directory: str | Path) -> ModelInfo:
    """Read metadata.json without unpickling anything."""
    folder = Path(directory)
    meta = folder / META_FILE
    if not meta.is_file():
        raise ArtifactError(f"{folder}: no {META_FILE} (not a model directory)")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{meta}: unreadable ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(
            f"{meta}: unknown model format {data.get('format') if isinstance(data, dict) else ''}"
        )
    return ModelInfo(folder, data)


def load(directory: str | Path) -> tuple[TextClassifier, ModelInfo]:
    """Load a saved model after checking library versions and the file's checksum.

    Unpickling runs code from the file: load only models this installation or its operators made.
    """
    info = read_info(directory)
    problems = _mismatches(info.data.get("libraries", {}))
    if problems:
        raise ArtifactVersionError(
            f"{info.path}: model was built with {'; '.join(problems)}; "
            "retrain it with `minyi nlp train` (or delete it to rebuild the default model)"
        )
    model_path = info.path / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{info.path}: {MODEL_FILE} is missing")
    if _sha256(model_path) != info.data.get("model_sha256"):
        raise ArtifactError(f"{model_path}: checksum does not match metadata.json (file changed or damaged)")
    with model_path.open("rb") as handle:
        model = pickle.load(handle)
    if not isinstance(model, TextClassifier):
        raise ArtifactError(f"{model_path}: not a Minyi text classifier")
    return model, info
