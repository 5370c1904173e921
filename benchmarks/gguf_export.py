"""GGUF files of a Qwen3.5 checkpoint for llama.cpp rows in ``bench.py`` (optional).

llama.cpp's own converter (``convert_hf_to_gguf.py`` from a llama.cpp checkout, or from the
``llama-cpp-python`` source archive under ``vendor/llama.cpp``) writes an F16 GGUF;
``llama-cpp-python``'s binding of ``llama_model_quantize`` turns it into the other formats with
llama.cpp's default recipe for that type (as ``llama-quantize`` does).

A random benchmark checkpoint has no tokenizer, which the converter needs, so the conversion
reads the checkpoint through a folder of links plus a minimal byte-level BPE tokenizer,
and tells the converter the pre-tokenizer is Qwen3.5's (it cannot recognise a tokenizer it has no
hash for). Tokens are fed to llama.cpp as ids, so the tokenizer only has to exist: speed does not
depend on it.

    python benchmarks/gguf_export.py <checkpoint> <out-dir> --types Q4_0,F16 \
        --converter <llama.cpp>/convert_hf_to_gguf.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

#: Run by a child interpreter: the converter, with its pre-tokenizer check answered.
_CONVERT = """
import runpy, sys
from pathlib import Path
script = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(script.parent), str(script.parent / "gguf-py")]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen35"
sys.argv = [str(script)] + sys.argv[2:]
runpy.run_path(str(script), run_name="__main__")
"""


def llama_cpp_missing() -> str | None:
    """Why llama.cpp rows cannot run in this interpreter, or None when they can."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as error:
        return f"llama-cpp-python is not installed ({error}): pip install llama-cpp-python"
    return None


def _ftype(gguf_type: str) -> int | None:
    """llama.cpp's file-type constant for ``gguf_type`` (``LLAMA_FTYPE_MOSTLY_<TYPE>``), or None."""
    import llama_cpp

    return getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{gguf_type.upper()}", None)


def unknown_types(gguf_types: list[str]) -> list[str]:
    """The entries of ``gguf_types`` that llama.cpp (as installed) cannot write."""
    return [name for name in gguf_types if name.upper() != "F16" and _ftype(name) is None]


def _byte_level_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer in ``folder`` (256 bytes and one merge: llama.cpp refuses a BPE
    vocabulary without merges), loadable by AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: index for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["Ġt"] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[("Ġ", "t")]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))


def convert_f16(checkpoint: Path, out: Path, converter: Path) -> Path:
    """``out`` (an F16 GGUF) from ``checkpoint``, by llama.cpp's ``converter`` script; kept if present."""
    if out.is_file():
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        source = Path(scratch) / "checkpoint"
        source.mkdir()
        own_tokenizer = (checkpoint / "tokenizer.json").is_file()
        for file in checkpoint.iterdir():  # without a tokenizer.json, no stray tokenizer_config.json either
            if own_tokenizer or not file.name.startswith("tokenizer"):
                (source / file.name).symlink_to(file.resolve())
        if not own_tokenizer:
            _byte_level_tokenizer(source)
        partial = Path(scratch) / out.name
        cmd = [sys.executable, "-c", _CONVERT, str(converter), str(source), "--no-mtp", "--outtype", "f16"]
        subprocess.run([*cmd, "--outfile", str(partial)], check=True, stdout=subprocess.DEVNULL)
        partial.rename(out)
    return out


def quantize(f16: Path, out: Path, gguf_type: str) -> Path:
    """``out`` in llama.cpp type ``gguf_type`` (e.g. ``Q4_0``, ``Q4_K_M``) from an F16 GGUF."""
    import llama_cpp

    if out.is_file():
        return out
    if unknown_types([gguf_type]):
        raise ValueError(f"llama.cpp has no type {gguf_type!r} (LLAMA_FTYPE_MOSTLY_{gguf_type.upper()})")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(gguf_type)
    partial = out.with_name(out.name + ".partial")
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(partial).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {f16} to {gguf_type}")
    partial.rename(out)
    return out


def export_gguf(checkpoint: Path, work_dir: Path, gguf_type: str, converter: Path) -> Path:
    """``work_dir/gguf-<type>.gguf`` for ``checkpoint``: F16 by the converter, others quantized from it.

    Files already there are reused, like ``bench.py``'s ``ir-*`` folders: use one work dir per
    checkpoint."""
    f16 = convert_f16(checkpoint, work_dir / "gguf-f16.gguf", converter)
    if gguf_type.upper() == "F16":
        return f16
    return quantize(f16, work_dir / f"gguf-{gguf_type.lower()}.gguf", gguf_type)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--converter", type=Path, required=True, help="llama.cpp's convert_hf_to_gguf.py")
    parser.add_argument("--types", default="Q4_0,F16", help="comma-separated llama.cpp types")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for gguf_type in args.types.split(","):
        print(export_gguf(args.checkpoint, args.out_dir, gguf_type, args.converter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
