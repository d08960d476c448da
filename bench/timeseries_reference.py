"""Parity of ``timeseries.ttm`` with granite-tsfm's TinyTimeMixerForPrediction built its own way.

Step 1, in an environment with the reference installed (never the project's), writes one
fixture per case under plugins/timeseries/tests/reference/::

    python -m venv .venv-granite && .venv-granite/bin/pip install torch granite-tsfm==0.3.11
    .venv-granite/bin/python bench/timeseries_reference.py

Each model is ``TinyTimeMixerForPrediction(TinyTimeMixerConfig(**overrides))``: granite's own
config class and defaults, with no value of ours passed in (``default`` overrides nothing; the
others switch on one granite feature each). Weights: granite's own initialisation under a fixed
seed, then every tensor perturbed by N(0, 0.02) so that norms and biases are exercised too.
A fixture (safetensors) holds the state dict (``state.<granite key>``), the inputs
(``input.*``), granite's forecast (``output.prediction_outputs``) and, as metadata, granite's
``config.json`` and the granite-tsfm, transformers and torch versions.

Step 2, in the project's environment (granite-tsfm not needed), loads every fixture as a run
config naming it would (architecture read by ``granite.granite_components``, encoder and head
built by their records, the file read by the host and loaded through the ``granite`` layouts),
forecasts the same inputs and writes the parity table (max |difference|, tolerance 1e-5) to
BENCHMARKS.md::

    .venv/bin/python bench/timeseries_reference.py --compare

plugins/timeseries/tests/test_reference.py asserts the same bound on every fixture.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parent.parent / "plugins" / "timeseries" / "tests" / "reference"
TOLERANCE = 1e-5
BATCH = 4

# case -> TinyTimeMixerConfig keyword arguments (granite's defaults for everything else)
CASES: dict[str, dict] = {
    "default": {},
    "adaptive_prefix": {"adaptive_patching_levels": 2, "resolution_prefix_tuning": True,
                        "num_input_channels": 3},
    "mix_channel_exogenous": {"num_input_channels": 4, "mode": "mix_channel",
                              "decoder_mode": "mix_channel", "prediction_channel_indices": [0, 1],
                              "exogenous_channel_indices": [3],
                              "enable_forecast_channel_mixing": True},
    "exogenous_fcm_mixer": {"num_input_channels": 3, "prediction_channel_indices": [0],
                            "exogenous_channel_indices": [1, 2],
                            "enable_forecast_channel_mixing": True, "fcm_use_mixer": True,
                            "fcm_context_length": 2},
}


def generate() -> None:
    from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction

    versions = {name: metadata.version(name) for name in ("granite-tsfm", "transformers", "torch")}
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, overrides in CASES.items():
        torch.manual_seed(0)
        config = TinyTimeMixerConfig(**overrides)
        model = TinyTimeMixerForPrediction(config).eval()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.add_(0.02 * torch.randn_like(tensor))
        channels = config.num_input_channels
        inputs = {"past_values": torch.randn(BATCH, config.context_length, channels) * 3 + 10}
        kwargs = dict(inputs)
        if config.resolution_prefix_tuning:
            inputs["freq_token"] = torch.randint(0, config.frequency_token_vocab_size, (BATCH,))
            kwargs["freq_token"] = inputs["freq_token"]
        if config.exogenous_channel_indices:
            inputs["future_values"] = torch.randn(BATCH, config.prediction_length, channels) * 3 + 10
            kwargs["future_values"] = inputs["future_values"]
        with torch.no_grad():
            forecast = model(**kwargs).prediction_outputs
        tensors = {f"state.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors.update({f"input.{k}": v.contiguous() for k, v in inputs.items()})
        tensors["output.prediction_outputs"] = forecast.contiguous()
        meta = {"case": name, "overrides": json.dumps(overrides),
                "config": json.dumps(config.to_dict(), default=str), **versions}
        path = FIXTURES / f"granite_{name}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        params = sum(v.numel() for v in model.parameters())
        print(f"{path.name}: {params:,} parameters, forecast {tuple(forecast.shape)}")


def read_fixture(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def our_forecast(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, str], int]:
    """(ours, granite's, metadata, parameters). The fixture's state dict is written as a Hugging
    Face folder; as for a run config naming it, ``granite_components`` reads its architecture,
    the records build encoder and head, and the host's weights path loads the folder through
    their ``granite`` layouts."""
    from domainfm.host import Host
    from domainfm.weights import load_part_weights
    from domainfm_timeseries.granite import granite_components

    host = Host()
    tensors, meta = read_fixture(path)
    config = json.loads(meta["config"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_file({k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(config))
        parts = granite_components(folder)
        encoder_record = host.get("encoder", parts["encoder"]["name"])
        encoder = encoder_record.build(preset=parts["encoder"]["preset"], **parts["encoder"]["params"])
        head_record = host.get("head", parts["head"]["name"])
        head = head_record.build(encoder, **parts["head"]["params"])
        load_part_weights(encoder, "encoder", encoder_record.weights, str(folder), "granite")
        load_part_weights(head, "head", head_record.weights, str(folder), "granite")
    encoder.eval(), head.eval()
    batch = {"past_values": tensors["input.past_values"]}
    if "input.freq_token" in tensors:
        batch["freq_token"] = tensors["input.freq_token"]
    if "input.future_values" in tensors:
        batch["future_exog"] = tensors["input.future_values"][..., config["exogenous_channel_indices"]]
    with torch.no_grad():
        ours = head(encoder(batch), batch)
    params = sum(p.numel() for m in (encoder, head) for p in m.parameters())
    return ours, tensors["output.prediction_outputs"], meta, params


def compare() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import machine, table, write_section

    rows = []
    for path in [FIXTURES / f"granite_{name}.safetensors" for name in CASES]:
        ours, expected, meta, params = our_forecast(path)
        diff = (ours - expected).abs().max().item()
        rows.append([meta["case"], f"`{meta['overrides']}`", f"{params:,}",
                     f"granite-tsfm {meta['granite-tsfm']} (torch {meta['torch']})",
                     f"{diff:.1e}", f"{TOLERANCE:g}", "yes" if diff <= TOLERANCE else "**no**"])
    write_section("timeseries_parity", "\n".join([
        "## Time series: parity with granite-tsfm built its own way", "",
        "`.venv/bin/python bench/timeseries_reference.py --compare`; the fixtures are written by "
        "`python bench/timeseries_reference.py` in a separate environment with the reference "
        "(`pip install torch granite-tsfm==0.3.11`) and asserted by "
        "plugins/timeseries/tests/test_reference.py, which needs no granite-tsfm.", "",
        "Each reference is `TinyTimeMixerForPrediction(TinyTimeMixerConfig(**overrides))`: "
        "granite's config class and defaults (context 64, horizon 16, patch 8, d_model 16, "
        "decoder d_model 8 with 8 layers...), seeded random weights perturbed by N(0, 0.02). Ours: the "
        "state dict loaded through `timeseries.ttm`'s and `timeseries.forecast`'s `granite` "
        "layouts by the host's weights reader, architecture read from the tensors and "
        f"config.json. Max |difference| of the forecasts ({BATCH} windows). Machine: {machine()}.",
        "", table(["case", "granite config overrides", "parameters", "reference",
                   "max abs diff", "tolerance", "within"], rows)]))
    print("\n".join(" | ".join(r) for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true",
                        help="load the fixtures with the plugin and write BENCHMARKS.md")
    args = parser.parse_args()
    compare() if args.compare else generate()


if __name__ == "__main__":
    main()
