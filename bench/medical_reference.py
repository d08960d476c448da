"""Parity of ``medical.bmmae`` with the BM-MAE reference code, built its own way.

The reference is the paper's code (arXiv 2505.00568, https://github.com/Lucas-rbnt/BM-MAE; the
public copy read here is https://github.com/perkyfever/BM-MAE). Its licence is CC BY-NC 4.0, so
none of it is in this repository: this script imports it from a checkout outside it.

Recipe (a separate environment; never the project's ``.venv``)::

    git clone https://github.com/Lucas-rbnt/BM-MAE ../BM-MAE     # or the public copy above
    git -C ../BM-MAE checkout c3dc4bc7449ae5f508533e2ab03eee0d8d60ab08
    # (later commits add from_pretrained methods whose annotations name the class inside its own
    # body: `import bmmae.model` fails with NameError; the models are otherwise unchanged)
    python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.11.0 safetensors monai==1.3.0
    # (monai 1.3.0 is the reference's pinned version: its TransformerBlock has no norm_cross_attn)
    .venv-bench/bin/python bench/medical_reference.py generate --reference ../BM-MAE
    .venv/bin/python bench/medical_reference.py compare        # the project env: writes BENCHMARKS.md

``generate`` builds the reference's own ``ViTEncoder`` with ``MRITokenizer``s (its constructors
and defaults; only the sizes are made tiny where the constructor takes them: 4 x 16^3, patch 8,
48 wide, 2 blocks, 2 heads, MLP 96), seeded, with every parameter moved off its initial value by
seeded noise (so LayerNorms and positions are checked too), runs it on a seeded input with all
four modalities and with t1 + flair only, and saves under ``plugins/medical/tests/reference/``:

* ``bmmae_tiny.safetensors``: the reference state dict, exactly its keys;
* ``bmmae_tiny_io.safetensors``: the input and the reference encoder's outputs;
* ``bmmae_base_layout.json``: key -> shape of the full reference ``BMMAE`` (encoder and
  decoder) built as its ``pretrain_bmmae.py`` builds it by default (ViT-B, 128^3, patch 16).

Each file states the reference repository, commit, and the torch and MONAI versions.
``compare`` (and ``plugins/medical/tests/test_reference.py``, which needs no reference) loads
the state through the host's weights reader and our ``bmmae`` layout and compares outputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "plugins" / "medical" / "tests" / "reference"
MODALITIES = ["t1", "t1ce", "t2", "flair"]
SUBSET = ["t1", "flair"]
TINY = {"img_size": 16, "patch_size": 8, "hidden_size": 48, "num_layers": 2, "num_heads": 2, "mlp_dim": 96}
TOLERANCE = 1e-5
KEY = "medical-parity"


def _reference_info(checkout: Path) -> dict[str, str]:
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    remote = subprocess.run(["git", "-C", str(checkout), "remote", "get-url", "origin"],
                            capture_output=True, text=True).stdout.strip()
    import monai

    return {"reference": "BM-MAE (arXiv 2505.00568)", "repository": remote or str(checkout.name),
            "commit": commit, "torch": torch.__version__, "monai": monai.__version__,
            "shape": json.dumps(TINY)}


def generate(checkout: Path) -> None:
    """Build the reference its own way and write the fixtures (run in the reference env)."""
    from safetensors.torch import save_file

    sys.path.insert(0, str(checkout))
    from bmmae.decoders import Decoder
    from bmmae.model import BMMAE, ViTEncoder
    from bmmae.tokenizers import MRITokenizer

    info = _reference_info(checkout)
    torch.manual_seed(0)
    size, patch = (TINY["img_size"],) * 3, (TINY["patch_size"],) * 3
    tokenizers = {m: MRITokenizer(patch_size=patch, img_size=size, hidden_size=TINY["hidden_size"],
                                  num_heads=TINY["num_heads"]) for m in MODALITIES}
    encoder = ViTEncoder(modalities=MODALITIES, tokenizers=tokenizers, hidden_size=TINY["hidden_size"],
                         num_layers=TINY["num_layers"], num_heads=TINY["num_heads"],
                         mlp_dim=TINY["mlp_dim"]).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for value in encoder.state_dict().values():  # off the initial values (ones, zeros, sin-cos)
            value.add_(0.05 * torch.randn(value.shape, generator=generator))
        x = torch.randn(2, len(MODALITIES), *size, generator=generator)
        full = encoder({m: x[:, i: i + 1] for i, m in enumerate(MODALITIES)})
        subset = encoder({m: x[:, MODALITIES.index(m): MODALITIES.index(m) + 1] for m in SUBSET})
    FIXTURES.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, FIXTURES / "bmmae_tiny.safetensors", metadata=info)
    save_file({"input": x, "output.all": full.contiguous(), "output.t1+flair": subset.contiguous()},
              FIXTURES / "bmmae_tiny_io.safetensors", metadata=info)

    # the released model's layout: BMMAE as pretrain_bmmae.py builds it with its defaults
    base = {m: MRITokenizer(patch_size=(16, 16, 16), img_size=(128, 128, 128), hidden_size=768)
            for m in MODALITIES}
    decoder = Decoder(decoder_hidden_size=384, num_layers=3, mlp_dim=1536, dropout_rate=0.1,
                      num_heads=12, qkv_bias=True, img_size=(128, 128, 128), patch_size=(16, 16, 16))
    model = BMMAE(modalities=MODALITIES, tokenizers=base, decoder=decoder, masking_ratio=0.75,
                  hidden_size=768, num_layers=12, num_heads=12, mlp_dim=1536, qkv_bias=True)
    keys = ",\n".join(f"  {json.dumps(k)}: {list(v.shape)}" for k, v in model.state_dict().items())
    (FIXTURES / "bmmae_base_layout.json").write_text(
        f'{{"info": {json.dumps(info)},\n "keys": {{\n{keys}\n}}}}\n')  # one key per line
    print(f"wrote {FIXTURES} from {info['repository']} @ {info['commit']} "
          f"(torch {info['torch']}, monai {info['monai']})")


def compare() -> dict[str, float]:
    """Max |ours - reference| per input, our encoder loaded through the host's weights path."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    import domainfm
    from domainfm.weights import load_part_weights

    host = domainfm.Host()
    record = host.get("encoder", "medical.bmmae")
    p = TINY
    encoder = record.build(preset="tiny", img_size=p["img_size"], patch_size=p["patch_size"],
                           embed_dim=p["hidden_size"], depth=p["num_layers"], num_heads=p["num_heads"],
                           mlp_dim=p["mlp_dim"]).eval()
    load_part_weights(encoder, "encoder", record.weights, str(FIXTURES / "bmmae_tiny.safetensors"), "bmmae")
    io = load_file(FIXTURES / "bmmae_tiny_io.safetensors")
    x = io["input"]
    diffs = {}
    with torch.no_grad():
        for name, names in (("all", MODALITIES), ("t1+flair", SUBSET)):
            out = encoder({m: x[:, MODALITIES.index(m): MODALITIES.index(m) + 1] for m in names})
            ours = torch.cat([out["embedding"][:, None], out["tokens"]], 1)
            diffs[name] = float((ours - io[f"output.{name}"]).abs().max())
    with safe_open(FIXTURES / "bmmae_tiny_io.safetensors", "pt") as f:
        info = f.metadata()
    return {**diffs, "info": info}  # type: ignore[dict-item]


def report(result: dict) -> str:
    import monai

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import machine

    info = result["info"]
    rows = [f"| {info['reference']}, `{info['repository']}` @ `{info['commit'][:12]}` (torch "
            f"{info['torch']}, MONAI {info['monai']}) | `ViTEncoder` + `MRITokenizer`, 4 x 16^3, patch 8, "
            f"48 wide, 2 blocks; {name} | {result[name]:.2e} | {TOLERANCE:.0e} |"
            for name in ("all", "t1+flair")]
    return "\n".join([
        "## Medical: parity with the BM-MAE reference code",
        "",
        f"Commands: `.venv-bench/bin/python bench/medical_reference.py generate --reference ../BM-MAE` "
        f"(reference env, see the script), then `.venv/bin/python bench/medical_reference.py compare`; "
        f"`plugins/medical/tests/test_reference.py` asserts the same without the reference installed. "
        f"Ours: MONAI {monai.__version__}, {machine()}. The reference is built by its own constructors "
        "and defaults with random seeded weights (every tensor moved off its initial value), saved as "
        "it saves them (MONAI 1.3, its pinned version: no `norm_cross_attn`), and read by the host's weights reader "
        "through our `bmmae` layout; the output compared is the encoder's normed sequence, cls token "
        "first. The full ViT-B `BMMAE` layout of the reference (`pretrain_bmmae.py` defaults, encoder "
        "and decoder) maps onto `medical.bmmae` base and `medical.multimodal_mae` with no missing, "
        "unexpected or mis-shaped key (tested). The reference commit is the repository's first; later "
        "ones only add `from_pretrained` methods whose annotations make `import bmmae.model` fail "
        "(NameError), and change no model code.",
        "",
        "| reference | model and inputs | max abs diff | tolerance |",
        "|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the fixtures (reference env)")
    gen.add_argument("--reference", type=Path, required=True, help="a BM-MAE checkout")
    sub.add_parser("compare", help="compare with the fixtures and write BENCHMARKS.md (project env)")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.reference.resolve())
        return
    result = compare()
    print({k: v for k, v in result.items() if k != "info"})
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import write_section

    write_section(KEY, report(result))


if __name__ == "__main__":
    main()
