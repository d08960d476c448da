"""Encoder, multimodal MAE objective, heads and released-weight conversion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import domainfm
from domainfm.errors import DomainfmError, WeightsError
from domainfm.weights import load_part_weights
from domainfm_medical.encoder import PRESETS, build_encoder
from domainfm_medical.heads import build_classification, build_segmentation, sliding_window_segment
from domainfm_medical.objective import build_objective, patchify, unpatchify


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    encoder = build_encoder(preset="tiny").eval()
    return encoder, build_objective(encoder).eval()


def test_presets_follow_the_reference() -> None:
    assert PRESETS["base"] == dict(img_size=128, patch_size=16, embed_dim=768, depth=12,
                                   num_heads=12, mlp_dim=1536)
    assert PRESETS["tiny"]["img_size"] == 32 and PRESETS["tiny"]["patch_size"] == 8


def test_base_preset_builds_with_512_tokens_per_modality() -> None:
    with torch.device("meta"):  # shapes only: no memory or time for 70 M initial values
        encoder = build_encoder(preset="base")
    assert encoder.num_patches == 512 and encoder.embed_dim == 768 and len(encoder.blocks) == 12
    params = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert 68e6 < params < 71e6  # 12 blocks x 4.7 M (MLP 1536) + four 16^3 x 768 tokenizers


def test_positions_are_fixed_and_shapes_follow_the_vocabulary(model) -> None:
    encoder, _ = model
    pos = encoder.tokenizers["t1"].patch_embedding.position_embeddings
    assert not pos.requires_grad
    out = encoder({"image": torch.randn(2, 4, 32, 32, 32)})
    assert out["embedding"].shape == (2, 192) and out["tokens"].shape == (2, 4 * 64, 192)
    assert len(out["hidden_states"]) == 4 and out["hidden_states"][0].shape == (2, 256, 192)


def test_absent_modality_equals_leaving_it_out(model) -> None:
    """A case's features depend only on its present modalities, however they are passed."""
    encoder, _ = model
    image = torch.randn(1, 4, 32, 32, 32)
    junk = image.clone()
    junk[:, 1] = 100.0  # whatever sits in an absent channel must not matter
    with torch.no_grad():
        masked = encoder({"image": junk, "present": torch.tensor([[True, False, True, False]])})
        by_name = encoder({"t1": image[:, :1], "t2": image[:, 2:3]})
    assert masked["tokens"].shape == (1, 128, 192)
    torch.testing.assert_close(masked["embedding"], by_name["embedding"])
    # in a mixed batch, padding must not leak into the shorter case either
    with torch.no_grad():
        mixed = encoder({"image": torch.cat([junk, image]),
                         "present": torch.tensor([[True, False, True, False], [True] * 4])})
    torch.testing.assert_close(mixed["embedding"][0], by_name["embedding"][0], atol=1e-5, rtol=1e-4)


def test_bad_encoder_inputs_are_explained(model) -> None:
    encoder, _ = model
    with pytest.raises(DomainfmError, match="32\\^3"):
        encoder({"image": torch.randn(1, 4, 24, 24, 24)})
    with pytest.raises(DomainfmError, match="unknown modalities"):
        encoder({"image": torch.randn(1, 1, 32, 32, 32), "modalities": ["dwi"]})
    with pytest.raises(DomainfmError, match="at least one present"):
        encoder({"image": torch.randn(1, 4, 32, 32, 32), "present": torch.zeros(1, 4, dtype=torch.bool)})


def test_patchify_round_trip() -> None:
    x = torch.randn(2, 3, 16, 24, 8)
    assert torch.equal(unpatchify(patchify(x, 8), 8, (2, 3, 1)), x)
    assert torch.equal(patchify(x, 8)[0, 0, 1], x[0, 0, :8, 8:16, :8].reshape(-1))


def test_embedding_chosen_tokens_equals_the_tokenizer_convolutions(model) -> None:
    encoder, _ = model
    torch.manual_seed(3)
    image = torch.randn(2, 4, 32, 32, 32)
    every = torch.cat([encoder.tokenizers[m](image[:, i : i + 1])  # MONAI's conv patch embedding
                       for i, m in enumerate(encoder.modalities)], 1)
    ids = torch.stack([torch.randperm(4 * 64)[:50] for _ in range(2)])
    chosen = encoder.embed_tokens(image, ids)
    assert torch.allclose(chosen, every.gather(1, ids[..., None].expand(-1, -1, every.shape[-1])),
                          atol=1e-5)


def test_dirichlet_budget_is_exact_and_skips_absent_modalities(model) -> None:
    _, objective = model
    present = torch.tensor([[True] * 4, [True, False, True, False], [False, False, False, True]])
    torch.manual_seed(0)
    counts = objective.visible_counts(present.repeat(50, 1))
    budget = (0.25 * present.sum(1) * 64).round().repeat(50)
    assert torch.equal(counts.sum(1), budget.long())
    assert (counts[~present.repeat(50, 1)] == 0).all()
    shares = counts[::3].float() / 64  # Dirichlet(1): every split occurs, not a fixed quarter each
    assert shares.max() > 0.6 and shares.min() == 0


def test_loss_only_counts_masked_patches(model) -> None:
    encoder, objective = model
    batch = {"image": torch.randn(2, 4, 32, 32, 32), "present": torch.tensor([[True] * 4, [True, True, False, False]])}
    torch.manual_seed(0)
    out = objective(encoder, batch)
    per_mod = torch.stack([out[f"loss_{m}"] for m in encoder.modalities])
    torch.testing.assert_close(out["loss"], per_mod.sum())
    pred = torch.zeros(2, 4, 64, 512)
    target = patchify(batch["image"], 8)
    masked = torch.zeros(2, 4, 64, dtype=torch.bool)
    masked[0, 0, :5] = True
    exact = objective.loss(pred, batch["image"], masked)
    torch.testing.assert_close(exact["loss"], (target[0, 0, :5] ** 2).mean())


def test_reconstruct_returns_missing_modalities_as_volumes(model) -> None:
    encoder, objective = model
    case = {"t1": torch.randn(1, 1, 32, 32, 32), "flair": torch.randn(1, 1, 32, 32, 32)}
    out = objective.reconstruct(encoder, case, missing=["t1ce", "t2"])
    assert sorted(out) == ["t1ce", "t2"] and out["t2"].shape == (1, 32, 32, 32)
    with pytest.raises(DomainfmError, match="at least one available"):
        objective.reconstruct(encoder, {"t1": case["t1"]}, missing=["t1"])


def test_segmentation_head_and_sliding_window(model) -> None:
    encoder, _ = model
    head = build_segmentation(encoder, num_classes=3, activation="sigmoid", feature_size=8).eval()
    batch = {"image": torch.randn(1, 4, 32, 32, 32), "present": torch.tensor([[True, True, False, True]])}
    logits = head(encoder(batch), batch)
    assert logits.shape == (1, 3, 32, 32, 32)
    target = torch.zeros(1, 3, 32, 32, 32)
    assert torch.isfinite(head.loss(logits, {**batch, "target": target}))
    big = torch.randn(1, 4, 40, 32, 30)
    with torch.no_grad():
        out = sliding_window_segment(encoder, head, big, batch["present"], overlap=0.25)
    assert out.shape == (1, 3, 40, 32, 30) and torch.isfinite(out).all()
    softmax = build_segmentation(encoder, num_classes=4, activation="softmax", feature_size=8)
    assert softmax(encoder(batch), batch).shape == (1, 4, 32, 32, 32)
    assert head.layers == [1, 2]  # skips from blocks 2 and 3 of 4 (UNETR: 3, 6, 9 of 12)
    deep = build_encoder(preset="tiny", depth=12, patch_size=16)
    assert build_segmentation(deep, num_classes=3, activation="sigmoid", feature_size=8).layers == [3, 6, 9]


def test_classification_head_uses_the_cls_token(model) -> None:
    encoder, _ = model
    head = build_classification(encoder, num_classes=2)
    batch = {"image": torch.randn(2, 4, 32, 32, 32), "target": torch.tensor([0, 1])}
    logits = head(encoder(batch), batch)
    assert logits.shape == (2, 2) and torch.isfinite(head.loss(logits, batch))
    with pytest.raises(DomainfmError, match="labels must be in 0..1"):
        head.loss(logits, {**batch, "target": torch.tensor([0, -1])})


def _released_layout(encoder, objective) -> dict[str, torch.Tensor]:
    """A state dict as the reference code saves it: MONAI < 1.4 blocks, DDP prefix, wrapper."""
    state = {k: v.clone() for k, v in encoder.state_dict().items() if "norm_cross_attn" not in k}
    state.update({f"decoder.{k}": v.clone() for k, v in objective.decoder.state_dict().items()
                  if "norm_cross_attn" not in k})
    assert "tokenizers.flair.patch_embedding.patch_embeddings.weight" in state
    assert "blocks.3.attn.out_proj.weight" in state and "decoder.modality_embeddings.t2" in state
    return {"state_dict": {f"module.{k}": v for k, v in state.items()}}


@pytest.fixture(scope="module")
def layouts() -> dict[str, dict]:
    """The ``bmmae`` key filters as the host finds them on the records."""
    host = domainfm.Host()
    return {part: host.get(part, name).weights
            for part, name in (("encoder", "medical.bmmae"), ("objective", "medical.multimodal_mae"))}


def test_released_checkpoint_loads_exactly(model, layouts, tmp_path: Path) -> None:
    encoder, objective = model
    path = tmp_path / "bmmae.pth"
    torch.save(_released_layout(encoder, objective), path)
    torch.manual_seed(1)
    fresh = build_encoder(preset="tiny").eval()
    fresh_obj = build_objective(fresh).eval()
    load_part_weights(fresh, "encoder", layouts["encoder"], str(path), "bmmae")  # the host reads it
    load_part_weights(fresh_obj, "objective", layouts["objective"], str(path), "bmmae")
    batch = {"image": torch.randn(1, 4, 32, 32, 32)}
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch)["embedding"], encoder(batch)["embedding"], rtol=0, atol=0)
        a = fresh_obj.reconstruct(fresh, batch, missing=["t2"])["t2"]
        b = objective.reconstruct(encoder, batch, missing=["t2"])["t2"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_layout_reconciles_monai_versions_and_wrappers(model, layouts, tmp_path: Path) -> None:
    """Unused ``cross_attn`` weights of old MONAI blocks are dropped, absent ``norm_cross_attn``
    norms keep ours, ``model.``/``net.`` prefixes go, and safetensors files read the same."""
    from safetensors.torch import save_file

    encoder, objective = model
    state = {f"net.model.{k}": v for k, v in _released_layout(encoder, objective)["state_dict"].items()}
    state["net.model.blocks.1.cross_attn.qkv.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bmmae.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    torch.manual_seed(2)
    fresh = build_encoder(preset="tiny").eval()
    ours = fresh.blocks[0].norm_cross_attn.weight.clone()
    load_part_weights(fresh, "encoder", layouts["encoder"], str(path))  # the first layout: bmmae
    torch.testing.assert_close(fresh.blocks[0].norm_cross_attn.weight, ours, rtol=0, atol=0)
    torch.testing.assert_close(fresh.cls_token, encoder.cls_token, rtol=0, atol=0)


def test_checkpoint_mismatch_lists_keys_and_shapes(model, layouts, tmp_path: Path) -> None:
    encoder, objective = model
    state = _released_layout(encoder, objective)["state_dict"]
    del state["module.blocks.2.mlp.linear1.weight"]
    state["module.blocks.0.attn.extra"] = torch.zeros(1)
    state["module.cls_token"] = torch.zeros(1, 1, 96)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        load_part_weights(build_encoder(preset="tiny"), "encoder", layouts["encoder"],
                          str(tmp_path / "bad.pth"), "bmmae")
    message = str(info.value)
    assert "missing keys (1): ['blocks.2.mlp.linear1.weight']" in message
    assert "unexpected keys (1): ['blocks.0.attn.extra']" in message
    assert "cls_token: file (1, 1, 96) vs model (1, 1, 192)" in message
