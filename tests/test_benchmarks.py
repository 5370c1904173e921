"""The benchmark scripts run end to end on a tiny checkpoint (structure of their output, not speed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hub_models import make_hub_checkpoint, miniature_config
from safetensors import safe_open

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_writes_every_figure_for_every_row(text_checkpoint, tmp_path):
    cmd = [sys.executable, str(BENCHMARKS / "bench.py"), "--work-dir", str(tmp_path), "--checkpoint"]
    cmd += [str(text_checkpoint), "--formats", "fp16", "--prompts", "8,16", "--new-tokens", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["prompts"] == [8, 16] and report["bandwidth"] == max(report["bandwidth_probes"].values()) > 1e8
    assert set(report["bandwidth_probes"]) == {"numpy", "reduce", "matvec"}
    runtimes = ["infer", "optimum", "genai", "genai-sdpa"]
    assert [row["name"] for row in report["rows"]] == [f"plugin-fp16/{runtime}" for runtime in runtimes]
    for row in report["rows"]:
        assert "error" not in row, row
        assert set(row["ttft_s"]) == {"8", "16"} and all(seconds > 0 for seconds in row["ttft_s"].values())
        assert row["cold_ttft_s"] > 0  # the first call after loading, apart from the warm ones
        assert 0 < row["tpot_s"] < 10 and row["floor_ms"] > 0 and row["peak_rss"] > 0
    assert "plugin-fp16/genai" in result.stdout and "cold TTFT 8" in result.stdout  # the printed table


def _bench(name: str = "bench"):
    """``benchmarks/<name>.py`` as a module (the scripts import their siblings)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_compression_sweep_default_row_is_the_plugins_int4_policy():
    """The sweep's DEFAULT_ROW, whose figures docs/compression.md quotes for --weight-format int4, is the policy."""
    from optimum_qwen35.compression import policy

    sweep = _bench("compression_sweep")
    row = sweep.ROWS[sweep.DEFAULT_ROW]
    for text_config in ({"num_experts": 8}, {"intermediate_size": 96}):
        # compress() drops the router pattern from a model without routers, as the plugin does.
        int8 = [p for p in sweep.resolved(row.int8, 24) if p != sweep.ROUTERS or "num_experts" in text_config]
        assert sorted(int8) == sorted(policy.int8_patterns_for(text_config))
    assert (row.group_size, row.sym, row.vocabulary) == (policy.INT4_GROUP_SIZES[0], policy.INT4_SYMMETRIC, "int8")
    # Row attn8-more8-g32: down_proj INT8 where llama.cpp's use_more_bits(i, n) gives Q4_K_M more bits.
    assert sweep.more_bits_layers(8) == [0, 3, 6, 7] and len(sweep.more_bits_layers(64)) == 32


@pytest.mark.parametrize("runtime", ["infer", "genai-sdpa"])
def test_bench_times_a_warm_runtime_and_keeps_the_cold_call_apart(runtime, text_export):
    """One untimed-for-the-warm-columns call comes first (the first prompt length, two tokens); its
    TTFT is the cold column, and every warm TTFT and the TPOT come from the calls after it."""
    bench = _bench()
    vocab = json.loads((text_export / "config.json").read_text())["vocab_size"]
    generate = bench.RUNTIMES[runtime](text_export, vocab, {})  # the CPU plugin's defaults
    calls = []

    def recorded(length, new_tokens, rng):
        call = generate(length, new_tokens, rng)
        calls.append(((length, new_tokens), dict(call)))
        return call

    result = bench.timed_calls(recorded, [8, 16], 4)
    assert [args for args, _ in calls] == [(8, 2), (8, 4), (16, 1)]
    (_, cold), (_, decode), (_, longer) = calls
    assert set(cold) == set(decode) == {"ttft_s", "tpot_s"} and set(longer) == {"ttft_s"}
    assert result == {
        "cold_ttft_s": cold["ttft_s"],
        "ttft_s": {8: decode["ttft_s"], 16: longer["ttft_s"]},
        "tpot_s": decode["tpot_s"],
    }


def test_bench_mtp_rows_draft_the_same_greedy_text(reference_checkpoint, tmp_path):
    """``--mtp 2``: the trained reference exported as the vision-language layout, run by
    ``VLMPipeline`` without a draft and with its MTP head drafting 2 tokens; the draft changes the
    time per token and reports its acceptance, never the greedy text (``--f32``: with bf16
    activations, as on AMX CPUs by default, a verification of 3 tokens may break near-ties apart
    from one-token steps)."""
    cmd = [sys.executable, str(BENCHMARKS / "bench.py"), "--work-dir", str(tmp_path), "--checkpoint"]
    cmd += [str(reference_checkpoint), "--formats", "fp16", "--runtimes", "", "--mtp", "2", "--f32"]
    cmd += ["--prompts", "16,32", "--new-tokens", "24"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    plain, drafted = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert (plain["name"], drafted["name"]) == ("plugin-vl-fp16/vlm", "plugin-vl-fp16/vlm-mtp-k2")
    for row in (plain, drafted):
        assert "error" not in row, row
        assert row["cold_ttft_s"] > 0 and set(row["ttft_s"]) == {"16", "32"} and 0 < row["tpot_s"] < 10
    assert drafted["text"] == plain["text"] and len(plain["text"]) > 24  # 24 tokens of real text
    assert "acceptance" not in plain and 0 < drafted["acceptance"] <= 1  # the trained head: about 0.2 at k = 2


def test_bench_gguf_rows_say_what_they_need(tmp_path):
    """``--gguf`` (llama.cpp rows, optional) names the missing converter or package before any work."""
    bench = str(BENCHMARKS / "bench.py")
    no_converter = subprocess.run(
        [sys.executable, bench, "--work-dir", str(tmp_path), "--gguf", "Q4_0"], capture_output=True, text=True
    )
    assert no_converter.returncode == 2 and "--gguf needs --llama-converter" in no_converter.stderr
    not_there = subprocess.run(
        [*no_converter.args, "--llama-converter", str(tmp_path / "x.py")], capture_output=True, text=True
    )
    assert not_there.returncode == 2 and "x.py: no such file" in not_there.stderr
    # As if llama-cpp-python were not installed, whether or not it is here.
    hide = "import runpy, sys; sys.modules['llama_cpp'] = None; sys.argv = sys.argv[1:]; "
    hide += f"sys.path.insert(0, {str(BENCHMARKS)!r}); "
    hide += f"runpy.run_path({bench!r}, run_name='__main__')"
    cmd = [sys.executable, "-c", hide, bench, "--work-dir", str(tmp_path), "--gguf", "Q4_0"]
    no_package = subprocess.run([*cmd, "--llama-converter", bench], capture_output=True, text=True)  # any file
    assert no_package.returncode == 2 and "pip install llama-cpp-python" in no_package.stderr
    assert list(tmp_path.iterdir()) == []  # nothing built or exported


def _hub_layout():
    """``benchmarks/hub_layout.py`` as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("hub_layout", BENCHMARKS / "hub_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stored(folder: Path) -> dict[str, tuple[list[int], str]]:
    """Name -> (shape, dtype) of every tensor in a folder's safetensors files."""
    tensors = {}
    for file in folder.glob("*.safetensors"):
        with safe_open(file, framework="pt") as stream:
            for name in stream.keys():  # noqa: SIM118 (safe_open is no mapping)
                part = stream.get_slice(name)
                tensors[name] = (part.get_shape(), part.get_dtype())
    return tensors


@pytest.mark.parametrize("size", ["27B", "35B-A3B"])
def test_export_memory_checkpoints_are_the_hub_layout(size, tmp_path):
    """``export_memory.py --shapes <size> --layers N`` streams the tensors the hub stores (names,
    shapes, dtypes: checked against ``hub_models``' miniature of the same config) with the depth
    cut to the real ``layer_types`` prefix; depths share their shards through the pool."""
    hub_layout = _hub_layout()
    config = miniature_config(size)
    hub = _stored(make_hub_checkpoint(tmp_path / "hub", size))  # 8 layers
    pool = tmp_path / "pool"
    two = hub_layout.build_hub_checkpoint(size, 2, tmp_path / "L2", pool, config)
    four = hub_layout.build_hub_checkpoint(size, 4, tmp_path / "L4", pool, config)
    for layers, folder in ((2, two), (4, four)):
        beyond = tuple(f"model.language_model.layers.{index}." for index in range(layers, 8))
        assert _stored(folder) == {name: stored for name, stored in hub.items() if not name.startswith(beyond)}
        text = json.loads((folder / "config.json").read_text())["text_config"]
        assert text["layer_types"] == config["text_config"]["layer_types"][:layers]
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        shards = sorted({*index["weight_map"].values()})
        assert shards == [f"model.safetensors-{k:05d}-of-{layers + 3:05d}.safetensors" for k in range(1, layers + 4)]
        assert sorted(file.name for file in folder.glob("*.safetensors")) == shards
    assert "full_attention" not in json.loads((two / "config.json").read_text())["text_config"]["layer_types"]
    first = "model.safetensors-00001-of-{:05d}.safetensors"
    assert (two / first.format(5)).stat().st_ino == (four / first.format(7)).stat().st_ino  # one file, two links
    name = "mtp.layers.0.mlp.experts.0.up_proj.weight" if size == "35B-A3B" else "mtp.fc.weight"
    weight_map = json.loads((two / "model.safetensors.index.json").read_text())["weight_map"]
    with safe_open(two / weight_map[name], framework="pt") as stream:
        assert 0.01 < stream.get_tensor(name).float().std() < 0.03  # random N(0, 0.02), not zeros


def test_export_memory_names_bad_arguments(tmp_path):
    """Unknown formats or a depth beyond the model are one line of usage error, before any work."""
    script = str(BENCHMARKS / "export_memory.py")
    cmd = [sys.executable, script, "--work-dir", str(tmp_path / "work")]
    bad_format = subprocess.run([*cmd, "--formats", "fp16,int3"], capture_output=True, text=True)
    assert bad_format.returncode == 2 and "--formats: unknown int3" in bad_format.stderr
    too_deep = subprocess.run([*cmd, "--shapes", "35B-A3B", "--layers", "2,41"], capture_output=True, text=True)
    assert too_deep.returncode == 2 and "Qwen3.5-35B-A3B has 1 to 40 decoder layers" in too_deep.stderr
    assert not (tmp_path / "work").exists()


def test_int4_policy_decode_names_bad_depths(tmp_path):
    """A hub shape with no depth cut, or a cut beyond the model, is one line of usage error, before any work."""
    script = str(BENCHMARKS / "int4_policy_decode.py")
    cmd = [sys.executable, script, "--work-dir", str(tmp_path / "work"), "--shape", "27B"]
    uncut = subprocess.run(cmd, capture_output=True, text=True)
    assert uncut.returncode == 2 and "--shape 27B needs --layers" in uncut.stderr
    too_deep = subprocess.run([*cmd, "--layers", "65"], capture_output=True, text=True)
    assert too_deep.returncode == 2 and "Qwen3.5-27B has 1 to 64 decoder layers" in too_deep.stderr
    assert not (tmp_path / "work").exists()


def test_runtime_memory_reports_every_stage(text_export, tmp_path):
    cmd = [sys.executable, str(BENCHMARKS / "runtime_memory.py"), str(text_export), "--configs", "core,genai-released"]
    cmd += ["--prompt", "16", "--new-tokens", "2", "--json", str(tmp_path / "memory.json")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads((tmp_path / "memory.json").read_text())
    assert [row["config"] for row in rows] == ["core", "genai-released"]
    for row in rows:
        assert list(row["stages"]) == ["imported", "compiled", "prefill", "decode"]
        peaks = [stage["VmHWM"] for stage in row["stages"].values()]
        assert peaks == sorted(peaks) and all(stage["VmRSS"] > 0 for stage in row["stages"].values())
    assert rows[0]["stages"]["prefill"]["weights_file"] > 0  # a bare request keeps the file's pages
    assert rows[1]["stages"]["prefill"]["weights_file"] == 0  # released during the first generate


def test_paged_prefill_profile_compares_the_two_graphs(text_export):
    cmd = [sys.executable, str(BENCHMARKS / "paged_prefill_profile.py"), str(text_export), "--prompt", "40"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "prefill of 40 tokens: paged (continuous batching)" in result.stdout
    for kind in ("PagedGatedDeltaNet", "PagedCausalConv1D", "GatedDeltaNet", "FullyConnected"):
        assert any(line.startswith(kind) for line in result.stdout.splitlines()), kind


def test_fc_formats_times_every_projection_and_names_each_formats_kernel_path(tmp_path):
    """fc_formats.py on the 0.8B config cut to tiny widths: each format's row says how the plugin ran it."""
    config = json.loads((Path(__file__).parent / "data" / "hub-configs" / "Qwen3.5-0.8B" / "config.json").read_text())
    text = config["text_config"]
    text |= {"hidden_size": 64, "intermediate_size": 96, "vocab_size": 160, "head_dim": 32}
    text |= {"linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_num_key_heads": 2}
    text |= {"linear_num_value_heads": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = tmp_path / "fc.json"
    cmd = [sys.executable, str(BENCHMARKS / "fc_formats.py"), "--config", str(tmp_path / "config.json")]
    cmd += ["--formats", "f16,int4_sym_g32,fp8_e4m3_cw,mxfp4_g32", "--rounds", "1", "--group", "3"]
    result = subprocess.run([*cmd, "--json", str(report)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    shapes = {name: tuple(entry["shape"]) for name, entry in json.loads(report.read_text()).items()}
    # (N, K) from the config: q_proj doubled (query and output gate), qkv = 2 * keys + values.
    assert shapes["self_attn.q_proj"] == (2 * 8 * 32, 64) and shapes["linear_attn.in_proj_qkv"] == (2 * 32 + 64, 64)
    assert shapes["mlp.down_proj"] == (64, 96) and shapes["lm_head"] == (160, 64) and len(shapes) == 10
    rows = {row["format"]: row for row in json.loads(report.read_text())["mlp.gate/up_proj"]["rows"]}
    assert list(rows) == ["int8_asym", "f16", "int4_sym_g32", "fp8_e4m3_cw", "mxfp4_g32"]  # the baseline first
    assert rows["int8_asym"]["path"] == "kernel" and rows["int8_asym"]["vs_int8_asym"] == 1.0
    assert rows["f16"]["path"] == "dense" and rows["f16"]["weight_bytes"] == 96 * 64 * 2
    assert rows["fp8_e4m3_cw"]["path"] == "decompress/call"  # no FP8 FullyConnected kernel on CPU
    assert all(row["ms"] > 0 and row["gb_per_s"] > 0 for row in rows.values())
    # An unknown name is one parser error, before anything is built.
    bad = subprocess.run([*cmd[:4], "--formats", "int5"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "unknown projection(s)/format(s) int5" in bad.stderr


def test_route_memory_measures_each_route_and_the_python_route_writes_the_cli_bytes(text_checkpoint, tmp_path):
    """``route_memory.py`` runs each route in a measured child and hashes its IR: the Python
    ``from_pretrained(export=True, quantization_config=...)`` route writes the CLI's bytes."""
    script = str(BENCHMARKS / "route_memory.py")
    rows_file = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, script, "--work-dir", str(tmp_path), "--checkpoint", str(text_checkpoint), "--routes",
         "cli,from-pretrained-export", "--json", str(rows_file)],
        capture_output=True, text=True, cwd=BENCHMARKS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {row["route"]: row for row in json.loads(rows_file.read_text())}
    assert set(rows) == {"cli", "from-pretrained-export"}
    assert all(row["ok"] and row["peak_anon"] > 0 and row["ir_bytes"] > 0 for row in rows.values())
    assert rows["from-pretrained-export"]["digest"] == rows["cli"]["digest"]
    assert not list(tmp_path.glob("out-*/")), "each route's IR is deleted after hashing"
