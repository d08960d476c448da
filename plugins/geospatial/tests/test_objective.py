import pytest
import torch

from domainfm.errors import DomainfmError
from domainfm_geospatial.encoder import build_prithvi
from domainfm_geospatial.objective import build_mae, masking, patchify, unpatchify


def _batch():
    torch.manual_seed(0)
    return {"image": torch.randn(2, 6, 3, 32, 32)}


def test_patchify_round_trip_in_token_order():
    x = torch.randn(2, 6, 4, 32, 32)
    p = patchify(x, 8, 2)
    assert p.shape == (2, 2 * 4 * 4, 2 * 8 * 8 * 6)
    assert torch.equal(unpatchify(p, (2, 4, 4), 6, 8, 2), x)


def test_masking_hides_three_quarters():
    keep, mask, restore = masking(2, 48, 0.75)
    assert keep.shape == (2, 12) and mask.sum(1).tolist() == [36.0, 36.0]
    for b in range(2):  # the kept ids are exactly the unmasked ones
        assert set(keep[b].tolist()) == set(torch.nonzero(mask[b] == 0)[:, 0].tolist())
    # the decoder's rule: kept tokens first, mask tokens after, gathered by restore
    placed = torch.cat([keep.float(), torch.full((2, 36), -1.0)], 1).gather(1, restore)
    positions = torch.arange(48.0).expand(2, -1)
    assert torch.equal(placed, torch.where(mask == 0, positions, -1.0))


def test_embedding_kept_tokens_equals_selecting_them_from_all():
    enc = build_prithvi("tiny", temporal_encoding=True, location_encoding=True)
    x = _batch()["image"]
    temporal = torch.tensor([[[2023.0, 105.0], [2023.0, 196.0], [2023.0, 288.0]]]).repeat(2, 1, 1)
    location = torch.tensor([[29.5, -98.2], [30.1, -97.6]])
    every, grid = enc.embed(x, temporal, location)
    keep = torch.stack([torch.randperm(48)[:12] for _ in range(2)])
    chosen, same_grid = enc.embed(x, temporal, location, keep)
    assert same_grid == grid and chosen.shape == (2, 12, enc.embed_dim)
    assert torch.allclose(chosen, every.gather(1, keep[..., None].expand(-1, -1, enc.embed_dim)),
                          atol=1e-5)


def test_loss_counts_only_masked_patches():
    enc = build_prithvi("tiny")
    mae = build_mae(enc)
    batch = _batch()
    noise = torch.rand(2, 48)
    out = mae.reconstruct(enc, batch, noise)
    mask = out["mask"]
    per_patch = (out["pred"] - out["target"]).pow(2).mean(-1)
    assert mae(enc, batch, noise)["loss"].item() == pytest.approx(
        ((per_patch * mask).sum() / mask.sum()).item(), rel=1e-5)
    # changing pixels of visible patches only changes the target of visible patches
    assert mask.mean().item() == pytest.approx(0.75)


def test_norm_pix_loss_normalises_each_target_patch():
    enc = build_prithvi("tiny")
    out = build_mae(enc, norm_pix_loss=True).reconstruct(enc, _batch())
    t = out["target"]
    assert torch.allclose(t.mean(-1), torch.zeros_like(t.mean(-1)), atol=1e-5)
    assert torch.allclose(t.std(-1), torch.ones_like(t.std(-1)), atol=1e-2)


def test_decoder_sizes_default_to_the_preset_and_names_match_the_checkpoints():
    enc = build_prithvi("tiny", temporal_encoding=True)
    mae = build_mae(enc)
    assert mae.decoder_dim == 64 and len(mae.decoder_blocks) == 2
    names = set(mae.state_dict())
    for key in ("mask_token", "decoder_embed.weight", "decoder_norm.weight", "decoder_pred.weight",
                "temporal_embed_dec.scale", "decoder_blocks.0.attn.qkv.weight"):
        assert key in names


def test_mae_overfits_one_batch_of_the_embedded_scenes(tmp_path):
    from domainfm_geospatial.data import build_water

    dm = build_water(root=str(tmp_path), places=3, size=32, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    enc = build_prithvi("tiny")
    mae = build_mae(enc)
    opt = torch.optim.AdamW([*enc.parameters(), *mae.parameters()], lr=1e-3)
    losses = []
    for _ in range(30):
        torch.manual_seed(0)
        loss = mae(enc, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_bad_parameters():
    enc = build_prithvi("tiny")
    with pytest.raises(DomainfmError, match="mask_ratio"):
        build_mae(enc, mask_ratio=1.0)
    with pytest.raises(DomainfmError, match="needs a geospatial.prithvi encoder"):
        build_mae(torch.nn.Linear(2, 2))
