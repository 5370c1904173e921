"""Cheap checks on a checkpoint before any heavy work: is it Qwen3.5, and are its weights whole?

Only ``config.json`` and the safetensors headers are read, so a wrong or broken checkpoint fails
in milliseconds with a message that says what to do, instead of deep inside loading or tracing.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

from .errors import CheckpointError, NotQwen35Error

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_model_type(config: dict) -> str | None:
    """``model_type`` of a composite config's text part, or of the config itself."""
    text = config.get("text_config") or {}
    return text.get("model_type") or config.get("model_type")


def is_qwen35_config(config: dict, text_model_types: set[str]) -> bool:
    """True when ``config`` (a parsed ``config.json``) describes a Qwen3.5 model we export."""
    return config.get("model_type") in text_model_types or read_model_type(config) in text_model_types


def checkpoint_config(model_name_or_path: str | Path, **hub_kwargs) -> dict | None:
    """Parsed ``config.json`` of a local folder or a hub id (from the local cache), else None."""
    path = Path(str(model_name_or_path))
    if path.is_dir():
        config_file = path / "config.json"
        return json.loads(config_file.read_text()) if config_file.is_file() else None
    try:
        from transformers import AutoConfig

        keys = ("revision", "cache_dir", "token", "trust_remote_code", "subfolder")
        return AutoConfig.from_pretrained(
            str(model_name_or_path), **{k: v for k, v in hub_kwargs.items() if k in keys}
        ).to_dict()
    except Exception:  # an unreachable hub or a non-transformers model: not ours to decide
        return None


def qwen35_checkpoint_config(model_name_or_path: str | Path, model_types: set[str], **hub_kwargs) -> dict | None:
    """``config.json`` of a checkpoint (or exported folder) whose model type is in ``model_types``, else None."""
    config = checkpoint_config(model_name_or_path, **hub_kwargs)
    return config if config is not None and is_qwen35_config(config, model_types) else None


def load_config(path: Path) -> dict:
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise CheckpointError(
            f"{path} has no {CONFIG_FILE}. Fix: point --model at a Hugging Face checkpoint folder "
            "(the one that holds config.json and *.safetensors)."
        )
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}). Fix: re-download the checkpoint.") from None


def safetensors_header(file: Path) -> tuple[int, dict[str, dict]]:
    """``(offset of the data, {tensor name: {dtype, shape, data_offsets}})`` of a whole safetensors file.

    Raises :class:`CheckpointError` when the file is shorter than its header says.
    """
    size = file.stat().st_size
    with file.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{file} is truncated (no header). Fix: re-download the checkpoint.")
        (header_len,) = struct.unpack("<Q", raw)
        if 8 + header_len > size:
            raise CheckpointError(f"{file} is truncated (header runs past the end). Fix: re-download the checkpoint.")
        header = json.loads(handle.read(header_len))
    header.pop("__metadata__", None)
    data_end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{file} is truncated: it declares {8 + header_len + data_end} bytes but has {size}. "
            "Fix: re-download the checkpoint."
        )
    return 8 + header_len, header


def _safetensors_shapes(file: Path) -> dict[str, list[int]]:
    """``{tensor name: shape}`` of a safetensors file, after checking that the data it declares is present."""
    return {name: entry["shape"] for name, entry in safetensors_header(file)[1].items()}


def _shards(weight_map: dict[str, str]) -> list[str]:
    """The shard file names an index's ``weight_map`` refers to, each once, sorted."""
    return sorted(set(weight_map.values()))


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder (its shards, or ``model.safetensors``); [] if none."""
    index = folder / INDEX_FILE
    if index.is_file():
        return [folder / name for name in _shards(json.loads(index.read_text())["weight_map"])]
    return [folder / SINGLE_FILE] if (folder / SINGLE_FILE).is_file() else []


def checkpoint_folder(model_name_or_path: str | Path) -> Path | None:
    """The local folder of a checkpoint: the path itself, or a hub id's snapshot in the local cache."""
    path = Path(str(model_name_or_path))
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model_name_or_path), local_files_only=True))
    except Exception:  # not cached, or not a hub id
        return None


def files_holding(folder: Path, prefix: str) -> list[Path]:
    """The safetensors files of a checkpoint folder that hold a tensor named ``prefix*`` (headers only)."""
    return [file for file in weight_files(folder) if any(n.startswith(prefix) for n in safetensors_header(file)[1])]


def mtp_tensors(folder: Path, prefix: str = "mtp.") -> dict:
    """Every tensor named ``mtp.*`` in a checkpoint folder's safetensors files (transformers skips
    them when it loads the model), as torch tensors in their stored dtypes; {} if there are none."""
    from safetensors import safe_open

    tensors = {}
    for file in files_holding(folder, prefix):
        with safe_open(str(file), framework="pt") as handle:
            tensors |= {name: handle.get_tensor(name) for name in handle.keys() if name.startswith(prefix)}
    return tensors


#: safetensors names of the 16-bit float dtypes, as ``torch`` dtype names.
_HALF_DTYPES = {"BF16": "bfloat16", "F16": "float16"}


def config_dtype(config: dict) -> str | None:
    """The weight dtype a parsed ``config.json`` names (``"bfloat16"`` …), else None.

    transformers writes it at the top level (``dtype``, formerly ``torch_dtype``); the hub's
    composite Qwen3.5 configs have it only inside ``text_config``.
    """
    for part in (config, config.get("text_config") or {}):
        dtype = part.get("dtype") or part.get("torch_dtype")
        if isinstance(dtype, str) and dtype != "auto":
            return dtype
    return None


def stored_dtype(folder: Path) -> str | None:
    """The 16-bit dtype most of a checkpoint's weights are stored in (by element count), else None.

    Read from the safetensors headers: for a checkpoint whose config names no dtype. The hub's
    mix (``A_log`` and the gated norm float32, the rest bfloat16) counts as bfloat16.
    """
    counts: dict[str, int] = {}
    for file in weight_files(folder):
        for entry in safetensors_header(file)[1].values():
            counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + math.prod(entry["shape"])
    if not counts:
        return None
    dominant = max(counts, key=counts.__getitem__)
    return _HALF_DTYPES.get(dominant)


def checkpoint_dtype(model_name_or_path: str | Path, config: dict) -> str | None:
    """The checkpoint's own weight dtype: named by its config, else read from a local folder's
    safetensors headers; None when neither tells (a hub id whose config names none)."""
    dtype = config_dtype(config)
    if dtype is None and Path(str(model_name_or_path)).is_dir():
        dtype = stored_dtype(Path(str(model_name_or_path)))
    return dtype


def validate_weights(path: Path) -> dict[str, list[int]]:
    """Raise :class:`CheckpointError` if weight shards are missing, truncated or disagree with the index.

    Returns ``{tensor name: shape}`` over all shards.
    """
    index_file = path / INDEX_FILE
    if index_file.is_file():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        missing = [shard for shard in _shards(weight_map) if not (path / shard).is_file()]
        if missing:
            raise CheckpointError(
                f"{path} is missing weight shard(s) {', '.join(missing)} listed in {INDEX_FILE}. "
                "Fix: download the complete checkpoint."
            )
        shapes: dict[str, list[int]] = {}
        for shard in _shards(weight_map):
            shapes |= _safetensors_shapes(path / shard)
        absent = sorted(set(weight_map) - set(shapes))
        if absent:
            raise CheckpointError(
                f"{len(absent)} tensor(s) listed in {INDEX_FILE} are not in the shards (first: {absent[0]}). "
                "Fix: re-download the checkpoint."
            )
        return shapes
    if (path / SINGLE_FILE).is_file():
        return _safetensors_shapes(path / SINGLE_FILE)
    if any(path.glob("openvino_*model.xml")):
        raise CheckpointError(
            f"{path} is an exported OpenVINO folder, not a checkpoint: there are no weights to export from. "
            "Fix: load it without export=True (OVModelForCausalLM / OVModelForVisualCausalLM.from_pretrained(folder))."
        )
    raise CheckpointError(f"{path} has no {SINGLE_FILE} or {INDEX_FILE}. Fix: download the weights (safetensors) too.")


def validate_local_checkpoint(path: Path, text_model_types: set[str]) -> dict:
    """Check a local checkpoint folder is a whole Qwen3.5 checkpoint; return its parsed config."""
    config = load_config(path)
    if not is_qwen35_config(config, text_model_types):
        raise NotQwen35Error(
            f"{path} is a '{config.get('model_type')}' checkpoint, not Qwen3.5 "
            f"(expected model_type in {sorted(text_model_types)}). Fix: use optimum-intel's own "
            "`optimum-cli export openvino` / `main_export` for other models."
        )
    check_config_matches_weights(config, validate_weights(path))
    return config


#: A text-decoder tensor of a text (``model.``) or composite (``model.language_model.``)
#: checkpoint: optional layer index, then the name inside the layer or model. The vision tower
#: (``model.visual.``) and ``lm_head`` match with names no expectation uses.
_TEXT_TENSOR = re.compile(r"^model\.(?:language_model\.)?(?:layers\.(\d+)\.)?(.+)$")
_EXPERT_INDEX = re.compile(r"(?<=^mlp\.experts)\.\d+\.")


def _times(*values: int | None) -> int | None:
    """Product of config values, ``None`` when one is absent (a default we do not second-guess)."""
    return None if None in values else math.prod(values)


#: One dimension a config implies: its value (``None`` when a key is absent) and how it is computed.
_Dim = tuple[int | None, str]


def _expected_shapes(text: dict, prefix: str = "") -> dict[str, list[_Dim]]:
    """Shapes the text config implies, by tensor name inside the model or layer.

    ``prefix`` (``"text_config."`` for a composite checkpoint) spells the keys as in ``config.json``.
    """

    def dim(*keys: str, factor: int = 1) -> _Dim:
        label = " * ".join(([str(factor)] if factor != 1 else []) + [prefix + key for key in keys])
        return _times(factor, *(text.get(key) for key in keys)), label

    hidden = dim("hidden_size")
    key_dim, key_label = dim("linear_num_key_heads", "linear_key_head_dim", factor=2)
    value_dim, value_label = dim("linear_num_value_heads", "linear_value_head_dim")
    qkv = (None if None in (key_dim, value_dim) else key_dim + value_dim, f"{key_label} + {value_label}")
    dense, shared = dim("intermediate_size"), dim("shared_expert_intermediate_size")
    experts = dim("num_experts")
    return {
        "embed_tokens.weight": [dim("vocab_size"), hidden],
        "linear_attn.in_proj_qkv.weight": [qkv, hidden],
        "self_attn.q_proj.weight": [dim("num_attention_heads", "head_dim", factor=2), hidden],
        "self_attn.k_proj.weight": [dim("num_key_value_heads", "head_dim"), hidden],
        # Dense MLP.
        "mlp.gate_proj.weight": [dense, hidden],
        "mlp.up_proj.weight": [dense, hidden],
        "mlp.down_proj.weight": [hidden, dense],
        # Sparse MoE block: router; experts either fused into one tensor (gate rows, then up: the
        # hub's layout, and how transformers 5.5 saves them) or one tensor per expert (how
        # transformers 5.2 saves them; ``*`` stands for the expert index); shared expert.
        "mlp.gate.weight": [experts, hidden],
        "mlp.experts.gate_up_proj": [experts, dim("moe_intermediate_size", factor=2), hidden],
        "mlp.experts.down_proj": [experts, hidden, dim("moe_intermediate_size")],
        "mlp.experts.*.gate_proj.weight": [dim("moe_intermediate_size"), hidden],
        "mlp.experts.*.up_proj.weight": [dim("moe_intermediate_size"), hidden],
        "mlp.experts.*.down_proj.weight": [hidden, dim("moe_intermediate_size")],
        "mlp.shared_expert.gate_proj.weight": [shared, hidden],
        "mlp.shared_expert.up_proj.weight": [shared, hidden],
        "mlp.shared_expert.down_proj.weight": [hidden, shared],
    }


def check_config_matches_weights(config: dict, shapes: dict[str, list[int]]) -> None:
    """Raise :class:`CheckpointError` when ``config.json`` and the weights describe different models.

    Only safetensors headers are needed: the layer count, and the shapes of the embedding, the first
    Gated DeltaNet and attention projections, the dense MLP, and the MoE router, experts and shared
    expert, so a config from another model size fails in milliseconds instead of minutes into
    loading. The error names the config keys behind the dimensions that differ.
    """
    text = config.get("text_config") or config
    fix = "Fix: use the config.json that came with these weights (or re-download the checkpoint)."
    matches = [(name, match) for name in sorted(shapes) if (match := _TEXT_TENSOR.match(name))]
    layers = {int(match.group(1)) for _, match in matches if match.group(1) is not None}
    declared = text.get("num_hidden_layers")
    if layers and declared is not None and max(layers) + 1 != declared:
        raise CheckpointError(f"config.json declares {declared} layers but the weights hold {max(layers) + 1}. {fix}")
    expected = _expected_shapes(text, "text_config." if config.get("text_config") else "")
    for name, match in matches:
        kind = _EXPERT_INDEX.sub(".*.", match.group(2), count=1)
        dims = expected.pop(kind, None)  # the first tensor of each kind is enough
        want = [value for value, _ in dims or []]
        found = list(shapes[name])
        if not dims or None in want or found == want:
            continue
        differ = dims
        if len(found) == len(dims):  # name only the keys behind the sizes that differ
            differ = [dim for dim, size in zip(dims, found, strict=True) if dim[0] != size]
        keys = ", ".join(dict.fromkeys(f"{label} = {value}" for value, label in differ))
        raise CheckpointError(f"{name} has shape {found} but config.json implies {want} ({keys}). {fix}")
